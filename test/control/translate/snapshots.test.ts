// Snapshot versions (content hashes per type), consistency, the per-node-kind cache, and translator-bug errors.
import t from 'tap';
import type { NodeSnapshot, ServedType } from '../../../src/control/snapshot.js';
import { SERVED_TYPES } from '../../../src/control/snapshot.js';
import { domainsFor, encode, hostForms } from '../../../src/control/translate/common.js';
import { TranslateError, checkConsistent, translate, versionOf } from '../../../src/control/translate/index.js';
import { MeshSnapshots } from '../../../src/control/translate/snapshots.js';
import { decodeCanonical } from '../../../src/xds/canonical.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL, typeForUrl } from '../../../src/xds/protos.js';
import { decodeResource } from '../../../src/xds/resources/index.js';
import { OPTS, REVIEWS, bookinfo, dr, node, policy, reviewsVs, we } from './helpers.js';

const changed = (a: NodeSnapshot, b: NodeSnapshot) => SERVED_TYPES.filter((type) => a.versions.get(type) !== b.versions.get(type));
const short = (types: readonly ServedType[]) => types.map((u) => u.slice(u.lastIndexOf('.') + 1));

t.test('versions: equal content, equal versions (fresh objects, another process would agree); 16 hex digits', (t) => {
  const a = translate(bookinfo(), node(), OPTS);
  const b = translate(bookinfo(), node({ id: 'another-pod-same-kind' }), OPTS);
  t.strictSame(changed(a, b), []);
  for (const type of SERVED_TYPES) {
    t.match(a.versions.get(type), /^[0-9a-f]{16}$/);
    t.strictSame([...a.resources.get(type)!].map(([n, v]) => [n, Buffer.from(v).toString('hex')]), [...b.resources.get(type)!].map(([n, v]) => [n, Buffer.from(v).toString('hex')]));
  }
  t.end();
});

t.test('versions change per type: a route weight changes only RDS, an endpoint weight only EDS, a subset CDS and EDS', (t) => {
  const base = translate(bookinfo(), node(), OPTS);
  const weights = translate(bookinfo({ virtualServices: [reviewsVs(80, 20), ...bookinfo().virtualServices.slice(1)] }), node(), OPTS);
  t.strictSame(short(changed(base, weights)), ['RouteConfiguration']);
  const entries = bookinfo().workloadEntries.map((w) => (w.meta.name === 'reviews-v2' ? { ...w, weight: 5 } : w));
  t.strictSame(short(changed(base, translate(bookinfo({ workloadEntries: entries }), node(), OPTS))), ['ClusterLoadAssignment']);
  const drs = bookinfo().destinationRules.map((d) => (d.meta.name === 'reviews' ? { ...d, subsets: [...d.subsets, { name: 'v4', labels: { version: 'v4' } }] } : d));
  t.strictSame(short(changed(base, translate(bookinfo({ destinationRules: drs }), node(), OPTS))), ['Cluster', 'ClusterLoadAssignment']);
  // Another pod of the same kind elsewhere: its own addresses, so LDS and the inbound STATIC cluster differ.
  const pod2 = translate(bookinfo({ workloadEntries: [...bookinfo().workloadEntries, we('frontend-2', '10.0.0.2', { labels: { app: 'frontend' }, sa: 'bookinfo-frontend' })] }), node({ ip: '10.0.0.2' }), OPTS);
  t.ok(changed(base, pod2).includes(LISTENER_TYPE_URL));
  t.end();
});

t.test('after a change elsewhere a sidecar keeps the same bytes objects for its own resources; what changed is encoded anew', (t) => {
  const get = (s: NodeSnapshot, type: ServedType, name: string) => s.resources.get(type)!.get(name)!;
  const hex = (s: NodeSnapshot) => SERVED_TYPES.map((type) => [...s.resources.get(type)!].map(([n, v]) => `${n}=${Buffer.from(v).toString('hex')}`).join()).join('|');
  const a = translate(bookinfo(), node(), OPTS);
  const b = translate(bookinfo({ virtualServices: [reviewsVs(80, 20), ...bookinfo().virtualServices.slice(1)] }), node(), OPTS);
  t.equal(get(b, LISTENER_TYPE_URL, 'virtualInbound'), get(a, LISTENER_TYPE_URL, 'virtualInbound'), 'its listener: the same object, not encoded again');
  t.equal(get(b, ROUTE_CONFIGURATION_TYPE_URL, 'inbound'), get(a, ROUTE_CONFIGURATION_TYPE_URL, 'inbound'));
  t.not(Buffer.from(get(b, ROUTE_CONFIGURATION_TYPE_URL, 'outbound')).toString('hex'), Buffer.from(get(a, ROUTE_CONFIGURATION_TYPE_URL, 'outbound')).toString('hex'), 'the changed weights are in the new outbound routes');
  // frontend's port 80 now targets 9090 on the workload: its own inbound routes and cluster change.
  const retarget = bookinfo({ serviceEntries: bookinfo().serviceEntries.map((e) => (e.meta.name === 'frontend' ? { ...e, ports: [{ number: 80, protocol: 'HTTP', name: 'http', targetPort: 9090 }] } : e)) });
  const c = translate(retarget, node(), OPTS);
  t.not(get(c, ROUTE_CONFIGURATION_TYPE_URL, 'inbound'), get(b, ROUTE_CONFIGURATION_TYPE_URL, 'inbound'));
  t.ok(c.resources.get(CLUSTER_TYPE_URL)!.has('inbound|9090||'));
  t.notOk(c.resources.get(CLUSTER_TYPE_URL)!.has('inbound|9080||'));
  // Two versions later the first version's own encodings are gone; translating it again gives the same bytes.
  t.equal(hex(translate(bookinfo(), node(), OPTS)), hex(a));
  t.end();
});

t.test('sidecars of one namespace share the encoded outbound resources; only what names their address is their own', (t) => {
  const mesh = bookinfo();
  const pods = Array.from({ length: 20 }, (_, i) => translate(mesh, node({ ip: `10.0.7.${i + 1}`, id: `pod-${i}` }), OPTS));
  const [a, b] = [pods[0]!, pods[19]!];
  const out = `outbound|9080|v1|${REVIEWS}`;
  t.equal(a.resources.get(CLUSTER_TYPE_URL)!.get(out), b.resources.get(CLUSTER_TYPE_URL)!.get(out), 'the same bytes object: encoded once');
  t.equal(a.resources.get(ROUTE_CONFIGURATION_TYPE_URL)!.get('outbound'), b.resources.get(ROUTE_CONFIGURATION_TYPE_URL)!.get('outbound'));
  t.not(a.resources.get(LISTENER_TYPE_URL)!.get('virtualOutbound'), b.resources.get(LISTENER_TYPE_URL)!.get('virtualOutbound'));
  t.strictSame(short(changed(a, b)), ['Cluster', 'Listener'], 'their listeners and inbound clusters name their addresses; routes and endpoints are alike');
  const other = translate(mesh, node({ ns: 'other', sa: 'details', ip: '10.1.0.1', labels: { app: 'details' } }), OPTS);
  t.not(other.resources.get(ROUTE_CONFIGURATION_TYPE_URL)!.get('outbound'), a.resources.get(ROUTE_CONFIGURATION_TYPE_URL)!.get('outbound'), 'another namespace sees other short names');
  t.end();
});

t.test('versionOf: over sorted (name, bytes) pairs; names and bytes cannot run into each other', (t) => {
  const b = (s: string) => new TextEncoder().encode(s);
  t.equal(versionOf(new Map([['a', b('1')], ['b', b('2')]])), versionOf(new Map([['b', b('2')], ['a', b('1')]])));
  t.not(versionOf(new Map([['ab', b('c')]])), versionOf(new Map([['a', b('bc')]])));
  t.not(versionOf(new Map([['a', b('1')]])), versionOf(new Map([['a', b('2')]])));
  t.end();
});

t.test('checkConsistent names the dangling RDS and EDS references; translate output has none', (t) => {
  const s = translate(bookinfo(), node(), OPTS);
  t.strictSame(checkConsistent(s), []);
  const without = (type: ServedType, ...names: string[]): NodeSnapshot => {
    const resources = new Map(s.resources);
    const m = new Map(resources.get(type));
    for (const n of names) m.delete(n);
    resources.set(type, m);
    return { resources, versions: s.versions };
  };
  t.strictSame(checkConsistent(without(ROUTE_CONFIGURATION_TYPE_URL, 'outbound')), ['listener "virtualOutbound" uses route configuration "outbound", which is not in the snapshot']);
  t.strictSame(checkConsistent(without(CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, `outbound|9080|v2|${REVIEWS}`)), [
    `cluster "outbound|9080|v2|${REVIEWS}" takes endpoints from "outbound|9080|v2|${REVIEWS}", which is not in the snapshot`,
  ]);
  const grpc = translate(bookinfo(), node({ proxyless: true }), OPTS);
  const resources = new Map(grpc.resources);
  resources.set(ROUTE_CONFIGURATION_TYPE_URL, new Map());
  const problems = checkConsistent({ resources, versions: grpc.versions });
  t.equal(problems.length, grpc.resources.get(LISTENER_TYPE_URL)!.size, 'api_listeners are checked too');
  t.match(problems[0], /^listener ".*" uses route configuration ".*", which is not in the snapshot$/);
  t.strictSame(checkConsistent({ resources: new Map(), versions: new Map() }), [], 'an empty snapshot is consistent');
  t.end();
});

t.test('a resource that does not encode is a TranslateError (a translator bug), with every issue', (t) => {
  t.throws(() => encode(CLUSTER_TYPE_URL, { name: 'c', json: { name: 'c', lb_policy: 'FASTEST', typo: 1 } }), {
    name: 'TranslateError',
    code: 'TRANSLATE_ENCODE_FAILED',
    message: /resource "c" of type\.googleapis\.com\/envoy\.config\.cluster\.v3\.Cluster is not a valid message:\nc\.lb_policy: "FASTEST" is not a valid LbPolicy.*\nc\.typo: unknown field/s,
  });
  t.ok(new TranslateError('TRANSLATE_INCONSISTENT', 'x') instanceof Error);
  t.end();
});

t.test('DestinationRule loadBalancer.simple -> lb_policy where Envoy has it (the default, PEAK_EWMA, as load_balancing_policy); proxyless stays ROUND_ROBIN', (t) => {
  const lbOf = (simple: string, proxyless = false) => {
    const mesh = bookinfo({ destinationRules: [dr('reviews', REVIEWS, { trafficPolicy: policy({ loadBalancer: { simple: simple as 'RANDOM' } }) })] });
    const bytes = translate(mesh, node({ proxyless }), OPTS).resources.get(CLUSTER_TYPE_URL)!.get(`outbound|9080||${REVIEWS}`)!;
    const c = decodeCanonical(typeForUrl(CLUSTER_TYPE_URL)!, bytes);
    return c.load_balancing_policy ? 'load_balancing_policy' : (c.lb_policy ?? 'ROUND_ROBIN');
  };
  t.strictSame(
    ['ROUND_ROBIN', 'UNSPECIFIED', 'LEAST_REQUEST', 'LEAST_CONN', 'RANDOM', 'PEAK_EWMA'].map((s) => lbOf(s)),
    ['ROUND_ROBIN', 'load_balancing_policy', 'LEAST_REQUEST', 'LEAST_REQUEST', 'RANDOM', 'load_balancing_policy'],
    'UNSPECIFIED is the default, PEAK_EWMA, which only load_balancing_policy can say',
  );
  t.equal(lbOf('LEAST_REQUEST', true), 'ROUND_ROBIN');
  // The sidecar decodes what the translator wrote for RANDOM into the same policy.
  const mesh = bookinfo({ destinationRules: [dr('reviews', REVIEWS, { trafficPolicy: policy({ loadBalancer: { simple: 'RANDOM' } }) })] });
  const r = decodeResource(CLUSTER_TYPE_URL, translate(mesh, node(), OPTS).resources.get(CLUSTER_TYPE_URL)!.get(`outbound|9080||${REVIEWS}`)!);
  t.match(r, { ok: true, value: { lbPolicy: 'RANDOM' } });
  t.end();
});

t.test('config precedence: VirtualService and DestinationRule of the caller namespace first; repeated subsets and endpoints once', (t) => {
  const mine = { ...reviewsVs(), meta: { ...reviewsVs().meta, namespace: 'other' }, http: [{ name: 'mine', match: [], route: [{ destination: { host: 'reviews', fqdn: REVIEWS }, weight: 100 }] }] };
  const mesh = bookinfo({
    virtualServices: [reviewsVs(), mine],
    destinationRules: [
      ...bookinfo().destinationRules,
      dr('reviews-other', REVIEWS, { namespace: 'other', subsets: [{ name: 'o1', labels: { version: 'v1' } }, { name: 'o1', labels: { version: 'v2' } }] }),
    ],
    workloadEntries: [...bookinfo().workloadEntries, we('reviews-v1-dup', '10.0.1.1', { labels: { app: 'reviews', version: 'v1' } })],
  });
  const fromOther = translate(mesh, node({ ns: 'other', sa: 'details', ip: '10.1.0.1', labels: { app: 'details' } }), OPTS);
  const rc = decodeResource(ROUTE_CONFIGURATION_TYPE_URL, fromOther.resources.get(ROUTE_CONFIGURATION_TYPE_URL)!.get('outbound')!);
  t.match(rc, { ok: true, value: { virtualHosts: [{}, {}, {}, {}, { name: `${REVIEWS}:9080`, routes: [{ name: 'mine' }] }] } });
  const clusters = [...fromOther.resources.get(CLUSTER_TYPE_URL)!.keys()].filter((n) => n.includes('|9080|') && n.endsWith(REVIEWS));
  t.strictSame(clusters, [`outbound|9080||${REVIEWS}`, `outbound|9080|o1|${REVIEWS}`], "the caller namespace's rule; a repeated subset name once");
  const fromDefault = translate(mesh, node(), OPTS);
  t.ok(fromDefault.resources.get(CLUSTER_TYPE_URL)!.has(`outbound|9080|v1|${REVIEWS}`), 'the default namespace keeps its own rule');
  const cla = decodeResource(CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, fromDefault.resources.get(CLUSTER_LOAD_ASSIGNMENT_TYPE_URL)!.get(`outbound|9080|v1|${REVIEWS}`)!);
  t.match(cla, { ok: true, value: { localities: [{ endpoints: [{ address: { host: '10.0.1.1' } }] }, { endpoints: [{ address: { host: '10.0.1.2' } }] }] } }, 'one address appears once');
  t.end();
});

t.test('wildcard hosts and odd shapes: "*.suffix" VirtualService, a duplicate ServiceEntry host, zero weights', (t) => {
  const mesh = bookinfo({
    serviceEntries: [...bookinfo().serviceEntries, { ...bookinfo().serviceEntries[1]!, meta: { ...bookinfo().serviceEntries[1]!.meta, name: 'zz-dup' }, ports: [] }],
    virtualServices: [
      {
        kind: 'VirtualService',
        meta: { name: 'wild', namespace: 'default', file: 'w.yaml', line: 1 },
        hosts: ['*.default.svc.cluster.local'],
        fqdns: ['*.default.svc.cluster.local'],
        http: [{ match: [{ name: 'm', headers: {}, uri: { prefix: '/w' } }], route: [{ destination: { host: 'reviews', fqdn: REVIEWS, subset: 'v1', port: 9080 }, weight: 100 }, { destination: { host: 'reviews', fqdn: REVIEWS, subset: 'v2' }, weight: 0 }] }],
      },
      reviewsVs(),
    ],
    workloadEntries: [...bookinfo().workloadEntries, { ...we('zero', '10.0.1.9', { labels: { app: 'reviews', version: 'v1' } }), weight: 0 }],
  });
  const s = translate(mesh, node(), OPTS);
  const rc = decodeResource(ROUTE_CONFIGURATION_TYPE_URL, s.resources.get(ROUTE_CONFIGURATION_TYPE_URL)!.get('outbound')!);
  t.ok(rc.ok);
  if (rc.ok) {
    const byName = new Map(rc.value.virtualHosts.map((v) => [v.name, v]));
    t.match(byName.get(`${REVIEWS}:9080`)!.routes[0], { name: 'jason.user' }, 'an exact host beats a wildcard');
    t.match(byName.get('frontend.default.svc.cluster.local:80')!.routes, [{ name: '.m', action: { action: { cluster: `outbound|9080|v1|${REVIEWS}` } } }], 'the wildcard applies elsewhere; a zero weight is dropped');
    t.equal(byName.get(`${REVIEWS}:9081`)?.name, `${REVIEWS}:9081`, 'the first ServiceEntry for a host wins');
  }
  const cla = decodeResource(CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, s.resources.get(CLUSTER_LOAD_ASSIGNMENT_TYPE_URL)!.get(`outbound|9080|v1|${REVIEWS}`)!);
  const nowhere = cla.ok ? cla.value.localities.find((l) => l.locality.region === '') : undefined;
  t.match(nowhere, { weight: 1, endpoints: [{ address: { host: '10.0.1.9' }, weight: 1 }] }, 'weight 0 counts as 1 (Istio); no locality is a locality too');
  t.end();
});

t.test('MeshSnapshots: one translation per node kind per config version; setConfig drops the cache and notifies', (t) => {
  const snaps = new MeshSnapshots({ trustDomain: OPTS.trustDomain }, bookinfo());
  const a = snaps.snapshotFor(node({ id: 'grpc-1', proxyless: true }));
  const b = snaps.snapshotFor(node({ id: 'grpc-2', proxyless: true, ports: '[]' }));
  t.equal(a, b, 'two replicas with the same cache key share one snapshot');
  snaps.snapshotFor(node());
  t.strictSame(snaps.stats(), { generation: 1, translations: 2, cached: 2 });

  let calls = 0;
  const seen: string[] = [];
  const off = snaps.onChange(() => {
    calls++;
    // Listeners run after the switch: what they read is the new config.
    seen.push(snaps.snapshotFor(node({ id: 'grpc-3', proxyless: true })).versions.get(ROUTE_CONFIGURATION_TYPE_URL)!);
  });
  const off2 = snaps.onChange(() => calls++);
  snaps.setConfig(bookinfo({ virtualServices: [reviewsVs(50, 50)] }));
  t.equal(calls, 2);
  t.not(seen[0], a.versions.get(ROUTE_CONFIGURATION_TYPE_URL));
  t.strictSame(snaps.stats(), { generation: 2, translations: 3, cached: 1 });
  const c = snaps.snapshotFor(node({ id: 'grpc-1', proxyless: true }));
  t.not(c, a);
  t.equal(c.versions.get(CLUSTER_TYPE_URL), a.versions.get(CLUSTER_TYPE_URL), 'what did not change keeps its version');
  off();
  off();
  snaps.setConfig(bookinfo());
  t.equal(calls, 3, 'an unsubscribed listener is not called');
  off2();
  snaps.setConfig(bookinfo());
  t.equal(calls, 3);
  // The domain suffix may be set for the server instead of taken from the config.
  const other = new MeshSnapshots({ trustDomain: OPTS.trustDomain, domainSuffix: 'mesh.example' }, bookinfo());
  const rc = decodeResource(ROUTE_CONFIGURATION_TYPE_URL, other.snapshotFor(node()).resources.get(ROUTE_CONFIGURATION_TYPE_URL)!.get('outbound')!);
  t.ok(rc.ok && rc.value.virtualHosts.every((v) => !v.domains.includes('reviews')), 'hosts outside the suffix get no short names');
  t.end();
});

t.test('host forms: only <name>.<ns>.svc.<suffix> hosts have short names', (t) => {
  t.strictSame(hostForms(REVIEWS, 'cluster.local', 'default'), [REVIEWS, 'reviews.default', 'reviews']);
  t.strictSame(hostForms(REVIEWS, 'cluster.local', 'other'), [REVIEWS, 'reviews.default']);
  t.strictSame(hostForms('a.b.c.svc.cluster.local', 'cluster.local', 'c'), ['a.b.c.svc.cluster.local'], 'a dotted name is not a Kubernetes service name');
  t.strictSame(domainsFor(['x', 'x.ns'], 8080, false), ['x:8080', 'x.ns:8080']);
  t.end();
});
