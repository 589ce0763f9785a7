// HTTP/1.1 keep-alive pool for one endpoint (usually the local app behind an inbound listener).
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Clock } from '../core/clock.js';
import type { SocketAddress } from '../model/types.js';
import { UpstreamError, cancelledError, connectReason } from './errors.js';
import type { PoolStats, UpgradeResult, UpstreamHandlers, UpstreamPool, UpstreamRequest, UpstreamStream } from './pool.js';
import { randomBytes } from 'node:crypto';
import { peerUriOf, type UpstreamTlsContext } from './tls.js';

export interface H1PoolOptions {
  readonly endpoint: SocketAddress;
  readonly tls: UpstreamTlsContext | undefined;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly clock: Clock;
  readonly onSessionDelta?: (d: number) => void;
}

export class H1Pool implements UpstreamPool {
  private readonly agent: http.Agent;
  private connectFailures = 0;
  private active = 0;
  private sockets = 0;

  constructor(private readonly o: H1PoolOptions) {
    const agentOpts: http.AgentOptions = {
      keepAlive: true,
      // LIFO reuse keeps a few warm sockets busy and lets the rest reach the idle timeout.
      scheduling: 'lifo',
      timeout: o.idleTimeoutMs > 0 ? o.idleTimeoutMs : undefined,
    };
    this.agent = o.tls ? new https.Agent(agentOpts) : new http.Agent(agentOpts);
  }

  stats(): PoolStats {
    return { connections: this.sockets, activeStreams: this.active, connectFailures: this.connectFailures };
  }

  open(req: UpstreamRequest, h: UpstreamHandlers): Promise<UpstreamStream> {
    const { endpoint, clock } = this.o;
    return new Promise((resolve, reject) => {
      const headers = { ...req.headers, host: req.authority };
      if (!req.endStream && headers['content-length'] === undefined) headers['transfer-encoding'] = 'chunked';
      const tlsCtx = this.o.tls;
      const cr = (tlsCtx ? https : http).request({
        ...(tlsCtx ? tlsCtx.connectOptions(endpoint.host, endpoint.port, ['http/1.1']) : {}),
        agent: this.agent,
        host: endpoint.host,
        port: endpoint.port,
        ...({ noDelay: true } as object),
        method: req.method,
        path: req.path,
        headers,
        setHost: false,
        // Aborts a connect still in progress when the caller goes away (the request is then never sent).
        signal: req.signal,
      });
      this.active++;
      let connected = false;
      let responded = false;
      let finished = false;
      let aborted = false;
      const done = () => {
        if (finished) return;
        finished = true;
        this.active--;
      };
      const timer = clock.setTimeout(() => {
        if (!connected) cr.destroy(new UpstreamError('connect_timeout', 'timeout', `connect to ${endpoint.host}:${endpoint.port} timed out after ${this.o.connectTimeoutMs} ms`));
      }, this.o.connectTimeoutMs);
      const stream: UpstreamStream = {
        sink: req.endStream ? null : cr,
        get peerUri() {
          return cr.socket && 'encrypted' in cr.socket ? peerUriOf(cr.socket as TLSSocket) : undefined;
        },
        abort: () => {
          aborted = true;
          done();
          cr.destroy();
        },
      };
      const onConnected = () => {
        if (connected) return;
        connected = true;
        clock.clearTimeout(timer);
        resolve(stream);
      };
      cr.on('socket', (sock: Socket) => {
        if (!(sock as Socket & { __counted?: boolean }).__counted) {
          (sock as Socket & { __counted?: boolean }).__counted = true;
          this.sockets++;
          this.o.onSessionDelta?.(1);
          sock.once('close', () => {
            this.sockets--;
            this.o.onSessionDelta?.(-1);
          });
        }
        // A reused keep-alive socket is already connected; a new one reports 'connect'/'secureConnect'.
        if (!sock.connecting && !(this.o.tls && !(sock as TLSSocket).encrypted)) onConnected();
        else sock.once(this.o.tls ? 'secureConnect' : 'connect', onConnected);
      });
      cr.on('response', (res) => {
        responded = true;
        res.once('end', () => {
          if (Object.keys(res.trailers).length) h.onTrailers(res.trailers);
          done();
        });
        h.onResponse(res.statusCode ?? 502, res.headers, res, false);
      });
      cr.on('error', (e) => {
        clock.clearTimeout(timer);
        done();
        if (aborted) return;
        if (!connected) {
          if (req.signal?.aborted) return reject(cancelledError());
          this.connectFailures++;
          reject(e instanceof UpstreamError ? e : new UpstreamError('connect_failure', connectReason(e), `connect to ${endpoint.host}:${endpoint.port} failed: ${e.message}`, e));
          return;
        }
        h.onError(new UpstreamError('reset', connectReason(e) === 'unknown' ? 'connection_termination' : connectReason(e), `upstream connection error: ${e.message}`, e), responded);
      });
      cr.on('close', () => {
        clock.clearTimeout(timer);
        if (!responded && connected && !aborted && !finished) {
          done();
          h.onError(new UpstreamError('reset', 'connection_termination', 'upstream closed the connection before responding'), false);
        }
      });
      if (req.endStream) cr.end();
      else cr.flushHeaders();
    });
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
    this.agent.destroy();
  }

  destroy(): void {
    this.agent.destroy();
  }
}
