// A bound listener: accepts sockets (plaintext or mTLS with SVID checks), picks HTTP/1.1 or HTTP/2, hands requests to the current HCM, swaps config in place, drains.
import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { compileStringMatcher, type Predicate } from '../model/matchers.js';
import type { Clock } from '../core/clock.js';
import { filterChainMatchKey, listenerChains, type FilterChain, type Listener, type SocketAddress } from '../model/types.js';
import { checkX509Svid, reasonFromTlsError } from '../identity/svid.js';
import type { LogLimiter } from '../telemetry/log-limit.js';
import type { Logger } from '../telemetry/logger.js';
import type { MeshMetrics } from '../telemetry/metrics.js';
import { trustDomainOf, type MaterialSource, type TlsMaterialView } from '../upstream/tls.js';
import type { ConnInfo } from './exchange.js';
import type { PeerInfo } from './headers.js';
import { looksLikeHttp1, needsInspection, peekTransport, selectFilterChain } from './filter-chain-match.js';
import type { HcmRuntime } from './hcm.js';
import { Replies, renderLocalReply } from './local-reply.js';

const kConn = Symbol('outrigger.conn');
const kInflight = Symbol('outrigger.inflight');
const kH2 = Symbol('outrigger.h2');

type TrackedSocket = net.Socket & { [kConn]?: ConnInfo; [kInflight]?: number; [kH2]?: boolean };

/** The HTTP/2 client connection preface (RFC 9113 §3.4); its first bytes tell h2c prior knowledge from HTTP/1.x. */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export interface ListenerDeps {
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  readonly clock: Clock;
  /** How long connections of a replaced filter chain get to finish before they are closed. */
  readonly drainMs: number;
  /**
   * Limits the warnings any network client can provoke (plaintext to a STRICT port, a failed mTLS handshake), keyed
   * by listener and kind: a scanner must not flood the log. Every refusal is still counted in the metrics, and the
   * line after a dropped run says how many were dropped.
   */
  readonly refusals: LogLimiter;
}

/** One filter chain of a listener version, with what serves it: its HCM and, with a DownstreamTlsContext, its TLS material. */
export interface ChainBinding {
  readonly chain: FilterChain;
  readonly hcm: HcmRuntime;
  readonly tlsMaterial: MaterialSource | undefined;
}

/**
 * What a filter chain fixes for the life of a connection: TLS, codec, HTTP/1 limits and HTTP/2 SETTINGS. When
 * an update leaves these equal, open connections simply take the new HCM for their next request.
 */
function connectionSettings(chain: FilterChain, inbound: boolean): string {
  const h = chain.hcm;
  return JSON.stringify([chain.tls ?? null, h.codecType, h.maxRequestHeadersKb, h.requestTimeoutMs, h.idleTimeoutMs, h.http2, inbound]);
}

/** How an update recognises "the same chain": by its match (unique within a listener, as Envoy requires), or as the default. */
const chainKey = (l: Listener, c: FilterChain) => (c === l.defaultFilterChain ? 'default' : filterChainMatchKey(c.match));

/** After refusing a plaintext HTTP/1.x client, how long its remaining input is read (so the reply is not lost to a reset). */
const REFUSAL_LINGER_MS = 1000;

/**
 * A bound listener: owns the socket, and hands each accepted connection to its current filter chain. An
 * update with the same address keeps the socket: new requests take the new HCM (requests in flight finish on
 * the one they started with); if the connection settings changed, a new chain serves new connections while
 * the old one drains its own.
 */
export class ListenerRuntime {
  private server: net.Server | undefined;
  /** Aligned with listenerChains(listener): filter_chains in order, then default_filter_chain. */
  private chains: FilterChainRuntime[];
  /** What tls_inspector must find out before a chain can be chosen (nothing: no byte is read first). */
  private inspect: { readonly transport: boolean; readonly alpn: boolean };
  private readonly replaced = new Set<FilterChainRuntime>();
  /** Every HCM that may still have requests in flight (drain waits for them). */
  private readonly hcms = new Set<HcmRuntime>();
  private readonly connGauge;
  private readonly connTotal;
  private readonly raw = new Set<net.Socket>();
  private draining = false;

  constructor(
    public listener: Listener,
    bindings: readonly ChainBinding[],
    private readonly d: ListenerDeps,
  ) {
    this.connGauge = d.metrics.downstreamConnectionsActive.labels({ listener: listener.name });
    this.connTotal = d.metrics.downstreamConnectionsTotal.labels({ listener: listener.name });
    this.inspect = needsInspection(listenerChains(listener));
    this.chains = bindings.map((b) => this.chainRuntime(listener, b));
  }

  private chainRuntime(l: Listener, b: ChainBinding): FilterChainRuntime {
    this.hcms.add(b.hcm);
    return new FilterChainRuntime(l.name, chainKey(l, b.chain), b, l.trafficDirection === 'INBOUND', this.d);
  }

  get name(): string {
    return this.listener.name;
  }

  /** The HCM new requests of the first filter chain go to. */
  get hcm(): HcmRuntime {
    return this.chains[0]!.hcm;
  }

  address(): SocketAddress | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  async start(): Promise<SocketAddress> {
    const server = net.createServer((s) => this.accept(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.listener.address.host, port: this.listener.address.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return this.address()!;
  }

  private accept(s: net.Socket): void {
    this.raw.add(s);
    this.connGauge.inc();
    this.connTotal.inc();
    s.setNoDelay(true);
    s.once('close', () => {
      this.raw.delete(s);
      this.connGauge.dec();
    });
    s.on('error', () => {
      /* resets are normal at connection level; requests account for their own failures */
    });
    const ins = this.listener.tlsInspector;
    // Nothing to choose on (no tls_inspector, or no chain that cares what it finds): no byte is read first.
    if (!ins || !(this.inspect.transport || this.inspect.alpn)) return this.dispatch(s, 'raw_buffer', [], undefined);
    void peekTransport(s, { clock: this.d.clock, timeoutMs: ins.timeoutMs, wantAlpn: this.inspect.alpn }).then((r) => {
      if (r.kind === 'closed' || s.destroyed) return void s.destroy();
      if (r.kind === 'done') return this.dispatch(s, r.tls ? 'tls' : 'raw_buffer', r.alpn, r.head);
      // listener_filters_timeout: Envoy closes the connection, or with continue_on_listener_filters_timeout
      // matches it with what it knows (raw_buffer); a client that never speaks holds no socket beyond it.
      this.d.logger.debug({ listener: this.name, remote: `${s.remoteAddress}:${s.remotePort}`, timeoutMs: ins.timeoutMs }, 'listener filters timed out');
      if (ins.continueOnTimeout) return this.dispatch(s, 'raw_buffer', [], r.head);
      s.destroy();
    });
  }

  /** Hands the connection to the chain Envoy's FilterChainMatch rules pick; `head` is what tls_inspector read. */
  private dispatch(s: net.Socket, transportProtocol: 'tls' | 'raw_buffer', alpn: readonly string[], head: Buffer | undefined): void {
    const chains = this.listener.filterChains;
    const i = chains.length === 1 && !chains[0]!.match ? 0 : selectFilterChain(chains, { destinationPort: s.localPort ?? 0, transportProtocol, alpn });
    const rt = i >= 0 ? this.chains[i] : this.listener.defaultFilterChain && this.chains[chains.length];
    if (rt) return rt.accept(s, head);
    this.refuseUnmatched(s, transportProtocol, head);
  }

  /**
   * No chain matches (Envoy: no_filter_chain_match) and there is no default chain: the connection is closed,
   * never forwarded. When it is plaintext and the listener only takes TLS (PeerAuthentication STRICT), the
   * warning says so, and an HTTP/1.x client gets one 400 with a JSON body saying why before the close.
   */
  private refuseUnmatched(s: net.Socket, transportProtocol: 'tls' | 'raw_buffer', head: Buffer | undefined): void {
    this.d.metrics.noFilterChainMatch.inc({ listener: this.name });
    const mtlsRequired = transportProtocol === 'raw_buffer' && this.listener.filterChains.some((c) => c.match?.transportProtocol === 'tls');
    const message = mtlsRequired ? 'plaintext connection refused: mTLS is required (PeerAuthentication STRICT)' : 'connection refused: it matches no filter chain';
    const logged = this.d.refusals.allow(`${this.name}:${mtlsRequired ? 'plaintext' : 'no_filter_chain_match'}`);
    if (logged) this.d.logger.warn({ listener: this.name, remote: `${s.remoteAddress}:${s.remotePort}`, transport: transportProtocol, suppressed: logged.suppressed || undefined }, message);
    if (!mtlsRequired || !head || !looksLikeHttp1(head)) return void s.destroy();
    const body = JSON.stringify({ code: 'mtls_required', message: `${message}; call this workload through a mesh sidecar`, request_id: null });
    s.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    s.resume();
    const timer = this.d.clock.setTimeout(() => s.destroy(), REFUSAL_LINGER_MS);
    timer.unref();
    s.once('close', () => this.d.clock.clearTimeout(timer));
  }

  /**
   * LDS changed this listener and its address stayed: keep the socket. Same connection settings: the chain
   * takes the new HCM for every request from now on. Otherwise a new chain takes new connections, and the
   * old one drains (GOAWAY, Connection: close) and is closed after the drain time.
   */
  update(listener: Listener, bindings: readonly ChainBinding[]): void {
    this.listener = listener;
    this.inspect = needsInspection(listenerChains(listener));
    for (const h of this.hcms) if (h.active === 0) this.hcms.delete(h);
    // Chain by chain (recognised by match): one whose connection settings stayed keeps its connections.
    const old = new Map(this.chains.map((c) => [c.key, c]));
    this.chains = bindings.map((b) => {
      const key = chainKey(listener, b.chain);
      const cur = old.get(key);
      if (!cur || cur.settings !== connectionSettings(b.chain, listener.trafficDirection === 'INBOUND') || cur.tlsMaterial !== b.tlsMaterial) return this.chainRuntime(listener, b);
      old.delete(key);
      this.hcms.add(b.hcm);
      cur.hcm = b.hcm;
      return cur;
    });
    for (const c of old.values()) this.retire(c);
  }

  /** A chain the listener no longer has (or whose settings changed) drains its own connections, then closes. */
  private retire(old: FilterChainRuntime): void {
    this.replaced.add(old);
    const done = () => {
      this.replaced.delete(old);
      old.close();
    };
    old.drain(done);
    const timer = this.d.clock.setTimeout(done, this.d.drainMs);
    timer.unref();
  }

  /** Stop accepting; GOAWAY on HTTP/2; HTTP/1.1 connections close after their current response. */
  drain(): void {
    this.draining = true;
    this.server?.close();
    for (const c of this.chains) c.drain();
    for (const c of this.replaced) c.drain();
  }

  get isDraining(): boolean {
    return this.draining;
  }

  whenIdle(): Promise<void> {
    return Promise.all([...this.hcms].map((h) => h.whenIdle())).then(() => undefined);
  }

  close(): void {
    this.draining = true;
    this.server?.close();
    for (const c of this.chains) c.close();
    for (const c of this.replaced) c.close();
    for (const s of this.raw) s.destroy();
  }
}

/** One filter chain's connection handling: TLS admission, codec choice, HTTP/1.1 and HTTP/2 servers, drain. */
class FilterChainRuntime {
  hcm: HcmRuntime;
  readonly chain: FilterChain;
  readonly tlsMaterial: MaterialSource | undefined;
  /** connectionSettings() of the chain: an update with the same value keeps this runtime. */
  readonly settings: string;
  /** Inbound listeners count admitted connections by Istio's connection_security_policy. */
  private readonly admitted: { readonly mtls: { inc(): void }; readonly plain: { inc(): void } } | undefined;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly tlsServer: tls.Server | undefined;
  /** Connections as HTTP sees them (the TLS socket when TLS is on). */
  private readonly sockets = new Set<TrackedSocket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private draining = false;
  private onIdle: (() => void) | undefined;
  private readonly sanMatchers: readonly Predicate[];
  private localTrustDomain: string | undefined;
  private readonly onMaterial = (m: TlsMaterialView) => this.tlsServer?.setSecureContext(this.tlsOptions(m));

  constructor(
    private readonly name: string,
    readonly key: string,
    b: ChainBinding,
    inbound: boolean,
    private readonly d: ListenerDeps,
  ) {
    this.hcm = b.hcm;
    this.chain = b.chain;
    this.tlsMaterial = b.tlsMaterial;
    this.settings = connectionSettings(b.chain, inbound);
    const counter = d.metrics.inboundConnections;
    this.admitted = inbound ? { mtls: counter.labels({ listener: name, connection_security_policy: 'mutual_tls' }), plain: counter.labels({ listener: name, connection_security_policy: 'none' }) } : undefined;
    const cfg = b.chain.hcm;
    this.sanMatchers = (b.chain.tls?.common.validation?.uriSanMatchers ?? []).map(compileStringMatcher);

    this.h1 = http.createServer({
      // HttpConnectionManager.max_request_headers_kb; over it Node's parser answers 431 via clientError.
      maxHeaderSize: cfg.maxRequestHeadersKb * 1024,
      requestTimeout: cfg.requestTimeoutMs,
      keepAliveTimeout: cfg.idleTimeoutMs,
      headersTimeout: Math.min(60_000, cfg.requestTimeoutMs || 60_000),
    });
    this.h1.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const sock = req.socket as TrackedSocket;
      sock[kInflight] = (sock[kInflight] ?? 0) + 1;
      if (this.draining) res.shouldKeepAlive = false;
      res.once('close', () => {
        sock[kInflight] = (sock[kInflight] ?? 1) - 1;
        if (this.draining && sock[kInflight] === 0) sock.destroySoon();
      });
      this.hcm.handleH1(req, res, sock[kConn] ?? plainConn(sock));
    });
    this.h1.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => this.onUpgrade(req, socket, head));
    this.h1.on('clientError', (err: Error & { code?: string }, socket: net.Socket) => this.onClientError(err, socket));

    this.h2 = http2.createServer({
      settings: {
        maxConcurrentStreams: cfg.http2.maxConcurrentStreams,
        initialWindowSize: cfg.http2.initialStreamWindowSize,
        maxHeaderListSize: cfg.maxRequestHeadersKb * 1024,
        // RFC 8441: lets peers carry WebSocket over HTTP/2 with extended CONNECT.
        enableConnectProtocol: true,
      },
      maxSessionMemory: 64,
    });
    this.h2.on('session', (session: http2.ServerHttp2Session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      session.on('error', () => {
        /* the socket's close accounts for it */
      });
      if (cfg.http2.initialConnectionWindowSize > 65535) {
        session.once('localSettings', () => session.setLocalWindowSize(cfg.http2.initialConnectionWindowSize));
      }
      if (this.draining) session.close();
    });
    this.h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number) => {
      const sock = stream.session?.socket as TrackedSocket | undefined;
      this.hcm.handleH2(stream, headers, flags, sock?.[kConn] ?? { remoteIp: '', remotePort: 0, tls: false });
    });

    const chainTls = b.chain.tls;
    if (chainTls) {
      const source = b.tlsMaterial;
      if (!source) throw new Error(`listener ${name}: TLS material missing`);
      // Never listens itself: the listener's socket hands it raw connections, so a chain can change
      // (or stop using TLS) without the port being closed.
      const server = tls.createServer({
        ...this.tlsOptions(source.current()),
        requestCert: chainTls.requireClientCertificate,
        // Chain verification still happens; the verdict is read in onSecure so each refusal has a reason.
        rejectUnauthorized: false,
        ALPNProtocols: chainTls.common.alpnProtocols.length ? [...chainTls.common.alpnProtocols] : ['h2', 'http/1.1'],
      });
      // Rotation: new handshakes use the new SVID and bundle; established connections keep theirs.
      source.on('update', this.onMaterial);
      server.on('secureConnection', (s: tls.TLSSocket) => this.onSecure(s));
      server.on('tlsClientError', (err: Error & { code?: string }, s: tls.TLSSocket) => {
        this.d.metrics.tlsHandshakeFailures.inc({ listener: this.name, reason: reasonFromTlsError(err.code ?? 'handshake') });
        this.d.logger.debug({ listener: this.name, remote: s.remoteAddress, code: err.code, err: err.message }, 'TLS handshake failed');
        s.destroy();
      });
      this.tlsServer = server;
    }
  }

  /** A raw connection from the listener's socket; `head`: bytes tls_inspector already read from it. */
  accept(s: net.Socket, head?: Buffer): void {
    if (!this.tlsServer) return this.onPlain(s, head);
    // The TLS socket takes over the connection and first reads what is buffered on it (Node's initRead).
    if (head) s.unshift(head);
    this.tlsServer.emit('connection', s);
  }

  private tlsOptions(m: TlsMaterialView): tls.SecureContextOptions {
    this.localTrustDomain = trustDomainOf(m.spiffeId);
    return { cert: m.certChainPem, key: m.keyPem, ca: m.caPem, minVersion: 'TLSv1.2' };
  }

  /** An HTTP-level connection of this chain; a draining chain reports when its last one closed. */
  private adopt(s: TrackedSocket): void {
    this.sockets.add(s);
    s.once('close', () => {
      this.sockets.delete(s);
      if (this.draining && this.sockets.size === 0) this.onIdle?.();
    });
  }

  private refuse(s: tls.TLSSocket, reason: string, detail: string): void {
    this.d.metrics.tlsHandshakeFailures.inc({ listener: this.name, reason });
    const logged = this.d.refusals.allow(`${this.name}:tls:${reason}`);
    if (logged) this.d.logger.warn({ listener: this.name, remote: `${s.remoteAddress}:${s.remotePort}`, reason, detail, suppressed: logged.suppressed || undefined }, 'downstream peer refused');
    s.destroy();
  }

  /** mTLS admission: chain, validity, then the X509-SVID rules and SAN matchers. Nothing is read before this passes. */
  private onSecure(s: tls.TLSSocket): void {
    const chain = this.chain.tls!;
    let peer: PeerInfo | undefined;
    const cert = s.getPeerX509Certificate();
    if (chain.requireClientCertificate) {
      if (!cert) return this.refuse(s, 'no_certificate', 'client presented no certificate');
      if (!s.authorized) {
        const code = String((s.authorizationError as unknown as string) ?? 'unknown');
        return this.refuse(s, reasonFromTlsError(code), `client certificate rejected: ${code}`);
      }
    }
    if (cert) {
      const res = checkX509Svid(cert, { trustDomain: this.localTrustDomain });
      if (!res.ok) return this.refuse(s, res.reason, res.message);
      if (this.sanMatchers.length && !this.sanMatchers.some((p) => p(res.id.uri))) {
        return this.refuse(s, 'san_mismatch', `peer ${res.id.uri} matches no match_typed_subject_alt_names entry`);
      }
      peer = peerInfo(cert, res.id.uri);
    }
    const info: ConnInfo = { remoteIp: s.remoteAddress ?? '', remotePort: s.remotePort ?? 0, tls: true, peer, sni: (s as tls.TLSSocket & { servername?: string }).servername || undefined, ...localAddress(s) };
    (s as TrackedSocket)[kConn] = info;
    this.adopt(s);
    (cert ? this.admitted?.mtls : this.admitted?.plain)?.inc();
    const codec = this.chain.hcm.codecType;
    if (s.alpnProtocol === 'h2' && codec !== 'HTTP1') this.toH2(s);
    else this.h1.emit('connection', s);
  }

  /**
   * Plaintext: HTTP/1.x or h2c with prior knowledge, told apart by the first bytes (codec_type AUTO). `head`: the
   * bytes tls_inspector already read, which decide the codec in place of a first read.
   */
  private onPlain(s: net.Socket, head?: Buffer): void {
    (s as TrackedSocket)[kConn] = plainConn(s);
    this.adopt(s);
    this.admitted?.plain.inc();
    const codec = this.chain.hcm.codecType;
    if (head?.length) return this.plainWith(s, head, codec);
    if (!head && codec === 'HTTP1') return void this.h1.emit('connection', s);
    if (!head && codec === 'HTTP2') return this.toH2(s);
    s.once('data', (chunk: Buffer) => this.plainWith(s, chunk, codec));
    // Paused by tls_inspector, which timed out before a byte came (continue_on_listener_filters_timeout).
    if (head) s.resume();
  }

  /** The first bytes read through the JS stream: put back, then the codec they (or codec_type) name reads on. */
  private plainWith(s: net.Socket, chunk: Buffer, codec: FilterChain['hcm']['codecType']): void {
    s.pause();
    s.unshift(chunk);
    const n = Math.min(chunk.length, H2_PREFACE.length);
    if (codec === 'HTTP2' || (codec === 'AUTO' && chunk.subarray(0, n).equals(H2_PREFACE.subarray(0, n)))) {
      // The HTTP/2 session reads what was already buffered on the socket itself.
      this.toH2(s);
    } else {
        // The first bytes were read through the JS stream, so the HTTP/1 parser must keep reading that way:
        // handing it the native handle as well leaves IncomingMessage backpressure with nothing to pause
        // (measured: a 100 MiB upload was read into memory at once). Marking the handle consumed keeps
        // Node's parser on the stream path, where pause() stops the socket.
        const handle = (s as unknown as { _handle?: { _consumed?: boolean } })._handle;
        if (handle) handle._consumed = true;
        this.h1.emit('connection', s);
        s.resume();
    }
  }

  private toH2(s: net.Socket): void {
    (s as TrackedSocket)[kH2] = true;
    this.h2.emit('connection', s);
  }

  /**
   * WebSocket goes to the tunnel path. Any other Upgrade (curl's `--http2` sends `Upgrade: h2c`) is served as
   * plain HTTP/1.1, as Envoy does for upgrades it is not configured for; the connection closes afterwards
   * because Node has already detached its parser.
   */
  private onUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    const conn = (socket as TrackedSocket)[kConn] ?? plainConn(socket);
    if (String(req.headers.upgrade ?? '').toLowerCase() === 'websocket') return this.hcm.handleH1Upgrade(req, socket, head, conn);
    const res = new http.ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket);
    res.once('finish', () => socket.destroySoon());
    const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
    if (hasBody || head.length) {
      const body = JSON.stringify({ code: 'bad_request', message: 'an Upgrade request with a body is not supported', request_id: null });
      res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      return void res.end(body);
    }
    delete req.headers.upgrade;
    this.hcm.handleH1(req, res, conn);
  }

  /** Malformed HTTP/1.x, smuggling attempts (CL+TE, duplicate CL), oversized headers: refused, never forwarded. */
  private onClientError(err: Error & { code?: string }, socket: net.Socket): void {
    const code = err.code ?? 'unknown';
    this.d.metrics.protocolErrors.inc({ listener: this.name, kind: code });
    if (!socket.writable || code === 'ECONNRESET') return void socket.destroy();
    const reply = code === 'HPE_HEADER_OVERFLOW' ? Replies.headersTooLarge() : Replies.badRequest(`malformed HTTP request: ${err.message}`, `http1.codec_error{${code}}`);
    const out = renderLocalReply(reply, '', false);
    const body = JSON.stringify({ code: reply.code, message: reply.message, request_id: null });
    const reason = reply.status === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
    socket.end(
      `HTTP/1.1 ${reply.status} ${reason}\r\ncontent-type: ${out.headers['content-type']}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
    this.d.logger.info({ listener: this.name, remote: socket.remoteAddress, code, status: reply.status }, 'malformed request refused');
  }

  /** GOAWAY on HTTP/2; HTTP/1.1 connections close after their current response. `onIdle` runs once none is left. */
  drain(onIdle?: () => void): void {
    this.draining = true;
    if (onIdle) this.onIdle = onIdle;
    for (const s of this.sessions) s.close();
    for (const s of this.sockets) if (!s[kInflight] && !s[kH2]) s.destroySoon();
    if (this.sockets.size === 0) this.onIdle?.();
  }

  close(): void {
    this.draining = true;
    this.tlsMaterial?.off?.('update', this.onMaterial);
    for (const s of this.sessions) s.destroy();
    for (const s of this.sockets) s.destroy();
  }
}

function plainConn(sock: net.Socket): ConnInfo {
  return { remoteIp: sock.remoteAddress ?? '', remotePort: sock.remotePort ?? 0, tls: false, ...localAddress(sock) };
}

/** ConnInfo's local side (RBAC destination_ip / destination_port). */
function localAddress(sock: net.Socket): { localIp: string; localPort: number } {
  return { localIp: sock.localAddress ?? '', localPort: sock.localPort ?? 0 };
}

function peerInfo(cert: X509Certificate, uri: string): PeerInfo {
  const dns: string[] = [];
  for (const part of (cert.subjectAltName ?? '').split(', ')) if (part.startsWith('DNS:')) dns.push(part.slice(4));
  return {
    uri,
    dns,
    subject: cert.subject.split('\n').join(','),
    hash: cert.fingerprint256.replace(/:/g, '').toLowerCase(),
    certPem: cert.toString(),
  };
}
