// Sidecar output for bookinfo across three clouds, read back through our own decoders (decodeResource).
import t from 'tap';
import { checkConsistent, translate } from '../../../src/control/translate/index.js';
import { RouteTable } from '../../../src/dataplane/router.js';
import type { Cluster, ClusterLoadAssignment, RouteConfiguration } from '../../../src/model/types.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL } from '../../../src/xds/protos.js';
import { DETAILS, EXTERNAL, FRONTEND, ISTIO_DEFAULT_RETRY, OPTS, RATINGS, REVIEWS, TD, bookinfo, decodeAll, node, type NodeOpts } from './helpers.js';

const sidecar = (o: NodeOpts = {}, mesh = bookinfo()) => {
  const s = translate(mesh, node(o), OPTS);
  return {
    s,
    listeners: decodeAll(s, LISTENER_TYPE_URL),
    routes: decodeAll(s, ROUTE_CONFIGURATION_TYPE_URL),
    clusters: decodeAll(s, CLUSTER_TYPE_URL),
    eds: decodeAll(s, CLUSTER_LOAD_ASSIGNMENT_TYPE_URL),
  };
};

const vhost = (rc: RouteConfiguration, name: string) => rc.virtualHosts.find((v) => v.name === name);
const endpoints = (cla: ClusterLoadAssignment | undefined) => cla?.localities.flatMap((l) => l.endpoints.map((e) => `${e.address.host}:${e.address.port}`)) ?? [];
const SPIFFE = (ns: string, sa: string) => `spiffe://${TD}/ns/${ns}/sa/${sa}`;

t.test('every resource decodes with our own decoders and the snapshot is consistent, for several kinds of node', (t) => {
  const nodes: NodeOpts[] = [
    {},
    { ns: 'other', sa: 'details', ip: '10.1.0.1', labels: { app: 'details' } },
    { sa: 'bookinfo-reviews-v3', ip: '10.0.3.1', labels: { app: 'reviews', version: 'v3' } },
    { ip: 'fd00::5', labels: { app: 'batch' }, ports: [{ name: 'grpc-api', containerPort: 7070 }] },
  ];
  for (const o of nodes) {
    const r = sidecar(o);
    t.strictSame(checkConsistent(r.s), [], `consistent for ${o.ip ?? '10.0.0.1'}`);
    t.equal(r.clusters.size, r.s.resources.get(CLUSTER_TYPE_URL)!.size);
  }
  t.end();
});

t.test('LDS: virtualOutbound (plaintext, RDS "outbound") and virtualInbound (mTLS, RDS "inbound")', (t) => {
  const { listeners } = sidecar();
  t.strictSame([...listeners.keys()], ['virtualOutbound', 'virtualInbound']);
  const out = listeners.get('virtualOutbound')!;
  t.match(out, { address: { host: '10.0.0.1', port: 15001 }, trafficDirection: 'OUTBOUND', filterChain: { hcm: { route: { kind: 'rds', name: 'outbound' }, upgradeTypes: ['websocket'] } } });
  t.equal(out.filterChain.tls, undefined, 'the app talks to its sidecar in plaintext');
  t.equal(out.filterChain.hcm.httpFilters.at(-1)?.name, 'envoy.filters.http.router');
  const inb = listeners.get('virtualInbound')!;
  t.match(inb, {
    address: { host: '10.0.0.1', port: 15006 },
    trafficDirection: 'INBOUND',
    filterChain: {
      hcm: { route: { kind: 'rds', name: 'inbound' }, forwardClientCertDetails: 'SANITIZE_SET', setCurrentClientCertDetails: { uri: true }, upgradeTypes: ['websocket'] },
      tls: { requireClientCertificate: true, common: { sdsCertificate: 'default', validation: { sdsBundle: 'ROOTCA', uriSanMatchers: [{ kind: 'prefix', value: `spiffe://${TD}/` }] } } },
    },
  });
  t.end();
});

t.test('RDS outbound: Istio vhost names and host forms, short names only in the caller namespace, no-port forms on the default port', (t) => {
  const rc = sidecar().routes.get('outbound')!;
  t.strictSame(
    rc.virtualHosts.map((v) => v.name),
    [`${EXTERNAL}:80`, `${DETAILS}:9080`, `${FRONTEND}:80`, `${RATINGS}:9080`, `${REVIEWS}:9080`, `${REVIEWS}:9081`],
    'one vhost per (host, HTTP port); TLS/HTTPS ports are not routed',
  );
  t.strictSame(vhost(rc, `${REVIEWS}:9080`)!.domains, [REVIEWS, `${REVIEWS}:9080`, 'reviews.default', 'reviews.default:9080', 'reviews', 'reviews:9080']);
  t.strictSame(vhost(rc, `${REVIEWS}:9081`)!.domains, [`${REVIEWS}:9081`, 'reviews.default:9081', 'reviews:9081'], 'no port-less forms off the default port');
  t.strictSame(vhost(rc, `${FRONTEND}:80`)!.domains, [FRONTEND, `${FRONTEND}:80`, 'frontend.default', 'frontend.default:80', 'frontend', 'frontend:80'], 'port 80 is the default port');
  t.strictSame(vhost(rc, `${DETAILS}:9080`)!.domains, [DETAILS, `${DETAILS}:9080`, 'details.other', 'details.other:9080'], 'no bare "details" from another namespace');
  t.strictSame(vhost(rc, `${EXTERNAL}:80`)!.domains, [EXTERNAL, `${EXTERNAL}:80`], 'a non-Kubernetes host has only its FQDN');
  const fromOther = sidecar({ ns: 'other', sa: 'details', ip: '10.1.0.1', labels: { app: 'details' } }).routes.get('outbound')!;
  t.ok(vhost(fromOther, `${DETAILS}:9080`)!.domains.includes('details:9080'));
  t.notOk(vhost(fromOther, `${REVIEWS}:9080`)!.domains.includes('reviews'));
  // What the app's Host header reaches, through the data plane's own route table.
  const table = new RouteTable(rc);
  const reach = (authority: string, headers: Record<string, string> = {}) => table.match(authority, '/', (n) => headers[n])?.route.name;
  t.equal(reach('reviews:9080', { 'end-user': 'jason' }), 'jason.user');
  t.equal(reach('reviews.default:9080'), 'split');
  t.equal(reach('frontend'), 'default');
  t.equal(reach('details'), undefined, 'a short name of another namespace reaches nothing');
  t.end();
});

t.test('RDS outbound routes: VirtualService order, ORed matches, weights, timeouts, port-restricted matches, default route', (t) => {
  const rc = sidecar().routes.get('outbound')!;
  t.match(vhost(rc, `${REVIEWS}:9080`)!.routes, [
    {
      name: 'jason.user',
      match: { path: { kind: 'prefix', value: '/' }, headers: [{ name: 'end-user', match: { kind: 'string', matcher: { kind: 'exact', value: 'jason' } } }] },
      action: { kind: 'route', action: { cluster: `outbound|9080|v2|${REVIEWS}`, timeoutMs: 0 } },
    },
    { name: 'jason', match: { headers: [{ name: 'x-canary', match: { matcher: { kind: 'prefix', value: 'yes' } } }] }, action: { action: { cluster: `outbound|9080|v2|${REVIEWS}` } } },
    {
      name: 'split',
      match: { path: { kind: 'prefix', value: '/' }, headers: [] },
      action: { action: { cluster: '', timeoutMs: 5000, weightedClusters: [{ name: `outbound|9080|v1|${REVIEWS}`, weight: 90 }, { name: `outbound|9080|v3|${REVIEWS}`, weight: 10 }] } },
    },
  ]);
  t.equal(vhost(rc, `${REVIEWS}:9080`)!.routes.length, 3);
  t.match(vhost(rc, `${REVIEWS}:9081`)!.routes[2], { action: { action: { weightedClusters: [{ name: `outbound|9081|v1|${REVIEWS}` }, { name: `outbound|9081|v3|${REVIEWS}` }] } } }, 'destinations without a port follow the vhost port');
  t.match(vhost(rc, `${RATINGS}:9080`)!.routes, [
    { name: '', match: { path: { kind: 'prefix', value: '/ratings' } }, action: { action: { cluster: `outbound|9080||${RATINGS}` } } },
    { name: '', match: { path: { kind: 'regex', regex: '^/v[0-9]+/ratings$' }, headers: [{ name: 'x-version', match: { matcher: { kind: 'regex', regex: 'v[12]' } } }] } },
  ]);
  t.equal(vhost(rc, `${RATINGS}:9080`)!.routes.length, 2, 'the match for port 9999 is not on the 9080 vhost');
  t.strictSame(vhost(rc, `${FRONTEND}:80`)!.routes, [
    { name: 'default', match: { path: { kind: 'prefix', value: '/' }, caseSensitive: true, headers: [] }, action: { kind: 'route', action: { cluster: `outbound|80||${FRONTEND}`, timeoutMs: 0, hashPolicy: [], retryPolicy: ISTIO_DEFAULT_RETRY, maxGrpcTimeoutMs: 0 } } },
  ]);
  t.end();
});

t.test('CDS: Istio cluster names, EDS over ADS, 10 s connect timeout, mTLS with SNI/ALPN/SANs unless DISABLE wins', (t) => {
  const { clusters } = sidecar();
  t.strictSame([...clusters.keys()].sort(), [
    'inbound|9080||',
    `outbound|80||${EXTERNAL}`,
    `outbound|80||${FRONTEND}`,
    `outbound|9080||${DETAILS}`,
    `outbound|9080||${RATINGS}`,
    `outbound|9080||${REVIEWS}`,
    `outbound|9080|v1|${REVIEWS}`,
    `outbound|9080|v2|${REVIEWS}`,
    `outbound|9080|v3|${REVIEWS}`,
    `outbound|9081||${REVIEWS}`,
    `outbound|9081|v1|${REVIEWS}`,
    `outbound|9081|v2|${REVIEWS}`,
    `outbound|9081|v3|${REVIEWS}`,
  ].sort());
  const v1 = clusters.get(`outbound|9080|v1|${REVIEWS}`)!;
  t.match(v1, {
    type: 'EDS',
    eds: { serviceName: `outbound|9080|v1|${REVIEWS}` },
    connectTimeoutMs: 10_000,
    lbPolicy: 'ROUND_ROBIN',
    protocol: 'HTTP2',
    tls: {
      sni: `outbound_.9080_.v1_.${REVIEWS}`,
      common: { sdsCertificate: 'default', alpnProtocols: ['h2'], validation: { sdsBundle: 'ROOTCA' } },
    },
  });
  t.strictSame(
    v1.tls!.common.validation!.uriSanMatchers.map((m) => m.kind === 'exact' && m.value),
    [SPIFFE('default', 'bookinfo-reviews'), SPIFFE('default', 'bookinfo-reviews-v3')],
    "the service's workload identities, not the subset's",
  );
  t.equal(clusters.get(`outbound|9080||${REVIEWS}`)!.tls!.sni, `outbound_.9080_._.${REVIEWS}`);
  const plain = (c: Cluster | undefined) => [c?.tls === undefined, c?.protocol];
  t.strictSame(plain(clusters.get(`outbound|9080|v3|${REVIEWS}`)), [true, 'HTTP1'], 'subset-level tls DISABLE wins; an HTTP port is HTTP/1.1');
  t.strictSame(plain(clusters.get(`outbound|9081|v3|${REVIEWS}`)), [true, 'HTTP2'], 'a GRPC port is HTTP/2 even in plaintext');
  t.strictSame(plain(clusters.get(`outbound|9080||${RATINGS}`)), [true, 'HTTP1'], 'port-level tls DISABLE wins over the rule');
  t.strictSame(plain(clusters.get(`outbound|80||${EXTERNAL}`)), [true, 'HTTP1'], 'MESH_EXTERNAL defaults to plaintext');
  t.match(clusters.get(`outbound|9080||${DETAILS}`)!.tls!.common.validation!.uriSanMatchers, [{ kind: 'exact', value: SPIFFE('other', 'details') }]);
  t.match(clusters.get('inbound|9080||'), { type: 'STATIC', protocol: 'HTTP1', loadAssignment: { localities: [{ endpoints: [{ address: { host: '10.0.0.1', port: 9080 } }] }] } });
  // Without the ratings rule, ratings is mTLS too; its workload names no service account: any SVID of the domain.
  const noDr = sidecar({}, bookinfo({ destinationRules: [] })).clusters;
  t.match(noDr.get(`outbound|9080||${RATINGS}`)!.tls!.common.validation!.uriSanMatchers, [{ kind: 'prefix', value: `spiffe://${TD}/` }]);
  t.notOk(noDr.has(`outbound|9080|v1|${REVIEWS}`), 'no subsets without a DestinationRule');
  t.end();
});

t.test('EDS: WorkloadEntries by selector and namespace, localities, weights, subsets, 15006 for mTLS, the app port for plaintext', (t) => {
  const { eds } = sidecar();
  const all = eds.get(`outbound|9080||${REVIEWS}`)!;
  t.strictSame(
    all.localities.map((l) => [l.locality, l.priority, l.weight, l.endpoints.map((e) => [`${e.address.host}:${e.address.port}`, e.weight])]),
    [
      [{ region: 'aws-us-east-1', zone: 'aws-us-east-1a', subZone: '' }, 0, 1, [['10.0.1.1:15006', 1]]],
      [{ region: 'aws-us-east-1', zone: 'aws-us-east-1b', subZone: '' }, 0, 3, [['10.0.1.2:15006', 3]]],
      [{ region: 'azure-eastus', zone: 'azure-eastus-1', subZone: 'rack7' }, 0, 1, [['10.0.3.1:15006', 1]]],
      [{ region: 'gcp-us-east4', zone: 'gcp-us-east4-a', subZone: '' }, 0, 2, [['10.0.2.1:15006', 2]]],
    ],
    'the impostor with the same labels in another namespace is not selected',
  );
  t.strictSame(endpoints(eds.get(`outbound|9080|v1|${REVIEWS}`)), ['10.0.1.1:15006', '10.0.1.2:15006']);
  t.strictSame(endpoints(eds.get(`outbound|9080|v2|${REVIEWS}`)), ['10.0.2.1:15006']);
  t.strictSame(endpoints(eds.get(`outbound|9080|v3|${REVIEWS}`)), ['10.0.3.1:19080'], 'plaintext: WorkloadEntry.ports[name]');
  t.strictSame(endpoints(eds.get(`outbound|9081|v3|${REVIEWS}`)), ['10.0.3.1:9081'], 'plaintext: the port number when the entry does not map it');
  t.strictSame(endpoints(eds.get(`outbound|9080||${RATINGS}`)), ['10.0.4.1:8080']);
  t.strictSame(endpoints(eds.get(`outbound|9080||${DETAILS}`)), ['10.1.0.1:15006']);
  t.match(eds.get(`outbound|80||${EXTERNAL}`), { localities: [{ locality: { region: 'internet' }, endpoints: [{ address: { host: '203.0.113.10', port: 80 } }] }] }, 'inline endpoints');
  t.end();
});

t.test('RDS inbound and inbound clusters: the services that select the node, else its first HTTP pod port', (t) => {
  const fe = sidecar();
  t.match(fe.routes.get('inbound')!.virtualHosts, [
    { name: `inbound|${FRONTEND}:80`, domains: [FRONTEND, `${FRONTEND}:80`, 'frontend.default', 'frontend.default:80', 'frontend', 'frontend:80'], routes: [{ action: { action: { cluster: 'inbound|9080||', timeoutMs: 0 } } }] },
    { name: 'inbound|*', domains: ['*'], routes: [{ action: { action: { cluster: 'inbound|9080||' } } }] },
  ]);
  // reviews-v3 is selected by labels; its WorkloadEntry maps "http" to 19080, "grpc" falls back to the port.
  const v3 = sidecar({ sa: 'bookinfo-reviews-v3', ip: '10.0.3.1', labels: { app: 'reviews', version: 'v3' } });
  const rc = v3.routes.get('inbound')!;
  t.strictSame(rc.virtualHosts.map((v) => [v.name, v.routes.map((r) => r.action.kind === 'route' && r.action.action.cluster)]), [
    [`inbound|${REVIEWS}:9080`, ['inbound|19080||']],
    [`inbound|${REVIEWS}:9081`, ['inbound|9081||']],
    ['inbound|*', ['inbound|19080||']],
  ]);
  t.match(v3.clusters.get('inbound|19080||'), { protocol: 'HTTP1', loadAssignment: { localities: [{ endpoints: [{ address: { host: '10.0.3.1', port: 19080 } }] }] } });
  t.match(v3.clusters.get('inbound|9081||'), { protocol: 'HTTP2' });
  // Selected by address only: a sidecar in front of the external API's inline endpoint.
  const byIp = sidecar({ ip: '203.0.113.10', labels: {} });
  t.strictSame(byIp.routes.get('inbound')!.virtualHosts.map((v) => v.name), [`inbound|${EXTERNAL}:80`, 'inbound|*']);
  // Selected by nothing: the first container port named as HTTP by Istio's convention.
  const batch = sidecar({ ip: 'fd00::5', labels: { app: 'batch' }, ports: [{ name: 'metrics', containerPort: 15090 }, { name: 'grpc-api', containerPort: 7070 }] });
  t.match(batch.routes.get('inbound')!.virtualHosts, [{ name: 'inbound|*', domains: ['*'], routes: [{ action: { action: { cluster: 'inbound|7070||' } } }] }]);
  t.match(batch.clusters.get('inbound|7070||'), { protocol: 'HTTP2', loadAssignment: { localities: [{ endpoints: [{ address: { host: 'fd00::5', port: 7070 } }] }] } });
  t.match(batch.listeners.get('virtualOutbound'), { address: { host: 'fd00::5', port: 15001 } });
  const none = sidecar({ ip: '10.5.0.1', labels: {}, ports: [] });
  t.strictSame(none.routes.get('inbound')!.virtualHosts, [], 'nothing to route to: an empty table, not a guess');
  t.notOk([...none.clusters.keys()].some((n) => n.startsWith('inbound|')));
  t.end();
});
