// A bare two-hop proxy in plain Node, the same job as the sidecars with none of their features (no config,
// routing table, SVID checks, metrics, logs, timeouts, retries). It is not a product: it measures what Node
// itself costs for this job on this machine, so Outrigger's numbers can be read against Node's floor as
// well as against HAProxy.
//   node node-floor-hop.mjs a LISTEN_PORT HOP_B_PORT CERT KEY CA SERVERNAME
//   node node-floor-hop.mjs b LISTEN_PORT BACKEND_H1_PORT GRPC_PORT GRPC_PREFIX CERT KEY CA
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { Pool } from 'undici';

const [role, ...a] = process.argv.slice(2);
// A clean exit on Ctrl-C, so `node --cpu-prof` writes its profile.
process.on('SIGINT', () => process.exit(0));
// `te: trailers` is the one TE value HTTP/2 allows, and gRPC needs it end to end.
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'host', 'proxy-connection']);

/** HTTP/2 response from `up` to an h2 server stream, trailers included (gRPC). */
function pipeH2Response(up, down) {
  up.on('response', (h) => {
    const out = {};
    for (const k in h) if (!HOP.has(k)) out[k] = h[k];
    down.respond(out, { waitForTrailers: true });
    let trailers = {};
    up.on('trailers', (t) => (trailers = t));
    down.once('wantTrailers', () => down.sendTrailers(trailers));
    up.pipe(down);
  });
  up.on('error', () => down.destroy());
  down.on('close', () => up.destroy());
}

function reconnecting(connect) {
  let s;
  return () => {
    if (!s || s.closed || s.destroyed) {
      s = connect();
      s.on('error', () => {});
    }
    return s;
  };
}

if (role === 'a') {
  const [port, hopB, cert, key, ca, servername] = a;
  const session = reconnecting(() => http2.connect(`https://127.0.0.1:${hopB}`, { cert: readFileSync(cert), key: readFileSync(key), ca: readFileSync(ca), servername, ALPNProtocols: ['h2'] }));
  const h2 = http2.createServer();
  h2.on('stream', (down, h, flags) => {
    const out = {};
    for (const k in h) if (!HOP.has(k)) out[k] = h[k];
    const end = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    const up = session().request(out, { endStream: end });
    if (!end) down.pipe(up);
    pipeH2Response(up, down);
  });
  const h1 = http.createServer((req, res) => {
    const out = { ':method': req.method, ':path': req.url, ':authority': req.headers.host };
    for (const k in req.headers) if (!HOP.has(k)) out[k] = req.headers[k];
    const up = session().request(out, { endStream: req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined });
    req.pipe(up);
    up.on('response', (rh) => {
      const o = {};
      for (const k in rh) if (k[0] !== ':') o[k] = rh[k];
      res.writeHead(rh[':status'], o);
      up.pipe(res);
    });
    up.on('error', () => res.destroy());
  });
  // h1 and h2c on one port, as the sidecar's outbound listener: peek at the first bytes for the h2 preface.
  net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.once('data', (first) => {
      sock.pause();
      sock.unshift(first);
      const isH2 = first.toString('latin1', 0, 3) === 'PRI';
      // As in the sidecar's listener: data already read through the JS stream must be parsed from it, so
      // Node's HTTP/1 parser may not take the native handle over.
      if (!isH2 && sock._handle) sock._handle._consumed = true;
      (isH2 ? h2 : h1).emit('connection', sock);
      // The HTTP/2 session takes the buffered bytes itself; resuming would spill them as 'data'.
      if (!isH2) sock.resume();
    });
  }).listen(Number(port), '127.0.0.1');
} else {
  const [port, backendH1, grpcPort, grpcPrefix, cert, key, ca] = a;
  const pool = new Pool(`http://127.0.0.1:${backendH1}`, { connections: 64 });
  const grpc = reconnecting(() => http2.connect(`http://127.0.0.1:${grpcPort}`));
  // ALPN picks the codec, as the sidecar's inbound listener does: h2 for the peer hop, HTTP/1.1 for the
  // harness's mTLS check. (An http2 secure server with allowHTTP1 would need a 'request' listener, which
  // turns on Node's compatibility layer for every HTTP/2 stream too.)
  const srv = http2.createServer();
  const h1 = http.createServer((req, res) => {
    const headers = {};
    for (const k in req.headers) if (!HOP.has(k) || k === 'host') headers[k] = req.headers[k];
    pool.request({ path: req.url, method: req.method, headers }).then((r) => {
      res.writeHead(r.statusCode, { 'content-type': r.headers['content-type'] ?? 'text/plain' });
      r.body.pipe(res);
    }, () => res.destroy());
  });
  tls
    .createServer({ cert: readFileSync(cert), key: readFileSync(key), ca: readFileSync(ca), requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2', 'http/1.1'] }, (sock) => {
      (sock.alpnProtocol === 'h2' ? srv : h1).emit('connection', sock);
    })
    .listen(Number(port), '127.0.0.1');
  srv.on('stream', (down, h, flags) => {
    const end = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    if (h[':path'].startsWith(grpcPrefix)) {
      const out = {};
      for (const k in h) if (!HOP.has(k)) out[k] = h[k];
      const up = grpc().request(out, { endStream: end });
      if (!end) down.pipe(up);
      return pipeH2Response(up, down);
    }
    const headers = { host: h[':authority'] };
    for (const k in h) if (k[0] !== ':' && !HOP.has(k)) headers[k] = h[k];
    pool.dispatch({ path: h[':path'], method: h[':method'], headers, body: end ? null : down }, {
      onRequestStart() {},
      onResponseStart(_c, status, rh) {
        const o = { ':status': status };
        for (const k in rh) if (!HOP.has(k)) o[k] = rh[k];
        down.respond(o);
      },
      onResponseData(c, chunk) {
        if (!down.write(chunk)) {
          c.pause();
          down.once('drain', () => c.resume());
        }
      },
      onResponseEnd() {
        down.end();
      },
      onResponseError() {
        down.destroy();
      },
    });
  });
}
