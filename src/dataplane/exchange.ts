// One request's journey through a listener: the downstream sink (HTTP/1.1 or HTTP/2), and what the access log records.
import http2 from 'node:http2';
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Writable } from 'node:stream';
import type { PeerInfo } from './headers.js';
import type { ResponseFlag } from './local-reply.js';

/** Facts about the downstream connection, fixed when it was accepted. */
export interface ConnInfo {
  readonly remoteIp: string;
  readonly remotePort: number;
  readonly tls: boolean;
  readonly peer?: PeerInfo;
  readonly sni?: string;
  /** The address the connection was accepted on (RBAC's destination_ip; destination_port when no inbound cluster names the port). */
  readonly localIp?: string;
  readonly localPort?: number;
}

/** Where the response goes: the same small surface for an HTTP/1.1 response and an HTTP/2 stream. */
export interface DownstreamSink {
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  respond(status: number, headers: OutgoingHttpHeaders, endStream: boolean, expectTrailers: boolean): void;
  readonly body: Writable;
  /** Trailers to send when the body ends (dropped by HTTP/1.1 unless chunked). */
  setTrailers(t: OutgoingHttpHeaders): void;
  /** Abort the response mid-way: RST_STREAM on HTTP/2, connection close on HTTP/1.1. */
  reset(): void;
}

export class H1Sink implements DownstreamSink {
  constructor(private readonly res: ServerResponse) {}

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  get destroyed(): boolean {
    return this.res.destroyed;
  }

  get body(): Writable {
    return this.res;
  }

  respond(status: number, headers: OutgoingHttpHeaders, endStream: boolean): void {
    this.res.writeHead(status, headers);
    if (endStream) this.res.end();
  }

  setTrailers(t: OutgoingHttpHeaders): void {
    if (this.res.chunkedEncoding) this.res.addTrailers(t as Record<string, string>);
  }

  reset(): void {
    this.res.destroy();
  }
}

const EMPTY: OutgoingHttpHeaders = {};

export class H2Sink implements DownstreamSink {
  private trailers: OutgoingHttpHeaders | undefined;

  constructor(private readonly stream: http2.ServerHttp2Stream) {}

  get headersSent(): boolean {
    return this.stream.headersSent;
  }

  get destroyed(): boolean {
    return this.stream.destroyed || this.stream.closed;
  }

  get body(): Writable {
    return this.stream;
  }

  respond(status: number, headers: OutgoingHttpHeaders, endStream: boolean, expectTrailers: boolean): void {
    if (this.destroyed) return;
    headers[':status'] = status;
    const waitForTrailers = expectTrailers && !endStream;
    this.stream.respond(headers, { endStream, waitForTrailers });
    if (waitForTrailers) {
      // With waitForTrailers the stream stays open after the last DATA frame until trailers are sent;
      // an empty trailer block still ends the stream cleanly (RFC 9113 §8.1).
      this.stream.once('wantTrailers', () => this.stream.sendTrailers(this.trailers ?? EMPTY));
    }
  }

  setTrailers(t: OutgoingHttpHeaders): void {
    this.trailers = t;
  }

  reset(): void {
    if (!this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  }
}

/** Per-request state that ends up in the access log and metrics. */
export class RequestRecord {
  status = 0;
  flag: ResponseFlag = '-';
  details = 'via_upstream';
  bytesIn = 0;
  bytesOut = 0;
  upstreamHost: string | null = null;
  /** The chosen host's locality, "region/zone/subzone" as Istio writes it. */
  upstreamLocality: string | null = null;
  upstreamCluster: string | null = null;
  upstreamPeer: string | null = null;
  upstreamFailure: string | null = null;
  upstreamStartMs = 0;
  upstreamServiceMs: number | null = null;
  routeName: string | null = null;
  virtualHost: string | null = null;
  grpcStatus = '';
  /** The matched route's response header edits (route-level, then the picked cluster's): the router's local replies get them too. */
  responseHeaders: ((h: OutgoingHttpHeaders) => void) | undefined = undefined;
  /**
   * Envoy's dynamic metadata: what a filter learned about this request, by filter namespace (jwt_authn's verified
   * payload under `envoy.filters.http.jwt_authn`, keyed by its payload_in_metadata name), read by later filters
   * (rbac's metadata matchers). Undefined until a filter writes: most requests never allocate it.
   */
  dynamicMetadata: Record<string, Record<string, unknown>> | undefined = undefined;
  done = false;

  constructor(
    readonly startWall: number,
    readonly startMono: number,
    readonly requestId: string,
    readonly method: string,
    readonly authority: string,
    readonly path: string,
    readonly protocol: string,
    readonly headers: IncomingHttpHeaders,
    readonly grpc: boolean,
    readonly conn: ConnInfo,
  ) {}
}
