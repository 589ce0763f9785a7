// The demo's mesh plan: address shifting, the working copy, a pod per WorkloadEntry, each pod's ADS bootstrap as
// the sidecar and the control server read it, and the atomic canary rewrite.
import t from 'tap';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BUNDLED_MESH, copyMesh, planPods, podBootstrap, shiftCanary, shiftIp } from '../../src/cli/demo-mesh.js';
import { loadMeshDir } from '../../src/control/mesh/loader.js';
import { proxyNodeFrom } from '../../src/control/translate/node.js';
import { decodeBootstrap } from '../../src/xds/bootstrap.js';
import { tempDir } from '../helpers/mesh.js';

const TD = 'cluster.local';

function workDir(t: { teardown(fn: () => void): void }): string {
  const tmp = tempDir('outrigger-demo-mesh-');
  t.teardown(() => tmp.cleanup());
  return tmp.dir;
}

async function bundled() {
  const r = await loadMeshDir(BUNDLED_MESH);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

t.test('shiftIp moves 127.x up the second octet, and refuses to leave the address space', (t) => {
  t.equal(shiftIp('127.0.0.2', 0), '127.0.0.2');
  t.equal(shiftIp('127.10.2.1', 100), '127.110.2.1');
  t.equal(shiftIp('address: 127.30.1.1 # and 127.0.0.2', 5), 'address: 127.35.1.1 # and 127.5.0.2');
  t.equal(shiftIp('10.0.0.1', 5), '10.0.0.1', 'only loopback');
  t.throws(() => shiftIp('127.30.1.1', 226), { code: 'USAGE', message: /127\.256\.1\.1/ });
  t.end();
});

t.test('copyMesh copies the YAML (shifted), leaves other files, and names a directory it cannot read', async (t) => {
  const dir = workDir(t);
  copyMesh(BUNDLED_MESH, path.join(dir, 'a'), 0);
  t.strictSame(readdirSync(path.join(dir, 'a')).sort(), readdirSync(BUNDLED_MESH).filter((n) => n.endsWith('.yaml')).sort());
  t.equal(readFileSync(path.join(dir, 'a', 'reviews.yaml'), 'utf8'), readFileSync(path.join(BUNDLED_MESH, 'reviews.yaml'), 'utf8'));
  const src = path.join(dir, 'src');
  copyMesh(BUNDLED_MESH, src, 0);
  writeFileSync(path.join(src, 'README.md'), '127.0.0.1');
  copyMesh(src, path.join(dir, 'b'), 100);
  t.notOk(readdirSync(path.join(dir, 'b')).includes('README.md'));
  const r = await loadMeshDir(path.join(dir, 'b'));
  t.ok(r.ok);
  if (r.ok) t.ok(r.config.workloadEntries.every((w) => /^127\.1[123]0\./.test(w.address)), 'every address shifted');
  t.throws(() => copyMesh(path.join(dir, 'missing'), path.join(dir, 'c'), 0), { code: 'USAGE', message: /--mesh: cannot read the directory .*missing: ENOENT/ });
});

t.test('planPods: one pod per WorkloadEntry with its address, locality, identity and app ports', async (t) => {
  const pods = planPods(await bundled(), TD);
  t.equal(pods.length, 15);
  t.strictSame(
    [...new Set(pods.map((p) => p.app))].sort(),
    ['frontend', 'ratings', 'reviews'],
  );
  const v2 = pods.find((p) => p.name === 'reviews-v2-gcp-us-east4')!;
  t.match(v2, {
    namespace: 'default',
    app: 'reviews',
    version: 'v2',
    ip: '127.20.2.2',
    locality: { region: 'gcp-us-east4', zone: 'us-east4-b', subZone: '' },
    serviceAccount: 'bookinfo-reviews',
    spiffeId: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews',
  });
  const REVIEWS = 'reviews.default.svc.cluster.local';
  t.strictSame(
    v2.ports,
    [
      { name: 'http', port: 9080, protocol: 'HTTP', host: REVIEWS, servicePort: 9080 },
      { name: 'grpc', port: 9081, protocol: 'GRPC', host: REVIEWS, servicePort: 9081 },
    ],
    'both reviews ports',
  );
  t.strictSame(pods.find((p) => p.app === 'ratings')!.ports, [{ name: 'http', port: 9080, protocol: 'HTTP', host: 'ratings.default.svc.cluster.local', servicePort: 9080 }]);
  t.equal(new Set(pods.map((p) => p.ip)).size, 15, 'an address each');
});

t.test('planPods: Istio\'s target port rule, the default service account, an entry no service selects', async (t) => {
  const dir = workDir(t);
  writeFileSync(
    path.join(dir, 'm.yaml'),
    `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: api }
spec:
  hosts: [api.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 80, name: http-web, protocol: HTTP, targetPort: 8080 }, { number: 90, name: http-admin, protocol: HTTP }, { number: 5432, name: tcp, protocol: TCP }]
  workloadSelector: { labels: { app: api } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: api-1 }
spec: { address: 127.40.0.1, labels: { app: api }, ports: { http-admin: 9999 } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: lonely }
spec: { address: 127.40.0.2, labels: { role: batch } }
`,
  );
  const r = await loadMeshDir(dir);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  const [api, lonely] = planPods(r.config, TD);
  const API = 'api.default.svc.cluster.local';
  t.strictSame(
    api!.ports,
    [
      { name: 'http-web', port: 8080, protocol: 'HTTP', host: API, servicePort: 80 },
      { name: 'http-admin', port: 9999, protocol: 'HTTP', host: API, servicePort: 90 },
    ],
    'targetPort, WorkloadEntry.ports by name; TCP not served',
  );
  t.match(api, { app: 'api', version: '', serviceAccount: 'default', spiffeId: 'spiffe://cluster.local/ns/default/sa/default', locality: { region: '' } });
  t.match(lonely, { app: 'lonely', ports: [] });
});

t.test('podBootstrap: the sidecar decodes it (ADS over mTLS with the SVID) and the control server accepts its node', async (t) => {
  const pod = planPods(await bundled(), TD).find((p) => p.name === 'reviews-v3-azure-eastus')!;
  const json = podBootstrap(pod, { controlIp: '127.0.0.2', trustDomain: TD, files: { rootCert: '/pod/ca-root-cert.pem', token: '/pod/token' } });
  const b = decodeBootstrap(json, { file: 'bootstrap.json', baseDir: '/pod' });
  t.match(b.node, { id: 'sidecar~127.30.2.3~reviews-v3-azure-eastus.default~default.svc.cluster.local', cluster: 'reviews.default', locality: { region: 'azure-eastus', zone: 'eastus-1' } });
  t.match(b.ca, { address: '127.0.0.2:15012', rootCertFile: '/pod/ca-root-cert.pem', tokenFile: '/pod/token', spiffeId: pod.spiffeId });
  t.match(b.ads, {
    clusterName: 'xds-grpc',
    address: { host: '127.0.0.2', port: 15012 },
    setNodeOnFirstMessageOnly: true,
    tls: { common: { sdsCertificate: 'default', validation: { sdsBundle: 'ROOTCA', uriSanMatchers: [{ kind: 'exact', value: 'spiffe://cluster.local/ns/outrigger-system/sa/outrigger-control' }] }, alpnProtocols: ['h2'] } },
  });
  t.strictSame(b.listeners, [], 'every listener comes over LDS');
  t.equal(b.admin?.address.host, '127.30.2.3');
  const node = proxyNodeFrom(b.node, { trustDomain: TD });
  t.ok(node.ok, JSON.stringify(node));
  if (node.ok) {
    t.match(node.value, { kind: 'sidecar', namespace: 'default', serviceAccount: 'bookinfo-reviews', spiffeId: pod.spiffeId, ips: ['127.30.2.3'], labels: { app: 'reviews', version: 'v3' } });
    t.strictSame(node.value.appPorts, [{ name: 'http', port: 9080, protocol: 'TCP' }, { name: 'grpc', port: 9081, protocol: 'TCP' }]);
  }
});

t.test('shiftCanary: 90/10 becomes 50/50 in place, comments and layout kept, written by rename', async (t) => {
  const dir = workDir(t);
  copyMesh(BUNDLED_MESH, dir, 0);
  const file = path.join(dir, 'reviews.yaml');
  const before = readFileSync(file, 'utf8');
  const change = shiftCanary(dir, { name: 'reviews', namespace: 'default' });
  t.strictSame(change, { file, route: 'canary', weights: [{ subset: 'v1', before: 90, after: 50 }, { subset: 'v2', before: 10, after: 50 }] });
  const after = readFileSync(file, 'utf8');
  t.equal(after, before.replace('weight: 90', 'weight: 50').replace('weight: 10', 'weight: 50'), 'only the two weights changed');
  t.strictSame(readdirSync(dir).sort(), ['frontend.yaml', 'ratings.yaml', 'reviews.yaml'], 'no temp file left');
  const r = await loadMeshDir(dir);
  t.ok(r.ok, 'still valid');
  t.equal(shiftCanary(dir, { name: 'reviews', namespace: 'other' }), undefined, 'another namespace: none');
  t.equal(shiftCanary(dir, { name: 'ratings', namespace: 'default' }), undefined, 'no such VirtualService');
});

t.test('shiftCanary: three ways split 34/33/33; a VirtualService without a weighted route is left alone', (t) => {
  const dir = workDir(t);
  writeFileSync(path.join(dir, 'notes.txt'), 'not yaml');
  writeFileSync(
    path.join(dir, 'vs.yml'),
    `kind: VirtualService
metadata: { name: single, namespace: default }
spec:
  http:
  - route: [{ destination: { host: a } }]
---
kind: VirtualService
metadata: { name: three }
spec:
  http:
  - route:
    - { destination: { host: a, subset: x }, weight: 80 }
    - { destination: { host: a, subset: y }, weight: 10 }
    - { destination: { host: a }, weight: 10 }
`,
  );
  t.equal(shiftCanary(dir, { name: 'single', namespace: 'default' }), undefined);
  const c = shiftCanary(dir, { name: 'three', namespace: 'default' });
  t.strictSame(c?.weights, [{ subset: 'x', before: 80, after: 34 }, { subset: 'y', before: 10, after: 33 }, { subset: 'a', before: 10, after: 33 }], 'the remainder to the first; no subset: the host');
  t.equal(c?.route, '0', 'an unnamed route by its index');
  t.end();
});
