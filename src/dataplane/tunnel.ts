// The downstream end of a WebSocket tunnel, in its two shapes: an HTTP/1.1 socket after Upgrade, or an HTTP/2 extended-CONNECT stream.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type http2 from 'node:http2';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { H2Sink } from './exchange.js';
import type { RenderedReply } from './local-reply.js';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Headers of the upstream's handshake answer that the caller's WebSocket client needs (RFC 6455 §4.2.2). */
const WS_RESPONSE_HEADERS = ['sec-websocket-protocol', 'sec-websocket-extensions'];

export interface TunnelEnd {
  readonly duplex: Duplex;
  /** The tunnel is open: answer the caller (101 or 200) and return the status logged. */
  accept(upstreamHeaders: IncomingHttpHeaders): number;
  /** The upstream said no with a normal response: pass it on. */
  forwardRefusal(status: number, headers: IncomingHttpHeaders, body: Readable): void;
  /** We said no: a local reply. */
  refuse(r: RenderedReply): void;
}

export class H1TunnelEnd implements TunnelEnd {
  constructor(
    readonly duplex: Duplex,
    private readonly reqHeaders: IncomingHttpHeaders,
  ) {}

  accept(up: IncomingHttpHeaders): number {
    // Over HTTP/2 the far side sends no accept key (RFC 8441 §5); derive it from the caller's key.
    const accept = (up['sec-websocket-accept'] as string | undefined) ?? createHash('sha1').update(`${this.reqHeaders['sec-websocket-key'] ?? ''}${WS_GUID}`).digest('base64');
    let head = `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n`;
    for (const h of WS_RESPONSE_HEADERS) if (up[h] !== undefined) head += `${h}: ${String(up[h])}\r\n`;
    this.duplex.write(`${head}\r\n`);
    return 101;
  }

  forwardRefusal(status: number, headers: IncomingHttpHeaders, body: Readable): void {
    const chunks: Buffer[] = [];
    body.on('data', (c: Buffer) => chunks.push(c));
    body.once('end', () => this.writeAndClose(status, headers['content-type'] as string | undefined, Buffer.concat(chunks)));
  }

  refuse(r: RenderedReply): void {
    this.writeAndClose(r.status, r.headers['content-type'], Buffer.from(r.body), r.headers['x-request-id']);
  }

  private writeAndClose(status: number, type: string | undefined, body: Buffer, requestId?: string): void {
    const reason = http.STATUS_CODES[status] ?? 'Unknown';
    let head = `HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-length: ${body.length}\r\n`;
    if (type) head += `content-type: ${type}\r\n`;
    if (requestId) head += `x-request-id: ${requestId}\r\n`;
    this.duplex.end(Buffer.concat([Buffer.from(`${head}\r\n`), body]));
  }
}

export class H2TunnelEnd implements TunnelEnd {
  constructor(
    readonly duplex: http2.ServerHttp2Stream,
    private readonly sink: H2Sink,
  ) {}

  accept(up: IncomingHttpHeaders): number {
    const out: OutgoingHttpHeaders = {};
    for (const h of WS_RESPONSE_HEADERS) if (up[h] !== undefined) out[h] = up[h];
    this.sink.respond(200, out, false, false);
    return 200;
  }

  forwardRefusal(status: number, headers: IncomingHttpHeaders, body: Readable): void {
    const out: OutgoingHttpHeaders = {};
    if (headers['content-type']) out['content-type'] = headers['content-type'];
    this.sink.respond(status, out, false, false);
    body.pipe(this.duplex);
  }

  refuse(r: RenderedReply): void {
    this.sink.respond(r.status, { ...r.headers }, false, false);
    this.duplex.end(r.body);
  }
}
