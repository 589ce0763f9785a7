// VirtualService routing end to end: mesh YAML -> control server -> RDS over mTLS ADS -> the frontend's sidecar
// router -> mTLS -> the reviews pods' sidecars -> their apps. Every match kind and its precedence, a canary
// split measured over 2,000 requests, redirect, direct response, rewrites and header edits both ways.
import t from 'tap';
import http from 'node:http';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { seededRng } from '../../src/core/rng.js';
import { startControl, type ControlForTest } from '../helpers/mesh-ca.js';
import { runSidecar, tempDir, type StartedSidecar } from '../helpers/mesh.js';
import { adsBootstrap } from '../helpers/xds-resources.js';
import { waitFor } from '../helpers/tools.js';

// Pod IPs of this file only: listeners bind the translator's fixed ports (15001, 15006) on them.
const NET = '127.61';
const FRONTEND = `${NET}.1.1`;
const V1 = `${NET}.2.1`;
const V2 = `${NET}.2.2`;

const se = (name: string) => `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: ${name} } }
`;
const we = (name: string, ip: string, sa: string, labels: Record<string, string>) => `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ${name}, namespace: default }
spec:
  address: ${ip}
  serviceAccount: ${sa}
  labels: ${JSON.stringify(labels)}
`;

const MESH = [
  se('frontend'),
  se('reviews'),
  we('frontend-1', FRONTEND, 'frontend', { app: 'frontend' }),
  we('reviews-v1', V1, 'reviews', { app: 'reviews', version: 'v1' }),
  we('reviews-v2', V2, 'reviews', { app: 'reviews', version: 'v2' }),
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
  - name: moved
    match: [{ uri: { exact: /old } }]
    redirect: { uri: /new, authority: example.org, redirectCode: 302 }
  - name: port-redirect
    match: [{ uri: { prefix: /secure } }]
    redirect: { scheme: https, port: 8443 }
  - name: teapot
    match: [{ uri: { prefix: /health }, method: { exact: GET } }]
    directResponse: { status: 418, body: { string: short and stout } }
    headers: { response: { set: { x-direct: "1" } } }
  - name: canary
    match:
    - { uri: { prefix: /api }, headers: { x-canary: { exact: "yes" } } }
    - { queryParams: { canary: { regex: "1|true" } } }
    route: [{ destination: { host: reviews, subset: v2 } }]
    headers: { response: { add: { x-route: canary } } }
  - name: items
    match: [{ uri: { regex: "/items/[0-9]+" } }]
    rewrite: { uri: /item }
    route: [{ destination: { host: reviews, subset: v1 } }]
  - name: legacy
    match: [{ uri: { prefix: /v1/legacy }, ignoreUriCase: true }]
    rewrite: { uri: /modern, authority: reviews-internal }
    route: [{ destination: { host: reviews, subset: v1 } }]
  - name: profiles
    match: [{ uri: { prefix: /users/ } }]
    rewrite: { uriRegexRewrite: { match: "^/users/([^/]+)/profile$", rewrite: "/profiles/\\\\1" } }
    route: [{ destination: { host: reviews, subset: v1 } }]
  - name: by-authority
    match: [{ uri: { prefix: /auth }, authority: { prefix: reviews.default } }]
    route: [{ destination: { host: reviews, subset: v2 } }]
  - name: unblocked
    match: [{ uri: { prefix: /w }, withoutHeaders: { x-block: { exact: "1" } } }]
    route: [{ destination: { host: reviews, subset: v2 } }]
  - name: slow
    match: [{ uri: { prefix: /slow } }]
    timeout: 200ms
    retries: { attempts: 0 }
    route: [{ destination: { host: reviews, subset: v1 } }]
    headers: { response: { set: { x-on-reply: "yes" } } }
  - name: split
    route:
    - destination: { host: reviews, subset: v1 }
      weight: 80
      headers: { response: { set: { x-picked: v1 } } }
    - destination: { host: reviews, subset: v2 }
      weight: 20
      headers: { request: { set: { x-picked-req: v2 } }, response: { set: { x-picked: v2 } } }
    headers:
      request: { set: { x-set: by-mesh }, add: { x-add: added }, remove: [x-remove-me] }
      response: { set: { x-resp-set: r }, add: { x-app: mesh }, remove: [x-app-secret] }
`,
].join('');

/** A pod's app: echoes what it received; answers /slow never (the route timeout answers instead). */
async function app(ip: string, version: string): Promise<http.Server> {
  const s = http.createServer((req, res) => {
    if (req.url?.startsWith('/slow')) return;
    res.writeHead(200, { 'content-type': 'application/json', 'x-version': version, 'x-app': 'app', 'x-app-secret': 's' });
    res.end(JSON.stringify({ version, path: req.url, headers: req.headers }));
  });
  await new Promise<void>((r) => s.listen(9080, ip, r));
  return s;
}

async function pod(ca: ControlForTest, ip: string, sa: string, labels: Record<string, string>, seed: number): Promise<StartedSidecar> {
  const token = await ca.token(`default/${sa}`);
  const b = adsBootstrap(Number(ca.address.split(':')[1]), {
    tls: { common_tls_context: { tls_certificate_sds_secret_configs: [{ name: 'default' }], combined_validation_context: { default_validation_context: {}, validation_context_sds_secret_config: { name: 'ROOTCA' } } } },
    metadata: { SERVICE_ACCOUNT: sa, INSTANCE_IPS: ip, LABELS: labels, CA_ADDR: ca.address, CA_ROOT_CERT: ca.rootFile, BOOTSTRAP_TOKEN: token },
  }) as { node: { id: string } };
  b.node.id = `sidecar~${ip}~${sa}.default~default.svc.cluster.local`;
  // A seeded rng: the canary split below is the same sequence of draws on every run.
  return runSidecar(b, { drainMs: 2000, rng: seededRng(seed) });
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The app's echo, when an app answered. */
  echo?: { version: string; path: string; headers: Record<string, string> };
}

function send(agent: http.Agent, p: string, o: { method?: string; headers?: Record<string, string>; host?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: FRONTEND, port: 15001, path: p, method: o.method ?? 'GET', headers: { host: o.host ?? 'reviews:9080', ...o.headers }, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        const json = res.headers['x-version'] ? (JSON.parse(body) as Answer['echo']) : undefined;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ...(json && { echo: json }) });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('VirtualService routing through real sidecars configured over xDS from mesh YAML', async (t) => {
  const tmp = tempDir('outrigger-routing-e2e-');
  t.teardown(() => tmp.cleanup());
  const dir = path.join(tmp.dir, 'mesh');
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'mesh.yaml'), MESH);
  const ca = await startControl({ configDir: dir });
  t.teardown(() => ca.close());
  t.strictSame(ca.server.status().config?.rejected, undefined, 'the mesh config is accepted');
  const apps = [await app(V1, 'v1'), await app(V2, 'v2')];
  t.teardown(() => Promise.all(apps.map((s) => new Promise((r) => s.close(r)))));
  const sidecars = [
    await pod(ca, FRONTEND, 'frontend', { app: 'frontend' }, 6),
    await pod(ca, V1, 'reviews', { app: 'reviews', version: 'v1' }, 7),
    await pod(ca, V2, 'reviews', { app: 'reviews', version: 'v2' }, 8),
  ];
  t.teardown(() => Promise.all(sidecars.map((s) => s.shutdown())));
  for (const s of sidecars) await waitFor(() => s.ready(), 'every sidecar synced');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  t.teardown(() => agent.destroy());
  const versionOf = async (p: string, o?: Parameters<typeof send>[2]) => (await send(agent, p, o)).echo?.version;

  await t.test('matches: uri exact/prefix/regex, headers, queryParams, method, authority, ignoreUriCase, withoutHeaders; first match wins', async (t) => {
    t.equal(await versionOf('/api/x', { headers: { 'x-canary': 'yes' } }), 'v2', 'uri prefix AND header');
    t.equal((await send(agent, '/api/x', { headers: { 'x-canary': 'yes' } })).headers['x-route'], 'canary');
    t.equal((await send(agent, '/api/x', { headers: { 'x-canary': 'no' } })).headers['x-route'], undefined, 'one condition failing fails the block');
    t.equal((await send(agent, '/anything?canary=true')).headers['x-route'], 'canary', 'second match block (OR): a query parameter regex');
    t.equal((await send(agent, '/anything?canary=truex')).headers['x-route'], undefined, 'the regex matches the whole value');
    t.equal((await send(agent, '/items/42')).echo?.path, '/item', 'uri regex (and the whole path rewritten)');
    t.equal((await send(agent, '/items/42?canary=1')).headers['x-route'], 'canary', 'first match wins: canary is listed before items');
    t.equal((await send(agent, '/items/4x')).echo?.headers['x-set'], 'by-mesh', 'a regex that does not match the whole path falls through to the split');
    t.equal((await send(agent, '/health')).status, 418, 'method GET matches');
    t.not((await send(agent, '/health', { method: 'POST' })).status, 418, 'method POST does not');
    t.equal(await versionOf('/auth', { host: 'reviews.default:9080' }), 'v2', 'authority prefix');
    t.equal((await send(agent, '/auth', { host: 'reviews:9080' })).echo?.headers['x-set'], 'by-mesh', 'another authority falls through');
    t.equal((await send(agent, '/V1/LEGACY/a')).echo?.path, '/modern/a', 'ignoreUriCase');
    t.equal(await versionOf('/w'), 'v2', 'withoutHeaders: the header is absent');
    t.equal(await versionOf('/w', { headers: { 'x-block': '0' } }), 'v2', 'withoutHeaders: another value');
    t.equal((await send(agent, '/w', { headers: { 'x-block': '1' } })).echo?.headers['x-set'], 'by-mesh', 'withoutHeaders: the excluded value falls through');
  });

  await t.test('redirect and direct response', async (t) => {
    const moved = await send(agent, '/old?x=1');
    t.equal(moved.status, 302);
    t.equal(moved.headers.location, 'http://example.org/new?x=1', 'host and path replaced, query kept');
    t.equal(moved.body, '');
    const secure = await send(agent, '/secure/a');
    t.equal(secure.status, 301, 'redirectCode defaults to 301');
    t.equal(secure.headers.location, 'https://reviews:8443/secure/a', 'scheme and port replaced');
    const teapot = await send(agent, '/health');
    t.equal(teapot.body, 'short and stout');
    t.equal(teapot.headers['x-direct'], '1', 'route response headers apply to a direct response');
  });

  await t.test('rewrites: prefix, whole path, regex substitution, authority', async (t) => {
    const legacy = await send(agent, '/v1/legacy/list?page=2');
    t.equal(legacy.echo?.path, '/modern/list?page=2', 'prefix replaced, query kept');
    t.equal(legacy.echo?.headers.host, 'reviews-internal', 'authority rewritten');
    t.equal((await send(agent, '/users/ann/profile?v=1')).echo?.path, '/profiles/ann?v=1', 'uriRegexRewrite with a group');
    t.equal((await send(agent, '/users/ann/other')).echo?.path, '/users/ann/other', 'no regex match: the path is left as it was');
  });

  await t.test('header edits: request and response, route and destination level, upstream answers and local replies', async (t) => {
    let v1: Answer | undefined;
    let v2: Answer | undefined;
    while (!v1 || !v2) {
      const a = await send(agent, '/split', { headers: { 'x-remove-me': 'x', 'x-add': 'caller', 'x-set': 'caller' } });
      if (a.echo?.version === 'v1') v1 = a;
      else v2 = a;
    }
    for (const a of [v1, v2]) {
      t.equal(a.echo?.headers['x-set'], 'by-mesh', 'set overwrites');
      t.equal(a.echo?.headers['x-add'], 'caller, added', 'add appends (Node joins repeated headers with ", ")');
      t.equal(a.echo?.headers['x-remove-me'], undefined, 'remove');
      t.equal(a.headers['x-resp-set'], 'r');
      t.equal(a.headers['x-app-secret'], undefined, 'response header removed');
      t.equal(a.headers['x-app'], 'app, mesh', 'response add appends to the upstream value');
    }
    t.equal(v1.headers['x-picked'], 'v1', 'destination-level response header');
    t.equal(v2.headers['x-picked'], 'v2');
    t.equal(v2.echo?.headers['x-picked-req'], 'v2', 'destination-level request header');
    t.equal(v1.echo?.headers['x-picked-req'], undefined, 'only for that destination');
    const slow = await send(agent, '/slow');
    t.equal(slow.status, 504, 'the route timeout answers');
    t.equal(slow.headers['x-on-reply'], 'yes', "the router's own local reply gets the route's response headers, as in Envoy");
  });

  await t.test('a canary split of 80/20 holds to ±3 % over 2,000 requests', async (t) => {
    const seen = { v1: 0, v2: 0, other: 0 };
    let sent = 0;
    const worker = async () => {
      while (sent < 2000) {
        sent++;
        const v = await versionOf('/split');
        if (v === 'v1' || v === 'v2') seen[v]++;
        else seen.other++;
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    t.equal(seen.other, 0, 'every request answered by one of the two');
    t.equal(seen.v1 + seen.v2, 2000);
    const share = seen.v1 / 2000;
    t.ok(Math.abs(share - 0.8) <= 0.03, `v1 share ${(share * 100).toFixed(1)} % (${seen.v1} / 2000), v2 ${seen.v2}`);
  });

  await t.test('a bad change is refused with file:line:field and the routes keep serving', async (t) => {
    const file = path.join(dir, 'mesh.yaml');
    const bad = MESH.replace('weight: 20\n', 'weight: 30\n').replace('"/items/[0-9]+"', '"/items/(?=[0-9]+)"').replace('timeout: 200ms', 'timeout: -200ms');
    const rejected = ca.server.nextConfigReload();
    writeFileSync(`${file}.tmp`, bad);
    renameSync(`${file}.tmp`, file);
    await rejected;
    const issues = ca.server.status().config?.rejected?.issues ?? [];
    const at = (field: string) => issues.find((i) => i.includes(field)) ?? `(no issue for ${field})`;
    t.match(at('.uri.regex'), /mesh\.yaml:\d+ VirtualService reviews: spec\.http\[4\]\.match\[0\]\.uri\.regex: not a valid RE2 regular expression: invalid perl operator: \(\?=/);
    t.match(at('.timeout'), /mesh\.yaml:\d+ VirtualService reviews: spec\.http\[9\]\.timeout: invalid duration "-200ms"/);
    t.match(at('].route:'), /mesh\.yaml:\d+ VirtualService reviews: spec\.http\[10\]\.route: weights add up to 110, not 100/);
    t.equal((await send(agent, '/old')).status, 302, 'the accepted config still routes');
    t.equal((await send(agent, '/items/7')).echo?.path, '/item');
  });
});
