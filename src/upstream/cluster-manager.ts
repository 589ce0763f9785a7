// Cluster manager: one runtime per active Cluster version (endpoints, the lb_policy pick, a pool per endpoint),
// CDS/EDS applied make-before-break: new EDS clusters warm until their endpoints arrive, endpoints update in place.
import type { Clock } from '../core/clock.js';
import type { Rng } from '../core/rng.js';
import { errorMessage, type FieldIssue } from '../core/errors.js';
import type { Cluster, ClusterLoadAssignment, LbEndpoint, Locality } from '../model/types.js';
import type { CircuitBreakerSample, MeshMetrics } from '../telemetry/metrics.js';
import { H1Pool } from './h1-pool.js';
import { H2Pool } from './h2-pool.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { OutlierDetector } from './outlier.js';
import { PeakEwma, createBalancer, type Balancer, type LbDeps, type LbHost } from './lb/index.js';
import type { UpstreamPool } from './pool.js';
import { UpstreamTlsContext, type MaterialSource } from './tls.js';

/**
 * One upstream host. Like Envoy's Host it outlives config versions: an EDS update that keeps its address
 * keeps this object (pool, open connections, counters) and only refreshes weight, health and locality.
 */
export class EndpointRuntime implements LbHost {
  rqActive = 0;
  rqTotal = 0;
  rqError = 0;
  /** Set only by the cluster's outlier detector; an ejected host takes no new requests until it returns. */
  ejected = false;
  /** host:port as the access log and /clusters print it (IPv6 in brackets); fixed per endpoint. */
  readonly hostPort: string;
  /** Response-time estimate for PEAK_EWMA, fed by the router whatever the policy (so a switch starts warm). */
  readonly ewma: PeakEwma;

  constructor(
    public endpoint: LbEndpoint,
    public locality: Locality,
    public priority: number,
    /** The locality's load_balancing_weight (0 = unset). */
    public localityWeight: number,
    readonly pool: UpstreamPool,
    decayTimeMs: number,
  ) {
    this.hostPort = hostPortOf(endpoint);
    this.ewma = new PeakEwma(decayTimeMs);
    this.place(endpoint, locality, priority, localityWeight);
  }

  /** Where the host is in this version (EDS may move a kept host): locality, priority and the labels derived from them. */
  place(endpoint: LbEndpoint, locality: Locality, priority: number, localityWeight: number): void {
    this.endpoint = endpoint;
    this.locality = locality;
    this.priority = priority;
    this.localityWeight = localityWeight;
    this.localityName = `${locality.region}/${locality.zone}/${locality.subZone}`;
  }

  /** Istio's "region/zone/subzone", for the access log and metrics. */
  localityName = '';
  /** This host's child of outrigger_upstream_requests_total (cluster, locality, priority), resolved once per version. */
  requests: { inc(): void } = { inc() {} };

  get weight(): number {
    return this.endpoint.weight;
  }

  get healthy(): boolean {
    const hs = this.endpoint.healthStatus;
    return hs === 'HEALTHY' || hs === 'UNKNOWN' || hs === 'DEGRADED';
  }
}

function hostPortOf(e: LbEndpoint): string {
  const h = e.address.host;
  return `${h.includes(':') ? `[${h}]` : h}:${e.address.port}`;
}

/** One version of one cluster: its endpoints and the balancer over them, frozen until the next CDS/EDS update. */
export class ClusterRuntime {
  readonly endpoints: readonly EndpointRuntime[];
  /** Priorities, localities and the lb_policy picker (upstream/lb), built once per version. */
  readonly balancer: Balancer;
  /** The cluster's outlier detector (it outlives versions), when the cluster configures outlier_detection. */
  outlier: OutlierDetector | undefined;
  /** The cluster's circuit breakers (they outlive versions: counts carry over, limits follow the newest version). */
  readonly breaker: CircuitBreaker;

  constructor(
    readonly cluster: Cluster,
    endpoints: EndpointRuntime[],
    overprovisioningFactor: number,
    /** Shared by every pool of this cluster, and by the next version when its connection settings are equal. */
    readonly tls: UpstreamTlsContext | undefined,
    deps: LbDeps,
    private readonly panicCounter: { inc(): void },
    breaker: CircuitBreaker,
  ) {
    this.endpoints = endpoints;
    this.breaker = breaker;
    this.balancer = createBalancer(cluster.lb, overprovisioningFactor, endpoints, deps);
  }

  /**
   * Admits a retry under the cluster's max_retries or retry_budget: a function to call once the retry attempt
   * ends (it gives the slot back; extra calls do nothing), or undefined when the limit is reached, in which case
   * the caller answers with the result it has (Envoy's upstream_rq_retry_overflow).
   */
  tryRetry(): (() => void) | undefined {
    return this.breaker.tryRetry();
  }

  /** Recomputes priority loads and pick tables after an ejection or a return (the outlier detector's onChange). */
  refresh(): void {
    this.balancer.refresh();
  }

  /**
   * A host by the cluster's balancer: priority by health (spilling over with the overprovisioning factor,
   * panic below the threshold), then locality, then lb_policy; `hash` from the route's hash_policy for
   * RING_HASH / MAGLEV; `excludedPriorities` for a retry under previous_priorities. undefined means "no
   * healthy upstream" (503 UH).
   */
  pick(hash?: number, excludedPriorities?: number): EndpointRuntime | undefined {
    const panics = this.balancer.stats.healthyPanic;
    const e = this.balancer.pick(hash, excludedPriorities) as EndpointRuntime | undefined;
    if (this.balancer.stats.healthyPanic !== panics) this.panicCounter.inc();
    return e;
  }
}

export interface ClusterManagerDeps {
  readonly clock: Clock;
  /** For the pickers' draws, outlier detection's enforcement draws and ejection jitter. */
  readonly rng: Rng;
  readonly metrics: MeshMetrics;
  /** The TLS material for an UpstreamTlsContext's certificates (identity's secret store). May throw. */
  readonly materialFor: (cluster: Cluster) => MaterialSource | undefined;
}

/** When and at which xDS version a dynamic resource last changed (config_dump's version_info / last_updated). */
export interface Stamp {
  readonly version: string;
  readonly lastUpdated: number;
}

export interface ClusterView extends Stamp {
  readonly cluster: Cluster;
}

export interface AssignmentView extends Stamp {
  readonly assignment: ClusterLoadAssignment;
}

/** ClusterLoadAssignment.policy.overprovisioning_factor's default, percent. */
const DEFAULT_OVERPROVISIONING = 140;
const NO_ENDPOINTS = (name: string): ClusterLoadAssignment => ({ clusterName: name, localities: [], overprovisioningFactor: DEFAULT_OVERPROVISIONING });

/** What a pool depends on: when this is equal between two versions of a cluster, their pools are interchangeable. */
function poolSettings(c: Cluster): string {
  // max_connections caps undici's own connection count (see H1Pool), so a change builds new pools.
  return JSON.stringify([c.protocol, c.http2, c.idleTimeoutMs, c.connectTimeoutMs, c.tls ?? null, c.maxRequestsPerConnection ?? 0, c.circuitBreakers?.maxConnections ?? null]);
}

export class ClusterManager {
  private readonly active = new Map<string, ClusterRuntime>();
  /** One outlier detector per cluster name: ejections and their history survive CDS/EDS updates. */
  private readonly detectors = new Map<string, OutlierDetector>();
  /** One circuit breaker per cluster name: open connections and requests keep counting across CDS/EDS updates. */
  private readonly breakers = new Map<string, CircuitBreaker>();
  private readonly staticNames: ReadonlySet<string>;
  /** CDS clusters that wait for their ClusterLoadAssignment (Envoy: cluster warming); the active version, if any, keeps serving. */
  private readonly warming = new Map<string, ClusterView>();
  private readonly stamps = new Map<string, Stamp>();
  /** The latest ClusterLoadAssignment per EDS name (service_name), as EDS delivered it. */
  private assignments = new Map<string, AssignmentView>();

  constructor(
    clusters: readonly Cluster[],
    private readonly deps: ClusterManagerDeps,
  ) {
    for (const c of clusters) this.active.set(c.name, this.build(c, c.loadAssignment, undefined));
    this.staticNames = new Set(clusters.map((c) => c.name));
    deps.metrics.lbEwmaSources.add(this.ewmaSource);
    deps.metrics.circuitBreakerSources.add(this.breakerSource);
  }

  /** Every active cluster's breakers at scrape time; remaining capacity only where track_remaining asks for it. */
  private readonly breakerSource = (): CircuitBreakerSample[] => {
    const out: CircuitBreakerSample[] = [];
    for (const r of this.active.values()) {
      const track = r.breaker.thresholds.trackRemaining;
      for (const v of r.breaker.view()) out.push({ cluster: r.cluster.name, resource: v.resource, remaining: track ? v.remaining : undefined, open: v.open });
    }
    return out;
  };

  /** The breaker of cluster `c`, made on first use and given the limits of this version. */
  private breakerFor(c: Cluster): CircuitBreaker {
    let b = this.breakers.get(c.name);
    if (b) b.update(c.circuitBreakers);
    else {
      const overflows = this.deps.metrics.circuitBreakerOverflows;
      b = new CircuitBreaker(c.name, c.circuitBreakers, (resource) => overflows.inc({ cluster: c.name, resource }));
      this.breakers.set(c.name, b);
    }
    return b;
  }

  /** The PEAK_EWMA estimates of every host that has one, at scrape time (only PEAK_EWMA clusters, to bound the series). */
  private readonly ewmaSource = (): { cluster: string; endpoint: string; ms: number }[] => {
    const now = this.deps.clock.monotonic();
    const out: { cluster: string; endpoint: string; ms: number }[] = [];
    for (const r of this.active.values()) {
      if (r.cluster.lbPolicy !== 'PEAK_EWMA') continue;
      for (const e of r.endpoints) if (e.ewma.observed) out.push({ cluster: r.cluster.name, endpoint: e.hostPort, ms: e.ewma.estimate(now) });
    }
    return out;
  };

  /**
   * Builds a version of `c`. Endpoints of `prev` at the same address are carried over (pool, connections
   * and counters continue) when the connection settings did not change; everything else gets a new pool.
   */
  private build(c: Cluster, la: ClusterLoadAssignment | undefined, prev: ClusterRuntime | undefined): ClusterRuntime {
    const reuse = prev && poolSettings(prev.cluster) === poolSettings(c) ? prev : undefined;
    let tlsCtx = reuse?.tls;
    if (!tlsCtx && c.tls) {
      const source = this.deps.materialFor(c);
      tlsCtx = source ? new UpstreamTlsContext(c.tls, source) : undefined;
    }
    const spare = new Map<string, EndpointRuntime[]>();
    for (const e of reuse?.endpoints ?? []) spare.set(e.hostPort, [...(spare.get(e.hostPort) ?? []), e]);
    const breaker = this.breakerFor(c);
    const gauge = this.deps.metrics.upstreamPoolSessions.labels({ cluster: c.name });
    const onSessionDelta = (d: number) => gauge.inc(d);
    const eps: EndpointRuntime[] = [];
    for (const loc of la?.localities ?? []) {
      for (const ep of loc.endpoints) {
        const kept = spare.get(hostPortOf(ep))?.shift();
        if (kept) {
          kept.place(ep, loc.locality, loc.priority, loc.weight);
          eps.push(kept);
          continue;
        }
        const common = {
          endpoint: ep.address,
          tls: tlsCtx,
          connectTimeoutMs: c.connectTimeoutMs,
          idleTimeoutMs: c.idleTimeoutMs,
          clock: this.deps.clock,
          onSessionDelta,
          breaker,
          maxRequestsPerConnection: c.maxRequestsPerConnection ?? 0,
        };
        const pool = c.protocol === 'HTTP2' ? new H2Pool({ ...common, http2: c.http2 }) : new H1Pool(common);
        eps.push(new EndpointRuntime(ep, loc.locality, loc.priority, loc.weight, pool, c.lb.peakEwma.decayTimeMs));
      }
    }
    for (const e of eps) e.requests = this.deps.metrics.upstreamRequests.labels({ cluster: c.name, locality: e.localityName, priority: String(e.priority) });
    const runtime = new ClusterRuntime(c, eps, la?.overprovisioningFactor ?? DEFAULT_OVERPROVISIONING, tlsCtx, { rng: this.deps.rng, clock: this.deps.clock }, this.deps.metrics.lbHealthyPanic.labels({ cluster: c.name }), breaker);
    this.attachOutlier(c, runtime);
    return runtime;
  }

  private attachOutlier(c: Cluster, runtime: ClusterRuntime): void {
    let d = this.detectors.get(c.name);
    if (!c.outlierDetection) {
      d?.destroy();
      this.detectors.delete(c.name);
      return;
    }
    if (d) d.update(c.outlierDetection);
    else {
      d = new OutlierDetector(c.name, c.outlierDetection, {
        clock: this.deps.clock,
        rng: this.deps.rng,
        metrics: this.deps.metrics,
        // The version serving now, which may be newer than the one this detector was made with.
        onChange: () => this.active.get(c.name)?.refresh(),
      });
      this.detectors.set(c.name, d);
    }
    d.setHosts(runtime.endpoints);
    runtime.outlier = d;
    // Hosts carried over may already be ejected.
    runtime.refresh();
  }

  /** Makes `c` the active version; pools the new version does not use drain (in-flight requests finish, then close). */
  private activate(c: Cluster, la: ClusterLoadAssignment | undefined, stamp: Stamp): void {
    const prev = this.active.get(c.name);
    const next = this.build(c, la, prev);
    this.active.set(c.name, next);
    this.stamps.set(c.name, stamp);
    if (prev) retire(prev, next);
  }

  get(name: string): ClusterRuntime | undefined {
    return this.active.get(name);
  }

  all(): IterableIterator<ClusterRuntime> {
    return this.active.values();
  }

  /** True while a CDS cluster waits for its endpoints. */
  get warmingCount(): number {
    return this.warming.size;
  }

  /**
   * CDS (state of the world): `clusters` is every dynamic cluster; `changed` the ones new or different since
   * the last call. Checked first, applied only if nothing is wrong (a refusal leaves everything as it was).
   * A static cluster cannot be replaced by CDS (Envoy: "static clusters cannot be updated by CDS").
   */
  applyClusters(clusters: ReadonlyMap<string, Cluster>, changed: ReadonlySet<string>, version: string): FieldIssue[] {
    const issues: FieldIssue[] = [];
    for (const name of changed) {
      const c = clusters.get(name)!;
      if (this.staticNames.has(name)) issues.push({ path: name, message: 'a static cluster of this name exists; CDS cannot replace it' });
      else if (c.tls) {
        try {
          this.deps.materialFor(c);
        } catch (e) {
          issues.push({ path: `${name}: transport_socket`, message: errorMessage(e) });
        }
      }
    }
    if (issues.length) return issues;
    const stamp = { version, lastUpdated: this.deps.clock.now() };
    for (const name of [...this.active.keys(), ...this.warming.keys()]) {
      if (this.staticNames.has(name) || clusters.has(name)) continue;
      this.warming.delete(name);
      this.stamps.delete(name);
      const gone = this.active.get(name);
      this.active.delete(name);
      this.detectors.get(name)?.destroy();
      this.detectors.delete(name);
      // Draining pools keep the old breaker; a cluster of this name added later starts from zero.
      this.breakers.delete(name);
      if (gone) retire(gone, undefined);
    }
    for (const name of changed) {
      const c = clusters.get(name)!;
      // A newer version supersedes one still warming.
      this.warming.delete(name);
      if (c.type !== 'EDS') {
        this.activate(c, c.loadAssignment, stamp);
        continue;
      }
      // A ClusterLoadAssignment we already hold for this name is current (the server only resends it when it
      // changes), so a changed cluster with a known EDS name is warm at once; a new name waits for EDS.
      const known = this.assignments.get(c.eds!.serviceName);
      if (known) this.activate(c, known.assignment, stamp);
      else this.warming.set(name, { cluster: c, ...stamp });
    }
    const wanted = new Set([...this.active.values()].map((r) => r.cluster.eds?.serviceName).concat([...this.warming.values()].map((w) => w.cluster.eds?.serviceName)));
    for (const name of this.assignments.keys()) if (!wanted.has(name)) this.assignments.delete(name);
    return [];
  }

  /**
   * EDS: `assignments` is every ClusterLoadAssignment held, by name; `changed` the ones that arrived new or
   * different. Warming clusters waiting for one activate; active clusters update their endpoints in place.
   */
  applyAssignments(assignments: ReadonlyMap<string, ClusterLoadAssignment>, changed: ReadonlySet<string>, version: string): void {
    const stamp = { version, lastUpdated: this.deps.clock.now() };
    const next = new Map<string, AssignmentView>();
    for (const [name, assignment] of assignments) next.set(name, changed.has(name) ? { assignment, ...stamp } : this.assignments.get(name) ?? { assignment, ...stamp });
    this.assignments = next;
    for (const name of changed) this.assignmentArrived(name, next.get(name)!.assignment);
  }

  /**
   * The EDS resource did not arrive within initial_fetch_timeout: as Envoy does, the warming clusters
   * waiting for it activate with no endpoints (503 UH) rather than blocking everything behind them.
   */
  assignmentMissing(name: string): void {
    this.assignmentArrived(name, NO_ENDPOINTS(name));
  }

  private assignmentArrived(name: string, la: ClusterLoadAssignment): void {
    const activeBefore = [...this.active.values()];
    for (const w of [...this.warming.values()]) {
      if (w.cluster.eds?.serviceName !== name) continue;
      this.warming.delete(w.cluster.name);
      this.activate(w.cluster, la, { version: w.version, lastUpdated: w.lastUpdated });
    }
    // An active version keeps taking endpoint updates while a newer version of it warms.
    for (const r of activeBefore) {
      if (r.cluster.eds?.serviceName === name && this.active.get(r.cluster.name) === r) this.activate(r.cluster, la, this.stamps.get(r.cluster.name)!);
    }
  }

  /** config_dump: static clusters, the active and warming dynamic ones, and the EDS assignments held. */
  views(): { static: Cluster[]; active: ClusterView[]; warming: ClusterView[]; assignments: (AssignmentView & { name: string })[] } {
    const dynamic = [...this.active.values()].filter((r) => !this.staticNames.has(r.cluster.name));
    return {
      static: [...this.active.values()].filter((r) => this.staticNames.has(r.cluster.name)).map((r) => r.cluster),
      active: dynamic.map((r) => ({ cluster: r.cluster, ...this.stamps.get(r.cluster.name)! })),
      warming: [...this.warming.values()],
      assignments: [...this.assignments].map(([name, a]) => ({ name, ...a })),
    };
  }

  destroy(): void {
    this.deps.metrics.lbEwmaSources.delete(this.ewmaSource);
    this.deps.metrics.circuitBreakerSources.delete(this.breakerSource);
    for (const d of this.detectors.values()) d.destroy();
    this.detectors.clear();
    for (const c of this.active.values()) for (const e of c.endpoints) e.pool.destroy();
  }
}

/** Drains the pools of `prev` that `next` does not carry over: no new requests, in-flight ones finish. */
function retire(prev: ClusterRuntime, next: ClusterRuntime | undefined): void {
  const kept = new Set(next?.endpoints ?? []);
  for (const e of prev.endpoints) if (!kept.has(e)) e.pool.close();
  // Pools keep their connection options; only new connections would have used the context.
  if (prev.tls && prev.tls !== next?.tls) prev.tls.dispose();
}
