// Workloads for tests: an HTTP/1.1 + h2c echo app and a gRPC echo server, on 127.0.0.1 port 0.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { startEchoGrpc, type GrpcEcho } from '../../src/cli/demo-apps.js';

export { startEchoGrpc, type GrpcEcho };

export interface EchoApp {
  port: number;
  /** Every request the app saw, in order (headers as received). */
  seen: { method: string; path: string; headers: http.IncomingHttpHeaders }[];
  /** Connections accepted so far (a pool that reconnects shows up here). */
  readonly connections: number;
  close(): Promise<void>;
}

/**
 * Routes: /echo → JSON of what arrived; /bytes?n=N → N bytes; /sink → sha256 and length of the body;
 * /mirror → streams the body back; /status/N → that status; /slow?ms=N → waits then answers; /hang → never answers.
 */
function handle(req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse, seen: EchoApp['seen'], name: string): void {
  const url = new URL(req.url ?? '/', 'http://x');
  seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers as http.IncomingHttpHeaders });
  const json = (status: number, o: unknown) => {
    const b = JSON.stringify(o);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b), 'x-served-by': name });
    res.end(b);
  };
  const p = url.pathname;
  if (p === '/bytes') {
    const n = Number(url.searchParams.get('n') ?? '1024');
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-served-by': name });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let left = n;
    const pump = () => {
      while (left > 0) {
        const c = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= c.length;
        if (!(res as http.ServerResponse).write(c)) return void (res as http.ServerResponse).once('drain', pump);
      }
      res.end();
    };
    return pump();
  }
  if (p === '/sink') {
    const h = createHash('sha256');
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      h.update(c);
    });
    req.on('end', () => json(200, { bytes: n, sha256: h.digest('hex') }));
    return;
  }
  if (p === '/mirror') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-served-by': name });
    (req as http.IncomingMessage).pipe(res as http.ServerResponse);
    return;
  }
  if (p.startsWith('/status/')) return json(Number(p.slice(8)), { status: Number(p.slice(8)) });
  if (p === '/slow') {
    const ms = Number(url.searchParams.get('ms') ?? '100');
    setTimeout(() => json(200, { slept: ms }), ms);
    return;
  }
  if (p === '/hang') return;
  let bodyBytes = 0;
  req.on('data', (c: Buffer) => (bodyBytes += c.length));
  req.on('end', () =>
    json(200, { app: name, method: req.method, path: req.url, headers: req.headers, bodyBytes, httpVersion: req.httpVersion }),
  );
}

export async function startEchoApp(name = 'echo', opts: { h2c?: boolean } = {}): Promise<EchoApp> {
  const seen: EchoApp['seen'] = [];
  const h1 = http.createServer((req, res) => handle(req, res, seen, name));
  const h2 = http2.createServer((req, res) => handle(req, res, seen, name));
  // WebSocket upgrade: a minimal RFC 6455 handshake, then echo raw bytes (enough to prove the tunnel).
  h1.on('upgrade', (req, socket, head) => {
    seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
    const key = String(req.headers['sec-websocket-key'] ?? '');
    const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`);
    if (head.length) socket.write(head);
    socket.pipe(socket);
  });
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.once('data', (c) => {
      s.pause();
      s.unshift(c);
      if (opts.h2c && c.subarray(0, 3).toString() === 'PRI') h2.emit('connection', s);
      else {
        h1.emit('connection', s);
        s.resume();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      }),
  };
}
