// The ADS server: Envoy's AggregatedDiscoveryService (State of the World) over gRPC, pushing snapshots to sidecars and proxyless gRPC clients.
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { Clock } from '../../core/clock.js';
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import type { NodeInfo } from '../../model/types.js';
import type { Logger } from '../../telemetry/logger.js';
import type { XdsMetrics } from '../../telemetry/metrics.js';
import type { ProxyNode, SnapshotSource } from '../snapshot.js';
import { LogLimiter } from '../../telemetry/log-limit.js';
import { adsServiceDefinition, DELTA_METHOD, SOTW_METHOD, type DiscoveryRequest, type MalformedRequest } from './protocol.js';
import { ResponseCache } from './response-cache.js';
import type { XdsStatus } from './status.js';
import { AdsStream, type StreamContext, type Transport, type XdsAnswer } from './stream.js';

export type { Transport, XdsAnswer };

export interface AdsServerOptions {
  readonly source: SnapshotSource;
  /** Node metadata -> who the proxy is (the translator's parser); its issues end the stream with INVALID_ARGUMENT. */
  readonly identify: (node: NodeInfo) => Result<ProxyNode, FieldIssue>;
  readonly clock: Clock;
  readonly logger: Logger;
  /** createXdsMetrics(registry). */
  readonly metrics: XdsMetrics;
  /** Streams pushed to before yielding to the event loop during a config push (default 100). */
  readonly pushBatch?: number;
}

export interface AttachOptions {
  /**
   * The node's identity (spiffe://<td>/ns/<NAMESPACE>/sa/<SERVICE_ACCOUNT>) must be the SPIFFE ID of the
   * verified client certificate: the TLS port (15012). The plaintext port (15010) is for local use and
   * proxyless clients, as istiod offers it.
   */
  readonly requireIdentity: boolean;
  /** Reported in status and the pilot_xds gauge; default mtls when identity is required, else plaintext. */
  readonly transport?: Transport;
}

/** Emits 'ack' and 'nack' (XdsAnswer) as proxies answer responses: tests and tools wait on convergence with them. */
export class AdsServer extends EventEmitter<{ ack: [XdsAnswer]; nack: [XdsAnswer] }> {
  /** Every open stream, identified or not yet (close() ends them all). */
  private readonly streams = new Set<AdsStream>();
  /** Streams whose node is known: they get pushes and appear in status(). */
  private readonly admitted = new Set<AdsStream>();
  private readonly ctx: StreamContext;
  private readonly unsubscribe: () => void;
  private readonly batch: number;
  private closed = false;
  private pushing: Promise<void> | undefined;
  private pushAgain = false;
  /** Monotonic time of the oldest change not yet pushed (pilot_proxy_convergence_time). */
  private changedAt: number | undefined;
  private nonces = 0;
  private connections = 0;

  constructor(private readonly o: AdsServerOptions) {
    super();
    this.batch = Math.max(1, o.pushBatch ?? 100);
    const labels = (s: AdsStream) => ({ kind: s.node!.kind, transport: s.transport });
    this.ctx = {
      source: o.source,
      identify: o.identify,
      clock: o.clock,
      logger: o.logger,
      metrics: o.metrics,
      responses: new ResponseCache(),
      nackLog: new LogLimiter(o.clock),
      // Unique per server process; a nonce only has to tell this stream's responses apart.
      nextNonce: () => (++this.nonces).toString(36),
      nextConnectionId: (nodeId) => `${nodeId}-${++this.connections}`,
      admitted: (s) => {
        this.admitted.add(s);
        o.metrics.connected.inc(labels(s));
      },
      released: (s) => {
        this.streams.delete(s);
        if (this.admitted.delete(s)) {
          o.metrics.connected.dec(labels(s));
          o.logger.info({ node: s.node!.id, conn: s.connectionId }, 'ADS stream closed');
        }
      },
      answered: (e) => this.emit(e.kind, e),
    };
    this.unsubscribe = o.source.onChange(() => this.changed());
  }

  /** What to pass to grpc.Server.addService; attach() does it. */
  service(opts: AttachOptions): { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation } {
    const transport = opts.transport ?? (opts.requireIdentity ? 'mtls' : 'plaintext');
    return {
      definition: adsServiceDefinition(),
      implementation: {
        [SOTW_METHOD]: (call: grpc.ServerDuplexStream<DiscoveryRequest | MalformedRequest, Buffer>) => this.open(call, transport, opts.requireIdentity),
        // Incremental xDS is not served: Envoy and gRPC fall back to SotW when configured for it.
        [DELTA_METHOD]: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'incremental (delta) xDS is not served; use StreamAggregatedResources (state of the world)' }),
      },
    };
  }

  /** Serves ADS on a grpc.Server (before it binds); one AdsServer may serve both the TLS and the plaintext port. */
  attach(server: grpc.Server, opts: AttachOptions): void {
    const s = this.service(opts);
    server.addService(s.definition, s.implementation);
  }

  private open(call: grpc.ServerDuplexStream<DiscoveryRequest | MalformedRequest, Buffer>, transport: Transport, requireIdentity: boolean): void {
    if (this.closed) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'the control server is shutting down' });
      return;
    }
    const s = new AdsStream(call, transport, requireIdentity, this.ctx);
    if (!s.closed) this.streams.add(s);
  }

  private changed(): void {
    if (this.closed) return;
    this.changedAt ??= this.o.clock.monotonic();
    if (this.pushing) {
      // Coalesced: the running pass starts over once done; streams already current get nothing then.
      this.pushAgain = true;
      return;
    }
    this.pushing = this.pushAll().finally(() => (this.pushing = undefined));
  }

  /**
   * Pushes to every stream in batches, yielding to the event loop between batches so 2,000 pushes do not hold
   * up keepalives, ACKs and new streams. Snapshots are cached by the source per proxy kind and response
   * bodies by ResponseCache, so a batch mostly copies bytes.
   */
  private async pushAll(): Promise<void> {
    do {
      this.pushAgain = false;
      const since = this.changedAt!;
      this.changedAt = undefined;
      const streams = [...this.admitted];
      for (let i = 0; i < streams.length; i++) {
        if (i > 0 && i % this.batch === 0) await new Promise<void>((resolve) => setImmediate(resolve));
        const s = streams[i]!;
        if (s.pushChanges()) this.o.metrics.convergence.observe((this.o.clock.monotonic() - since) / 1000);
      }
    } while (this.pushAgain && !this.closed);
  }

  /** Resolves once the config push under way (if any) has been written to every stream. */
  async idle(): Promise<void> {
    while (this.pushing) await this.pushing;
  }

  status(): XdsStatus {
    const nodes = [...this.admitted].map((s) => s.status());
    return { connected: nodes.length, nodes };
  }

  /** Ends every stream with UNAVAILABLE, so proxies reconnect (to another replica or after a restart); refuses new ones. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    for (const s of [...this.streams]) s.end(grpc.status.UNAVAILABLE, 'the control server is shutting down; reconnect');
  }
}
