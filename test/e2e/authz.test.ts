// AuthorizationPolicy through the whole mesh: YAML -> control server -> RBAC filters over xDS -> the reviews sidecar,
// called by two workloads with their own SPIFFE identities over mTLS; then the YAML is edited and the change enforced.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { startControl } from '../helpers/mesh-ca.js';
import { meshDir, meshPod, serviceEntryYaml } from '../helpers/mesh-pods.js';
import { waitFor } from '../helpers/tools.js';
import { request, type Reply } from '../helpers/two-hop.js';

// Pod IPs of this file only: listeners bind the translator's fixed ports (15001, 15006) on them.
const NET = '127.83';
const FRONTEND = `${NET}.1.1`;
const BATCH = `${NET}.1.2`;
const REVIEWS = `${NET}.2.1`;

const policy = (name: string, api: string, spec: string) => `---
apiVersion: security.istio.io/${api}
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
${spec}`;

/** reviews, and on it: ALLOW only `allowed` (a SPIFFE principal), DENY /admin* to everyone. */
const mesh = (allowed: string) =>
  `${serviceEntryYaml('reviews')}---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: reviews-1, namespace: default }
spec: { address: ${REVIEWS}, serviceAccount: reviews, labels: { app: reviews } }
` +
  policy('reviews-callers', 'v1', `  rules:\n  - from:\n    - source: { principals: [cluster.local/ns/default/sa/${allowed}] }\n`) +
  policy('no-admin', 'v1beta1', '  action: DENY\n  rules:\n  - to:\n    - operation: { paths: ["/admin*"] }\n');

/** GET through a caller's outbound listener to reviews: two-hop's request() over a socket dialled to the pod's IP. */
function get(from: string, urlPath: string): Promise<Reply> {
  const agent = new http.Agent();
  agent.createConnection = () => net.connect({ host: from, port: 15001 });
  return request(15001, { host: 'reviews:9080', path: urlPath, agent });
}

t.test('an AuthorizationPolicy from YAML: one SPIFFE identity allowed, a path denied, then the YAML edited and enforced', async (t) => {
  const m = meshDir('outrigger-authz-e2e-');
  t.teardown(() => m.cleanup());
  m.write(mesh('frontend'));
  const ca = await startControl({ configDir: m.dir });
  t.teardown(() => ca.close());
  let served = 0;
  const app = http.createServer((_req, res) => {
    served++;
    res.end('ok');
  });
  await new Promise<void>((r) => app.listen(9080, REVIEWS, r));
  t.teardown(() => new Promise((r) => app.close(r)));
  const sidecars = [await meshPod(ca, FRONTEND, 'frontend', { app: 'frontend' }, { drainMs: 200 }), await meshPod(ca, BATCH, 'batch', { app: 'batch' }, { drainMs: 200 }), await meshPod(ca, REVIEWS, 'reviews', { app: 'reviews' }, { drainMs: 200 })];
  t.teardown(() => Promise.all(sidecars.map((s) => s.shutdown())));
  for (const s of sidecars) await waitFor(() => s.ready(), 'every sidecar synced');

  t.equal((await get(FRONTEND, '/reviews/1')).status, 200, 'frontend is allowed by its SPIFFE ID');
  const refused = await get(BATCH, '/reviews/1');
  t.equal(refused.status, 403, 'batch matches no ALLOW rule');
  t.match(JSON.parse(refused.body), { code: 'rbac_denied', request_id: String });
  const admin = await get(FRONTEND, '/admin/users');
  t.equal(admin.status, 403, 'the DENY policy wins over the ALLOW one on /admin');
  t.match(JSON.parse(admin.body), { code: 'rbac_denied', message: 'RBAC: access denied by policy default/no-admin rule 0' });
  t.equal(served, 1, 'the app saw only the allowed request');

  // The edit: batch instead of frontend. One LDS update carries both filters, so the change lands whole.
  const reloaded = ca.server.nextConfigReload();
  m.write(mesh('batch'));
  await reloaded;
  await waitFor(async () => (await get(BATCH, '/reviews/2')).status === 200, 'batch allowed after the edit');
  t.equal((await get(FRONTEND, '/reviews/2')).status, 403, 'frontend is refused now');
  t.equal((await get(BATCH, '/admin')).status, 403, 'and /admin stays denied');
});
