// A client never spoofs its identity with x-forwarded-client-cert: the outbound listener (15001) strips it (SANITIZE,
// Envoy's default), the inbound one (15006) replaces it with the verified mTLS peer (SANITIZE_SET), whatever the app sends.
import t from 'tap';
import http from 'node:http';
import http2 from 'node:http2';
import { meshControl, meshPod, serviceEntryYaml } from '../helpers/mesh-pods.js';
import { REVIEWS_ID, TD } from '../helpers/mesh.js';
import { Prober } from '../helpers/propagation.js';
import { waitFor } from '../helpers/tools.js';

// Pod IPs of this file only: listeners bind the translator's fixed ports (15001, 15006) on them.
const NET = '127.188';
const FRONTEND = `${NET}.1.1`;
const REVIEWS = `${NET}.2.1`;
const EXTERNAL = `${NET}.3.1`;
const FRONTEND_ID = `spiffe://${TD}/ns/default/sa/frontend`;

const MESH = `${serviceEntryYaml('reviews')}---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: reviews-1, namespace: default }
spec: { address: ${REVIEWS}, serviceAccount: reviews, labels: { app: reviews } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ext, namespace: default }
spec:
  hosts: [ext.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 9090, name: http, protocol: HTTP }]
  endpoints: [{ address: ${EXTERNAL} }]
`;

/** Every XFCC header line the peer claims; spoofs pretend to be an admin, or to come from reviews itself. */
const FORGED = [`By=${REVIEWS_ID};URI=spiffe://${TD}/ns/kube-system/sa/admin`, `URI=spiffe://${TD}/ns/default/sa/reviews`];

/** An app that answers with the XFCC header lines it received (rawHeaders: every line, nothing merged). */
async function xfccEcho(ip: string, port: number): Promise<http.Server> {
  const app = http.createServer((req, res) => {
    const lines: string[] = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'x-forwarded-client-cert') lines.push(req.rawHeaders[i + 1]!);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(lines));
  });
  await new Promise<void>((r) => app.listen(port, ip, r));
  return app;
}

/** HTTP/1.1 through the frontend's outbound listener, XFCC sent as two separate header lines. */
function viaOutbound(host: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: FRONTEND, port: 15001, path: '/whoami', headers: { host, 'x-forwarded-client-cert': FORGED }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body) as string[]) : reject(new Error(`HTTP ${res.statusCode}: ${body}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The same over h2c (a gRPC-style app): one XFCC field with both values. */
function viaOutboundH2(host: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${FRONTEND}:15001`);
    session.on('error', reject);
    const s = session.request({ ':path': '/whoami', ':authority': host, 'x-forwarded-client-cert': FORGED.join(',') });
    let body = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => (body += c));
    s.on('end', () => {
      session.close();
      resolve(JSON.parse(body) as string[]);
    });
    s.on('error', reject);
    s.end();
  });
}

/** What SANITIZE_SET with set_current_client_cert_details.uri makes of a verified peer: By, Hash, URI (Envoy's order). */
const setBy = (peer: string) => new RegExp(`^By=${REVIEWS_ID};Hash=[0-9a-f]{64};URI=${peer}$`);

t.test('forged x-forwarded-client-cert: stripped on the way out, replaced by the verified peer on the way in', async (t) => {
  const { ca } = await meshControl(t, 'outrigger-xfcc-', MESH);
  const apps = [await xfccEcho(REVIEWS, 9080), await xfccEcho(EXTERNAL, 9090)];
  t.teardown(() => Promise.all(apps.map((a) => new Promise((r) => a.close(r)))));
  const sidecars = [await meshPod(ca, FRONTEND, 'frontend', { app: 'frontend' }, { drainMs: 500 }), await meshPod(ca, REVIEWS, 'reviews', { app: 'reviews' }, { drainMs: 500 })];
  t.teardown(() => Promise.all(sidecars.map((s) => s.shutdown())));
  for (const s of sidecars) await waitFor(() => s.ready(), 'every sidecar synced');

  // App -> its sidecar (15001) -> mTLS -> the peer's sidecar (15006) -> the peer app.
  const h1 = await viaOutbound('reviews.default.svc.cluster.local:9080');
  t.equal(h1.length, 1, 'one XFCC line reaches the peer app, not the forged ones');
  t.match(h1[0], setBy(FRONTEND_ID), 'set by the peer sidecar from the mTLS identity of the caller');
  t.notMatch(h1[0], /admin/);
  const h2 = await viaOutboundH2('reviews.default.svc.cluster.local:9080');
  t.equal(h2.length, 1);
  t.match(h2[0], setBy(FRONTEND_ID), 'the same over h2c');

  // Out of the mesh in plaintext, no peer sidecar rebuilds it: the outbound HCM itself drops it (SANITIZE,
  // forward_client_cert_details' default, which the translator leaves to the decoder on virtualOutbound).
  t.strictSame(await viaOutbound('ext.example.com:9090'), [], 'nothing forged leaves through the outbound listener');
  t.strictSame(await viaOutboundH2('ext.example.com:9090'), []);

  // A mesh peer that is not a sidecar (any mTLS client with an SVID) forging it straight at 15006.
  const peer = await Prober.create(ca, { sa: 'batch', serverId: REVIEWS_ID, authority: 'reviews.default.svc.cluster.local:9080' });
  t.teardown(() => peer.close());
  const direct = await peer.request(REVIEWS, '/whoami', { 'x-forwarded-client-cert': FORGED.join(',') });
  t.equal(direct.status, 200);
  const lines = JSON.parse(direct.body) as string[];
  t.equal(lines.length, 1);
  t.match(lines[0], setBy(`spiffe://${TD}/ns/default/sa/batch`), 'the peer is who its certificate says, not what it claims');
});
