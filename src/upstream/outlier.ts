// Outlier detection for one cluster: Envoy's Cluster.outlier_detection (envoy.config.cluster.v3.OutlierDetection)
// with the semantics of Envoy's "Outlier detection" architecture doc and outlier_detection_impl.cc.
import type { Clock, Timer } from '../core/clock.js';
import type { Rng } from '../core/rng.js';
import type { OutlierDetection } from '../model/types.js';
import type { MeshMetrics } from '../telemetry/metrics.js';

/** Envoy's OutlierEjectionType names (envoy.data.cluster.v3), lower-cased: the `detector` label values. */
export type OutlierDetectorKind =
  | 'consecutive_5xx'
  | 'consecutive_gateway_failure'
  | 'consecutive_local_origin_failure'
  | 'success_rate'
  | 'success_rate_local_origin'
  | 'failure_percentage'
  | 'failure_percentage_local_origin';

/**
 * A locally originated outcome (Envoy's Outlier::Result): the connection could not be made (connect_failed),
 * the connect or per-try timeout fired (timeout), the stream was reset before a response (reset), or the
 * connection was made and the request went out (success, Envoy's LOCAL_ORIGIN_CONNECT_SUCCESS).
 */
export type LocalOriginResult = 'connect_failed' | 'timeout' | 'reset' | 'success';

/**
 * What the detector needs of a host. Host objects outlive config versions (the cluster manager keeps one per
 * address), so per-host state is keyed by the object. `ejected` is the flag the balancer reads on its hot path
 * (Envoy's FAILED_OUTLIER_CHECK health flag); only the detector writes it.
 */
export interface OutlierHost {
  readonly hostPort: string;
  ejected: boolean;
}

export type OutlierMetrics = Pick<MeshMetrics, 'outlierEjections' | 'outlierEjectionsDetected' | 'outlierEjectionsActive' | 'outlierEjectionsOverflow'>;

export interface OutlierDeps {
  readonly clock: Clock;
  /** Enforcement draws (enforcing_* percentages) and ejection jitter. */
  readonly rng: Rng;
  readonly metrics?: OutlierMetrics;
  /**
   * Called after hosts were ejected or returned to service, so the balancer recomputes priority health and
   * panic. Once per inline ejection, once per interval sweep that changed anything. Not called from
   * setHosts/update/destroy: the caller is rebuilding the balancer then anyway.
   */
  readonly onChange: () => void;
}

/** One host as /clusters shows it (Envoy prints success_rate, local_origin_success_rate, failed_outlier_check). */
export interface OutlierHostView {
  readonly ejected: boolean;
  /** Wall-clock ms when the current ejection started. */
  readonly ejectedAt?: number;
  /** How long the current ejection lasts: min(base × multiplier, max) + jitter; it ends at the first sweep after. */
  readonly ejectionMs?: number;
  /** Which detector ejected the host last. */
  readonly detector?: OutlierDetectorKind;
  /** Ejections over the host's life (Envoy's num_ejections). */
  readonly timesEjected: number;
  /** The base_ejection_time multiplier the next ejection uses minus one; decays while the host stays healthy. */
  readonly ejectionMultiplier: number;
  /** Percent, from the last interval, when the host had enough requests to be judged; else undefined (Envoy: -1). */
  readonly successRate?: number;
  readonly localOriginSuccessRate?: number;
  readonly consecutive5xx: number;
  readonly consecutiveGatewayFailure: number;
  readonly consecutiveLocalOriginFailure: number;
}

/** Cluster-wide numbers from the last sweep (Envoy's /clusters outlier::success_rate_average etc.). */
export interface OutlierClusterView {
  readonly ejectionsActive: number;
  readonly successRateAverage?: number;
  readonly successRateEjectionThreshold?: number;
  readonly localOriginSuccessRateAverage?: number;
  readonly localOriginSuccessRateEjectionThreshold?: number;
}

/** Requests and successes in one interval. */
class Bucket {
  total = 0;
  success = 0;
}

/**
 * Envoy's SuccessRateAccumulator: requests land in `current`; each sweep judges the interval that just ended
 * (`last`) and starts a fresh one.
 */
class SuccessBuckets {
  current = new Bucket();
  last = new Bucket();

  rotate(): void {
    const b = this.last;
    b.total = 0;
    b.success = 0;
    this.last = this.current;
    this.current = b;
  }
}

class HostState {
  consecutive5xx = 0;
  consecutiveGateway = 0;
  consecutiveLocal = 0;
  readonly external = new SuccessBuckets();
  readonly local = new SuccessBuckets();
  timesEjected = 0;
  /** Envoy's ejectTimeBackoff: +1 per ejection (while base × it < max + base), −1 per healthy interval. */
  backoff = 0;
  ejectedAtMono = 0;
  ejectedAtWall = 0;
  jitterMs = 0;
  lastUnejectedMono: number | undefined;
  detector: OutlierDetectorKind | undefined;
  successRate: number | undefined;
  localSuccessRate: number | undefined;
}

interface RateNumbers {
  readonly average: number;
  readonly threshold: number;
}

/**
 * Envoy's successRateEjectionThreshold: mean − factor × population stdev of the hosts' success rates.
 * Envoy's example: {50, 100, 100, 100, 100} gives mean 90, stdev 20, threshold 52 with factor 1.9.
 */
export function successRateThreshold(rates: readonly number[], factor: number): RateNumbers {
  let sum = 0;
  for (const r of rates) sum += r;
  const mean = sum / rates.length;
  let variance = 0;
  for (const r of rates) variance += (r - mean) ** 2;
  variance /= rates.length;
  return { average: mean, threshold: mean - factor * Math.sqrt(variance) };
}

/**
 * Envoy's Grpc::Utility::grpcToHttpStatus: the status the router reports to outlier detection for a gRPC
 * response (its grpc-status, from trailers or a trailers-only response), since gRPC errors arrive under HTTP 200.
 */
export function httpStatusForGrpc(grpcStatus: number): number {
  return GRPC_TO_HTTP[grpcStatus] ?? 500;
}

// OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED,
// RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
// DATA_LOSS, UNAUTHENTICATED.
const GRPC_TO_HTTP: readonly number[] = [200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401];

/** The enforcing_* percentage of each detector. */
const ENFORCING: Readonly<Record<OutlierDetectorKind, keyof OutlierDetection & `enforcing${string}`>> = {
  consecutive_5xx: 'enforcingConsecutive5xx',
  consecutive_gateway_failure: 'enforcingConsecutiveGatewayFailure',
  consecutive_local_origin_failure: 'enforcingConsecutiveLocalOriginFailure',
  success_rate: 'enforcingSuccessRate',
  success_rate_local_origin: 'enforcingLocalOriginSuccessRate',
  failure_percentage: 'enforcingFailurePercentage',
  failure_percentage_local_origin: 'enforcingFailurePercentageLocalOrigin',
};

const isGatewayError = (status: number): boolean => status === 502 || status === 503 || status === 504;

/**
 * The outlier detector of one cluster. It outlives config versions: the cluster manager keeps one per
 * cluster name, calls update() with each new OutlierDetection and setHosts() with each new endpoint set.
 * Consecutive-error detectors eject inline; success rate, failure percentage and un-ejection run on the
 * interval timer.
 */
export class OutlierDetector {
  private cfg: OutlierDetection;
  private hosts = new Map<OutlierHost, HostState>();
  private active = 0;
  private timer: Timer | undefined;
  private externalNumbers: RateNumbers | undefined;
  private localNumbers: RateNumbers | undefined;

  constructor(
    readonly cluster: string,
    cfg: OutlierDetection,
    private readonly deps: OutlierDeps,
  ) {
    this.cfg = cfg;
    this.arm();
  }

  /** A new config version of the cluster. Ejections in force stay; the next ones use the new settings. */
  update(cfg: OutlierDetection): void {
    const rearm = cfg.intervalMs !== this.cfg.intervalMs;
    this.cfg = cfg;
    if (rearm) this.arm();
  }

  /**
   * The current endpoint set. Hosts already known keep their counters and ejection; new hosts start clean;
   * removed hosts are forgotten (and lose their ejected flag: Envoy drops a removed host's monitor).
   */
  setHosts(hosts: readonly OutlierHost[]): void {
    const next = new Map<OutlierHost, HostState>();
    for (const h of hosts) {
      let s = this.hosts.get(h);
      if (s === undefined) {
        s = new HostState();
        h.ejected = false;
      }
      next.set(h, s);
    }
    for (const h of this.hosts.keys()) {
      if (!next.has(h) && h.ejected) {
        h.ejected = false;
        this.active--;
      }
    }
    this.hosts = next;
    this.publishActive();
  }

  /**
   * The upstream answered (external origin): the HTTP status, or for gRPC httpStatusForGrpc(grpc-status).
   * Any 5xx counts towards consecutive_5xx, 502/503/504 towards consecutive_gateway_failure; anything else
   * resets both and counts as a success for success rate and failure percentage.
   */
  putHttpStatus(host: OutlierHost, status: number): void {
    const s = this.hosts.get(host);
    if (s !== undefined) this.external(host, s, status);
  }

  /**
   * A locally originated outcome. With split_external_local_origin_errors false (the default) Envoy maps
   * failures onto HTTP codes (timeout 504, connect failure and reset 503) and counts them like responses,
   * while a connect success is not counted: the response that follows reports the outcome. With the split,
   * failures count towards consecutive_local_origin_failure and the local-origin success rate, and a connect
   * success resets that counter.
   */
  putLocalOrigin(host: OutlierHost, result: LocalOriginResult): void {
    const s = this.hosts.get(host);
    if (s === undefined) return;
    if (!this.cfg.splitExternalLocalOriginErrors) {
      if (result !== 'success') this.external(host, s, result === 'timeout' ? 504 : 503);
      return;
    }
    const b = s.local.current;
    b.total++;
    if (result === 'success') {
      b.success++;
      s.consecutiveLocal = 0;
      return;
    }
    if (reached(++s.consecutiveLocal, this.cfg.consecutiveLocalOriginFailure)) {
      this.consecutive(host, s, 'consecutive_local_origin_failure');
    }
  }

  get ejectionsActive(): number {
    return this.active;
  }

  /** The host's outlier state for /clusters; undefined for a host not in the current set. */
  view(host: OutlierHost): OutlierHostView | undefined {
    const s = this.hosts.get(host);
    if (s === undefined) return undefined;
    return {
      ejected: host.ejected,
      ...(host.ejected ? { ejectedAt: s.ejectedAtWall, ejectionMs: this.ejectionMs(s) } : {}),
      ...(s.detector !== undefined ? { detector: s.detector } : {}),
      timesEjected: s.timesEjected,
      ejectionMultiplier: s.backoff,
      ...(s.successRate !== undefined ? { successRate: s.successRate } : {}),
      ...(s.localSuccessRate !== undefined ? { localOriginSuccessRate: s.localSuccessRate } : {}),
      consecutive5xx: s.consecutive5xx,
      consecutiveGatewayFailure: s.consecutiveGateway,
      consecutiveLocalOriginFailure: s.consecutiveLocal,
    };
  }

  clusterView(): OutlierClusterView {
    const e = this.externalNumbers;
    const l = this.localNumbers;
    return {
      ejectionsActive: this.active,
      ...(e ? { successRateAverage: e.average, successRateEjectionThreshold: e.threshold } : {}),
      ...(l ? { localOriginSuccessRateAverage: l.average, localOriginSuccessRateEjectionThreshold: l.threshold } : {}),
    };
  }

  /**
   * The cluster went away, or its config no longer asks for outlier detection: stop the timer and return
   * every ejected host to service (host objects may live on in a cluster without a detector).
   */
  destroy(): void {
    if (this.timer !== undefined) this.deps.clock.clearInterval(this.timer);
    this.timer = undefined;
    for (const h of this.hosts.keys()) h.ejected = false;
    this.hosts.clear();
    this.active = 0;
    this.deps.metrics?.outlierEjectionsActive.remove({ cluster: this.cluster });
  }

  private arm(): void {
    if (this.timer !== undefined) this.deps.clock.clearInterval(this.timer);
    this.timer = this.deps.clock.setInterval(() => this.sweep(), this.cfg.intervalMs);
    // The sweep must not keep a draining process alive.
    this.timer.unref();
  }

  private external(host: OutlierHost, s: HostState, status: number): void {
    const b = s.external.current;
    b.total++;
    if (status < 500 || status > 599) {
      b.success++;
      s.consecutive5xx = 0;
      s.consecutiveGateway = 0;
      return;
    }
    // Gateway first, as Envoy does: with both thresholds equal, a 503 storm is judged by the gateway
    // detector (detect-only by default) and then by consecutive_5xx.
    if (!isGatewayError(status)) s.consecutiveGateway = 0;
    else if (reached(++s.consecutiveGateway, this.cfg.consecutiveGatewayFailure)) this.consecutive(host, s, 'consecutive_gateway_failure');
    if (reached(++s.consecutive5xx, this.cfg.consecutive5xx)) this.consecutive(host, s, 'consecutive_5xx');
  }

  /**
   * A consecutive-error detector fired. An ejected host (receiving traffic only in panic) is not judged
   * again; its counters restart when it returns. Otherwise the counter restarts whatever the outcome, so a
   * refused ejection (overflow, enforcement) needs a fresh run of errors to be tried again.
   */
  private consecutive(host: OutlierHost, s: HostState, kind: OutlierDetectorKind): void {
    if (host.ejected) return;
    this.count(kind);
    const ejected = this.eject(host, s, kind);
    if (kind === 'consecutive_5xx') s.consecutive5xx = 0;
    else if (kind === 'consecutive_gateway_failure') s.consecutiveGateway = 0;
    else s.consecutiveLocal = 0;
    if (ejected) this.deps.onChange();
  }

  private count(kind: OutlierDetectorKind): void {
    this.deps.metrics?.outlierEjectionsDetected.inc({ cluster: this.cluster, detector: kind });
  }

  /**
   * Envoy's ejectHost: max_ejection_percent bounds the ejected share of the cluster's hosts (all
   * priorities), but one host is always ejectable ("will eject at least one host regardless of the value");
   * then the enforcing_* percentage decides whether a detected outlier is really ejected.
   */
  private eject(host: OutlierHost, s: HostState, kind: OutlierDetectorKind): boolean {
    if (host.ejected) return false;
    const cfg = this.cfg;
    const m = this.deps.metrics;
    const maxPercent = Math.min(100, cfg.maxEjectionPercent);
    if (this.active > 0 && (100 * (this.active + 1)) / this.hosts.size > maxPercent) {
      m?.outlierEjectionsOverflow.inc({ cluster: this.cluster });
      return false;
    }
    if (!this.enforced(kind)) return false;
    const now = this.deps.clock;
    host.ejected = true;
    s.timesEjected++;
    s.detector = kind;
    s.ejectedAtMono = now.monotonic();
    s.ejectedAtWall = now.now();
    // Jitter spreads the returns of hosts ejected together, so they do not come back in one connection storm.
    s.jitterMs = cfg.maxEjectionTimeJitterMs > 0 ? this.deps.rng.int(cfg.maxEjectionTimeJitterMs + 1) : 0;
    if (s.backoff * cfg.baseEjectionTimeMs < cfg.maxEjectionTimeMs + cfg.baseEjectionTimeMs) s.backoff++;
    this.active++;
    m?.outlierEjections.inc({ cluster: this.cluster, detector: kind });
    this.publishActive();
    return true;
  }

  private enforced(kind: OutlierDetectorKind): boolean {
    const pct = this.cfg[ENFORCING[kind]];
    // 0 and 100 take no draw, so the rng sequence only moves where chance decides.
    if (pct <= 0) return false;
    if (pct >= 100) return true;
    return this.deps.rng.int(100) < pct;
  }

  private ejectionMs(s: HostState): number {
    const c = this.cfg;
    return Math.min(c.baseEjectionTimeMs * s.backoff, c.maxEjectionTimeMs) + s.jitterMs;
  }

  /** Envoy's onIntervalTimer: un-eject, close the interval's buckets, judge rates, decay multipliers. */
  private sweep(): void {
    const now = this.deps.clock.monotonic();
    let changed = false;
    for (const [h, s] of this.hosts) {
      if (h.ejected && this.ejectionMs(s) <= now - s.ejectedAtMono) {
        this.uneject(h, s, now);
        changed = true;
      }
      s.external.rotate();
      s.local.rotate();
      s.successRate = undefined;
      s.localSuccessRate = undefined;
    }
    if (this.judgeRates(false)) changed = true;
    // Local-origin buckets are only fed in split mode (Envoy ignores enforcing_local_origin_success_rate otherwise).
    if (this.cfg.splitExternalLocalOriginErrors && this.judgeRates(true)) changed = true;
    if (!this.cfg.splitExternalLocalOriginErrors) this.localNumbers = undefined;
    for (const [h, s] of this.hosts) {
      // Healthy for a whole interval since it came back: the next ejection is shorter.
      if (!h.ejected && s.lastUnejectedMono !== undefined && now - s.lastUnejectedMono >= this.cfg.intervalMs && s.backoff > 0) s.backoff--;
    }
    if (changed) this.deps.onChange();
  }

  private uneject(h: OutlierHost, s: HostState, now: number): void {
    h.ejected = false;
    this.active--;
    // Fresh counters, so a host close to a threshold before its ejection is not re-ejected on a few errors.
    s.consecutive5xx = 0;
    s.consecutiveGateway = 0;
    s.consecutiveLocal = 0;
    s.lastUnejectedMono = now;
    this.publishActive();
  }

  /**
   * Envoy's processSuccessRateEjections for one origin: success rate over hosts with at least
   * success_rate_request_volume requests in the interval, if at least success_rate_minimum_hosts have;
   * failure percentage likewise with its own volume and minimum. Ejected hosts are not judged.
   */
  private judgeRates(local: boolean): boolean {
    const c = this.cfg;
    const n = this.hosts.size;
    if (local) this.localNumbers = undefined;
    else this.externalNumbers = undefined;
    if (n < c.successRateMinimumHosts && n < c.failurePercentageMinimumHosts) return false;
    const judgeVolume = Math.min(c.successRateRequestVolume, c.failurePercentageRequestVolume);
    const sr: [OutlierHost, HostState, number][] = [];
    const fp: [OutlierHost, HostState, number][] = [];
    for (const [h, s] of this.hosts) {
      if (h.ejected) continue;
      const b = (local ? s.local : s.external).last;
      if (b.total === 0) continue;
      const rate = (b.success * 100) / b.total;
      if (b.total >= judgeVolume) {
        if (local) s.localSuccessRate = rate;
        else s.successRate = rate;
      }
      if (b.total >= c.successRateRequestVolume) sr.push([h, s, rate]);
      if (b.total >= c.failurePercentageRequestVolume) fp.push([h, s, rate]);
    }
    let changed = false;
    if (sr.length > 0 && sr.length >= c.successRateMinimumHosts) {
      const nums = successRateThreshold(
        sr.map((x) => x[2]),
        c.successRateStdevFactor / 1000,
      );
      if (local) this.localNumbers = nums;
      else this.externalNumbers = nums;
      const kind = local ? 'success_rate_local_origin' : 'success_rate';
      for (const [h, s, rate] of sr) {
        if (rate >= nums.threshold) continue;
        this.count(kind);
        if (this.eject(h, s, kind)) changed = true;
      }
    }
    if (fp.length > 0 && fp.length >= c.failurePercentageMinimumHosts) {
      const kind = local ? 'failure_percentage_local_origin' : 'failure_percentage';
      for (const [h, s, rate] of fp) {
        if (100 - rate < c.failurePercentageThreshold) continue;
        this.count(kind);
        if (this.eject(h, s, kind)) changed = true;
      }
    }
    return changed;
  }

  private publishActive(): void {
    this.deps.metrics?.outlierEjectionsActive.set({ cluster: this.cluster }, this.active);
  }
}

/** Envoy compares `++counter == threshold`, so 0 disables the detector; >= also covers a lowered threshold. */
function reached(count: number, threshold: number): boolean {
  return threshold > 0 && count >= threshold;
}
