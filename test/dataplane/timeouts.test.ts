// A request's deadline: grpc-timeout parsing (gRPC over HTTP/2's TimeoutValue + TimeoutUnit), and how
// max_grpc_timeout combines it with the route timeout, as Envoy's router does.
import t from 'tap';
import type { RouteAction } from '../../src/model/types.js';
import { parseGrpcTimeout, requestTimeoutMs, upstreamGrpcTimeout } from '../../src/dataplane/timeouts.js';

const ra = (o: Partial<RouteAction>): RouteAction => ({ cluster: 'c', timeoutMs: 15_000, hashPolicy: [], ...o });

t.test('grpc-timeout: every unit, rounded up to whole ms (never 0); malformed or absent is none', (t) => {
  t.equal(parseGrpcTimeout('2H'), 7_200_000);
  t.equal(parseGrpcTimeout('3M'), 180_000);
  t.equal(parseGrpcTimeout('10S'), 10_000);
  t.equal(parseGrpcTimeout('250m'), 250);
  t.equal(parseGrpcTimeout('1500u'), 2);
  t.equal(parseGrpcTimeout('1n'), 1, 'a deadline, however short, is not "no deadline"');
  t.equal(parseGrpcTimeout('0m'), 1);
  for (const bad of ['', '5', 'm', '5s', '123456789m', '-5m', ' 5m', '5.5S']) t.equal(parseGrpcTimeout(bad), undefined, JSON.stringify(bad));
  t.equal(parseGrpcTimeout(undefined), undefined);
  t.equal(parseGrpcTimeout(['5m', '6m']), undefined, 'a repeated header is malformed');
  t.end();
});

t.test('the request timeout: the route timeout, or for gRPC under max_grpc_timeout the header capped by it', (t) => {
  t.equal(requestTimeoutMs(ra({}), true, '100m'), 15_000, 'no max_grpc_timeout: grpc-timeout is not looked at');
  t.equal(requestTimeoutMs(ra({ maxGrpcTimeoutMs: 5000 }), false, '100m'), 15_000, 'not gRPC: the route timeout');
  t.equal(requestTimeoutMs(ra({ timeoutMs: 5000, maxGrpcTimeoutMs: 5000 }), true, '100m'), 100, 'the shorter grpc-timeout wins');
  t.equal(requestTimeoutMs(ra({ timeoutMs: 5000, maxGrpcTimeoutMs: 5000 }), true, '30S'), 5000, 'the shorter cap wins');
  t.equal(requestTimeoutMs(ra({ timeoutMs: 5000, maxGrpcTimeoutMs: 5000 }), true, undefined), 5000, 'no header: the cap');
  t.equal(requestTimeoutMs(ra({ timeoutMs: 0, maxGrpcTimeoutMs: 0 }), true, '30S'), 30_000, 'cap 0: the header alone');
  t.equal(requestTimeoutMs(ra({ timeoutMs: 0, maxGrpcTimeoutMs: 0 }), true, undefined), 0, 'cap 0 and no header: no deadline');
  t.end();
});

t.test('the grpc-timeout sent upstream: what this hop waits (the per-try timeout when shorter), only under max_grpc_timeout', (t) => {
  const retry = (perTryTimeoutMs: number) => ({ retryOn: new Set<never>(), numRetries: 1, perTryTimeoutMs, retriableStatusCodes: [], previousHosts: false, previousPrioritiesUpdateFrequency: 0, hostSelectionRetryMaxAttempts: 1, backOffBaseMs: 25, backOffMaxMs: 250 });
  t.equal(upstreamGrpcTimeout(ra({ maxGrpcTimeoutMs: 0 }), true, 1200), '1200m');
  t.equal(upstreamGrpcTimeout(ra({ maxGrpcTimeoutMs: 0, retryPolicy: retry(300) }), true, 1200), '300m');
  t.equal(upstreamGrpcTimeout(ra({ maxGrpcTimeoutMs: 0, retryPolicy: retry(300) }), true, 0), '300m', 'no overall deadline: the per-try one');
  t.equal(upstreamGrpcTimeout(ra({ maxGrpcTimeoutMs: 0, retryPolicy: retry(3000) }), true, 1200), '1200m');
  t.equal(upstreamGrpcTimeout(ra({ maxGrpcTimeoutMs: 0 }), true, 0), undefined, 'no deadline at all: the header is left alone');
  t.equal(upstreamGrpcTimeout(ra({}), true, 1200), undefined);
  t.equal(upstreamGrpcTimeout(ra({ maxGrpcTimeoutMs: 0 }), false, 1200), undefined);
  t.end();
});
