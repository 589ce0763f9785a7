// Per-host peak-EWMA latency estimate (Finagle's and Linkerd's PeakEwma): jumps up to a slower observation at
// once, decays towards faster ones, and decays towards zero while unobserved so an idle host is probed again.

/** Finagle's penalty for a host with requests in flight and no response yet: larger than any real cost. */
export const UNOBSERVED_PENALTY = 2 ** 40;

export class PeakEwma {
  private est = 0;
  private stamp = 0;
  private seen = false;

  /** decayTimeMs: the time constant τ (PeakEwma.decay_time, default 10 s). */
  constructor(private readonly decayTimeMs = 10_000) {}

  /** True once a response time has been observed. */
  get observed(): boolean {
    return this.seen;
  }

  /**
   * Records one response time. With w = exp(-Δt/τ), Δt the time since the previous observation: a slower
   * sample replaces the estimate (the "peak"); a faster one is blended in as est·w + rtt·(1−w), so the longer
   * since the last sample, the more the new one counts.
   */
  observe(rttMs: number, nowMs: number): void {
    if (!this.seen || rttMs > this.est) {
      this.est = rttMs;
    } else {
      const w = Math.exp(-Math.max(0, nowMs - this.stamp) / this.decayTimeMs);
      this.est = this.est * w + rttMs * (1 - w);
    }
    this.seen = true;
    this.stamp = nowMs;
  }

  /**
   * The estimate at `nowMs`: the last value decayed by exp(-Δt/τ), which is what observing a zero RTT now
   * would give (Finagle and Linkerd decay on read the same way). Pure: reading does not change the state, so
   * how often a picker looks cannot change what it sees. 0 before the first observation.
   */
  estimate(nowMs: number): number {
    if (!this.seen) return 0;
    return this.est * Math.exp(-Math.max(0, nowMs - this.stamp) / this.decayTimeMs);
  }

  /**
   * The picker's cost: estimate × (pending + 1). A host never observed costs 0 while idle, so a new host is
   * probed at once, and UNOBSERVED_PENALTY + pending while its first requests are in flight, so it is not
   * flooded before it has answered once (Finagle's choice; needs no cluster-wide prior that could be stale).
   */
  cost(pending: number, nowMs: number): number {
    if (!this.seen) return pending === 0 ? 0 : UNOBSERVED_PENALTY + pending;
    return this.estimate(nowMs) * (pending + 1);
  }
}
