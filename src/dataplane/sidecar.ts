// The sidecar's data plane as one unit: clusters, routes and listeners from the bootstrap, updated live from
// xDS (CDS, EDS, LDS, RDS applied make-before-break), plus readiness and drain.
import type { Registry } from 'prom-client';
import type { Clock } from '../core/clock.js';
import type { FieldIssue } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import { listenerChains, type Bootstrap, type Cluster, type ClusterLoadAssignment, type CommonTls, type FilterChain, type Listener, type RouteConfiguration } from '../model/types.js';
import type { AccessLog } from '../telemetry/access-log.js';
import type { Logger } from '../telemetry/logger.js';
import { RequestRecorder, createMetrics, type MeshMetrics } from '../telemetry/metrics.js';
import { ClusterManager } from '../upstream/cluster-manager.js';
import type { MaterialSource } from '../upstream/tls.js';
import { HcmRuntime } from './hcm.js';
import type { ListenerRuntime } from './listener.js';
import { ListenerManager } from './listener-manager.js';
import { RouteStore } from './route-store.js';

export interface SidecarDeps {
  readonly clock: Clock;
  readonly rng: Rng;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly accessLog: AccessLog;
  /** Identity's secret store: the live TLS material for a CommonTlsContext's certificates. May throw. */
  readonly materialFor: (common: CommonTls) => MaterialSource;
  /** How long a listener that LDS replaced or removed lets its requests finish (default 5 s, as --drain-time). */
  readonly drainMs?: number;
  /** jwt_authn met a token whose kid no key of `issuer` has: ask the control server to refetch (FilterDeps.onUnknownJwksKey). */
  readonly onUnknownJwksKey?: (issuer: string, kid: string) => void;
}

const DEFAULT_DRAIN_MS = 5000;

export class SidecarRuntime {
  readonly metrics: MeshMetrics;
  readonly clusters: ClusterManager;
  readonly routes: RouteStore;
  readonly listenerManager: ListenerManager;
  private readonly recorder: RequestRecorder;
  private started = false;
  /** The workload's identity outbound: the TLS material of any cluster that originates TLS. */
  private upstreamIdentity: MaterialSource | undefined;

  constructor(
    readonly bootstrap: Bootstrap,
    private readonly d: SidecarDeps,
  ) {
    this.metrics = createMetrics(d.registry);
    this.recorder = new RequestRecorder(this.metrics);
    this.clusters = new ClusterManager(bootstrap.clusters, {
      clock: d.clock,
      metrics: this.metrics,
      materialFor: (c: Cluster) => (c.tls ? d.materialFor(c.tls.common) : undefined),
      rng: d.rng,
    });
    this.refreshUpstreamIdentity();
    this.routes = new RouteStore(() => d.clock.now());
    this.listenerManager = new ListenerManager(bootstrap.listeners, {
      clock: d.clock,
      logger: d.logger,
      metrics: this.metrics,
      drainMs: d.drainMs ?? DEFAULT_DRAIN_MS,
      routes: this.routes,
      materialFor: d.materialFor,
      hcmFor: (l, chain, tls) => this.hcmFor(l, chain, tls),
    });
  }

  private hcmFor(l: Listener, chain: FilterChain, material: MaterialSource | undefined): HcmRuntime {
    const reporter = l.trafficDirection === 'INBOUND' || (l.trafficDirection === 'UNSPECIFIED' && chain.tls) ? 'destination' : 'source';
    // A plaintext chain of a listener that also has an mTLS one (PERMISSIVE) still serves the workload's own identity.
    const tlsChain = material ? undefined : listenerChains(l).find((c) => c.tls);
    const identity = material ?? (tlsChain?.tls && this.d.materialFor(tlsChain.tls.common));
    return new HcmRuntime(chain.hcm, {
      listenerName: l.name,
      reporter,
      clusters: this.clusters,
      metrics: this.metrics,
      recorder: this.recorder,
      accessLog: this.d.accessLog,
      logger: this.d.logger,
      clock: this.d.clock,
      rng: this.d.rng,
      // The workload's own identity: the listener's certificate inbound, any upstream TLS context outbound.
      localUri: identity ? () => identity.current().spiffeId : () => this.upstreamIdentity?.current().spiffeId,
      rdsSlot: (name) => this.routes.slot(name),
      ...(this.d.onUnknownJwksKey && { onUnknownJwksKey: this.d.onUnknownJwksKey }),
    });
  }

  private refreshUpstreamIdentity(): void {
    const c = [...this.clusters.all()].find((x) => x.cluster.tls);
    this.upstreamIdentity = c?.cluster.tls ? this.d.materialFor(c.cluster.tls.common) : undefined;
  }

  /** Every listener serving now (static, and the active version of each dynamic one). */
  get listeners(): readonly ListenerRuntime[] {
    return this.listenerManager.active;
  }

  async start(): Promise<void> {
    await this.listenerManager.startStatic();
    this.started = true;
  }

  /** Static listeners bound and not draining. */
  get serving(): boolean {
    return this.started;
  }

  /** Nothing warming: no cluster waits for EDS, no listener for RDS or for its bind. */
  get settled(): boolean {
    return this.clusters.warmingCount === 0 && this.listenerManager.settled;
  }

  // ---- xDS, in make-before-break order: CDS, EDS, LDS, RDS. Each returns the issues that refuse it. ------

  applyClusters(clusters: ReadonlyMap<string, Cluster>, changed: ReadonlySet<string>, version: string): FieldIssue[] {
    const issues = this.clusters.applyClusters(clusters, changed, version);
    if (!issues.length) this.refreshUpstreamIdentity();
    return issues;
  }

  applyEndpoints(assignments: ReadonlyMap<string, ClusterLoadAssignment>, changed: ReadonlySet<string>, version: string): FieldIssue[] {
    this.clusters.applyAssignments(assignments, changed, version);
    return [];
  }

  applyListeners(listeners: ReadonlyMap<string, Listener>, changed: ReadonlySet<string>, version: string): FieldIssue[] {
    return this.listenerManager.apply(listeners, changed, version);
  }

  applyRoutes(configs: ReadonlyMap<string, RouteConfiguration>, changed: ReadonlySet<string>, version: string): FieldIssue[] {
    this.routes.apply(configs, changed, version);
    this.listenerManager.routesChanged();
    return [];
  }

  /** An EDS resource never arrived (initial_fetch_timeout): clusters waiting for it start with no endpoints. */
  endpointsMissing(name: string): void {
    this.clusters.assignmentMissing(name);
  }

  /** An RDS resource never arrived: listeners waiting for it start with no routes (404 NR), as Envoy's do. */
  routesMissing(name: string): void {
    this.routes.missing(name);
    this.listenerManager.routesChanged();
  }

  /**
   * Graceful shutdown: stop accepting, GOAWAY, let in-flight requests finish within drainMs, then close.
   * Resolves true when everything finished in time.
   */
  async drain(drainMs: number): Promise<boolean> {
    this.started = false;
    const all = this.listenerManager.all();
    for (const l of all) l.drain();
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    const timedOut = new Promise<boolean>((r) => {
      timer = this.d.clock.setTimeout(() => r(false), drainMs);
    });
    const idle = Promise.all(all.map((l) => l.whenIdle())).then(() => true);
    const clean = await Promise.race([idle, timedOut]);
    if (timer) this.d.clock.clearTimeout(timer);
    this.close();
    return clean;
  }

  close(): void {
    this.started = false;
    this.listenerManager.close();
    this.clusters.destroy();
  }
}
