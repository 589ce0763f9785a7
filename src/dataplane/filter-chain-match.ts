// Which filter chain serves a connection: Envoy's FilterChainMatch order, and tls_inspector's peek at the first bytes.
import type net from 'node:net';
import type { Clock } from '../core/clock.js';
import type { FilterChain } from '../model/types.js';

/** What the listener knows of a connection when it picks a chain. */
export interface ConnectionFacts {
  readonly destinationPort: number;
  /** `tls` when tls_inspector saw a ClientHello; `raw_buffer` otherwise (Envoy's default). */
  readonly transportProtocol: 'tls' | 'raw_buffer';
  /** ALPN values of the ClientHello, in the client's order. */
  readonly alpn: readonly string[];
}

/**
 * Envoy's selection (FilterChainMatch docs): criteria in order (destination port, transport protocol,
 * application protocols); at each, the chains with a specific value equal to the connection's win, else those
 * that leave it unset; there is no backtracking, so a connection that passes the port step and then fails the
 * transport step matches nothing. Returns the index into `chains`, or -1 (the default chain, if any, serves).
 */
export function selectFilterChain(chains: readonly FilterChain[], c: ConnectionFacts): number {
  let cand = chains.map((_, i) => i);
  const step = (specific: (i: number) => boolean, unset: (i: number) => boolean) => {
    const hit = cand.filter(specific);
    cand = hit.length ? hit : cand.filter(unset);
  };
  const m = (i: number) => chains[i]!.match;
  step(
    (i) => m(i)?.destinationPort === c.destinationPort,
    (i) => m(i)?.destinationPort === undefined,
  );
  step(
    (i) => m(i)?.transportProtocol === c.transportProtocol,
    (i) => m(i)?.transportProtocol === undefined,
  );
  step(
    (i) => (m(i)?.applicationProtocols ?? []).some((p) => c.alpn.includes(p)),
    (i) => (m(i)?.applicationProtocols.length ?? 0) === 0,
  );
  return cand[0] ?? -1;
}

/** Whether picking among `chains` needs tls_inspector's facts at all (else no byte is read before the chain is chosen). */
export function needsInspection(chains: readonly FilterChain[]): { readonly transport: boolean; readonly alpn: boolean } {
  return {
    transport: chains.some((c) => c.match?.transportProtocol !== undefined),
    alpn: chains.some((c) => (c.match?.applicationProtocols.length ?? 0) > 0),
  };
}

/** A TLS record header of a handshake (content type 22) of SSL 3.0 .. TLS 1.3 (RFC 8446 §5.1: legacy versions 0x0300-0x0304). */
const HANDSHAKE = 0x16;
/** TLSPlaintext.length is at most 2^14 (RFC 8446 §5.1): the most we ever buffer before choosing. */
const MAX_RECORD = 16384;
const RECORD_HEADER = 5;

export type PeekResult = { readonly kind: 'done'; readonly head: Buffer; readonly tls: boolean; readonly alpn: readonly string[] } | { readonly kind: 'timeout'; readonly head: Buffer } | { readonly kind: 'closed' };

/**
 * tls_inspector: reads the first bytes of `s` until it knows whether they start a TLS ClientHello (and, when
 * `wantAlpn`, until the whole first record is in, for its ALPN extension), at most one TLS record, within
 * `timeoutMs` (listener_filters_timeout; 0 = no limit, as in Envoy). The bytes read are returned, not consumed:
 * the caller puts them back. A peer that sends nothing is reported at the timeout, one that closes as `closed`.
 */
export function peekTransport(s: net.Socket, o: { readonly clock: Clock; readonly timeoutMs: number; readonly wantAlpn: boolean }): Promise<PeekResult> {
  return new Promise<PeekResult>((resolve) => {
    const chunks: Buffer[] = [];
    const timer = o.timeoutMs > 0 ? o.clock.setTimeout(() => finish({ kind: 'timeout', head: Buffer.concat(chunks) }), o.timeoutMs) : undefined;
    const finish = (r: PeekResult) => {
      if (timer) o.clock.clearTimeout(timer);
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('close', onEnd);
      s.pause();
      resolve(r);
    };
    const onEnd = () => finish({ kind: 'closed' });
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      const head = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      const v = verdict(head, o.wantAlpn);
      if (v) finish({ kind: 'done', head, ...v });
    };
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('close', onEnd);
  });
}

/** tls_inspector's decision on the bytes so far, or undefined while more are needed (exported for tests). */
export function verdict(b: Buffer, wantAlpn: boolean): { tls: boolean; alpn: readonly string[] } | undefined {
  const raw = { tls: false, alpn: [] };
  if (b[0] !== HANDSHAKE) return raw;
  if (b.length < 3) return undefined;
  if (b[1] !== 0x03 || b[2]! > 0x04) return raw;
  if (!wantAlpn) return { tls: true, alpn: [] };
  if (b.length < RECORD_HEADER) return undefined;
  const len = b.readUInt16BE(3);
  // A record longer than TLS allows is not ours to parse: TLS it is, and the handshake will refuse it.
  if (len > MAX_RECORD) return { tls: true, alpn: [] };
  if (b.length < RECORD_HEADER + len) return undefined;
  return { tls: true, alpn: clientHelloAlpn(b.subarray(RECORD_HEADER, RECORD_HEADER + len)) };
}

/**
 * The ALPN protocol names of a ClientHello handshake message (RFC 8446 §4.1.2, RFC 7301 §3.1); [] when it has
 * none, or it is cut short or malformed (the handshake itself will then fail, and say why).
 */
export function clientHelloAlpn(h: Buffer): string[] {
  try {
    let p = 0;
    if (h[p] !== 1) return []; // msg_type client_hello
    p += 4; // type + uint24 length
    p += 2 + 32; // legacy_version, random
    p += 1 + h[p]!; // legacy_session_id
    p += 2 + h.readUInt16BE(p); // cipher_suites
    p += 1 + h[p]!; // legacy_compression_methods
    const end = Math.min(h.length, p + 2 + h.readUInt16BE(p));
    p += 2;
    while (p + 4 <= end) {
      const type = h.readUInt16BE(p);
      const len = h.readUInt16BE(p + 2);
      p += 4;
      if (type === 16) {
        const out: string[] = [];
        let q = p + 2;
        const stop = Math.min(end, p + 2 + h.readUInt16BE(p));
        while (q < stop) {
          const n = h[q]!;
          out.push(h.toString('latin1', q + 1, q + 1 + n));
          q += 1 + n;
        }
        return out;
      }
      p += len;
    }
  } catch {
    // RangeError from a length pointing past the end: a truncated or malformed hello.
  }
  return [];
}

/** The first bytes of an HTTP/1.x request line (a method token and a space), not the HTTP/2 preface. */
export function looksLikeHttp1(head: Buffer): boolean {
  const text = head.toString('latin1', 0, Math.min(head.length, 24));
  return /^[A-Z]{3,16} /.test(text) && !text.startsWith('PRI * HTTP/2.0');
}
