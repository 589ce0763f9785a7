// A bound listener: accepts sockets (plaintext or mTLS with SVID checks), picks HTTP/1.1 or HTTP/2, hands requests to the HCM, drains.
import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { compileStringMatcher, type Predicate } from '../model/matchers.js';
import type { Listener, SocketAddress } from '../model/types.js';
import { checkX509Svid, reasonFromTlsError } from '../identity/svid.js';
import type { Logger } from '../telemetry/logger.js';
import type { MeshMetrics } from '../telemetry/metrics.js';
import { trustDomainOf, type MaterialSource, type TlsMaterialView } from '../upstream/tls.js';
import type { ConnInfo } from './exchange.js';
import type { PeerInfo } from './headers.js';
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
  /** The downstream TLS material, when the filter chain has a DownstreamTlsContext. */
  readonly tlsMaterial?: MaterialSource;
}

export class ListenerRuntime {
  private server: net.Server | undefined;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly sockets = new Set<TrackedSocket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private draining = false;
  private readonly sanMatchers: readonly Predicate[];
  private localTrustDomain: string | undefined;
  private readonly connGauge;
  private readonly connTotal;

  constructor(
    readonly listener: Listener,
    readonly hcm: HcmRuntime,
    private readonly d: ListenerDeps,
  ) {
    const cfg = listener.filterChain.hcm;
    const name = listener.name;
    this.connGauge = d.metrics.downstreamConnectionsActive.labels({ listener: name });
    this.connTotal = d.metrics.downstreamConnectionsTotal.labels({ listener: name });
    this.sanMatchers = (listener.filterChain.tls?.common.validation?.uriSanMatchers ?? []).map(compileStringMatcher);

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
      this.hcm.handleH1(req, res, sock[kConn] ?? this.plainConn(sock));
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
  }

  get name(): string {
    return this.listener.name;
  }

  address(): SocketAddress | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  private plainConn(sock: net.Socket): ConnInfo {
    return { remoteIp: sock.remoteAddress ?? '', remotePort: sock.remotePort ?? 0, tls: false };
  }

  async start(): Promise<SocketAddress> {
    const chain = this.listener.filterChain;
    if (chain.tls) {
      const source = this.d.tlsMaterial;
      if (!source) throw new Error(`listener ${this.name}: TLS material missing`);
      const server = tls.createServer({
        ...this.tlsOptions(source.current()),
        requestCert: chain.tls.requireClientCertificate,
        // Chain verification still happens; the verdict is read in onSecure so each refusal has a reason.
        rejectUnauthorized: false,
        ALPNProtocols: chain.tls.common.alpnProtocols.length ? [...chain.tls.common.alpnProtocols] : ['h2', 'http/1.1'],
      });
      // Rotation: new handshakes use the new SVID and bundle; established connections keep theirs.
      source.on('update', (m) => server.setSecureContext(this.tlsOptions(m)));
      server.on('secureConnection', (s: tls.TLSSocket) => this.onSecure(s));
      server.on('tlsClientError', (err: Error & { code?: string }, s: tls.TLSSocket) => {
        this.d.metrics.tlsHandshakeFailures.inc({ listener: this.name, reason: reasonFromTlsError(err.code ?? 'handshake') });
        this.d.logger.debug({ listener: this.name, remote: s.remoteAddress, code: err.code, err: err.message }, 'TLS handshake failed');
        s.destroy();
      });
      this.server = server;
    } else {
      this.server = net.createServer((s) => this.onPlain(s));
    }
    const server = this.server;
    server.on('connection', (s: net.Socket) => this.track(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.listener.address.host, port: this.listener.address.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return this.address()!;
  }

  private tlsOptions(m: TlsMaterialView): tls.SecureContextOptions {
    this.localTrustDomain = trustDomainOf(m.spiffeId);
    return { cert: m.certChainPem, key: m.keyPem, ca: m.caPem, minVersion: 'TLSv1.2' };
  }

  private track(s: net.Socket): void {
    this.sockets.add(s);
    this.connGauge.inc();
    this.connTotal.inc();
    s.setNoDelay(true);
    s.once('close', () => {
      this.sockets.delete(s);
      this.connGauge.dec();
    });
    s.on('error', () => {
      /* resets are normal at connection level; requests account for their own failures */
    });
  }

  private refuse(s: tls.TLSSocket, reason: string, detail: string): void {
    this.d.metrics.tlsHandshakeFailures.inc({ listener: this.name, reason });
    this.d.logger.warn({ listener: this.name, remote: `${s.remoteAddress}:${s.remotePort}`, reason, detail }, 'downstream peer refused');
    s.destroy();
  }

  /** mTLS admission: chain, validity, then the X509-SVID rules and SAN matchers. Nothing is read before this passes. */
  private onSecure(s: tls.TLSSocket): void {
    const chain = this.listener.filterChain.tls!;
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
    const info: ConnInfo = { remoteIp: s.remoteAddress ?? '', remotePort: s.remotePort ?? 0, tls: true, peer, sni: (s as tls.TLSSocket & { servername?: string }).servername || undefined };
    (s as TrackedSocket)[kConn] = info;
    const codec = this.listener.filterChain.hcm.codecType;
    if (s.alpnProtocol === 'h2' && codec !== 'HTTP1') this.toH2(s);
    else this.h1.emit('connection', s);
  }

  /** Plaintext: HTTP/1.x or h2c with prior knowledge, told apart by the first bytes (codec_type AUTO). */
  private onPlain(s: net.Socket): void {
    (s as TrackedSocket)[kConn] = this.plainConn(s);
    const codec = this.listener.filterChain.hcm.codecType;
    if (codec === 'HTTP1') return void this.h1.emit('connection', s);
    if (codec === 'HTTP2') return this.toH2(s);
    s.once('data', (chunk: Buffer) => {
      s.pause();
      s.unshift(chunk);
      const n = Math.min(chunk.length, H2_PREFACE.length);
      if (chunk.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) {
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
    });
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
    const conn = (socket as TrackedSocket)[kConn] ?? this.plainConn(socket);
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

  /** Stop accepting; GOAWAY on HTTP/2; HTTP/1.1 connections close after their current response. */
  drain(): void {
    this.draining = true;
    this.server?.close();
    for (const s of this.sessions) s.close();
    for (const s of this.sockets) if (!s[kInflight] && !s[kH2]) s.destroySoon();
  }

  whenIdle(): Promise<void> {
    return this.hcm.whenIdle();
  }

  close(): void {
    this.draining = true;
    this.server?.close();
    for (const s of this.sessions) s.destroy();
    for (const s of this.sockets) s.destroy();
  }
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
