// The balancer's contracts: the host the cluster manager's endpoints implement, the picker shape every
// policy file shares, and the Balancer the router calls once per request.
import type { Clock } from '../../core/clock.js';
import type { Rng } from '../../core/rng.js';
import type { LbConfig, LbPolicy, Locality } from '../../model/types.js';
import type { PeakEwma } from './peak-ewma.js';

/**
 * One upstream host as the balancer sees it. Like Envoy's Host it is a mutable object that outlives config
 * versions: the balancer reads these fields at pick time (rqActive, ewma) or on refresh() (healthy, ejected).
 */
export interface LbHost {
  readonly hostPort: string;
  /** LbEndpoint.load_balancing_weight (>= 1). */
  readonly weight: number;
  readonly locality: Locality;
  /** LocalityLbEndpoints.load_balancing_weight of the host's locality; 0 = unset (Envoy: the locality gets no traffic when locality-weighted). */
  readonly localityWeight: number;
  readonly priority: number;
  /** In-flight requests, maintained by the router. */
  readonly rqActive: number;
  /** EDS health: HEALTHY, UNKNOWN or DEGRADED (degraded hosts count as healthy here). */
  readonly healthy: boolean;
  /** Set by outlier detection; the detector calls Balancer.refresh() after flipping it. */
  readonly ejected: boolean;
  /** Latency estimate for PEAK_EWMA; the router feeds it observe(rttMs, now). */
  readonly ewma: PeakEwma;
}

/** Envoy's "available": healthy (or degraded) and not ejected by outlier detection. */
export const isAvailable = (h: LbHost): boolean => h.healthy && !h.ejected;

export interface LbDeps {
  readonly rng: Rng;
  readonly clock: Clock;
}

/**
 * One endpoint picker over a fixed set of hosts (a priority's available hosts, a locality's, or every host of
 * a priority in panic). Built on refresh(), never per request. `hash` is the request hash for RING_HASH and
 * MAGLEV (the balancer substitutes a random one when the route computed none); the others ignore it.
 */
export interface Picker {
  pick(hash: number): LbHost;
}

/** A host with the weight a picker should use (the host's own weight, or scaled by its locality's share). */
export interface WeightedHost {
  readonly host: LbHost;
  readonly weight: number;
}

/** Every policy file exports one of these; balancer.ts keeps the registry. `hosts` is never empty. */
export type PickerFactory = (hosts: readonly WeightedHost[], cfg: LbConfig, deps: LbDeps) => Picker;

export interface LocalityView {
  readonly locality: Locality;
  readonly weight: number;
  /** weight × min(100, overprovisioning × available / total), as Envoy's locality-weight docs define it. */
  readonly effectiveWeight: number;
  readonly hosts: number;
  readonly available: number;
}

export interface PriorityView {
  readonly priority: number;
  readonly hosts: number;
  readonly available: number;
  /** min(100, overprovisioning × available / total), integer percent. */
  readonly health: number;
  /** Share of requests this priority receives, integer percent; the loads sum to 100. */
  readonly load: number;
  readonly panic: boolean;
  readonly localities: readonly LocalityView[];
}

export interface HostView {
  readonly hostPort: string;
  readonly priority: number;
  readonly locality: Locality;
  readonly weight: number;
  readonly available: boolean;
  readonly rqActive: number;
  /** The PEAK_EWMA latency estimate now, ms; null before the first observation. */
  readonly ewmaMs: number | null;
}

export interface BalancerView {
  readonly policy: LbPolicy;
  readonly overprovisioningFactor: number;
  readonly panicThreshold: number;
  /** min(100, Σ health): below 100, per-priority panic applies. */
  readonly normalizedTotalHealth: number;
  readonly priorities: readonly PriorityView[];
  readonly hosts: readonly HostView[];
}

export interface Balancer {
  /**
   * A host for one request; undefined = no host (the router answers 503 UH). Allocation-free, except for a
   * retry that excludes priorities (a bit per priority level, Envoy's previous_priorities).
   */
  pick(hash?: number, excludedPriorities?: number): LbHost | undefined;
  /** Recompute priority and locality loads and the pick tables after health or ejection changes. */
  refresh(): void;
  /** Introspection for /clusters and metrics. */
  view(): BalancerView;
  /** Picks made from a priority in panic mode (Envoy's lb_healthy_panic). */
  readonly stats: { readonly healthyPanic: number };
}
