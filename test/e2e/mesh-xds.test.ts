// The whole mesh: control server (CA + xDS from Istio YAML) -> sidecars over ADS on 15012 -> mTLS between pods,
// a live VirtualService change under 1000 req/s with zero failed requests, and a rejected change that changes nothing.
import t from 'tap';
import http from 'node:http';
import { startControl } from '../helpers/mesh-ca.js';
import { meshDir, meshPod, serviceEntryYaml } from '../helpers/mesh-pods.js';
import { waitFor } from '../helpers/tools.js';

// Pod IPs of this file only: listeners bind the translator's fixed ports (15001, 15006) on them.
const NET = '127.46';
const FRONTEND = `${NET}.1.1`;
const V1 = `${NET}.2.1`;
const V2 = `${NET}.2.2`;

function mesh(w1: number, w2: number): string {
  const we = (name: string, ip: string, sa: string, labels: Record<string, string>, locality: string) => `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ${name}, namespace: default }
spec:
  address: ${ip}
  serviceAccount: ${sa}
  locality: ${locality}
  labels: ${JSON.stringify(labels)}
`;
  const se = (name: string) => serviceEntryYaml(name);
  return [
    se('frontend'),
    se('reviews'),
    we('frontend-1', FRONTEND, 'frontend', { app: 'frontend' }, 'aws-us-east-1/us-east-1a'),
    we('reviews-v1', V1, 'reviews', { app: 'reviews', version: 'v1' }, 'aws-us-east-1/us-east-1a'),
    we('reviews-v2', V2, 'reviews', { app: 'reviews', version: 'v2' }, 'gcp-us-east4/us-east4-a'),
    `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  subsets:
  - { name: v1, labels: { version: v1 } }
  - { name: v2, labels: { version: v2 } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - route:
    - { destination: { host: reviews, subset: v1 }, weight: ${w1} }
    - { destination: { host: reviews, subset: v2 }, weight: ${w2} }
`,
  ].join('');
}

/** A pod's app: answers with its version and the caller its sidecar verified (XFCC URI). */
async function app(ip: string, version: string): Promise<http.Server> {
  const s = http.createServer((req, res) => {
    const xfcc = String(req.headers['x-forwarded-client-cert'] ?? '');
    res.writeHead(200, { 'x-version': version, 'x-caller': /URI=([^;,]+)/.exec(xfcc)?.[1] ?? '' });
    res.end(version);
  });
  await new Promise<void>((r) => s.listen(9080, ip, r));
  return s;
}

function get(agent: http.Agent): Promise<{ status: number; version: string; caller: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: FRONTEND, port: 15001, path: '/', headers: { host: 'reviews:9080' }, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, version: String(res.headers['x-version'] ?? ''), caller: String(res.headers['x-caller'] ?? '') }));
    });
    req.on('error', reject);
  });
}

t.test('a mesh from YAML: sidecars sync over mTLS ADS, traffic follows a live canary change with zero failures', async (t) => {
  const { dir, write, cleanup } = meshDir('outrigger-mesh-e2e-');
  t.teardown(cleanup);
  write(mesh(100, 0));
  const ca = await startControl({ configDir: dir });
  t.teardown(() => ca.close());
  const apps = [await app(V1, 'v1'), await app(V2, 'v2')];
  t.teardown(() => Promise.all(apps.map((s) => new Promise((r) => s.close(r)))));
  const sidecars = [
    await meshPod(ca, FRONTEND, 'frontend', { app: 'frontend' }),
    await meshPod(ca, V1, 'reviews', { app: 'reviews', version: 'v1' }),
    await meshPod(ca, V2, 'reviews', { app: 'reviews', version: 'v2' }),
  ];
  t.teardown(() => Promise.all(sidecars.map((s) => s.shutdown())));
  for (const s of sidecars) await waitFor(() => s.ready(), 'every sidecar synced');

  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  t.teardown(() => agent.destroy());
  const first = await get(agent);
  t.strictSame(first, { status: 200, version: 'v1', caller: 'spiffe://cluster.local/ns/default/sa/frontend' }, 'frontend -> reviews v1 over mTLS, caller verified');
  const st = ca.server.status();
  t.equal(st.xds?.nodes.length, 3);
  t.ok(st.xds?.nodes.every((n) => n.transport === 'mtls'));

  // ~1000 req/s with 16 keep-alive workers while the canary moves to v2; every request must succeed.
  let running = true;
  const seen = { v1: 0, v2: 0, failed: [] as string[] };
  let afterChange = 0;
  let changed = false;
  const worker = async () => {
    while (running) {
      try {
        const r = await get(agent);
        if (r.status !== 200) seen.failed.push(String(r.status));
        else {
          seen[r.version as 'v1' | 'v2']++;
          if (changed && r.version === 'v2') afterChange++;
        }
      } catch (e) {
        seen.failed.push(String(e));
      }
    }
  };
  const workers = Array.from({ length: 16 }, worker);
  t.teardown(() => {
    running = false;
  });
  await waitFor(() => seen.v1 > 300, 'load flowing');
  const reloaded = ca.server.nextConfigReload();
  write(mesh(0, 100));
  await reloaded;
  changed = true;
  await waitFor(() => afterChange > 300, 'traffic moved to v2');

  // A broken change (a subset that does not exist) is rejected whole: traffic keeps flowing to v2.
  const rejected = ca.server.nextConfigReload();
  write(mesh(0, 100).replace('subset: v2 }, weight: 100', 'subset: v9 }, weight: 100'));
  await rejected;
  t.match(ca.server.status().config?.rejected?.issues.join('\n'), /subset/);
  const before = seen.v2;
  await waitFor(() => seen.v2 > before + 200, 'still serving the accepted config');
  running = false;
  await Promise.all(workers);
  t.strictSame(seen.failed, [], `zero failed requests (${seen.v1 + seen.v2} ok)`);
  t.ok(seen.v1 > 300 && seen.v2 > 500);
  // Everyone ACKed the latest versions.
  await waitFor(() => (ca.server.status().xds?.nodes ?? []).every((n) => Object.values(n.types).every((x) => x?.state === 'SYNCED')), 'all SYNCED');
});
