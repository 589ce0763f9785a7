// The connection-pool interface every upstream protocol implements (HTTP/2 sessions, HTTP/1.1 keep-alive).
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Duplex, Readable, Writable } from 'node:stream';
import type { UpstreamError } from './errors.js';

export interface UpstreamRequest {
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  readonly scheme: 'http' | 'https';
  /** End-to-end headers only; no pseudo-headers, no Host. */
  readonly headers: OutgoingHttpHeaders;
  /** True when the request has no body. */
  readonly endStream: boolean;
  /**
   * True once the downstream caller has gone away. A caller that resets its stream while the pool is still
   * connecting (an HTTP/2 rapid-reset flood does exactly this) must not cost an upstream request: the pools
   * ask just before sending. (A plain callback: an AbortController per request measured ~4 % of a hop.)
   */
  readonly cancelled?: () => boolean;
}

export interface UpstreamHandlers {
  onResponse(status: number, headers: IncomingHttpHeaders, body: Readable, endStream: boolean): void;
  onTrailers(trailers: IncomingHttpHeaders): void;
  /** After open() resolved: the stream failed. `responseStarted` tells whether onResponse already ran. */
  onError(err: UpstreamError, responseStarted: boolean): void;
}

export interface UpstreamStream {
  /** Where the request body goes; null when endStream was set. */
  readonly sink: Writable | null;
  /** The upstream peer's SPIFFE ID when the hop is mTLS. */
  readonly peerUri: string | undefined;
  abort(): void;
}

/** The outcome of an upgrade (WebSocket) attempt: a raw tunnel, or the upstream's refusal as a normal response. */
export type UpgradeResult =
  | { readonly ok: true; readonly headers: IncomingHttpHeaders; readonly tunnel: Duplex; readonly head: Buffer; readonly peerUri: string | undefined }
  | { readonly ok: false; readonly status: number; readonly headers: IncomingHttpHeaders; readonly body: Readable };

export interface PoolStats {
  readonly connections: number;
  readonly activeStreams: number;
  readonly connectFailures: number;
}

export interface UpstreamPool {
  /** Resolves once a connection is ready and the stream is open; rejects with UpstreamError on connect failure. */
  open(req: UpstreamRequest, handlers: UpstreamHandlers): Promise<UpstreamStream>;
  /**
   * Opens a WebSocket tunnel: RFC 8441 extended CONNECT on HTTP/2, an RFC 6455 Upgrade on HTTP/1.1.
   * Rejects with UpstreamError when no connection could be made.
   */
  upgrade(req: UpstreamRequest): Promise<UpgradeResult>;
  stats(): PoolStats;
  /** Graceful: no new streams; existing ones finish. */
  close(): void;
  destroy(): void;
}
