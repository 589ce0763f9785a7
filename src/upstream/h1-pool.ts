// HTTP/1.1 keep-alive pool for one endpoint (usually the local app behind an inbound listener).
// Requests go through undici's Pool: measured on the bench, a Node http.Agent proxy hop served ~3.6k req/s
// where the same hop over undici served ~5.7k. WebSocket upgrades keep Node's client (they leave the pool).
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { PassThrough, Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Pool, type Dispatcher, type buildConnector } from 'undici';
import type { Clock } from '../core/clock.js';
import type { SocketAddress } from '../model/types.js';
import { CircuitBreaker, PendingQueue, overflowError } from './circuit-breaker.js';
import { UpstreamError, cancelledError, connectReason, poolClosedError } from './errors.js';
import type { PoolStats, UpgradeResult, UpstreamHandlers, UpstreamPool, UpstreamRequest, UpstreamStream } from './pool.js';
import { peerUriOf, type UpstreamTlsContext } from './tls.js';

export interface H1PoolOptions {
  readonly endpoint: SocketAddress;
  readonly tls: UpstreamTlsContext | undefined;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly clock: Clock;
  readonly onSessionDelta?: (d: number) => void;
  /** The cluster's circuit breakers (shared by its pools); absent = a breaker of this pool's own with Envoy's defaults. */
  readonly breaker?: CircuitBreaker;
  /** A connection closes after this many requests (0 or absent = unlimited). */
  readonly maxRequestsPerConnection?: number;
}

/** Upstream response headers larger than this are a protocol error (Envoy's default header limit is 60 KiB). */
const MAX_RESPONSE_HEADER_BYTES = 60 * 1024;

type Controller = Dispatcher.DispatchController;

export class H1Pool implements UpstreamPool {
  private readonly pool: Pool;
  private connectFailures = 0;
  private active = 0;
  private sockets = 0;
  /** Connections being opened (connectSocket running). */
  private connecting = 0;
  /**
   * Connections counted against the breaker's max_connections: one per request on the wire (HTTP/1.1 carries one
   * at a time) or per open connection, whichever is more. A request that needs a new connection counts at once,
   * before undici opens it, so two requests in one tick cannot both squeeze past the limit.
   */
  private held = 0;
  private readonly breaker: CircuitBreaker;
  private readonly pending: PendingQueue;
  private closed = false;
  /**
   * The SPIFFE ID of the last verified TLS connection. undici does not say which connection carries a
   * request; every connection of this pool goes to one endpoint and passed the same SAN matchers.
   */
  private peerUri: string | undefined;

  constructor(private readonly o: H1PoolOptions) {
    const { endpoint } = o;
    this.breaker = o.breaker ?? new CircuitBreaker('', undefined);
    this.pending = new PendingQueue(this.breaker);
    const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
    this.pool = new Pool(`${o.tls ? 'https' : 'http'}://${host}:${endpoint.port}`, {
      connect: (_opts, cb) => this.connectSocket(cb),
      // Route timeouts belong to the connection manager; undici's own would fire 5xx on long polls.
      headersTimeout: 0,
      bodyTimeout: 0,
      keepAliveTimeout: o.idleTimeoutMs > 0 ? o.idleTimeoutMs : 3_600_000,
      keepAliveMaxTimeout: o.idleTimeoutMs > 0 ? o.idleTimeoutMs : 3_600_000,
      maxHeaderSize: MAX_RESPONSE_HEADER_BYTES,
      pipelining: 1,
      // undici closes the connection after its last allowed response and opens another for what is queued. Its
      // count lets one request more than the number given through (undici 7 client-h1: `counter++ >= max`);
      // a limit of 1 is a `reset` (Connection: close) on every request instead, see send().
      ...((o.maxRequestsPerConnection ?? 0) > 1 && { maxRequestsPerClient: o.maxRequestsPerConnection! - 1 }),
      // The breaker admits a parked request the moment a response ends, while undici still counts that
      // connection busy for a tick: capped, undici queues the request for it instead of opening another.
      connections: this.breaker.thresholds.maxConnections,
    });
    this.pool.on('connect', () => {
      this.sockets++;
      o.onSessionDelta?.(1);
      this.sync();
    });
    this.pool.on('disconnect', () => {
      this.sockets--;
      o.onSessionDelta?.(-1);
      this.sync();
      // A connection slot came free: a parked request may open the next one.
      this.pending.drain();
    });
    this.pool.on('connectionError', () => {
      /* surfaced to the request that was waiting for the connection */
    });
  }

  /** Opens one connection: plaintext or our mTLS (SVID + SAN checks), with the cluster's connect timeout. */
  private connectSocket(cb: buildConnector.Callback): void {
    const { endpoint, clock } = this.o;
    const tlsCtx = this.o.tls;
    // Nagle would hold small requests back for the peer's delayed ACK.
    const sock = tlsCtx
      ? tls.connect({ ...tlsCtx.connectOptions(endpoint.host, endpoint.port, ['http/1.1']), noDelay: true } as tls.ConnectionOptions)
      : net.connect({ host: endpoint.host, port: endpoint.port, noDelay: true });
    let done = false;
    this.connecting++;
    const settle = (err: Error | null) => {
      if (done) return;
      done = true;
      this.connecting--;
      clock.clearTimeout(timer);
      sock.off('error', onError);
      if (err) {
        sock.destroy();
        cb(err, null);
      } else {
        if (tlsCtx) this.peerUri = peerUriOf(sock as TLSSocket);
        cb(null, sock);
      }
    };
    const onError = (e: Error) => settle(new UpstreamError('connect_failure', connectReason(e), `connect to ${endpoint.host}:${endpoint.port} failed: ${e.message}`, e));
    const timer = clock.setTimeout(() => {
      settle(new UpstreamError('connect_timeout', 'timeout', `connect to ${endpoint.host}:${endpoint.port} timed out after ${this.o.connectTimeoutMs} ms`));
    }, this.o.connectTimeoutMs);
    sock.once('error', onError);
    sock.once(tlsCtx ? 'secureConnect' : 'connect', () => settle(null));
  }

  /** Moves the breaker's connection count by what this pool holds now. */
  private sync(): void {
    const held = Math.max(this.active, this.sockets + this.connecting);
    if (held === this.held) return;
    this.breaker.connections(held - this.held);
    this.held = held;
  }

  stats(): PoolStats {
    return { connections: this.sockets, activeStreams: this.active, connectFailures: this.connectFailures };
  }

  open(req: UpstreamRequest, h: UpstreamHandlers): Promise<UpstreamStream> {
    if (this.closed) return Promise.reject(poolClosedError());
    return new Promise((resolve, reject) => {
      // Straight onto an idle connection, or a new one within max_connections; else parked as pending.
      const attempt = (): boolean => {
        if (this.active >= this.sockets + this.connecting && !this.breaker.canConnect(this.held === 0)) return false;
        if (!this.breaker.tryRequest()) reject(overflowError(this.breaker.cluster, 'rq'));
        else this.send(req, h, resolve, reject);
        return true;
      };
      if (attempt()) return;
      if (!this.pending.push({ cancelled: req.cancelled, attempt, fail: reject })) reject(overflowError(this.breaker.cluster, 'pending'));
    });
  }

  /** Hands the request to undici; it holds a request slot of the breaker until it ends. */
  private send(req: UpstreamRequest, h: UpstreamHandlers, resolve: (s: UpstreamStream) => void, reject: (e: unknown) => void): void {
    const headers: Record<string, string | string[]> = { host: req.authority };
    for (const k in req.headers) {
      const v = req.headers[k];
      if (v !== undefined) headers[k] = typeof v === 'number' ? String(v) : v;
    }
    // The request body is written by the connection manager as it arrives; undici reads it from here.
    const sink = req.endStream ? null : new PassThrough();
    let controller: Controller | undefined;
    let started = false;
    let responded = false;
    let finished = false;
    let aborted = false;
    let body: Readable | undefined;
    this.active++;
    this.sync();
    const done = () => {
      if (finished) return;
      finished = true;
      this.active--;
      this.breaker.requestDone();
      this.sync();
      // The connection is free again: the next parked request takes it.
      this.pending.drain();
    };
    const stream: UpstreamStream = {
      sink,
      get peerUri() {
        return self.peerUri;
      },
      abort: () => {
        if (aborted) return;
        aborted = true;
        done();
        controller?.abort(cancelledError());
        sink?.destroy();
        body?.destroy();
      },
    };
    const self = this;
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart: (c) => {
        controller = c;
        // A caller that went away while we waited for a connection costs no request upstream.
        if (req.cancelled?.()) {
          aborted = true;
          c.abort(cancelledError());
          return;
        }
        if (started) return;
        started = true;
        resolve(stream);
      },
      onResponseStart: (c, status, resHeaders) => {
        // 1xx (100-continue) is answered downstream by our own server; only the final response goes on.
        if (status < 200) return;
        responded = true;
        body = new Readable({ read: () => c.resume() });
        h.onResponse(status, resHeaders as IncomingHttpHeaders, body, false);
      },
      onResponseData: (c, chunk) => {
        if (body && !body.push(chunk)) c.pause();
      },
      onResponseEnd: (_c, trailers) => {
        done();
        if (trailers && Object.keys(trailers).length) h.onTrailers(trailers as IncomingHttpHeaders);
        body?.push(null);
      },
      onResponseError: (_c, err) => {
        const wasFinished = finished;
        done();
        if (aborted || wasFinished) return;
        if (!started) {
          if (req.cancelled?.()) return reject(cancelledError());
          if (!(err instanceof UpstreamError) || err.kind !== 'cancelled') this.connectFailures++;
          return reject(err instanceof UpstreamError ? err : new UpstreamError('connect_failure', connectReason(err), `connect to ${this.o.endpoint.host}:${this.o.endpoint.port} failed: ${err.message}`, err));
        }
        body?.destroy();
        const reason = connectReason(err);
        h.onError(new UpstreamError('reset', reason === 'unknown' ? 'connection_termination' : reason, `upstream connection error: ${err.message}`, err), responded);
      },
    };
    try {
      this.pool.dispatch({ path: req.path, method: req.method, headers, body: sink, ...(this.o.maxRequestsPerConnection === 1 && { reset: true }) }, handler);
    } catch (e) {
      done();
      reject(new UpstreamError('reset', 'invalid_request', `request not accepted by the HTTP/1.1 client: ${(e as Error).message}`, e));
    }
  }

  upgrade(req: UpstreamRequest): Promise<UpgradeResult> {
    const { endpoint, clock } = this.o;
    const tlsCtx = this.o.tls;
    return new Promise((resolve, reject) => {
      const headers = {
        ...req.headers,
        host: req.authority,
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': req.headers['sec-websocket-version'] ?? '13',
        // A caller that came over HTTP/2 has no key of its own (RFC 8441 §5); make one.
        'sec-websocket-key': req.headers['sec-websocket-key'] ?? randomBytes(16).toString('base64'),
      };
      // Upgraded sockets leave the pool for good, so they never share the keep-alive agent.
      const cr = (tlsCtx ? https : http).request({
        ...(tlsCtx ? tlsCtx.connectOptions(endpoint.host, endpoint.port, ['http/1.1']) : {}),
        host: endpoint.host,
        port: endpoint.port,
        method: 'GET',
        path: req.path,
        headers,
        setHost: false,
        agent: false,
      });
      let connected = false;
      const timer = clock.setTimeout(() => {
        if (!connected) cr.destroy(new UpstreamError('connect_timeout', 'timeout', `connect to ${endpoint.host}:${endpoint.port} timed out`));
      }, this.o.connectTimeoutMs);
      cr.once('socket', (sock: Socket) => sock.once(tlsCtx ? 'secureConnect' : 'connect', () => {
        connected = true;
        clock.clearTimeout(timer);
      }));
      cr.once('upgrade', (res, socket, head) => {
        clock.clearTimeout(timer);
        resolve({ ok: true, headers: res.headers, tunnel: socket, head, peerUri: tlsCtx ? peerUriOf(socket as TLSSocket) : undefined });
      });
      cr.once('response', (res) => {
        clock.clearTimeout(timer);
        resolve({ ok: false, status: res.statusCode ?? 502, headers: res.headers, body: res });
      });
      cr.once('error', (e) => {
        clock.clearTimeout(timer);
        if (!connected) this.connectFailures++;
        reject(e instanceof UpstreamError ? e : new UpstreamError(connected ? 'reset' : 'connect_failure', connectReason(e), `WebSocket upgrade to ${endpoint.host}:${endpoint.port} failed: ${e.message}`, e));
      });
      cr.end();
    });
  }

  close(): void {
    this.closed = true;
    this.pending.failAll(poolClosedError);
    // Graceful: requests in flight finish, then the connections close.
    void this.pool.close().catch(() => {});
  }

  destroy(): void {
    this.closed = true;
    this.pending.failAll(poolClosedError);
    void this.pool.destroy().catch(() => {});
  }
}
