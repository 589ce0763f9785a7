// The mesh loader on the bundled example (examples/mesh) and on directories: what is read, in which order.
import t from 'tap';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadMeshDir, parseMeshDocuments } from '../../../src/control/mesh/loader.js';
import { formatMeshIssue } from '../../../src/control/mesh/types.js';
import { tempDir } from '../../helpers/mesh.js';
import { BASE, check, doc, valid } from './helpers.js';

const EXAMPLE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../examples/mesh');

t.test('the bundled example: bookinfo across three clouds parses into the expected model', async (t) => {
  const r = await loadMeshDir(EXAMPLE);
  if (!r.ok) return t.fail(r.issues.map(formatMeshIssue).join('\n'));
  const c = r.config;
  t.equal(c.domainSuffix, 'cluster.local');
  // File order (frontend, ratings, reviews), then document order.
  t.strictSame(
    c.serviceEntries.map((s) => [s.meta.name, s.hosts, s.ports.map((p) => `${p.name}/${p.protocol}/${p.number}`)]),
    [
      ['frontend', ['frontend.default.svc.cluster.local'], ['http/HTTP/9080']],
      ['ratings', ['ratings.default.svc.cluster.local'], ['http/HTTP/9080']],
      ['reviews', ['reviews.default.svc.cluster.local'], ['http/HTTP/9080', 'grpc/GRPC/9081']],
    ],
  );
  const reviews = c.serviceEntries[2]!;
  t.strictSame(reviews, {
    kind: 'ServiceEntry',
    meta: { name: 'reviews', namespace: 'default', file: path.join(EXAMPLE, 'reviews.yaml'), line: 2 },
    hosts: ['reviews.default.svc.cluster.local'],
    ports: [
      { number: 9080, protocol: 'HTTP', name: 'http' },
      { number: 9081, protocol: 'GRPC', name: 'grpc' },
    ],
    location: 'MESH_INTERNAL',
    resolution: 'STATIC',
    workloadSelector: { labels: { app: 'reviews' } },
    endpoints: [],
  });

  const byApp = (app: string) => c.workloadEntries.filter((w) => w.labels.app === app);
  t.equal(byApp('frontend').length, 3);
  t.equal(byApp('ratings').length, 3);
  const rv = byApp('reviews');
  t.strictSame(rv.map((w) => w.labels.version).sort(), ['v1', 'v1', 'v1', 'v2', 'v2', 'v2', 'v3', 'v3', 'v3']);
  t.strictSame([...new Set(rv.map((w) => w.localityParts.region))], ['aws-us-east-1', 'gcp-us-east4', 'azure-eastus']);
  for (const region of ['aws-us-east-1', 'gcp-us-east4', 'azure-eastus']) {
    t.equal(new Set(rv.filter((w) => w.localityParts.region === region).map((w) => w.localityParts.zone)).size, 2, `${region}: two zones`);
  }
  const addresses = c.workloadEntries.map((w) => w.address);
  t.equal(new Set(addresses).size, addresses.length, 'one address per workload');
  t.ok(addresses.every((a) => /^127\.\d+\.\d+\.\d+$/.test(a)), 'loopback pod IPs');
  t.strictSame(rv[0], {
    kind: 'WorkloadEntry',
    meta: { name: 'reviews-v1-aws-us-east-1', namespace: 'default', file: path.join(EXAMPLE, 'reviews.yaml'), line: 23 },
    address: '127.10.2.1',
    ports: {},
    labels: { app: 'reviews', version: 'v1' },
    locality: 'aws-us-east-1/us-east-1a',
    localityParts: { region: 'aws-us-east-1', zone: 'us-east-1a', subZone: '' },
    serviceAccount: 'bookinfo-reviews',
    weight: 1,
  });

  t.equal(c.virtualServices.length, 1);
  const vs = c.virtualServices[0]!;
  t.strictSame(vs.hosts, ['reviews']);
  t.strictSame(vs.fqdns, ['reviews.default.svc.cluster.local']);
  const dest = (subset: string) => ({ host: 'reviews', fqdn: 'reviews.default.svc.cluster.local', subset });
  t.strictSame(vs.http, [
    { name: 'jason-sees-v3', match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [{ destination: dest('v3'), weight: 100 }] },
    {
      name: 'canary',
      match: [],
      route: [
        { destination: dest('v1'), weight: 90 },
        { destination: dest('v2'), weight: 10 },
      ],
      timeoutMs: 5000,
    },
  ]);

  t.strictSame(
    c.destinationRules.map((d) => [d.meta.name, d.fqdn, d.subsets.map((s) => `${s.name}:${s.labels.version}`)]),
    [
      ['ratings', 'ratings.default.svc.cluster.local', ['v1:v1']],
      ['reviews', 'reviews.default.svc.cluster.local', ['v1:v1', 'v2:v2', 'v3:v3']],
    ],
  );
  t.strictSame(c.destinationRules[1]!.trafficPolicy, {
    tls: { mode: 'ISTIO_MUTUAL' },
    connectionPool: { http: { http2MaxRequests: 1000, maxRequestsPerConnection: 100 } },
    outlierDetection: { consecutive5xxErrors: 5, intervalMs: 5000, baseEjectionTimeMs: 20_000, maxEjectionPercent: 50 },
    portLevelSettings: [],
  });
  t.strictSame(c.destinationRules[0]!.trafficPolicy?.loadBalancer, {
    simple: 'LEAST_REQUEST',
    localityLbSetting: {
      enabled: true,
      distribute: [],
      failover: [
        { from: 'aws-us-east-1', to: 'gcp-us-east4' },
        { from: 'gcp-us-east4', to: 'azure-eastus' },
        { from: 'azure-eastus', to: 'aws-us-east-1' },
      ],
      failoverPriority: [],
    },
  });

  // Frozen all the way down: the translator and the watcher share these values.
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.workloadEntries) && Object.isFrozen(rv[0]!.labels) && Object.isFrozen(vs.http[1]!.route[0]!.destination));
  t.throws(() => ((c.serviceEntries as unknown[]).length = 0));
});

t.test('names: short hosts resolve in the namespace of the resource that names them, with the domain suffix', async (t) => {
  const files = {
    'm.yaml': [
      doc('ServiceEntry', 'reviews', '  hosts: [reviews.shop.svc.corp.example]\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: http}]\n'),
      `apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: reviews, namespace: shop}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n`,
      `apiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\nmetadata: {name: reviews, namespace: shop, uid: 1234, resourceVersion: "7", labels: {team: a}, annotations: {note: "x y"}}\nspec:\n  host: reviews.shop.svc.corp.example\n`,
    ].join('---\n'),
  };
  const c = valid(files, { domainSuffix: 'corp.example' });
  t.equal(c.domainSuffix, 'corp.example');
  t.strictSame(c.virtualServices[0]!.fqdns, ['reviews.shop.svc.corp.example']);
  t.equal(c.virtualServices[0]!.meta.namespace, 'shop');
  t.equal(c.destinationRules[0]!.fqdn, 'reviews.shop.svc.corp.example');
  t.equal(c.serviceEntries[0]!.meta.namespace, 'default', 'namespace defaults to default');
  t.equal(c.serviceEntries[0]!.ports[0]!.protocol, 'HTTP', 'protocols are case-insensitive, held upper case');
  // The same VirtualService under the default suffix points at a host nobody declares.
  t.strictSame(check(files), [
    'm.yaml:14 VirtualService reviews: spec.hosts[0]: no ServiceEntry declares host reviews.shop.svc.cluster.local',
    'm.yaml:17 VirtualService reviews: spec.http[0].route[0].destination.host: no ServiceEntry declares host reviews.shop.svc.cluster.local (reviews in namespace shop)',
  ]);
  const bad = parseMeshDocuments([], { domainSuffix: 'Not A Suffix' });
  t.equal(bad.ok, false);
});

t.test('inline endpoints, JSON files, empty documents and comments', async (t) => {
  const c = valid({
    'a.json': JSON.stringify({
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'db' },
      spec: {
        hosts: ['db.example.internal'],
        location: 'MESH_EXTERNAL',
        resolution: 'STATIC',
        ports: [{ number: 5432, name: 'tcp', protocol: 'TCP', targetPort: 15432 }],
        endpoints: [{ address: '127.0.0.9', ports: { tcp: 25432 }, weight: 0, locality: 'r1', network: 'n1' }, { address: '::1' }],
        exportTo: ['*'],
      },
    }),
    'b.yaml': '# nothing here yet\n---\n---\n',
  });
  const se = c.serviceEntries[0]!;
  t.equal(se.location, 'MESH_EXTERNAL');
  t.strictSame(se.ports, [{ number: 5432, protocol: 'TCP', name: 'tcp', targetPort: 15432 }]);
  t.strictSame(se.endpoints, [
    { address: '127.0.0.9', ports: { tcp: 25432 }, labels: {}, locality: 'r1', localityParts: { region: 'r1', zone: '', subZone: '' }, weight: 1, network: 'n1' },
    { address: '::1', ports: {}, labels: {}, localityParts: { region: '', zone: '', subZone: '' }, weight: 1 },
  ]);
  t.notOk('workloadSelector' in se);
});

t.test('loadMeshDir: recursive, sorted, skips dot files and editor leftovers; names files as the user typed the dir', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const dir = path.join(tmp.dir, 'mesh');
  mkdirSync(path.join(dir, 'b-sub'), { recursive: true });
  mkdirSync(path.join(dir, '.git'));
  writeFileSync(path.join(dir, 'a.yaml'), BASE);
  writeFileSync(path.join(dir, 'b-sub', 'vs.yml'), doc('VirtualService', 'reviews', '  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews, subset: v1}}]\n'));
  // Every one of these would be an error if read.
  for (const junk of ['.hidden.yaml', '.#a.yaml', 'a.yaml~', '.a.yaml.swp', '#a.yaml#', 'notes.txt', path.join('.git', 'x.yaml')]) writeFileSync(path.join(dir, junk), 'kind: Junk\n');
  mkdirSync(path.join(dir, 'old.yaml')); // a directory named like a file is walked, not read
  const r = await loadMeshDir(dir);
  if (!r.ok) return t.fail(r.issues.map(formatMeshIssue).join('\n'));
  t.strictSame(r.config.virtualServices.map((v) => v.meta.file), [path.join(dir, 'b-sub', 'vs.yml')]);

  writeFileSync(path.join(dir, 'c.yaml'), doc('VirtualService', 'reviews', '  hosts: [ratings]\n  http:\n  - route: [{destination: {host: ratings}}]\n'));
  const cwd = process.cwd();
  process.chdir(tmp.dir);
  t.teardown(() => process.chdir(cwd));
  const dup = await loadMeshDir('./mesh/');
  t.strictSame(dup.ok ? [] : dup.issues.map(formatMeshIssue), [
    'mesh/c.yaml:4 VirtualService reviews: metadata.name: duplicate name: VirtualService default/reviews (mesh/b-sub/vs.yml:4) has the same kind, namespace and name',
  ]);
});

t.test('loadMeshDir: a missing, empty or unreadable directory, a file instead of a directory', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const problems = async (dir: string) => {
    const r = await loadMeshDir(dir);
    return r.ok ? [] : r.issues.map(formatMeshIssue);
  };
  const missing = path.join(tmp.dir, 'nope');
  t.match(await problems(missing), [new RegExp(`^${missing}: cannot read the mesh config directory: ENOENT`)]);
  const empty = path.join(tmp.dir, 'empty');
  mkdirSync(empty);
  writeFileSync(path.join(empty, 'README.md'), '# not config\n');
  t.strictSame(await problems(empty), [`${empty}: no mesh config files (*.yaml, *.yml, *.json) in the directory`]);
  const file = path.join(tmp.dir, 'file.yaml');
  writeFileSync(file, BASE);
  t.strictSame(await problems(file), [`${file}: not a directory`]);

  // An unreadable file (a dangling symlink reads like one for root too) is an issue next to the others.
  const dir = path.join(tmp.dir, 'mesh');
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'a.yaml'), 'kind: Nope\n');
  symlinkSync(path.join(tmp.dir, 'gone.yaml'), path.join(dir, 'b.yaml'));
  const a = path.join(dir, 'a.yaml');
  t.strictSame(await problems(dir), [
    `${path.join(dir, 'b.yaml')}: cannot read: ENOENT: no such file or directory, stat '${path.join(dir, 'b.yaml')}'`,
    `${a}:1 Nope: kind: unknown kind "Nope" (Outrigger reads ServiceEntry, WorkloadEntry, VirtualService, DestinationRule, RateLimitPolicy, RequestAuthentication, AuthorizationPolicy, PeerAuthentication)`,
    `${a}:1 Nope: apiVersion: is required`,
    `${a}:1 Nope: metadata: is required`,
    `${a}:1 Nope: spec: is required`,
  ]);
});
