// HTTP/2 session pool for one endpoint: fills a session up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS,
// leaves sessions that sent GOAWAY, and evicts idle ones.
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Clock, Timer } from '../core/clock.js';
import type { Http2Options, SocketAddress } from '../model/types.js';
import { CircuitBreaker, PendingQueue, overflowError } from './circuit-breaker.js';
import { UpstreamError, cancelledError, connectReason, poolClosedError } from './errors.js';
import type { PoolStats, UpgradeResult, UpstreamHandlers, UpstreamPool, UpstreamRequest, UpstreamStream } from './pool.js';
import { peerUriOf, type UpstreamTlsContext } from './tls.js';

interface SessionState {
  readonly session: http2.ClientHttp2Session;
  readonly socket: net.Socket;
  readonly peerUri: string | undefined;
  active: number;
  /** Streams opened on this session so far, for max_requests_per_connection. */
  streams: number;
  /** Out of the pool's list (and its gauge), whether or not the socket has finished closing. */
  retired: boolean;
  /** The last-stream-id of a GOAWAY from the peer: streams above it were never processed (RFC 9113 §6.8). */
  goawayLastStreamId: number | undefined;
  draining: boolean;
  idleTimer: Timer | undefined;
}

export interface H2PoolOptions {
  readonly endpoint: SocketAddress;
  readonly tls: UpstreamTlsContext | undefined;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly http2: Http2Options;
  readonly clock: Clock;
  /** Called with +1/-1 as sessions open and close (pool gauge). */
  readonly onSessionDelta?: (d: number) => void;
  /** The cluster's circuit breakers (shared by its pools); absent = a breaker of this pool's own with Envoy's defaults. */
  readonly breaker?: CircuitBreaker;
  /** A session takes no new stream after this many and closes when they end (0 or absent = unlimited). */
  readonly maxRequestsPerConnection?: number;
}

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL } = http2.constants;

export class H2Pool implements UpstreamPool {
  private readonly sessions: SessionState[] = [];
  private connecting: Promise<SessionState> | undefined;
  private connectFailures = 0;
  private closed = false;
  private readonly breaker: CircuitBreaker;
  /** Requests waiting because max_connections keeps a new session from opening while every stream slot is taken. */
  private readonly pending: PendingQueue;

  constructor(private readonly o: H2PoolOptions) {
    this.breaker = o.breaker ?? new CircuitBreaker('', undefined);
    this.pending = new PendingQueue(this.breaker);
  }

  stats(): PoolStats {
    let active = 0;
    for (const s of this.sessions) active += s.active;
    return { connections: this.sessions.length, activeStreams: active, connectFailures: this.connectFailures };
  }

  private pick(): SessionState | undefined {
    for (const s of this.sessions) {
      if (s.draining || s.session.closed || s.session.destroyed) continue;
      const max = s.session.remoteSettings.maxConcurrentStreams ?? 100;
      if (s.active < max) return s;
    }
    return undefined;
  }

  /**
   * A session with a free stream slot, the slot already reserved (active++), so concurrent callers that
   * resume in the same tick cannot all squeeze into the last slot. The stream takes one of the breaker's
   * request slots (max_requests); with every slot taken and max_connections reached the caller is parked as
   * pending (max_pending_requests), and either limit overflowing is an 'overflow' error at once.
   */
  private acquire(req: UpstreamRequest): Promise<SessionState> {
    return new Promise((resolve, reject) => {
      const attempt = (): boolean => {
        const s = this.pick();
        if (s) {
          if (this.breaker.tryRequest()) resolve(this.take(s));
          else reject(overflowError(this.breaker.cluster, 'rq'));
          return true;
        }
        if (this.closed) {
          reject(poolClosedError());
          return true;
        }
        if (!this.connecting && !this.breaker.canConnect(this.sessions.length === 0)) return false;
        // One connect at a time per endpoint; callers that find the new session full start the next one.
        this.connecting ??= this.connect().finally(() => {
          this.connecting = undefined;
        });
        this.connecting.then(() => {
          if (!attempt()) park();
        }, reject);
        return true;
      };
      const park = () => {
        if (!this.pending.push({ cancelled: req.cancelled, attempt, fail: reject })) reject(overflowError(this.breaker.cluster, 'pending'));
      };
      if (!attempt()) park();
    });
  }

  private take(s: SessionState): SessionState {
    s.active++;
    s.streams++;
    // max_requests_per_connection: the last allowed stream drains the session; release() closes it.
    const max = this.o.maxRequestsPerConnection ?? 0;
    if (max > 0 && s.streams >= max) s.draining = true;
    if (s.idleTimer) this.o.clock.clearTimeout(s.idleTimer);
    s.idleTimer = undefined;
    return s;
  }

  private release(s: SessionState): void {
    this.breaker.requestDone();
    s.active--;
    // A draining session is closed by its last stream; an open one waits for the idle timeout.
    if (s.draining && s.active === 0) this.shut(s);
    else this.armIdle(s);
    this.pending.drain();
  }

  /**
   * Closes an idle session and takes it out of the pool at once. Node only emits 'close' once the peer
   * has closed its end too, and a peer that sent GOAWAY but keeps the socket open would otherwise hold
   * the session (and its file descriptor) in the pool forever: our FIN goes out, then the socket is freed.
   */
  private shut(s: SessionState): void {
    s.draining = true;
    if (!s.session.closed) s.session.close();
    this.retire(s);
    s.socket.destroySoon();
  }

  private retire(s: SessionState): void {
    if (s.idleTimer) this.o.clock.clearTimeout(s.idleTimer);
    s.idleTimer = undefined;
    if (s.retired) return;
    s.retired = true;
    const i = this.sessions.indexOf(s);
    if (i >= 0) this.sessions.splice(i, 1);
    this.o.onSessionDelta?.(-1);
    this.breaker.connections(-1);
    this.pending.drain();
  }

  private connect(): Promise<SessionState> {
    const { endpoint, tls: tlsCtx, clock } = this.o;
    // Counted from the first byte: a session being opened holds its max_connections slot.
    this.breaker.connections(1);
    return new Promise<SessionState>((resolve, reject) => {
      const authority = `${tlsCtx ? 'https' : 'http'}://${endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}`;
      let socket: net.Socket;
      const session = http2.connect(authority, {
        settings: { enablePush: false, initialWindowSize: this.o.http2.initialStreamWindowSize },
        maxSessionMemory: 64,
        createConnection: () => {
          // Nagle would hold small HEADERS/DATA frames back for the peer's delayed ACK.
          socket = tlsCtx
            ? tls.connect({ ...tlsCtx.connectOptions(endpoint.host, endpoint.port, ['h2']), noDelay: true } as tls.ConnectionOptions)
            : net.connect({ host: endpoint.host, port: endpoint.port, noDelay: true });
          return socket;
        },
      });
      let settled = false;
      const timer = clock.setTimeout(() => {
        fail(new UpstreamError('connect_timeout', 'timeout', `connect to ${endpoint.host}:${endpoint.port} timed out after ${this.o.connectTimeoutMs} ms`));
      }, this.o.connectTimeoutMs);
      const fail = (e: UpstreamError) => {
        if (settled) return;
        settled = true;
        clock.clearTimeout(timer);
        this.connectFailures++;
        this.breaker.connections(-1);
        session.destroy();
        reject(e);
      };
      session.once('error', (e) => {
        fail(new UpstreamError('connect_failure', connectReason(e), `connect to ${endpoint.host}:${endpoint.port} failed: ${e.message}`, e));
      });
      // Usable once the peer's SETTINGS arrived: before that SETTINGS_MAX_CONCURRENT_STREAMS reads as
      // unlimited and every waiter would pile onto this one session.
      session.once('remoteSettings', () => {
        if (settled) return;
        settled = true;
        clock.clearTimeout(timer);
        if (this.o.http2.initialConnectionWindowSize > 65535) session.setLocalWindowSize(this.o.http2.initialConnectionWindowSize);
        const state: SessionState = {
          session,
          socket,
          retired: false,
          goawayLastStreamId: undefined,
          peerUri: tlsCtx ? peerUriOf(socket as tls.TLSSocket) : undefined,
          active: 0,
          streams: 0,
          draining: false,
          idleTimer: undefined,
        };
        this.adopt(state);
        resolve(state);
      });
    });
  }

  private adopt(s: SessionState): void {
    this.sessions.push(s);
    this.o.onSessionDelta?.(1);
    const { session } = s;
    // After GOAWAY the peer takes no new streams; streams it already accepted finish (RFC 9113 §6.8).
    session.on('goaway', (_code: number, lastStreamId: number) => {
      s.draining = true;
      s.goawayLastStreamId = lastStreamId;
      if (s.active === 0) this.shut(s);
    });
    session.on('error', () => {
      s.draining = true;
    });
    session.once('close', () => {
      s.draining = true;
      this.retire(s);
    });
    this.armIdle(s);
    this.pending.drain();
  }

  private armIdle(s: SessionState): void {
    if (s.idleTimer) this.o.clock.clearTimeout(s.idleTimer);
    s.idleTimer = undefined;
    if (s.active > 0 || this.o.idleTimeoutMs <= 0) return;
    s.idleTimer = this.o.clock.setTimeout(() => {
      if (s.active === 0) this.shut(s);
    }, this.o.idleTimeoutMs);
    s.idleTimer.unref();
  }

  async open(req: UpstreamRequest, h: UpstreamHandlers): Promise<UpstreamStream> {
    const s = await this.acquire(req);
    if (req.cancelled?.()) {
      this.release(s);
      throw cancelledError();
    }
    const headers: OutgoingHttpHeaders = {
      ...req.headers,
      ':method': req.method,
      ':authority': req.authority,
      ':scheme': req.scheme,
      ':path': req.path,
    };
    let stream: http2.ClientHttp2Stream;
    try {
      stream = s.session.request(headers, { endStream: req.endStream });
    } catch (e) {
      // The session went away between pick and request (GOAWAY race): nothing was sent.
      s.draining = true;
      this.release(s);
      throw new UpstreamError('refused_stream', 'session_closed', `session closed before the stream opened: ${(e as Error).message}`, e);
    }
    let responded = false;
    stream.on('response', (headers: IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number) => {
      responded = true;
      h.onResponse(Number(headers[':status']), headers, stream, (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0);
    });
    stream.on('trailers', (t: IncomingHttpHeaders) => h.onTrailers(t));
    stream.on('error', () => {
      /* classified on close, from rstCode and how far the exchange got */
    });
    let ended = false;
    let abortedByUs = false;
    stream.once('end', () => {
      ended = true;
    });
    stream.once('close', () => {
      this.release(s);
      if (abortedByUs || (responded && ended)) return;
      const code = stream.rstCode ?? 0;
      // A stream the peer refused, or one above the last-stream-id of its GOAWAY, was never processed and
      // is safe to retry. The second shows up as a session teardown (INTERNAL_ERROR) when the peer's FIN
      // follows its GOAWAY, so the stream id is what decides, not the code.
      const unprocessed = s.goawayLastStreamId !== undefined && (stream.id === undefined || stream.id > s.goawayLastStreamId);
      if (!responded && (code === NGHTTP2_REFUSED_STREAM || unprocessed)) {
        h.onError(new UpstreamError('refused_stream', 'refused_stream', 'upstream refused the stream'), false);
      } else {
        h.onError(new UpstreamError('reset', code ? `rst_${code}` : 'connection_termination', `upstream reset the stream (code ${code})`), responded);
      }
    });
    return {
      sink: req.endStream ? null : stream,
      peerUri: s.peerUri,
      abort() {
        abortedByUs = true;
        if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
      },
    };
  }

  async upgrade(req: UpstreamRequest): Promise<UpgradeResult> {
    const s = await this.acquire(req);
    // RFC 8441 §4: extended CONNECT carries :protocol, :scheme and :path; sec-websocket-key rides along so
    // the far sidecar can hand the application the client's own key.
    const headers: OutgoingHttpHeaders = {
      ...req.headers,
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':authority': req.authority,
      ':scheme': req.scheme,
      ':path': req.path,
    };
    let stream: http2.ClientHttp2Stream;
    try {
      stream = s.session.request(headers, { endStream: false });
    } catch (e) {
      this.release(s);
      throw new UpstreamError('refused_stream', 'session_closed', `cannot open a WebSocket stream: ${(e as Error).message}`, e);
    }
    stream.once('close', () => this.release(s));
    return new Promise<UpgradeResult>((resolve, reject) => {
      stream.once('response', (h: IncomingHttpHeaders & http2.IncomingHttpStatusHeader) => {
        const status = Number(h[':status']);
        if (status >= 200 && status < 300) resolve({ ok: true, headers: h, tunnel: stream, head: Buffer.alloc(0), peerUri: s.peerUri });
        else resolve({ ok: false, status, headers: h, body: stream });
      });
      stream.once('error', (e) => reject(new UpstreamError('reset', 'connection_termination', `WebSocket stream failed: ${e.message}`, e)));
    });
  }

  close(): void {
    this.closed = true;
    this.pending.failAll(poolClosedError);
    for (const s of [...this.sessions]) {
      s.draining = true;
      if (s.active === 0) this.shut(s);
      else s.session.close();
    }
  }

  destroy(): void {
    this.closed = true;
    this.pending.failAll(poolClosedError);
    for (const s of [...this.sessions]) s.session.destroy();
  }
}
