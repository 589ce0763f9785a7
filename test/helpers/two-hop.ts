// The standard end-to-end fixture: echo app ← sidecar B (inbound mTLS) ← sidecar A (outbound) ← test client.
import http from 'node:http';
import http2 from 'node:http2';
import { makePki, type Pki } from './pki.js';
import { startEchoApp, type EchoApp } from './apps.js';
import {
  FRONTEND_ID,
  REVIEWS_ID,
  inboundBootstrap,
  outboundBootstrap,
  runSidecar,
  tempDir,
  writeCertFiles,
  type CertFiles,
  type OutboundOpts,
  type StartedSidecar,
} from './mesh.js';

export interface TwoHop {
  pki: Pki;
  app: EchoApp;
  a: StartedSidecar;
  b: StartedSidecar;
  dir: string;
  files: { frontend: CertFiles; reviews: CertFiles };
  /** Port of A's outbound listener, where the test plays the frontend app. */
  outPort: number;
  inPort: number;
  close(): Promise<void>;
}

export interface TwoHopOptions {
  appProtocol?: 'HTTP1' | 'HTTP2';
  outbound?: Partial<OutboundOpts>;
  drainMs?: number;
}

export async function startTwoHop(o: TwoHopOptions = {}): Promise<TwoHop> {
  const pki = await makePki();
  const tmp = tempDir();
  const fe = await pki.issue(FRONTEND_ID);
  const rv = await pki.issue(REVIEWS_ID);
  const files = {
    frontend: writeCertFiles(tmp.dir, 'frontend', { chainPem: fe.chainPem, keyPem: fe.keyPem, rootPem: pki.rootPem }),
    reviews: writeCertFiles(tmp.dir, 'reviews', { chainPem: rv.chainPem, keyPem: rv.keyPem, rootPem: pki.rootPem }),
  };
  const app = await startEchoApp('reviews-app', { h2c: o.appProtocol === 'HTTP2' });
  const b = await runSidecar(inboundBootstrap({ appPort: app.port, appProtocol: o.appProtocol, files: files.reviews }), { drainMs: o.drainMs });
  const inPort = b.port('inbound');
  const a = await runSidecar(outboundBootstrap({ peerPort: inPort, files: files.frontend, ...o.outbound }), { drainMs: o.drainMs });
  return {
    pki,
    app,
    a,
    b,
    dir: tmp.dir,
    files,
    outPort: a.port('outbound'),
    inPort,
    async close() {
      await a.shutdown();
      await b.shutdown();
      await app.close();
      tmp.cleanup();
    },
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request to a local port with a given Host, body optional. */
export function request(port: number, opts: { host?: string; path?: string; method?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer; agent?: http.Agent | false } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? (opts.body ? 'POST' : 'GET'),
        path: opts.path ?? '/echo',
        headers: { host: opts.host ?? 'reviews', ...opts.headers },
        agent: opts.agent ?? false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** One h2c (prior knowledge) request. */
export function h2request(port: number, headers: http2.OutgoingHttpHeaders, body?: string): Promise<Reply & { trailers: http2.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    s.on('error', reject);
    const r = s.request({ ':authority': 'reviews', ':path': '/echo', ...headers }, { endStream: body === undefined });
    let status = 0;
    let h: http.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    let out = '';
    r.setEncoding('utf8');
    r.on('response', (rh) => {
      status = Number(rh[':status']);
      h = rh as http.IncomingHttpHeaders;
    });
    r.on('trailers', (t) => (trailers = t));
    r.on('data', (c: string) => (out += c));
    r.on('end', () => {
      s.close();
      resolve({ status, headers: h, body: out, trailers });
    });
    r.on('error', reject);
    if (body !== undefined) r.end(body);
  });
}

/** Reads one Prometheus sample from a sidecar's registry. */
export async function metricValue(s: StartedSidecar, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await s.registry.getSingleMetric(name)?.get();
  let total = 0;
  for (const v of m?.values ?? []) {
    const l = v.labels as Record<string, string | number>;
    if (Object.entries(labels).every(([k, x]) => String(l[k]) === x) && !('le' in l)) total += v.value;
  }
  return total;
}
