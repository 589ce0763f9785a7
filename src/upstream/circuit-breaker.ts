// A cluster's circuit breakers (envoy.config.cluster.v3.CircuitBreakers, DEFAULT priority): connection, pending,
// request and retry counts shared by every host's pool, and the pending queue a pool parks requests in.
import { CIRCUIT_BREAKER_DEFAULTS, type CircuitBreakerThresholds } from '../model/types.js';
import { UpstreamError, cancelledError } from './errors.js';

/** The four resources, as the gauges' `resource` label names them (Envoy: cx, rq_pending, rq, rq_retry). */
export type BreakerResource = 'cx' | 'pending' | 'rq' | 'retries';

export interface BreakerView {
  readonly resource: BreakerResource;
  /** Envoy's remaining_<resource>: how many more may be taken now. */
  readonly remaining: number;
  /** Envoy's <resource>_open: 1 when the limit is reached. */
  readonly open: boolean;
}

/** An upstream request refused by a full breaker: 503 with flag UO, never retried (Envoy's Overflow reset). */
export function overflowError(cluster: string, resource: BreakerResource): UpstreamError {
  const what = { cx: 'max_connections', pending: 'max_pending_requests', rq: 'max_requests', retries: 'max_retries' }[resource];
  return new UpstreamError('overflow', resource === 'pending' ? 'pending_overflow' : `${resource}_overflow`, `cluster ${cluster}: circuit breaker ${what} reached`);
}

/**
 * One per cluster name, outliving config versions like the outlier detector: a CDS or EDS update changes the
 * limits in place (update) and keeps the counts, so in-flight requests and open connections of the previous
 * version still count against the new limits. Counts are Envoy's ResourceManager's: cx = connections open or
 * opening; pending = requests parked for a connection or stream slot the limits withhold; rq = requests on an
 * upstream connection; retries = retry attempts in flight.
 */
export class CircuitBreaker {
  cx = 0;
  pending = 0;
  rq = 0;
  retries = 0;
  private t: CircuitBreakerThresholds;

  constructor(
    readonly cluster: string,
    thresholds: CircuitBreakerThresholds | undefined,
    /** Called on every refusal (Envoy: upstream_cx_overflow, upstream_rq_pending_overflow, upstream_rq_retry_overflow). */
    private readonly onOverflow: (resource: BreakerResource) => void = () => {},
  ) {
    this.t = thresholds ?? CIRCUIT_BREAKER_DEFAULTS;
  }

  get thresholds(): CircuitBreakerThresholds {
    return this.t;
  }

  update(thresholds: CircuitBreakerThresholds | undefined): void {
    this.t = thresholds ?? CIRCUIT_BREAKER_DEFAULTS;
  }

  /**
   * May a pool open one more connection? A pool with no connection at all may always open one (Envoy does the
   * same: otherwise requests to a host whose neighbours hold every slot would wait with nothing to serve them);
   * pools pass `poolIsEmpty` for that.
   */
  canConnect(poolIsEmpty: boolean): boolean {
    if (this.cx < this.t.maxConnections || poolIsEmpty) return true;
    this.onOverflow('cx');
    return false;
  }

  /** Connections opened (+) or closed (-) by a pool. */
  connections(delta: number): void {
    this.cx += delta;
  }

  /** Takes a pending slot; false (counted as an overflow) when max_pending_requests is reached. */
  tryPending(): boolean {
    if (this.pending >= this.t.maxPendingRequests) {
      this.onOverflow('pending');
      return false;
    }
    this.pending++;
    return true;
  }

  pendingDone(): void {
    this.pending--;
  }

  /** Takes a request slot as a request goes onto a connection; false (an overflow) at max_requests. */
  tryRequest(): boolean {
    if (this.rq >= this.t.maxRequests) {
      this.onOverflow('rq');
      return false;
    }
    this.rq++;
    return true;
  }

  requestDone(): void {
    this.rq--;
  }

  /**
   * The retry limit now: max_retries, or with a retry_budget, budget_percent of the active plus pending requests
   * (rounded down) but at least min_retry_concurrency (Envoy's RetryBudgetImpl).
   */
  maxRetries(): number {
    const b = this.t.retryBudget;
    if (!b) return this.t.maxRetries;
    return Math.max(Math.floor(((this.rq + this.pending) * b.budgetPercent) / 100), b.minRetryConcurrency);
  }

  /**
   * Admits one retry attempt: a function that gives the slot back when the attempt ends (calling it twice gives
   * back one slot), or undefined when the retry limit is reached (the caller then answers with what it has,
   * as Envoy does on upstream_rq_retry_overflow).
   */
  tryRetry(): (() => void) | undefined {
    if (this.retries >= this.maxRetries()) {
      this.onOverflow('retries');
      return undefined;
    }
    this.retries++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.retries--;
    };
  }

  /** The gauges: remaining capacity and open state per resource. */
  view(): BreakerView[] {
    const row = (resource: BreakerResource, used: number, max: number): BreakerView => ({ resource, remaining: Math.max(0, max - used), open: used >= max });
    return [
      row('cx', this.cx, this.t.maxConnections),
      row('pending', this.pending, this.t.maxPendingRequests),
      row('rq', this.rq, this.t.maxRequests),
      row('retries', this.retries, this.maxRetries()),
    ];
  }
}

/** A request parked in a pool until a connection or stream slot is free. */
export interface PendingRequest {
  readonly cancelled: (() => boolean) | undefined;
  /** Tries to go on; true when the request left the queue (sent, or failed for good), false to keep waiting. */
  attempt(): boolean;
  fail(e: UpstreamError): void;
}

/**
 * A pool's FIFO of pending requests, each holding one of the breaker's pending slots while it waits. Callers
 * that went away (route timeout, downstream reset) leave at the next drain, or at once when a newcomer finds the
 * queue full, so a dead request never holds a slot a live one needs.
 */
export class PendingQueue {
  private q: PendingRequest[] = [];

  constructor(private readonly breaker: CircuitBreaker) {}

  get length(): number {
    return this.q.length;
  }

  /** Parks `p`; false when max_pending_requests is reached (the caller answers overflow at once). */
  push(p: PendingRequest): boolean {
    if (this.breaker.pending >= this.breaker.thresholds.maxPendingRequests) this.purge();
    if (!this.breaker.tryPending()) return false;
    this.q.push(p);
    return true;
  }

  /** Lets waiters go on, in order, for as long as they find capacity. */
  drain(): void {
    while (this.q.length > 0) {
      const p = this.q[0]!;
      const gone = p.cancelled?.() === true;
      if (!gone && !p.attempt()) return;
      this.q.shift();
      this.breaker.pendingDone();
      if (gone) p.fail(cancelledError());
    }
  }

  /** Fails every waiter (the pool closed). */
  failAll(e: () => UpstreamError): void {
    const q = this.q;
    this.q = [];
    for (const p of q) {
      this.breaker.pendingDone();
      p.fail(e());
    }
  }

  private purge(): void {
    const gone = this.q.filter((p) => p.cancelled?.());
    if (gone.length === 0) return;
    this.q = this.q.filter((p) => !gone.includes(p));
    for (const p of gone) {
      this.breaker.pendingDone();
      p.fail(cancelledError());
    }
  }
}
