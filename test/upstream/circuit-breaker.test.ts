// The circuit breaker's arithmetic (Envoy's ResourceManager): limits, overflows, the retry budget and the pending queue.
import t from 'tap';
import { CIRCUIT_BREAKER_DEFAULTS, type CircuitBreakerThresholds } from '../../src/model/types.js';
import { CircuitBreaker, PendingQueue, overflowError, type BreakerResource } from '../../src/upstream/circuit-breaker.js';
import type { UpstreamError } from '../../src/upstream/errors.js';

const limits = (o: Partial<CircuitBreakerThresholds>): CircuitBreakerThresholds => ({ ...CIRCUIT_BREAKER_DEFAULTS, ...o });

function breaker(o: Partial<CircuitBreakerThresholds> = {}) {
  const overflows: BreakerResource[] = [];
  return { b: new CircuitBreaker('c', limits(o), (r) => overflows.push(r)), overflows };
}

t.test('Envoy defaults: 1024 connections, pending and requests, 3 retries', (t) => {
  const b = new CircuitBreaker('c', undefined);
  t.strictSame(b.view(), [
    { resource: 'cx', remaining: 1024, open: false },
    { resource: 'pending', remaining: 1024, open: false },
    { resource: 'rq', remaining: 1024, open: false },
    { resource: 'retries', remaining: 3, open: false },
  ]);
  b.update(limits({ maxRequests: 2 }));
  t.equal(b.thresholds.maxRequests, 2);
  b.update(undefined);
  t.equal(b.thresholds, CIRCUIT_BREAKER_DEFAULTS, 'a version without circuit_breakers goes back to the defaults');
  t.end();
});

t.test('max_requests: exactly N admitted, N+1 overflows, a finished request frees its slot', (t) => {
  const { b, overflows } = breaker({ maxRequests: 3 });
  t.ok(b.tryRequest() && b.tryRequest() && b.tryRequest(), 'three in flight');
  t.notOk(b.tryRequest(), 'the fourth is refused');
  t.strictSame(overflows, ['rq']);
  t.match(b.view()[2], { resource: 'rq', remaining: 0, open: true });
  b.requestDone();
  t.ok(b.tryRequest(), 'capacity returns');
  t.end();
});

t.test('max_pending_requests and max_connections; an empty pool may always connect', (t) => {
  const { b, overflows } = breaker({ maxPendingRequests: 1, maxConnections: 2 });
  t.ok(b.tryPending());
  t.notOk(b.tryPending());
  b.pendingDone();
  t.ok(b.tryPending());
  t.ok(b.canConnect(false));
  b.connections(2);
  t.notOk(b.canConnect(false), 'at the limit');
  t.ok(b.canConnect(true), 'but a pool with no connection gets one (Envoy)');
  t.match(b.view()[0], { resource: 'cx', remaining: 0, open: true });
  b.connections(-1);
  t.ok(b.canConnect(false));
  t.strictSame(overflows, ['pending', 'cx']);
  t.notOk(new CircuitBreaker('c', limits({ maxRequests: 0 })).tryRequest(), 'no overflow listener needed');
  const zero = breaker({ maxPendingRequests: 0 }).b;
  t.notOk(zero.tryPending(), 'max_pending_requests 0: nothing may wait');
  t.end();
});

t.test('max_retries: concurrent retries, each release gives back one slot once', (t) => {
  const { b, overflows } = breaker({ maxRetries: 2 });
  const r1 = b.tryRetry();
  const r2 = b.tryRetry();
  t.ok(r1 && r2);
  if (!r1) return;
  t.equal(b.tryRetry(), undefined, 'a third concurrent retry is refused');
  t.strictSame(overflows, ['retries']);
  r1();
  r1();
  t.equal(b.retries, 1, 'a second call of the same release does nothing');
  t.ok(b.tryRetry(), 'the freed slot is taken again');
  t.equal(breaker({ maxRetries: 0 }).b.tryRetry(), undefined, 'max_retries 0: no retries at all');
  t.end();
});

t.test('retry_budget: budget_percent of active + pending requests, never below min_retry_concurrency', (t) => {
  const { b } = breaker({ maxRetries: 100, retryBudget: { budgetPercent: 20, minRetryConcurrency: 3 } });
  t.equal(b.maxRetries(), 3, 'idle: the floor, max_retries is ignored');
  for (let i = 0; i < 20; i++) b.tryRequest();
  t.equal(b.maxRetries(), 4, '20 % of 20 active');
  for (let i = 0; i < 6; i++) b.tryPending();
  t.equal(b.maxRetries(), 5, '20 % of 26 (20 active + 6 pending), rounded down');
  const held = [1, 2, 3, 4, 5].map(() => b.tryRetry());
  t.ok(held.every(Boolean));
  t.equal(b.tryRetry(), undefined, 'the sixth concurrent retry is over budget');
  t.match(b.view()[3], { resource: 'retries', remaining: 0, open: true });
  for (let i = 0; i < 16; i++) b.requestDone();
  t.equal(b.maxRetries(), 3, 'the budget shrinks with the load');
  t.match(b.view()[3], { remaining: 0, open: true }, 'retries already in flight stay, the gauge cannot go negative');
  const half = breaker({ retryBudget: { budgetPercent: 50, minRetryConcurrency: 0 } }).b;
  t.equal(half.tryRetry(), undefined, 'no floor and nothing in flight: no retry');
  t.end();
});

t.test('overflowError: kind overflow with a bounded reason per resource', (t) => {
  t.match(overflowError('c', 'pending'), { kind: 'overflow', reason: 'pending_overflow', code: 'UPSTREAM_OVERFLOW' });
  t.match(overflowError('c', 'rq'), { kind: 'overflow', reason: 'rq_overflow', message: /max_requests/ });
  t.match(overflowError('c', 'cx'), { reason: 'cx_overflow', message: /max_connections/ });
  t.match(overflowError('c', 'retries'), { reason: 'retries_overflow', message: /max_retries/ });
  t.notOk(overflowError('c', 'rq').beforeRequestSent, 'not a retriable connect-phase failure');
  t.end();
});

t.test('PendingQueue: FIFO within max_pending_requests; cancelled waiters leave and free their slot', (t) => {
  const { b } = breaker({ maxPendingRequests: 2 });
  const q = new PendingQueue(b);
  let capacity = 0;
  const ran: string[] = [];
  const failed: [string, string][] = [];
  const cancelled = new Set<string>();
  const req = (name: string) => ({
    cancelled: () => cancelled.has(name),
    attempt: () => {
      if (capacity === 0) return false;
      capacity--;
      ran.push(name);
      return true;
    },
    fail: (e: UpstreamError) => failed.push([name, e.kind]),
  });
  t.ok(q.push(req('a')) && q.push(req('b')));
  t.notOk(q.push(req('c')), 'the third overflows');
  t.equal(b.pending, 2);
  q.drain();
  t.strictSame(ran, [], 'no capacity: everyone waits');
  capacity = 1;
  q.drain();
  t.strictSame(ran, ['a'], 'first in, first out');
  t.equal(b.pending, 1);
  cancelled.add('b');
  t.ok(q.push(req('d')), 'room for d');
  t.ok(q.push(req('e')), 'the queue is full, but b went away: it leaves and e takes its slot');
  t.strictSame(failed, [['b', 'cancelled']]);
  cancelled.add('d');
  capacity = 5;
  q.drain();
  t.strictSame(ran, ['a', 'e'], 'd was cancelled while waiting and is skipped');
  t.strictSame(failed, [['b', 'cancelled'], ['d', 'cancelled']]);
  t.equal(b.pending, 0);
  t.equal(q.length, 0);
  t.ok(q.push(req('f')));
  q.failAll(() => overflowError('c', 'pending'));
  t.strictSame(failed.at(-1), ['f', 'overflow']);
  t.equal(b.pending, 0, 'failAll gives every slot back');
  t.end();
});
