// Cluster manager: one runtime per decoded Cluster, each with its endpoints, a round-robin pick and a pool per endpoint.
import type { Clock } from '../core/clock.js';
import type { Cluster, LbEndpoint, Locality } from '../model/types.js';
import type { MeshMetrics } from '../telemetry/metrics.js';
import { H1Pool } from './h1-pool.js';
import { H2Pool } from './h2-pool.js';
import type { UpstreamPool } from './pool.js';
import { UpstreamTlsContext, type MaterialSource } from './tls.js';

export class EndpointRuntime {
  rqActive = 0;
  rqTotal = 0;
  rqError = 0;
  /** host:port as the access log and /clusters print it (IPv6 in brackets); fixed per endpoint. */
  readonly hostPort: string;

  constructor(
    readonly endpoint: LbEndpoint,
    readonly locality: Locality,
    readonly priority: number,
    readonly pool: UpstreamPool,
  ) {
    const h = endpoint.address.host;
    this.hostPort = `${h.includes(':') ? `[${h}]` : h}:${endpoint.address.port}`;
  }

  get healthy(): boolean {
    const hs = this.endpoint.healthStatus;
    return hs === 'HEALTHY' || hs === 'UNKNOWN' || hs === 'DEGRADED';
  }
}

export class ClusterRuntime {
  readonly endpoints: readonly EndpointRuntime[];
  private readonly healthy: readonly EndpointRuntime[];
  private rr = 0;

  constructor(
    readonly cluster: Cluster,
    endpoints: EndpointRuntime[],
    startOffset: number,
  ) {
    this.endpoints = endpoints;
    // Until the balancer tree (priorities, localities, outlier detection) lands, the lowest priority
    // with a healthy endpoint is used, round-robin within it.
    const byPriority = [...new Set(endpoints.map((e) => e.priority))].sort((a, b) => a - b);
    let chosen: EndpointRuntime[] = [];
    for (const p of byPriority) {
      chosen = endpoints.filter((e) => e.priority === p && e.healthy);
      if (chosen.length) break;
    }
    this.healthy = chosen;
    this.rr = startOffset;
  }

  /** Round robin over healthy hosts; undefined means "no healthy upstream" (503 UH). */
  pick(): EndpointRuntime | undefined {
    const n = this.healthy.length;
    if (n === 0) return undefined;
    const e = this.healthy[this.rr % n]!;
    this.rr = (this.rr + 1) % n;
    return e;
  }
}

export interface ClusterManagerDeps {
  readonly clock: Clock;
  readonly metrics: MeshMetrics;
  /** The TLS material for an UpstreamTlsContext's certificates (identity's secret store). */
  readonly materialFor: (cluster: Cluster) => MaterialSource | undefined;
  /** Random start offset per cluster, so a fleet of sidecars does not hit endpoint 0 in lockstep. */
  readonly startOffset: (n: number) => number;
}

export class ClusterManager {
  private readonly clusters = new Map<string, ClusterRuntime>();

  constructor(clusters: readonly Cluster[], private readonly deps: ClusterManagerDeps) {
    for (const c of clusters) this.clusters.set(c.name, this.build(c));
  }

  private build(c: Cluster): ClusterRuntime {
    const source = c.tls ? this.deps.materialFor(c) : undefined;
    const tlsCtx = c.tls && source ? new UpstreamTlsContext(c.tls, source) : undefined;
    const gauge = this.deps.metrics.upstreamPoolSessions.labels({ cluster: c.name });
    const onSessionDelta = (d: number) => gauge.inc(d);
    const eps: EndpointRuntime[] = [];
    for (const loc of c.loadAssignment?.localities ?? []) {
      for (const ep of loc.endpoints) {
        const common = {
          endpoint: ep.address,
          tls: tlsCtx,
          connectTimeoutMs: c.connectTimeoutMs,
          idleTimeoutMs: c.idleTimeoutMs,
          clock: this.deps.clock,
          onSessionDelta,
        };
        const pool = c.protocol === 'HTTP2' ? new H2Pool({ ...common, http2: c.http2 }) : new H1Pool(common);
        eps.push(new EndpointRuntime(ep, loc.locality, loc.priority, pool));
      }
    }
    return new ClusterRuntime(c, eps, this.deps.startOffset(Math.max(1, eps.length)));
  }

  get(name: string): ClusterRuntime | undefined {
    return this.clusters.get(name);
  }

  all(): IterableIterator<ClusterRuntime> {
    return this.clusters.values();
  }

  destroy(): void {
    for (const c of this.clusters.values()) for (const e of c.endpoints) e.pool.destroy();
  }
}
