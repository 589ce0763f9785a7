// The sidecar's ADS client: one grpc-js StreamAggregatedResources stream to the control server, reconnected
// with jittered exponential backoff; the protocol state (ACK/NACK, subscriptions, last-known-good) is AdsState's.
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { exponentialBackoff, type Backoff } from '../core/backoff.js';
import type { Clock, Timer } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import type { Bootstrap } from '../model/types.js';
import type { Logger } from '../telemetry/logger.js';
import type { XdsClientMetrics } from '../telemetry/metrics.js';
import { adsService, nodeMessage, type AdsServiceClient, type DiscoveryRequestMsg, type DiscoveryResponseMsg } from './ads-proto.js';
import { AdsState, type AdsWatcher, type TypeStatusView } from './ads-state.js';

export interface AdsClientOptions {
  /** host:port of the control server. */
  readonly target: string;
  /** Channel credentials, asked for on every connection attempt (a rotated SVID is picked up on reconnect). */
  readonly credentials: () => grpc.ChannelCredentials;
  readonly channelOptions?: grpc.ChannelOptions;
  /** node, the static resources (their EDS/RDS names are subscribed too) and dynamic_resources. */
  readonly bootstrap: Bootstrap;
  readonly watcher: AdsWatcher;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly logger: Logger;
  readonly metrics?: XdsClientMetrics;
  /** Reconnect backoff (Envoy's ADS retry: 500 ms base, 30 s cap, full jitter). */
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
}

/** The stream to the control server, as /config_dump and the tests see it. */
export interface AdsClientStatus {
  readonly target: string;
  readonly connected: boolean;
  readonly types: readonly TypeStatusView[];
}

/**
 * Events: 'connected' (a stream is up: the server answered), 'disconnected' (Error | undefined), 'backoff'
 * (ms until the next attempt), plus AdsState's 'ack', 'nack' and 'initialized'.
 */
export class AdsClient extends EventEmitter {
  readonly state: AdsState;
  private readonly backoff: Backoff;
  private client: AdsServiceClient | undefined;
  private call: grpc.ClientDuplexStream<DiscoveryRequestMsg, DiscoveryResponseMsg> | undefined;
  private retryTimer: Timer | undefined;
  private up = false;
  private closed = false;

  constructor(private readonly o: AdsClientOptions) {
    super();
    const ads = o.bootstrap.ads;
    this.state = new AdsState({
      watcher: o.watcher,
      clock: o.clock,
      logger: o.logger,
      ...(o.metrics && { metrics: o.metrics }),
      node: nodeMessage(o.bootstrap.node),
      setNodeOnFirstMessageOnly: ads?.setNodeOnFirstMessageOnly ?? true,
      staticListeners: o.bootstrap.listeners,
      staticClusters: o.bootstrap.clusters,
      cdsInitialFetchTimeoutMs: ads?.cdsInitialFetchTimeoutMs ?? 15_000,
      ldsInitialFetchTimeoutMs: ads?.ldsInitialFetchTimeoutMs ?? 15_000,
    });
    for (const e of ['ack', 'nack', 'initialized']) this.state.on(e, (x: unknown) => this.emit(e, x));
    this.backoff = exponentialBackoff(o.rng, o.backoffBaseMs ?? 500, o.backoffMaxMs ?? 30_000);
  }

  get connected(): boolean {
    return this.up;
  }

  /** True once the initial CDS, EDS, LDS and RDS fetches are applied (or given up on). */
  get initialized(): boolean {
    return this.state.initialized;
  }

  start(): void {
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    let client: AdsServiceClient;
    let call: grpc.ClientDuplexStream<DiscoveryRequestMsg, DiscoveryResponseMsg>;
    try {
      // A fresh channel per attempt: grpc-js's own reconnect backoff would otherwise add to ours, and new
      // credentials carry the current SVID.
      const Ctor = adsService();
      client = new Ctor(this.o.target, this.o.credentials(), this.o.channelOptions ?? {}) as unknown as AdsServiceClient;
      call = client.StreamAggregatedResources();
    } catch (e) {
      this.o.logger.warn({ target: this.o.target, err: errorMessage(e) }, 'cannot open the ADS stream');
      return this.retry(e as Error);
    }
    this.client = client;
    this.call = call;
    let ended = false;
    const markUp = () => {
      if (this.up || ended) return;
      this.up = true;
      this.o.metrics?.connected.set(1);
      this.o.logger.info({ target: this.o.target }, 'ADS stream connected');
      this.emit('connected');
    };
    call.on('metadata', markUp);
    call.on('data', (res: DiscoveryResponseMsg) => {
      markUp();
      // A response means the stream works: the next failure starts the backoff from the bottom again.
      this.backoff.reset();
      this.state.handle(res);
    });
    call.on('error', () => {
      /* reported with the status */
    });
    call.on('status', (s: grpc.StatusObject) => {
      if (ended) return;
      ended = true;
      this.state.streamEnded();
      client.close();
      if (this.call === call) this.call = undefined;
      const wasUp = this.up;
      this.up = false;
      this.o.metrics?.connected.set(0);
      if (this.closed) return;
      const err = Object.assign(new Error(`ADS stream ended: ${s.code} ${s.details}`), { code: s.code });
      this.o.logger.warn({ target: this.o.target, code: s.code, details: s.details, wasConnected: wasUp }, 'ADS stream ended; the last good config keeps serving');
      this.emit('disconnected', err);
      this.retry(err);
    });
    this.state.streamStarted((r) => {
      if (!ended) call.write(r);
    });
  }

  private retry(err: Error): void {
    if (this.closed) return;
    const ms = this.backoff.next();
    this.emit('backoff', ms, err);
    this.retryTimer = this.o.clock.setTimeout(() => {
      this.retryTimer = undefined;
      this.connect();
    }, ms);
    this.retryTimer.unref();
  }

  status(): AdsClientStatus {
    return { target: this.o.target, connected: this.up, types: this.state.status() };
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) this.o.clock.clearTimeout(this.retryTimer);
    this.state.close();
    this.call?.cancel();
    this.client?.close();
    this.up = false;
    this.o.metrics?.connected.set(0);
  }
}
