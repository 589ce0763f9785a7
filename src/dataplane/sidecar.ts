// The sidecar's data plane as one unit: clusters, listeners and their HCMs built from one Bootstrap, plus drain.
import type { Registry } from 'prom-client';
import type { Clock } from '../core/clock.js';
import type { Rng } from '../core/rng.js';
import type { Bootstrap, Cluster, CommonTls, Listener } from '../model/types.js';
import type { AccessLog } from '../telemetry/access-log.js';
import type { Logger } from '../telemetry/logger.js';
import { RequestRecorder, createMetrics, type MeshMetrics } from '../telemetry/metrics.js';
import { ClusterManager } from '../upstream/cluster-manager.js';
import type { MaterialSource } from '../upstream/tls.js';
import { HcmRuntime } from './hcm.js';
import { ListenerRuntime } from './listener.js';

export interface SidecarDeps {
  readonly clock: Clock;
  readonly rng: Rng;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly accessLog: AccessLog;
  /** Identity's secret store: the live TLS material for a CommonTlsContext's certificates. */
  readonly materialFor: (common: CommonTls) => MaterialSource;
}

export class SidecarRuntime {
  readonly metrics: MeshMetrics;
  readonly clusters: ClusterManager;
  readonly listeners: readonly ListenerRuntime[];
  private started = false;

  constructor(
    readonly bootstrap: Bootstrap,
    private readonly d: SidecarDeps,
  ) {
    this.metrics = createMetrics(d.registry);
    const recorder = new RequestRecorder(this.metrics);
    this.clusters = new ClusterManager(bootstrap.clusters, {
      clock: d.clock,
      metrics: this.metrics,
      materialFor: (c: Cluster) => (c.tls ? d.materialFor(c.tls.common) : undefined),
      startOffset: (n) => d.rng.int(n),
    });
    this.listeners = bootstrap.listeners.map((l) => this.buildListener(l, recorder));
  }

  private buildListener(l: Listener, recorder: RequestRecorder): ListenerRuntime {
    const tls = l.filterChain.tls;
    const material = tls ? this.d.materialFor(tls.common) : undefined;
    const reporter = l.trafficDirection === 'INBOUND' || (l.trafficDirection === 'UNSPECIFIED' && tls) ? 'destination' : 'source';
    // The workload's own identity: the listener's certificate inbound, any upstream TLS context outbound.
    const own = material ?? this.anyUpstreamMaterial();
    const hcm = new HcmRuntime(l.filterChain.hcm, {
      listenerName: l.name,
      reporter,
      clusters: this.clusters,
      metrics: this.metrics,
      recorder,
      accessLog: this.d.accessLog,
      logger: this.d.logger,
      clock: this.d.clock,
      rng: this.d.rng,
      localUri: () => own?.current().spiffeId,
    });
    return new ListenerRuntime(l, hcm, { metrics: this.metrics, logger: this.d.logger, tlsMaterial: material });
  }

  private anyUpstreamMaterial(): MaterialSource | undefined {
    const c = this.bootstrap.clusters.find((x) => x.tls);
    return c?.tls ? this.d.materialFor(c.tls.common) : undefined;
  }

  async start(): Promise<void> {
    for (const l of this.listeners) {
      const a = await l.start();
      this.d.logger.info({ listener: l.name, address: `${a.host}:${a.port}` }, 'listener bound');
    }
    this.started = true;
  }

  get ready(): boolean {
    return this.started;
  }

  /**
   * Graceful shutdown: stop accepting, GOAWAY, let in-flight requests finish within drainMs, then close.
   * Resolves true when everything finished in time.
   */
  async drain(drainMs: number): Promise<boolean> {
    this.started = false;
    for (const l of this.listeners) l.drain();
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    const timedOut = new Promise<boolean>((r) => {
      timer = this.d.clock.setTimeout(() => r(false), drainMs);
    });
    const idle = Promise.all(this.listeners.map((l) => l.whenIdle())).then(() => true);
    const clean = await Promise.race([idle, timedOut]);
    if (timer) this.d.clock.clearTimeout(timer);
    this.close();
    return clean;
  }

  close(): void {
    this.started = false;
    for (const l of this.listeners) l.close();
    this.clusters.destroy();
  }
}
