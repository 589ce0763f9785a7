// Envoy's retry_on semantics and back-off, as pure decisions.
import t from 'tap';
import { seededRng } from '../../src/core/rng.js';
import type { RetryOn, RetryPolicy } from '../../src/model/types.js';
import { backoffMs, retriableFailure, retriableResponse } from '../../src/dataplane/retry.js';
import { UpstreamError } from '../../src/upstream/errors.js';

const policy = (on: string, extra: Partial<RetryPolicy> = {}): RetryPolicy => ({
  retryOn: new Set(on.split(',').filter(Boolean) as RetryOn[]),
  numRetries: 1,
  perTryTimeoutMs: 0,
  retriableStatusCodes: [],
  previousHosts: false,
  previousPrioritiesUpdateFrequency: 0,
  hostSelectionRetryMaxAttempts: 1,
  backOffBaseMs: 25,
  backOffMaxMs: 250,
  ...extra,
});
const err = (kind: ConstructorParameters<typeof UpstreamError>[0]) => new UpstreamError(kind, 'r', 'm');

t.test('responses: 5xx, gateway-error, retriable-4xx, retriable-status-codes and the gRPC conditions', (t) => {
  const codes = [200, 404, 409, 500, 502, 503, 504, 599];
  const retried = (p: RetryPolicy) => codes.filter((c) => retriableResponse(p, c, undefined));
  t.strictSame(retried(policy('5xx')), [500, 502, 503, 504, 599]);
  t.strictSame(retried(policy('gateway-error')), [502, 503, 504]);
  t.strictSame(retried(policy('retriable-4xx')), [409]);
  t.strictSame(retried(policy('retriable-status-codes', { retriableStatusCodes: [404, 503] })), [404, 503]);
  t.strictSame(retried(policy('retriable-status-codes')), [], 'the condition without codes retries nothing');
  t.strictSame(retried(policy('connect-failure,reset')), [], 'failure conditions never retry an answer');
  const grpc = ['0', '1', '2', '4', '8', '13', '14'];
  t.strictSame(grpc.filter((g) => retriableResponse(policy('cancelled,deadline-exceeded,internal,resource-exhausted,unavailable'), 200, g)), ['1', '4', '8', '13', '14']);
  t.strictSame(grpc.filter((g) => retriableResponse(policy('unavailable'), 200, g)), ['14']);
  t.end();
});

t.test('failures: which condition covers which way of getting no answer', (t) => {
  const kinds = ['connect_failure', 'connect_timeout', 'reset', 'refused_stream', 'overflow'] as const;
  const retried = (p: RetryPolicy) => [...kinds.filter((k) => retriableFailure(p, err(k))), ...(retriableFailure(p, 'per_try_timeout') ? ['per_try_timeout'] : [])];
  for (const on of ['5xx', 'gateway-error', 'reset']) t.strictSame(retried(policy(on)), [...kinds, 'per_try_timeout'], `${on} covers every failure`);
  t.strictSame(retried(policy('connect-failure')), ['connect_failure', 'connect_timeout']);
  t.strictSame(retried(policy('refused-stream')), ['refused_stream']);
  t.strictSame(retried(policy('reset-before-request')), ['connect_failure', 'connect_timeout', 'refused_stream']);
  t.strictSame(retried(policy('unavailable,retriable-4xx')), []);
  t.end();
});

t.test("back-off is Envoy's full jitter: retry n draws from [0, (2^n - 1) x base), capped at max", (t) => {
  const rng = seededRng(7);
  const p = policy('5xx');
  for (const [n, ceiling] of [[1, 25], [2, 75], [3, 175], [4, 250], [20, 250]] as const) {
    const draws = Array.from({ length: 2000 }, () => backoffMs(p, n, rng));
    t.ok(draws.every((d) => d >= 0 && d < ceiling), `retry ${n}: every draw in [0, ${ceiling})`);
    t.ok(Math.max(...draws) > ceiling * 0.95, `retry ${n}: the draws reach the top of the range`);
  }
  t.equal(backoffMs(p, 3, { next: () => 0.5, int: () => 0 }), 87.5);
  t.end();
});
