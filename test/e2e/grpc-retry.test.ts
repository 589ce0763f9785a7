// gRPC through two real sidecars (plaintext h2c in, mTLS HTTP/2 between them, h2c to the app) with real
// @grpc/grpc-js clients and servers: retries on UNAVAILABLE hide a flaky server, codes not listed in retry_on
// reach the caller at once, and the caller's grpc-timeout bounds the call when it is shorter than the route
// timeout (max_grpc_timeout, as istiod writes it), answered DEADLINE_EXCEEDED by the proxy itself.
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { callEcho, loadEchoService } from '../../src/cli/demo-apps.js';
import { makePki } from '../helpers/pki.js';
import { REVIEWS_ID, FRONTEND_ID, inboundBootstrap, outboundBootstrap, runSidecar, tempDir, writeCertFiles } from '../helpers/mesh.js';
import { metricValue } from '../helpers/two-hop.js';

/** A grpc-js Echo server: "flaky-*" fails UNAVAILABLE on its first two calls, "internal-*" always fails INTERNAL. */
async function flakyServer(t: Test) {
  const calls = new Map<string, number>();
  const server = new grpc.Server();
  server.addService(loadEchoService().service, {
    Unary: (call: grpc.ServerUnaryCall<{ message: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const m = call.request.message;
      const n = (calls.get(m) ?? 0) + 1;
      calls.set(m, n);
      const fail = (code: grpc.status) => cb(Object.assign(new Error(m), { code, details: `${m} try ${n}`, metadata: new grpc.Metadata() }));
      if (m.startsWith('flaky') && n <= 2) return fail(grpc.status.UNAVAILABLE);
      if (m.startsWith('internal')) return fail(grpc.status.INTERNAL);
      cb(null, { message: m, peer: '', served_by: `try ${n}` });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  t.teardown(() => new Promise<void>((r) => server.tryShutdown(() => r())));
  return { port, calls };
}

/** Sidecar B in front of the gRPC app, sidecar A's outbound route to it with these RouteAction fields. */
async function mesh(t: Test, appPort: number, route: Record<string, unknown>) {
  const pki = await makePki();
  const tmp = tempDir();
  t.teardown(() => tmp.cleanup());
  const fe = await pki.issue(FRONTEND_ID);
  const rv = await pki.issue(REVIEWS_ID);
  const frontend = writeCertFiles(tmp.dir, 'frontend', { chainPem: fe.chainPem, keyPem: fe.keyPem, rootPem: pki.rootPem });
  const reviews = writeCertFiles(tmp.dir, 'reviews', { chainPem: rv.chainPem, keyPem: rv.keyPem, rootPem: pki.rootPem });
  const b = await runSidecar(inboundBootstrap({ appPort, appProtocol: 'HTTP2', files: reviews }));
  t.teardown(() => b.shutdown());
  const a = await runSidecar(
    outboundBootstrap({ peerPort: b.port('inbound'), files: frontend, extraRoutes: [{ match: { prefix: '/' }, route: { cluster: 'outbound|9080||reviews', ...route } }] }),
  );
  t.teardown(() => a.shutdown());
  return a;
}

t.test('retry_on unavailable: a server failing UNAVAILABLE twice is hidden by two retries; INTERNAL is not retried', async (t) => {
  const app = await flakyServer(t);
  const a = await mesh(t, app.port, { timeout: '5s', retry_policy: { retry_on: 'unavailable,cancelled', num_retries: 2, retry_back_off: { base_interval: '0.001s' } } });
  const target = `127.0.0.1:${a.port('outbound')}`;
  for (let i = 0; i < 10; i++) {
    const r = await callEcho(target, 'reviews', `flaky-${i}`);
    t.equal(r.served_by, 'try 3', `flaky-${i}: answered by the third try`);
  }
  t.equal(await metricValue(a, 'outrigger_upstream_retries_total', { outcome: 'retried' }), 20, 'two retries per call');
  const e = await callEcho(target, 'reviews', 'internal-1').then(
    () => undefined,
    (err: grpc.ServiceError) => err,
  );
  t.equal(e?.code, grpc.status.INTERNAL, "the server's INTERNAL reaches the caller");
  t.equal(app.calls.get('internal-1'), 1, 'after one try');

  // With num_retries 1, the second UNAVAILABLE is the answer: the caller sees the server's own status.
  const once = await mesh(t, app.port, { timeout: '5s', retry_policy: { retry_on: 'unavailable', num_retries: 1, retry_back_off: { base_interval: '0.001s' } } });
  const u = await callEcho(`127.0.0.1:${once.port('outbound')}`, 'reviews', 'flaky-x').then(
    () => undefined,
    (err: grpc.ServiceError) => err,
  );
  t.equal(u?.code, grpc.status.UNAVAILABLE);
  t.match(u?.details, /flaky-x try 2/, 'the last try\'s own status and message');
});

/** An h2c app that never answers; it records the grpc-timeout each request arrived with. */
async function silentApp(t: Test) {
  const seen: (string | undefined)[] = [];
  const server = http2.createServer();
  server.on('stream', (_s, h) => seen.push(h['grpc-timeout'] as string | undefined));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    server.close(() => r());
    for (const s of sessions) s.destroy();
  }));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => sessions.add(s));
  return { port: (server.address() as AddressInfo).port, seen };
}

/** A raw gRPC call (an empty EchoRequest) with an optional grpc-timeout: status, grpc-status, grpc-message, elapsed ms. */
function rawCall(port: number, grpcTimeout?: string) {
  return new Promise<{ grpcStatus: string; message: string; ms: number }>((resolve, reject) => {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    s.on('error', reject);
    const t0 = performance.now();
    const r = s.request({ ':method': 'POST', ':authority': 'reviews', ':path': '/outrigger.demo.v1.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers', ...(grpcTimeout && { 'grpc-timeout': grpcTimeout }) });
    let h: http2.IncomingHttpHeaders = {};
    r.on('response', (rh) => (h = rh));
    r.on('trailers', (tr) => (h = { ...h, ...tr }));
    r.resume();
    r.on('end', () => {
      s.close();
      resolve({ grpcStatus: String(h['grpc-status']), message: decodeURIComponent(String(h['grpc-message'] ?? '')), ms: performance.now() - t0 });
    });
    r.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

t.test('grpc-timeout shorter than the route timeout wins, and the proxy answers DEADLINE_EXCEEDED', async (t) => {
  const app = await silentApp(t);
  // istiod's shape: max_grpc_timeout = the route timeout.
  const a = await mesh(t, app.port, { timeout: '5s', max_grpc_timeout: '5s' });
  const r = await rawCall(a.port('outbound'), '200m');
  t.equal(r.grpcStatus, '4', 'DEADLINE_EXCEEDED');
  t.equal(r.message, 'upstream request timeout', 'from the proxy, not the app');
  t.ok(r.ms >= 190 && r.ms < 2000, `after the caller's 200 ms, not the route's 5 s (${r.ms.toFixed(0)} ms)`);
  t.equal(app.seen[0], '200m', 'the app was told the deadline the proxy enforces');
  t.equal(await metricValue(a, 'outrigger_local_replies_total', { response_flags: 'UT' }), 1);
});

t.test('the route timeout wins when it is the shorter one, and bounds a call without grpc-timeout', async (t) => {
  const app = await silentApp(t);
  const a = await mesh(t, app.port, { timeout: '0.2s', max_grpc_timeout: '0.2s' });
  for (const header of ['30S', undefined]) {
    const r = await rawCall(a.port('outbound'), header);
    t.equal(r.grpcStatus, '4');
    t.ok(r.ms >= 190 && r.ms < 2000, `grpc-timeout ${header}: the route's 200 ms (${r.ms.toFixed(0)} ms)`);
  }
  t.strictSame(app.seen, ['200m', '200m'], 'upstream grpc-timeout is what the proxy will wait');
});

t.test('max_grpc_timeout 0 (istiod with no VirtualService timeout): grpc-timeout alone sets the deadline', async (t) => {
  const app = await silentApp(t);
  const a = await mesh(t, app.port, { timeout: '0s', max_grpc_timeout: '0s' });
  const r = await rawCall(a.port('outbound'), '150m');
  t.equal(r.grpcStatus, '4');
  t.ok(r.ms >= 140 && r.ms < 2000, `${r.ms.toFixed(0)} ms`);
});
