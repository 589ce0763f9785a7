// Proxyless gRPC output (gRFC A27/A28) checked by grpc-js-xds's own resource validators, as a real client runs them.
import { createRequire } from 'node:module';
import t from 'tap';
import { translate } from '../../../src/control/translate/index.js';
import { checkConsistent } from '../../../src/control/translate/consistency.js';
import { decodeCanonical } from '../../../src/xds/canonical.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL, typeForUrl } from '../../../src/xds/protos.js';
import { grpcAccepts } from './grpc-validators.js';
import { OPTS, RATINGS, REVIEWS, TD, bookinfo, decodeAll, dest, dr, node, policy, vs, we } from './helpers.js';

const require = createRequire(import.meta.url);

const proxylessNode = (ns = 'default') => node({ proxyless: true, ns, sa: 'productpage', id: 'grpc~10.0.0.9~productpage.default~default.svc.cluster.local' });

t.test('every proxyless resource passes grpc-js-xds validation, and the snapshot is consistent', (t) => {
  const s = translate(bookinfo(), proxylessNode(), OPTS);
  grpcAccepts(t, s);
  t.strictSame(checkConsistent(s), []);
  // Endpoints also pass our own decoder (the rest carries gRPC-only fields outside the sidecar's subset).
  decodeAll(s, CLUSTER_LOAD_ASSIGNMENT_TYPE_URL);
  t.end();
});

t.test('listeners: one api_listener per target name users write, with RDS of the same name over ADS', (t) => {
  const s = translate(bookinfo(), proxylessNode(), OPTS);
  const lds = grpcAccepts(t, s).get(LISTENER_TYPE_URL)!;
  for (const n of [`${REVIEWS}:9080`, 'reviews.default:9080', 'reviews:9080', `${REVIEWS}:9081`, 'reviews:9081', 'details.other:9080', 'api.example.com:80']) t.ok(lds.has(n), n);
  t.notOk(lds.has('details:9080'), 'no short name for another namespace');
  t.notOk([...lds.keys()].some((n) => n.endsWith(':443') || n.endsWith(':9443')), 'TLS/HTTPS ports are not routed');
  const hcm = decodeCanonical(typeForUrl(LISTENER_TYPE_URL)!, s.resources.get(LISTENER_TYPE_URL)!.get('reviews:9080')!);
  t.equal((hcm.api_listener as { api_listener: { type_url: string } }).api_listener.type_url, 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
  const other = translate(bookinfo(), proxylessNode('other'), OPTS);
  t.ok(other.resources.get(LISTENER_TYPE_URL)!.has('details:9080'), 'a caller in "other" gets the short name of its own service');
  t.notOk(other.resources.get(LISTENER_TYPE_URL)!.has('reviews:9080'));
  t.end();
});

t.test('route tables: the vhost gRPC picks for the target, weighted clusters and header matches', (t) => {
  const s = translate(bookinfo(), proxylessNode(), OPTS);
  const rds = grpcAccepts(t, s).get(ROUTE_CONFIGURATION_TYPE_URL)!;
  t.equal(rds.size, s.resources.get(LISTENER_TYPE_URL)!.size, 'one route table per listener');
  const rc = rds.get('reviews:9080') as { virtual_hosts: { name: string; domains: string[]; routes: unknown[] }[] };
  t.equal(rc.virtual_hosts.length, 1);
  const vh = rc.virtual_hosts[0]!;
  t.equal(vh.name, `${REVIEWS}:9080`);
  t.ok(vh.domains.includes('reviews:9080') && vh.domains.includes(`${REVIEWS}:9080`), 'the listener name is one of the domains');
  // gRPC's own lookup (xds-dependency-manager findVirtualHostForDomain) must find the vhost for each target.
  const { findVirtualHostForDomain } = require('@grpc/grpc-js-xds/build/src/xds-dependency-manager.js');
  for (const [name, r] of rds) t.ok(findVirtualHostForDomain((r as typeof rc).virtual_hosts, name), `gRPC finds a virtual host for ${name}`);
  const noTimeout = { seconds: '0', nanos: 0 };
  t.match(vh.routes, [
    {
      name: 'jason.user',
      match: { prefix: '/', headers: [{ name: 'end-user', string_match: { exact: 'jason' } }] },
      route: { cluster: `outbound|9080|v2|${REVIEWS}`, max_stream_duration: { max_stream_duration: noTimeout } },
    },
    { name: 'jason', match: { headers: [{ name: 'x-canary', string_match: { prefix: 'yes' } }] } },
    {
      name: 'split',
      route: {
        weighted_clusters: { clusters: [{ name: `outbound|9080|v1|${REVIEWS}`, weight: { value: 90 } }, { name: `outbound|9080|v3|${REVIEWS}`, weight: { value: 10 } }] },
        // gRPC takes the VirtualService timeout from max_stream_duration (gRFC A31), not from timeout.
        max_stream_duration: { max_stream_duration: { seconds: '5', nanos: 0 } },
      },
    },
  ]);
  // Regexes grouped: grpc-js-xds anchors them as ^...$ itself (see the test below).
  t.match((rds.get('ratings:9080') as typeof rc).virtual_hosts[0]!.routes, [{ match: { prefix: '/ratings' } }, { match: { safe_regex: { regex: '(?:^/v[0-9]+/ratings$)' }, headers: [{ string_match: { safe_regex: { regex: '(?:v[12])' } } }] } }]);
  t.end();
});

t.test('clusters: EDS over ADS, round robin, plaintext by default; ISTIO_MUTUAL uses certificate providers gRPC understands', (t) => {
  const mtls = bookinfo({
    destinationRules: [
      dr('reviews', REVIEWS, { trafficPolicy: policy({ tls: { mode: 'ISTIO_MUTUAL' }, loadBalancer: { simple: 'LEAST_REQUEST' } }), subsets: [{ name: 'v1', labels: { version: 'v1' } }] }),
    ],
  });
  const s = translate(mtls, proxylessNode(), OPTS);
  const cds = grpcAccepts(t, s).get(CLUSTER_TYPE_URL)!;
  t.match(cds.get(`outbound|9080||${RATINGS}`), { type: 'EDS', edsServiceName: `outbound|9080||${RATINGS}`, securityUpdate: undefined, lbPolicyConfig: [{ xds_wrr_locality: { child_policy: [{ round_robin: {} }] } }] });
  const secure = cds.get(`outbound|9080|v1|${REVIEWS}`)!;
  t.match(secure, {
    type: 'EDS',
    lbPolicyConfig: [{ xds_wrr_locality: {} }],
    securityUpdate: { caCertificateProviderInstance: 'default', identityCertificateProviderInstance: 'default' },
  });
  const sans = (secure.securityUpdate as { subjectAltNameMatchers: { exact: string }[] }).subjectAltNameMatchers.map((m) => m.exact);
  t.strictSame(sans, [`spiffe://${TD}/ns/default/sa/bookinfo-reviews`, `spiffe://${TD}/ns/default/sa/bookinfo-reviews-v3`]);
  // The endpoints of an mTLS cluster are the workloads' sidecars (15006); plaintext ones the apps themselves.
  const eds = decodeAll(s, CLUSTER_LOAD_ASSIGNMENT_TYPE_URL);
  t.strictSame(eds.get(`outbound|9080|v1|${REVIEWS}`)!.localities.flatMap((l) => l.endpoints.map((e) => `${e.address.host}:${e.address.port}`)), ['10.0.1.1:15006', '10.0.1.2:15006']);
  t.strictSame(eds.get(`outbound|9080||${RATINGS}`)!.localities.flatMap((l) => l.endpoints.map((e) => `${e.address.host}:${e.address.port}`)), ['10.0.4.1:8080']);
  t.end();
});

t.test('EDS: every locality has a weight (gRPC drops those without) and no address repeats', (t) => {
  const s = translate(bookinfo(), proxylessNode(), OPTS);
  const eds = grpcAccepts(t, s).get(CLUSTER_LOAD_ASSIGNMENT_TYPE_URL)!;
  const reviews = eds.get(`outbound|9080||${REVIEWS}`) as { endpoints: { locality: object; load_balancing_weight: { value: number } }[] };
  t.strictSame(
    reviews.endpoints.map((e) => [e.locality, e.load_balancing_weight.value]),
    [
      [{ region: 'aws-us-east-1', zone: 'aws-us-east-1a', sub_zone: '' }, 1],
      [{ region: 'aws-us-east-1', zone: 'aws-us-east-1b', sub_zone: '' }, 3],
      [{ region: 'azure-eastus', zone: 'azure-eastus-1', sub_zone: 'rack7' }, 1],
      [{ region: 'gcp-us-east4', zone: 'gcp-us-east4-a', sub_zone: '' }, 2],
    ],
  );
  t.end();
});

t.test('EDS: WorkloadEntry weights adding up past uint32 are scaled down, ratios kept, so gRPC and Envoy accept them', (t) => {
  const MAX = 0xffff_ffff;
  const heavy = (name: string, address: string, locality: string, weight: number) => we(name, address, { labels: { app: 'reviews', version: 'v1' }, locality, sa: 'bookinfo-reviews', weight });
  const mesh = bookinfo({
    workloadEntries: [
      // Two maximal weights in one locality: their sum did not even encode (a uint32 field), so nothing translated.
      heavy('a', '10.0.1.1', 'aws-us-east-1/aws-us-east-1a', MAX),
      heavy('b', '10.0.1.2', 'aws-us-east-1/aws-us-east-1a', MAX),
      heavy('c', '10.0.1.3', 'gcp-us-east4/gcp-us-east4-a', MAX - 1),
      heavy('d', '10.0.1.4', 'gcp-us-east4/gcp-us-east4-a', 1),
    ],
  });
  const s = translate(mesh, proxylessNode(), OPTS);
  const eds = grpcAccepts(t, s).get(CLUSTER_LOAD_ASSIGNMENT_TYPE_URL)!;
  const v1 = eds.get(`outbound|9080|v1|${REVIEWS}`) as { endpoints: { load_balancing_weight: { value: number }; lb_endpoints: { load_balancing_weight: { value: number } }[] }[] };
  const weights = v1.endpoints.map((l) => l.lb_endpoints.map((e) => e.load_balancing_weight.value));
  const localities = v1.endpoints.map((l) => l.load_balancing_weight.value);
  t.strictSame(localities, weights.map((w) => w.reduce((a, b) => a + b, 0)), 'a locality weighs the sum of its endpoints');
  t.ok(localities.reduce((a, b) => a + b, 0) <= MAX, `the priority's total fits a uint32: ${localities}`);
  t.equal(weights[0]![0], weights[0]![1], 'equal weights stay equal');
  t.equal(weights[1]![1], 1, 'a small weight keeps the floor of 1');
  t.ok(Math.abs(weights[1]![0]! / weights[0]![0]! - 1) < 1e-6, 'the ratio between the heavy ones is kept');
  // Small weights are sent as written.
  t.strictSame(
    (grpcAccepts(t, translate(bookinfo(), proxylessNode(), OPTS)).get(CLUSTER_LOAD_ASSIGNMENT_TYPE_URL)!.get(`outbound|9080|v1|${REVIEWS}`) as typeof v1).endpoints.map((l) => l.lb_endpoints.map((e) => e.load_balancing_weight.value)),
    [[1], [3]],
  );
  t.end();
});

t.test('regex matches are whole-value matches in grpc-js-xds too, alternations included', (t) => {
  const mesh = bookinfo({
    virtualServices: [vs('reviews', [REVIEWS], [{ match: [{ uri: { regex: '/a|/b' }, headers: { 'end-user': { regex: 'jason|kim' } } }], route: [{ destination: dest(REVIEWS, 'v2'), weight: 100 }] }])],
  });
  const rds = grpcAccepts(t, translate(mesh, proxylessNode(), OPTS)).get(ROUTE_CONFIGURATION_TYPE_URL)!;
  const route = (rds.get('reviews:9080') as { virtual_hosts: { routes: { match: unknown }[] }[] }).virtual_hosts[0]!.routes[0]!;
  // gRPC's own route predicate (what its resolver builds from the route), fed a method path and metadata.
  const { getPredicateForMatcher } = require('@grpc/grpc-js-xds/build/src/route.js');
  const { Metadata } = require('@grpc/grpc-js');
  const matches = (path: string, user: string) => {
    const md = new Metadata();
    md.set('end-user', user);
    return getPredicateForMatcher(route.match).apply(path, md) as boolean;
  };
  t.ok(matches('/a', 'jason') && matches('/b', 'kim'), 'the alternatives match');
  // Unchanged, grpc-js would compile ^jason|kim$: any value starting with "jason" or ending with "kim".
  t.notOk(matches('/a', 'jasonx'), 'no prefix match of the first alternative');
  t.notOk(matches('/a', 'xkim'), 'no suffix match of the last one');
  t.notOk(matches('/ax', 'jason'), 'the path regex is whole-path too');
  // A sidecar gets the regex as written (Envoy matches the whole value itself).
  const sidecarRoutes = decodeAll(translate(mesh, node(), OPTS), ROUTE_CONFIGURATION_TYPE_URL).get('outbound')!;
  t.match(JSON.stringify(sidecarRoutes), /"jason\|kim"/);
  t.end();
});
