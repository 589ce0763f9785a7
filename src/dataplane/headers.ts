// Header rules applied between hops: hop-by-hop removal, x-forwarded-*, x-request-id and XFCC (Envoy semantics).
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { ForwardClientCertDetails, SetCurrentClientCertDetails } from '../model/types.js';

/**
 * RFC 9110 §7.6.1 connection-specific fields, plus the ones HTTP/2 forbids (RFC 9113 §8.2.2). Envoy strips
 * the same set; `te` survives only as "trailers" (gRPC needs it).
 */
// host, xfcc and expect are not hop-by-hop, but each is rebuilt by the proxy (authority, XFCC rules, local 100-continue).
const NOT_COPIED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'http2-settings',
  'host',
  'x-forwarded-client-cert',
  'expect',
]);

/** What a downstream connection knows about its peer, fixed at handshake time. */
export interface PeerInfo {
  readonly uri?: string;
  readonly subject?: string;
  readonly dns?: readonly string[];
  /** Hex SHA-256 of the DER certificate (XFCC Hash). */
  readonly hash?: string;
  readonly certPem?: string;
}

export interface ForwardingContext {
  readonly remoteIp: string;
  readonly tls: boolean;
  readonly peer?: PeerInfo;
  /** Our own SPIFFE ID on this listener (XFCC By). */
  readonly localUri?: string;
  readonly fcc: ForwardClientCertDetails;
  readonly setCurrent: SetCurrentClientCertDetails;
  readonly appendXff: boolean;
}

/** XFCC element for the current peer, in Envoy's order: By, Hash, Cert, Chain, Subject, URI, DNS. */
function currentXfccElement(ctx: ForwardingContext): string | undefined {
  const p = ctx.peer;
  if (!p) return undefined;
  const parts: string[] = [];
  if (ctx.localUri) parts.push(`By=${ctx.localUri}`);
  if (p.hash) parts.push(`Hash=${p.hash}`);
  if (ctx.setCurrent.cert && p.certPem) parts.push(`Cert="${encodeURIComponent(p.certPem)}"`);
  if (ctx.setCurrent.subject && p.subject !== undefined) parts.push(`Subject="${p.subject.replace(/"/g, '\\"')}"`);
  if (ctx.setCurrent.uri && p.uri) parts.push(`URI=${p.uri}`);
  if (ctx.setCurrent.dns && p.dns) for (const d of p.dns) parts.push(`DNS=${d}`);
  return parts.join(';');
}

/** Envoy's forward_client_cert_details state machine (HttpConnectionManager.ForwardClientCertDetails). */
export function xfccFor(incoming: string | string[] | undefined, ctx: ForwardingContext): string | undefined {
  const prior = Array.isArray(incoming) ? incoming.join(',') : incoming;
  switch (ctx.fcc) {
    case 'SANITIZE':
      return undefined;
    case 'ALWAYS_FORWARD_ONLY':
      return prior;
    case 'FORWARD_ONLY':
      return ctx.tls && ctx.peer ? prior : undefined;
    case 'APPEND_FORWARD': {
      if (!ctx.tls || !ctx.peer) return undefined;
      const cur = currentXfccElement(ctx);
      return prior ? `${prior},${cur}` : cur;
    }
    case 'SANITIZE_SET':
      return ctx.tls && ctx.peer ? currentXfccElement(ctx) : undefined;
  }
}

/** Names listed in Connection are hop-by-hop for this message only (RFC 9110 §7.6.1). */
function connectionNominated(conn: string | string[] | undefined): Set<string> | undefined {
  if (conn === undefined) return undefined;
  const s = new Set<string>();
  for (const v of Array.isArray(conn) ? conn : [conn]) for (const t of v.split(',')) s.add(t.trim().toLowerCase());
  return s;
}

/**
 * Copies end-to-end request headers into `out` (an object that may already hold pseudo-headers),
 * then applies x-forwarded-for/-proto, x-request-id and XFCC. Returns the request id.
 */
export function forwardRequestHeaders(
  inHeaders: IncomingHttpHeaders,
  out: OutgoingHttpHeaders,
  ctx: ForwardingContext,
  requestId: string,
): void {
  const nominated = connectionNominated(inHeaders.connection);
  for (const name in inHeaders) {
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    if (NOT_COPIED.has(name) || nominated?.has(name)) continue;
    out[name] = inHeaders[name];
  }
  if (inHeaders.te !== undefined && String(inHeaders.te).toLowerCase().includes('trailers')) out.te = 'trailers';
  if (ctx.appendXff) {
    const prior = inHeaders['x-forwarded-for'];
    out['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${ctx.remoteIp}` : ctx.remoteIp;
  }
  out['x-forwarded-proto'] = ctx.tls ? 'https' : 'http';
  out['x-request-id'] = requestId;
  const xfcc = xfccFor(inHeaders['x-forwarded-client-cert'], ctx);
  if (xfcc !== undefined) out['x-forwarded-client-cert'] = xfcc;
}

/** Response headers the next hop must not see: connection-specific ones and pseudo-headers. */
export function forwardResponseHeaders(inHeaders: IncomingHttpHeaders, out: OutgoingHttpHeaders): void {
  const nominated = connectionNominated(inHeaders.connection);
  for (const name in inHeaders) {
    if (name.charCodeAt(0) === 58) continue;
    if (NOT_COPIED.has(name) || nominated?.has(name)) continue;
    out[name] = inHeaders[name];
  }
}

/** Trailers pass through minus pseudo-headers and connection-specific fields. */
export function forwardTrailers(t: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in t) {
    if (name.charCodeAt(0) === 58 || NOT_COPIED.has(name)) continue;
    out[name] = t[name];
  }
  return out;
}

/** A header's first value (node gives repeated request headers as an array). */
export function firstValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** One cookie's value from a Cookie header (RFC 6265 §5.4: `name=value` pairs separated by `;`), the first one of that name. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
