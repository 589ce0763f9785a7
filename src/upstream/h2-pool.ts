// HTTP/2 session pool for one endpoint: fills a session up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS,
// leaves sessions that sent GOAWAY, and evicts idle ones.
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Clock, Timer } from '../core/clock.js';
import type { Http2Options, SocketAddress } from '../model/types.js';
import { UpstreamError, connectReason } from './errors.js';
import type { PoolStats, UpgradeResult, UpstreamHandlers, UpstreamPool, UpstreamRequest, UpstreamStream } from './pool.js';
import { peerUriOf, type UpstreamTlsContext } from './tls.js';

interface SessionState {
  readonly session: http2.ClientHttp2Session;
  readonly peerUri: string | undefined;
  active: number;
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
}

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL } = http2.constants;

export class H2Pool implements UpstreamPool {
  private readonly sessions: SessionState[] = [];
  private connecting: Promise<SessionState> | undefined;
  private connectFailures = 0;
  private closed = false;

  constructor(private readonly o: H2PoolOptions) {}

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

  private async acquire(): Promise<SessionState> {
    const s = this.pick();
    if (s) return s;
    if (this.closed) throw new UpstreamError('connect_failure', 'pool_closed', 'connection pool is closed');
    // One connect at a time per endpoint; concurrent callers share it (nghttp2 queues streams past the limit).
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private connect(): Promise<SessionState> {
    const { endpoint, tls: tlsCtx, clock } = this.o;
    return new Promise<SessionState>((resolve, reject) => {
      const authority = `${tlsCtx ? 'https' : 'http'}://${endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}`;
      let socket: net.Socket;
      const session = http2.connect(authority, {
        settings: { enablePush: false, initialWindowSize: this.o.http2.initialStreamWindowSize },
        maxSessionMemory: 64,
        createConnection: () => {
          // Nagle would hold small HEADERS/DATA frames back for the peer's delayed ACK.
          socket = tlsCtx
            ? tls.connect({ ...tlsCtx.connectOptions(endpoint.host, endpoint.port, ['h2']), noDelay: true })
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
        session.destroy();
        reject(e);
      };
      session.once('error', (e) => {
        fail(new UpstreamError('connect_failure', connectReason(e), `connect to ${endpoint.host}:${endpoint.port} failed: ${e.message}`, e));
      });
      session.once('connect', () => {
        if (settled) return;
        settled = true;
        clock.clearTimeout(timer);
        if (this.o.http2.initialConnectionWindowSize > 65535) session.setLocalWindowSize(this.o.http2.initialConnectionWindowSize);
        const state: SessionState = {
          session,
          peerUri: tlsCtx ? peerUriOf(socket as tls.TLSSocket) : undefined,
          active: 0,
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
    session.on('goaway', () => {
      s.draining = true;
    });
    session.on('error', () => {
      s.draining = true;
    });
    session.once('close', () => {
      s.draining = true;
      if (s.idleTimer) this.o.clock.clearTimeout(s.idleTimer);
      const i = this.sessions.indexOf(s);
      if (i >= 0) {
        this.sessions.splice(i, 1);
        this.o.onSessionDelta?.(-1);
      }
    });
    this.armIdle(s);
  }

  private armIdle(s: SessionState): void {
    if (s.idleTimer) this.o.clock.clearTimeout(s.idleTimer);
    s.idleTimer = undefined;
    if (s.active > 0 || this.o.idleTimeoutMs <= 0) return;
    s.idleTimer = this.o.clock.setTimeout(() => {
      if (s.active === 0) {
        s.draining = true;
        s.session.close();
      }
    }, this.o.idleTimeoutMs);
    s.idleTimer.unref();
  }

  async open(req: UpstreamRequest, h: UpstreamHandlers): Promise<UpstreamStream> {
    const s = await this.acquire();
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
      throw new UpstreamError('refused_stream', 'session_closed', `session closed before the stream opened: ${(e as Error).message}`, e);
    }
    s.active++;
    if (s.idleTimer) this.o.clock.clearTimeout(s.idleTimer);
    s.idleTimer = undefined;
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
      s.active--;
      this.armIdle(s);
      if (abortedByUs || (responded && ended)) return;
      const code = stream.rstCode ?? 0;
      if (code === NGHTTP2_REFUSED_STREAM && !responded) {
        // Streams above a GOAWAY's last-stream-id are closed REFUSED_STREAM: never processed, safe to retry.
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
    const s = await this.acquire();
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
      throw new UpstreamError('refused_stream', 'session_closed', `cannot open a WebSocket stream: ${(e as Error).message}`, e);
    }
    s.active++;
    stream.once('close', () => {
      s.active--;
      this.armIdle(s);
    });
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
    for (const s of this.sessions) {
      s.draining = true;
      s.session.close();
    }
  }

  destroy(): void {
    this.closed = true;
    for (const s of [...this.sessions]) s.session.destroy();
  }
}
