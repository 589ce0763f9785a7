// Local rate limiting through the whole mesh: a RateLimitPolicy in YAML -> control server -> xDS -> the reviews
// sidecar's inbound local_ratelimit filter, called by two workloads with their own identities over mTLS.
import t from 'tap';
import http from 'node:http';
import http2 from 'node:http2';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startControl } from '../helpers/mesh-ca.js';
import { meshPod } from '../helpers/mesh-pods.js';
import { tempDir, type StartedSidecar } from '../helpers/mesh.js';
import { waitFor } from '../helpers/tools.js';

// Pod IPs of this file only: listeners bind the translator's fixed ports (15001, 15006) on them.
const NET = '127.61';
const FRONTEND = `${NET}.1.1`;
const BATCH = `${NET}.1.2`;
const REVIEWS = `${NET}.2.1`;

const MESH = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: reviews } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: reviews-1, namespace: default }
spec: { address: ${REVIEWS}, serviceAccount: reviews, labels: { app: reviews } }
---
apiVersion: outrigger.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: reviews-limits, namespace: default }
spec:
  workloadSelector: { labels: { app: reviews } }
  rules:
  - name: api
    match: { path: { prefix: /api } }
    tokenBucket: { maxTokens: 3, tokensPerFill: 3, fillInterval: 1h }
  - name: per-caller
    match: { path: { prefix: /caller } }
    tokenBucket: { maxTokens: 2, fillInterval: 1h }
    perKey: { sourcePrincipal: true }
  - name: grpc
    match: { path: { prefix: /reviews.Reviews/ }, method: POST }
    tokenBucket: { maxTokens: 1, fillInterval: 1h }
  - name: shadow
    match: { path: { prefix: /shadow } }
    tokenBucket: { maxTokens: 1, fillInterval: 1h }
    shadow: true
`;


interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** GET through a caller's outbound listener to reviews. */
function get(from: string, urlPath: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: from, port: 15001, path: urlPath, headers: { host: 'reviews:9080' }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
}

/** A unary gRPC call (h2c) through the caller's outbound listener: the response headers (trailers-only when refused). */
function grpcCall(from: string): Promise<http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${from}:15001`);
    session.on('error', reject);
    const s = session.request({ ':method': 'POST', ':path': '/reviews.Reviews/Get', ':authority': 'reviews:9080', 'content-type': 'application/grpc', te: 'trailers' });
    s.end(Buffer.from([0, 0, 0, 0, 0]));
    let headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader = {};
    s.on('response', (h) => (headers = h));
    s.on('trailers', (tr) => (headers = { ...headers, ...tr }));
    s.resume();
    s.on('close', () => {
      session.close();
      resolve(headers);
    });
    s.on('error', reject);
  });
}

async function counter(s: StartedSidecar, result: string, policy: string): Promise<number> {
  const m = await s.registry.getSingleMetric('outrigger_local_ratelimit_requests_total')!.get();
  return m.values.find((v) => v.labels.result === result && v.labels.policy === policy)?.value ?? 0;
}

t.test('a RateLimitPolicy from YAML limits the selected workload over xDS: 429 + RateLimit-*, gRPC, per caller, shadow', async (t) => {
  const tmp = tempDir('outrigger-ratelimit-e2e-');
  t.teardown(() => tmp.cleanup());
  const dir = path.join(tmp.dir, 'mesh');
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'mesh.yaml'), MESH);
  const ca = await startControl({ configDir: dir });
  t.teardown(() => ca.close());
  // The app: 200 with the caller the sidecar verified; it never sees a refused request.
  let served = 0;
  const app = http.createServer((req, res) => {
    served++;
    res.writeHead(200, { 'x-caller': /URI=([^;,]+)/.exec(String(req.headers['x-forwarded-client-cert'] ?? ''))?.[1] ?? '' });
    res.end('ok');
  });
  await new Promise<void>((r) => app.listen(9080, REVIEWS, r));
  t.teardown(() => new Promise((r) => app.close(r)));
  const sidecars = [await meshPod(ca, FRONTEND, 'frontend', { app: 'frontend' }, { drainMs: 500 }), await meshPod(ca, BATCH, 'batch', { app: 'batch' }, { drainMs: 500 }), await meshPod(ca, REVIEWS, 'reviews', { app: 'reviews' }, { drainMs: 500 })];
  t.teardown(() => Promise.all(sidecars.map((s) => s.shutdown())));
  for (const s of sidecars) await waitFor(() => s.ready(), 'every sidecar synced');
  const reviews = sidecars[2]!;

  // Exactly maxTokens requests pass, shared by every caller; the next is refused by the reviews sidecar.
  for (let i = 0; i < 3; i++) t.equal((await get(i === 1 ? BATCH : FRONTEND, `/api/${i}`)).status, 200, `api request ${i + 1} of 3`);
  const refused = await get(FRONTEND, '/api/again?x=1');
  t.equal(refused.status, 429);
  t.equal(refused.headers['ratelimit-limit'], '3');
  t.equal(refused.headers['ratelimit-remaining'], '0');
  const reset = Number(refused.headers['ratelimit-reset']);
  t.ok(reset > 3500 && reset <= 3600, `RateLimit-Reset is the seconds to the next hourly fill (${reset})`);
  t.match(JSON.parse(refused.body), { code: 'rate_limited', request_id: String });
  t.equal(served, 3, 'the app saw only the admitted requests');
  t.equal((await get(FRONTEND, '/other')).status, 200, 'a path no rule matches is not limited');

  // gRPC: RESOURCE_EXHAUSTED (8), not the HTTP mapping's UNAVAILABLE.
  t.equal((await grpcCall(FRONTEND))['grpc-status'], undefined, 'the first call reaches the app');
  const g = await grpcCall(FRONTEND);
  t.equal(g[':status'], 200);
  t.equal(g['grpc-status'], '8');
  t.equal(g['ratelimit-limit'], '1');

  // Per source principal: each caller has a bucket of 2.
  for (const from of [FRONTEND, FRONTEND, BATCH, BATCH]) {
    const a = await get(from, '/caller');
    t.equal(a.status, 200);
    t.equal(a.headers['x-caller'], `spiffe://cluster.local/ns/default/sa/${from === FRONTEND ? 'frontend' : 'batch'}`);
  }
  t.equal((await get(FRONTEND, '/caller')).status, 429, "frontend's bucket is empty");
  t.equal((await get(BATCH, '/caller')).status, 429, "and batch's, separately");

  // Shadow: everything passes, the excess is counted.
  for (let i = 0; i < 4; i++) t.equal((await get(FRONTEND, '/shadow')).status, 200);
  t.equal(await counter(reviews, 'shadow_limited', 'default.reviews-limits.shadow'), 3);
  // The shadow filter runs first and sees all 17 requests (as Envoy's ok stat, requests no rule matched are allowed).
  t.equal(await counter(reviews, 'allowed', 'default.reviews-limits.shadow'), 14);
  t.equal(await counter(reviews, 'rate_limited', 'default.reviews-limits'), 4, 'api, grpc and the two per-caller refusals');
  const stats = await (await fetch(`${reviews.adminUrl}/stats/prometheus`)).text();
  t.match(stats, /outrigger_local_replies_total\{listener="virtualInbound",response_flags="RL"\} 4/);
});
