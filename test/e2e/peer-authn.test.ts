// PeerAuthentication through real sidecars over xDS: PERMISSIVE takes mTLS, plaintext HTTP/1.1 and h2c on one port;
// STRICT refuses plaintext with a clear error while mTLS (and its requests in flight) carry on; portLevelMtls.
import t from 'tap';
import http from 'node:http';
import http2 from 'node:http2';
import { meshControl, meshPod, serviceEntryYaml } from '../helpers/mesh-pods.js';
import type { StartedSidecar } from '../helpers/mesh.js';
import { waitFor } from '../helpers/tools.js';

// Pod IPs of this file only: listeners bind the translator's fixed ports (15001, 15006) on them.
const NET = '127.173';
const FRONTEND = `${NET}.1.1`;
const REVIEWS = `${NET}.2.1`;
const SPIFFE_FRONTEND = 'spiffe://cluster.local/ns/default/sa/frontend';

const BASE = `${serviceEntryYaml('reviews', '{ number: 9080, name: http, protocol: HTTP }, { number: 9081, name: http-admin, protocol: HTTP }')}---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: reviews-1, namespace: default }
spec: { address: ${REVIEWS}, serviceAccount: reviews, labels: { app: reviews } }
`;
const peerAuthn = (spec: string, name = 'default', ns = 'default') => `---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: ${name}, namespace: ${ns} }
spec:
${spec}`;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function get(host: string, port: number, urlPath: string, authority: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: urlPath, headers: { host: authority, ...headers }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
}
/** Through frontend's sidecar: mTLS from it to reviews' 15006, with frontend's SVID. */
const viaMesh = (urlPath: string, port = 9080) => get(FRONTEND, 15001, urlPath, `reviews:${port}`);
/** Straight to reviews' inbound port in plaintext, as a client without a sidecar. */
const plain = (urlPath: string, port = 9080, headers: Record<string, string> = {}) => get(REVIEWS, 15006, urlPath, `reviews:${port}`, headers);

/** An h2c (prior knowledge) request straight to reviews' inbound port: its status, or the error that ended it. */
function h2c(urlPath: string): Promise<{ status?: number; body?: string; error?: string }> {
  return new Promise((resolve) => {
    const session = http2.connect(`http://${REVIEWS}:15006`);
    let done = false;
    const finish = (r: { status?: number; body?: string; error?: string }) => {
      if (done) return;
      done = true;
      session.destroy();
      resolve(r);
    };
    session.on('error', (e) => finish({ error: e.message }));
    session.on('close', () => finish({ error: 'closed' }));
    const s = session.request({ ':path': urlPath, ':authority': 'reviews:9080' });
    let status: number | undefined;
    let body = '';
    s.on('response', (h) => (status = Number(h[':status'])));
    s.on('data', (c: Buffer) => (body += c));
    s.on('end', () => finish(status === undefined ? { error: 'closed without a response' } : { status, body }));
    s.on('error', (e) => finish({ error: e.message }));
    s.end();
  });
}

async function metric(s: StartedSidecar, name: string, labels: Record<string, string>): Promise<number> {
  const m = await s.registry.getSingleMetric(name)?.get();
  return m?.values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((a, v) => a + v.value, 0) ?? 0;
}

t.test('PERMISSIVE, then STRICT over ADS, then a port-level STRICT', async (t) => {
  const { mesh, ca } = await meshControl(t, 'outrigger-peer-authn-e2e-', BASE);
  // The app on 9080 and 9081: says who called (x-forwarded-client-cert) and holds /hold until released.
  const held: (() => void)[] = [];
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const send = () => {
      res.writeHead(200, { 'x-xfcc': String(req.headers['x-forwarded-client-cert'] ?? ''), 'x-port': String(req.socket.localPort) });
      res.end('ok');
    };
    if (req.url === '/hold') held.push(send);
    else send();
  };
  const apps = [http.createServer(handler), http.createServer(handler)];
  await Promise.all(apps.map((a, i) => new Promise<void>((r) => a.listen(9080 + i, REVIEWS, r))));
  t.teardown(() => Promise.all(apps.map((a) => new Promise((r) => a.close(r)))));
  const frontend = await meshPod(ca, FRONTEND, 'frontend', { app: 'frontend' }, { drainMs: 3000 });
  const reviews = await meshPod(ca, REVIEWS, 'reviews', { app: 'reviews' }, { drainMs: 3000 });
  t.teardown(() => Promise.all([frontend.shutdown(), reviews.shutdown()]));
  for (const s of [frontend, reviews]) await waitFor(() => s.ready(), 'sidecars synced');

  // --- PERMISSIVE (no policy: Istio's default) -------------------------------------------------------
  const m1 = await viaMesh('/who');
  t.equal(m1.status, 200, 'mTLS from a sidecar');
  t.match(m1.headers['x-xfcc'], `URI=${SPIFFE_FRONTEND}`, 'the app learns the caller over mTLS');
  const p1 = await plain('/who', 9080, { 'x-forwarded-client-cert': 'By=x;URI=spiffe://cluster.local/ns/default/sa/admin' });
  t.equal(p1.status, 200, 'plaintext HTTP/1.1 on the same port');
  t.equal(p1.headers['x-xfcc'], '', 'a plaintext client cannot claim an identity: its x-forwarded-client-cert is stripped');
  const h1 = await h2c('/who');
  t.equal(h1.status, 200, 'plaintext h2c (prior knowledge) on the same port');
  t.ok((await metric(reviews, 'outrigger_inbound_connections_total', { listener: 'virtualInbound', connection_security_policy: 'mutual_tls' })) >= 1, 'mTLS connections counted');
  t.equal(await metric(reviews, 'outrigger_inbound_connections_total', { listener: 'virtualInbound', connection_security_policy: 'none' }), 2, 'plaintext connections counted');
  t.equal(await metric(reviews, 'istio_requests_total', { reporter: 'destination', connection_security_policy: 'none' }), 2, 'istio_requests_total says none for plaintext requests');
  t.equal(await metric(reviews, 'istio_requests_total', { reporter: 'destination', connection_security_policy: 'mutual_tls' }), 1);

  // --- switch to STRICT while an mTLS request is in flight ---------------------------------------------
  const inflight = viaMesh('/hold');
  await waitFor(() => held.length === 1, 'the request reached the app');
  const writtenAt = performance.now();
  mesh.write(BASE + peerAuthn('  mtls: { mode: STRICT }\n', 'mesh', 'istio-system'));
  await waitFor(async () => (await plain('/who').catch(() => ({ status: 0 }))).status === 400, 'STRICT enforced', 10_000);
  t.comment(`PERMISSIVE -> STRICT enforced ${Math.round(performance.now() - writtenAt)} ms after the file write`);
  held.shift()!();
  t.equal((await inflight).status, 200, 'the request in flight over mTLS finished across the switch');
  const refused = await plain('/who');
  t.equal(refused.status, 400);
  t.equal(refused.headers.connection, 'close');
  t.match(JSON.parse(refused.body), { code: 'mtls_required', message: /plaintext connection refused: mTLS is required \(PeerAuthentication STRICT\)/ });
  t.ok(reviews.logs.some((l) => l.includes('plaintext connection refused: mTLS is required (PeerAuthentication STRICT)') && l.includes('"listener":"virtualInbound"') && /"remote":"127\.[0-9.]+:\d+"/.test(l)), 'a warning names the listener and the remote');
  t.match(await h2c('/who'), { error: String }, 'an h2c client is closed, never served');
  t.ok((await metric(reviews, 'outrigger_listener_no_filter_chain_match_total', { listener: 'virtualInbound' })) >= 2, 'refusals counted');
  t.equal((await viaMesh('/who')).status, 200, 'mTLS still works');

  // --- portLevelMtls: workload PERMISSIVE, 9081 STRICT --------------------------------------------------
  mesh.write(BASE + peerAuthn('  selector: { matchLabels: { app: reviews } }\n  mtls: { mode: PERMISSIVE }\n  portLevelMtls:\n    9081: { mode: STRICT }\n', 'reviews'));
  await waitFor(async () => (await plain('/who').catch(() => ({ status: 0 }))).status === 200, 'PERMISSIVE again', 10_000);
  const p2 = await plain('/who', 9081);
  t.equal(p2.status, 403, 'plaintext to the STRICT port is refused');
  t.match(JSON.parse(p2.body), { code: 'mtls_required', message: 'mTLS required for port 9081 by PeerAuthentication default/reviews: plaintext is refused' });
  const m2 = await viaMesh('/who', 9081);
  t.equal(m2.status, 200, 'mTLS to the STRICT port');
  t.equal(m2.headers['x-port'], '9081');
  t.equal((await plain('/who', 9080)).status, 200, 'plaintext to the other port');
});
