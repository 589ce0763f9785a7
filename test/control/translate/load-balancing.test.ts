// DestinationRule loadBalancer / outlierDetection / localityLbSetting -> CDS, RDS hash_policy and per-caller EDS,
// read back at proto level (decodeCanonical), and the proxyless side through grpc-js-xds's own validators.
import t from 'tap';
import type { LoadBalancerSettings, LocalityLbSetting, OutlierDetection, TrafficPolicy, WorkloadEntry } from '../../../src/control/mesh/types.js';
import type { NodeSnapshot } from '../../../src/control/snapshot.js';
import { translate } from '../../../src/control/translate/index.js';
import { localityMatch } from '../../../src/control/translate/endpoints.js';
import { TYPE_URL_PEAK_EWMA } from '../../../src/model/types.js';
import { decodeCanonical, unpackAny, type ProtoObj } from '../../../src/xds/canonical.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL, typeForUrl } from '../../../src/xds/protos.js';
import { grpcAccepts } from './grpc-validators.js';
import { OPTS, REVIEWS, bookinfo, decodeAll, dest, dr, node, policy, se, vs, we, type NodeOpts } from './helpers.js';

const C = `outbound|9080||${REVIEWS}`;
const proto = (s: NodeSnapshot, type: string, name: string): ProtoObj => decodeCanonical(typeForUrl(type)!, s.resources.get(type as never)!.get(name)!);
const any = (o: unknown) => {
  const r = unpackAny(o as ProtoObj, '');
  if (!r.ok) throw new Error('bad Any');
  return r.value;
};

/** bookinfo with one DestinationRule on reviews (a top-level policy, and subset v1 with its own). */
function meshWith(top: Partial<TrafficPolicy>, v1: Partial<TrafficPolicy> = {}) {
  return bookinfo({
    destinationRules: [
      dr('reviews', REVIEWS, {
        trafficPolicy: policy(top),
        subsets: [
          { name: 'v1', labels: { version: 'v1' }, ...(Object.keys(v1).length && { trafficPolicy: policy(v1) }) },
          { name: 'v2', labels: { version: 'v2' } },
          { name: 'v3', labels: { version: 'v3' } },
        ],
      }),
    ],
  });
}
const sidecarCluster = (top: Partial<TrafficPolicy>, name = C, v1: Partial<TrafficPolicy> = {}) => proto(translate(meshWith(top, v1), node(), OPTS), CLUSTER_TYPE_URL, name);

t.test('loadBalancer.simple and consistentHash -> lb_policy and its config, as istiod writes them', (t) => {
  const lb = (loadBalancer: LoadBalancerSettings) => sidecarCluster({ loadBalancer });
  t.equal(lb({ simple: 'ROUND_ROBIN' }).lb_policy ?? 'ROUND_ROBIN', 'ROUND_ROBIN', 'the enum default, so absent from the decoded message');
  t.equal(lb({ simple: 'LEAST_CONN' }).lb_policy, 'LEAST_REQUEST', 'the deprecated LEAST_CONN is LEAST_REQUEST');
  // Outrigger's default is PEAK_EWMA (the tail-latency winner in bench/RESULTS.md), with istiod's default,
  // LEAST_REQUEST, as the fallback an Envoy or a gRPC client would take.
  const policies = (c: Record<string, any>) => (c.load_balancing_policy?.policies ?? []).map((p: Record<string, any>) => p.typed_extension_config.name);
  t.strictSame(policies(lb({ simple: 'UNSPECIFIED' })), ['outrigger.peak_ewma', 'envoy.load_balancing_policies.least_request'], 'the default');
  t.strictSame(policies(proto(translate(bookinfo({ destinationRules: [] }), node(), OPTS), CLUSTER_TYPE_URL, C)), ['outrigger.peak_ewma', 'envoy.load_balancing_policies.least_request'], 'no DestinationRule: the default too');
  t.notOk(lb({ simple: 'LEAST_REQUEST' }).load_balancing_policy, 'an explicit picker is written as lb_policy');
  const ring = lb({ consistentHash: { httpHeaderName: 'x-user', ringHash: { minimumRingSize: 4096 } } });
  t.match(ring, { lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: { value: '4096' } } });
  t.match(lb({ consistentHash: { useSourceIp: true } }), { lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: { value: '1024' } } }, 'no algorithm: ring hash, 1024');
  const maglev = lb({ simple: 'RANDOM', consistentHash: { useSourceIp: true, maglev: { tableSize: 65537 } } });
  t.match(maglev, { lb_policy: 'MAGLEV', maglev_lb_config: { table_size: { value: '65537' } } }, 'consistentHash wins over simple, as istiod applies it last');
  t.notOk(maglev.ring_hash_lb_config);
  t.end();
});

t.test('PEAK_EWMA: load_balancing_policy with the TypedStruct first and Envoy least_request as the fallback', (t) => {
  const c = sidecarCluster({ loadBalancer: { simple: 'PEAK_EWMA' } });
  t.equal(c.lb_policy, undefined, 'lb_policy left unset: load_balancing_policy takes precedence anyway');
  const [first, second] = (c.load_balancing_policy as { policies: { typed_extension_config: { name: string; typed_config: unknown } }[] }).policies;
  t.equal(first!.typed_extension_config.name, 'outrigger.peak_ewma');
  const ts = any(first!.typed_extension_config.typed_config);
  t.equal(ts.typeUrl, 'type.googleapis.com/xds.type.v3.TypedStruct');
  t.match(ts.value, { type_url: TYPE_URL_PEAK_EWMA });
  t.equal(second!.typed_extension_config.name, 'envoy.load_balancing_policies.least_request');
  t.equal(any(second!.typed_extension_config.typed_config).typeUrl, 'type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest');
  t.end();
});

t.test("outlierDetection -> outlier_detection exactly as istiod's applyOutlierDetection; minHealthPercent -> panic threshold", (t) => {
  const od = (o: OutlierDetection) => sidecarCluster({ outlierDetection: o });
  const full = od({ consecutive5xxErrors: 3, consecutiveGatewayErrors: 0, intervalMs: 1500, baseEjectionTimeMs: 30_000, maxEjectionPercent: 50, minHealthPercent: 20, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2 });
  t.strictSame(full.outlier_detection, {
    consecutive_5xx: { value: 3 },
    interval: { seconds: '1', nanos: 500_000_000 },
    base_ejection_time: { seconds: '30' },
    max_ejection_percent: { value: 50 },
    enforcing_consecutive_5xx: { value: 100 },
    enforcing_success_rate: {},
    consecutive_gateway_failure: {},
    enforcing_consecutive_gateway_failure: {},
    split_external_local_origin_errors: true,
    consecutive_local_origin_failure: { value: 2 },
    enforcing_consecutive_local_origin_failure: { value: 100 },
    enforcing_local_origin_success_rate: {},
  });
  t.strictSame(full.common_lb_config, { healthy_panic_threshold: { value: 20 } });
  const bare = od({ maxEjectionPercent: 0 });
  t.strictSame(bare.outlier_detection, { enforcing_success_rate: {} }, 'unwritten fields keep Envoy defaults; success rate is off; max 0 is not written');
  t.strictSame(bare.common_lb_config, { healthy_panic_threshold: {} }, 'panic mode off unless minHealthPercent says otherwise (Istio)');
  t.notOk((od({ splitExternalLocalOriginErrors: false }).outlier_detection as ProtoObj).split_external_local_origin_errors);
  t.notOk(sidecarCluster({ loadBalancer: { simple: 'RANDOM' } }).outlier_detection, 'none without outlierDetection');
  t.notOk(sidecarCluster({ loadBalancer: { simple: 'RANDOM' } }).common_lb_config);
  t.end();
});

t.test('locality_weighted_lb_config when distribute is set, or failover/failoverPriority with outlier detection', (t) => {
  const weighted = (l: LocalityLbSetting, outlier?: OutlierDetection) =>
    !!(sidecarCluster({ loadBalancer: { localityLbSetting: l }, ...(outlier && { outlierDetection: outlier }) }).common_lb_config as ProtoObj | undefined)?.locality_weighted_lb_config;
  const none = { distribute: [], failover: [], failoverPriority: [] };
  t.ok(weighted({ ...none, distribute: [{ from: '*', to: { '*': 100 } }] }));
  t.ok(weighted({ ...none, failover: [{ from: 'a', to: 'b' }] }, { consecutive5xxErrors: 1 }));
  t.ok(weighted({ ...none, failoverPriority: ['version'] }, { consecutive5xxErrors: 1 }));
  t.notOk(weighted(none, { consecutive5xxErrors: 1 }), 'default failover by locality needs no locality weights');
  t.notOk(weighted({ ...none, enabled: false, distribute: [{ from: '*', to: { '*': 100 } }] }), 'enabled: false turns it all off');
  t.end();
});

t.test("merge rules: a subset's fields replace the rule's; port-level settings replace all four, unset ones included", (t) => {
  const top = { loadBalancer: { simple: 'RANDOM' as const }, outlierDetection: { consecutive5xxErrors: 7 } };
  t.match(sidecarCluster(top, `outbound|9080|v2|${REVIEWS}`), { lb_policy: 'RANDOM', outlier_detection: { consecutive_5xx: { value: 7 } } }, 'v2 inherits');
  t.match(sidecarCluster(top, `outbound|9080|v1|${REVIEWS}`, { loadBalancer: { simple: 'LEAST_CONN' } }), { lb_policy: 'LEAST_REQUEST', outlier_detection: { consecutive_5xx: { value: 7 } } });
  const ported = { ...top, portLevelSettings: [{ port: 9080, loadBalancer: { simple: 'LEAST_CONN' as const } }] };
  const c = sidecarCluster(ported);
  t.equal(c.lb_policy, 'LEAST_REQUEST');
  t.notOk(c.outlier_detection, 'the port-level policy does not inherit outlierDetection');
  t.match(sidecarCluster(ported, `outbound|9081||${REVIEWS}`), { lb_policy: 'RANDOM', outlier_detection: {} }, 'another port keeps the rule');
  t.end();
});

t.test('consistentHash -> hash_policy on every route to the cluster, one per destination (istiod route.go)', (t) => {
  const hashOf = (loadBalancer: LoadBalancerSettings, o: NodeOpts = {}) => {
    const s = translate(meshWith({ loadBalancer }), node(o), OPTS);
    const vh = (proto(s, ROUTE_CONFIGURATION_TYPE_URL, 'outbound').virtual_hosts as ProtoObj[]).find((v) => v.name === `${REVIEWS}:9080`)!;
    return (vh.routes as ProtoObj[]).map((r) => (r.route as ProtoObj).hash_policy);
  };
  t.strictSame(hashOf({ consistentHash: { httpHeaderName: 'x-user' } }), [[{ header: { header_name: 'x-user' } }], [{ header: { header_name: 'x-user' } }], [{ header: { header_name: 'x-user' } }, { header: { header_name: 'x-user' } }]]);
  t.strictSame(hashOf({ consistentHash: { httpCookie: { name: 'sid', path: '/', ttlMs: 60_000 } } })[0], [{ cookie: { name: 'sid', ttl: { seconds: '60' }, path: '/' } }]);
  t.strictSame(hashOf({ consistentHash: { httpCookie: { name: 'sid' } } })[0], [{ cookie: { name: 'sid' } }]);
  t.strictSame(hashOf({ consistentHash: { useSourceIp: true } })[0], [{ connection_properties: { source_ip: true } }]);
  t.strictSame(hashOf({ consistentHash: { httpQueryParameterName: 'u' } })[0], [{ query_parameter: { name: 'u' } }]);
  t.strictSame(hashOf({ simple: 'RANDOM' }), [undefined, undefined, undefined], 'no consistent hash, no hash_policy');
  // The default route of a service without a VirtualService gets it too.
  const mesh = bookinfo({ virtualServices: [], destinationRules: [dr('reviews', REVIEWS, { trafficPolicy: policy({ loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } }) })] });
  const vh = (proto(translate(mesh, node(), OPTS), ROUTE_CONFIGURATION_TYPE_URL, 'outbound').virtual_hosts as ProtoObj[]).find((v) => v.name === `${REVIEWS}:9080`)!;
  t.strictSame(((vh.routes as ProtoObj[])[0]!.route as ProtoObj).hash_policy, [{ header: { header_name: 'x-user' } }]);
  t.end();
});

// ---- per-caller EDS ----

const REGIONS = ['aws-us-east-1', 'gcp-us-east4', 'azure-eastus'];
const ZONES = ['a', 'b'];
/** One reviews endpoint per (region, zone): six localities. */
const spread: WorkloadEntry[] = REGIONS.flatMap((r, i) => ZONES.map((z, j) => we(`reviews-${r}-${z}`, `10.${i}.${j}.1`, { labels: { app: 'reviews', version: 'v1', tier: z === 'a' ? 'gold' : 'silver' }, locality: `${r}/${r}-${z}`, sa: 'r' })));
function spreadMesh(tp: Partial<TrafficPolicy>) {
  return bookinfo({ workloadEntries: spread, destinationRules: [dr('reviews', REVIEWS, { trafficPolicy: policy(tp) })] });
}
const at = (region: string, zone: string, labels: Record<string, string> = { app: 'frontend' }) => node({ locality: { region, zone: `${region}-${zone}`, subZone: '' }, labels });
/** address -> priority of one caller's ClusterLoadAssignment of reviews:9080. */
function priorities(s: NodeSnapshot): Record<string, number> {
  return priorities2(s, C);
}
function priorities2(s: NodeSnapshot, name: string): Record<string, number> {
  const cla = proto(s, CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, name);
  const out: Record<string, number> = {};
  for (const l of cla.endpoints as ProtoObj[]) for (const e of l.lb_endpoints as ProtoObj[]) out[String(((e.endpoint as ProtoObj).address as { socket_address: { address: string } }).socket_address.address)] = Number(l.priority ?? 0);
  return out;
}
const OUTLIER = { outlierDetection: { consecutive5xxErrors: 3 } };

t.test('per caller: same zone P0, same region P1, the other regions P2 (outlier detection on, default locality LB)', (t) => {
  const mesh = spreadMesh(OUTLIER);
  for (const [i, r] of REGIONS.entries()) {
    for (const [j, z] of ZONES.entries()) {
      const p = priorities(translate(mesh, at(r, z), OPTS));
      const want: Record<string, number> = {};
      for (const [k] of REGIONS.entries()) for (const [l] of ZONES.entries()) want[`10.${k}.${l}.1`] = k !== i ? 2 : l !== j ? 1 : 0;
      t.strictSame(p, want, `caller in ${r}/${z}`);
    }
  }
  t.strictSame(new Set(Object.values(priorities(translate(spreadMesh({ loadBalancer: { simple: 'RANDOM' } }), at('aws-us-east-1', 'a'), OPTS)))), new Set([0]), 'without outlier detection every locality stays at P0 (Istio)');
  const off = spreadMesh({ ...OUTLIER, loadBalancer: { localityLbSetting: { enabled: false, distribute: [], failover: [], failoverPriority: [] } } });
  t.strictSame(new Set(Object.values(priorities(translate(off, at('aws-us-east-1', 'a'), OPTS)))), new Set([0]), 'enabled: false');
  t.end();
});

t.test('failover: the named region comes next, the rest after; subzones make their own level', (t) => {
  const mesh = spreadMesh({ ...OUTLIER, loadBalancer: { localityLbSetting: { distribute: [], failover: [{ from: 'aws-us-east-1', to: 'azure-eastus' }], failoverPriority: [] } } });
  t.strictSame(priorities(translate(mesh, at('aws-us-east-1', 'a'), OPTS)), { '10.0.0.1': 0, '10.0.1.1': 1, '10.2.0.1': 2, '10.2.1.1': 2, '10.1.0.1': 3, '10.1.1.1': 3 });
  t.strictSame(priorities(translate(mesh, at('gcp-us-east4', 'b'), OPTS)), { '10.1.1.1': 0, '10.1.0.1': 1, '10.0.0.1': 2, '10.0.1.1': 2, '10.2.0.1': 2, '10.2.1.1': 2 }, 'a region without a failover entry: the rest share a level');
  const sub = node({ locality: { region: 'aws-us-east-1', zone: 'aws-us-east-1-a', subZone: 'rack1' } });
  t.strictSame(priorities(translate(mesh, sub, OPTS)), { '10.0.0.1': 0, '10.0.1.1': 1, '10.2.0.1': 2, '10.2.1.1': 2, '10.1.0.1': 3, '10.1.1.1': 3 }, 'same zone, other subzone: P1 (Istio), then renumbered without gaps');
  t.end();
});

t.test('failoverPriority: label-ordered priorities with topology labels, key=value overrides, then failover on top', (t) => {
  const lbs = (l: Partial<LocalityLbSetting>) => spreadMesh({ ...OUTLIER, loadBalancer: { localityLbSetting: { distribute: [], failover: [], failoverPriority: [], ...l } } });
  const byRegionThenTier = lbs({ failoverPriority: ['topology.kubernetes.io/region', 'tier'] });
  t.strictSame(priorities(translate(byRegionThenTier, at('gcp-us-east4', 'a', { app: 'frontend', tier: 'silver' }), OPTS)), {
    '10.1.1.1': 0,
    '10.1.0.1': 1,
    '10.0.0.1': 2,
    '10.0.1.1': 2,
    '10.2.0.1': 2,
    '10.2.1.1': 2,
  });
  t.strictSame(priorities(translate(lbs({ failoverPriority: ['tier=gold'] }), at('gcp-us-east4', 'a', { app: 'frontend', tier: 'silver' }), OPTS)), {
    '10.0.0.1': 0,
    '10.1.0.1': 0,
    '10.2.0.1': 0,
    '10.0.1.1': 1,
    '10.1.1.1': 1,
    '10.2.1.1': 1,
  });
  // topology.istio.io/network: the caller's NETWORK metadata against WorkloadEntry.network; mTLS to a subset.
  const nets = bookinfo({
    workloadEntries: [
      { ...we('n1', '10.5.0.1', { labels: { app: 'reviews', version: 'v1' }, sa: 'r' }), network: 'net-1' },
      { ...we('n2', '10.5.0.2', { labels: { app: 'reviews', version: 'v1' }, sa: 'r' }), network: 'net-2' },
    ],
    destinationRules: [
      dr('reviews', REVIEWS, {
        subsets: [{ name: 'v1', labels: { version: 'v1' }, trafficPolicy: policy({ ...OUTLIER, portLevelSettings: [{ port: 9080, ...OUTLIER, loadBalancer: { localityLbSetting: { distribute: [], failover: [], failoverPriority: ['topology.istio.io/network'] } } }] }) }],
      }),
    ],
  });
  const onNet = (network: string) => {
    const s = translate(nets, node({ id: network, ip: '10.5.9.9' }), OPTS);
    const p = translate(nets, { ...node({ id: network, ip: '10.5.9.9' }), network, cacheKey: network }, OPTS);
    return [priorities2(s, `outbound|9080|v1|${REVIEWS}`), priorities2(p, `outbound|9080|v1|${REVIEWS}`)];
  };
  t.strictSame(onNet('net-2'), [{ '10.5.0.1': 0, '10.5.0.2': 0 }, { '10.5.0.1': 1, '10.5.0.2': 0 }], 'no NETWORK: both differ alike; net-2: its own network first');
  const both = lbs({ failoverPriority: ['tier'], failover: [{ from: 'gcp-us-east4', to: 'aws-us-east-1' }] });
  t.strictSame(priorities(translate(both, at('gcp-us-east4', 'a', { app: 'frontend', tier: 'gold' }), OPTS)), {
    '10.1.0.1': 0,
    '10.0.0.1': 1,
    '10.2.0.1': 2,
    '10.1.1.1': 3,
    '10.0.1.1': 4,
    '10.2.1.1': 5,
  });
  t.end();
});

t.test('distribute: the first matching `from` sets the locality weights; unmatched localities get nothing', (t) => {
  const mesh = spreadMesh({
    loadBalancer: {
      localityLbSetting: {
        distribute: [{ from: 'aws-us-east-1/*', to: { 'aws-us-east-1/aws-us-east-1-a': 70, 'gcp-us-east4': 30 } }],
        failover: [],
        failoverPriority: [],
      },
    },
  });
  const weights = (s: NodeSnapshot) =>
    Object.fromEntries((proto(s, CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, C).endpoints as ProtoObj[]).map((l) => [`${(l.locality as ProtoObj).zone}`, (l.load_balancing_weight as { value: number }).value]));
  t.strictSame(weights(translate(mesh, at('aws-us-east-1', 'b'), OPTS)), { 'aws-us-east-1-a': 70, 'gcp-us-east4-a': 15, 'gcp-us-east4-b': 15 });
  t.strictSame(Object.keys(weights(translate(mesh, at('azure-eastus', 'a'), OPTS))).length, 6, 'a caller no `from` matches keeps every locality and its plain weight');
  t.ok(localityMatch({ region: 'r', zone: 'z', subZone: 's' }, 'r/*'));
  t.ok(localityMatch({ region: 'r', zone: 'z', subZone: 's' }, '*'));
  t.notOk(localityMatch({ region: 'r', zone: 'z', subZone: 's' }, 'r/y'));
  t.end();
});

t.test('EDS is shared by callers that agree on locality (and failover labels); proxyless get the same priorities', (t) => {
  const mesh = spreadMesh({ ...OUTLIER, loadBalancer: { localityLbSetting: { distribute: [], failover: [], failoverPriority: ['tier'] } } });
  const pod = (ip: string, zone: string, tier: string) => translate(mesh, node({ ip, id: ip, locality: { region: 'aws-us-east-1', zone: `aws-us-east-1-${zone}`, subZone: '' }, labels: { app: 'frontend', tier } }), OPTS);
  const eds = (s: NodeSnapshot) => s.resources.get(CLUSTER_LOAD_ASSIGNMENT_TYPE_URL)!.get(C);
  const [a, b, c, d] = [pod('10.9.0.1', 'a', 'gold'), pod('10.9.0.2', 'a', 'gold'), pod('10.9.0.3', 'b', 'gold'), pod('10.9.0.4', 'a', 'silver')];
  t.equal(eds(a), eds(b), 'two sidecars in one zone with the same tier: one encoding');
  t.equal(eds(a), eds(c), 'failoverPriority alone orders by labels, not locality (istiod): another zone, the same bytes');
  t.not(eds(a), eds(d), 'another tier, other priorities');
  const byZone = spreadMesh(OUTLIER);
  const zoned = (zone: string) => translate(byZone, node({ ip: '10.9.1.1', id: zone, locality: { region: 'aws-us-east-1', zone: `aws-us-east-1-${zone}`, subZone: '' } }), OPTS);
  t.not(eds(zoned('a')), eds(zoned('b')), 'by locality: each zone its own');
  const other = translate(mesh, node({ ip: '10.9.0.5', id: 'x', locality: { region: 'aws-us-east-1', zone: 'aws-us-east-1-a', subZone: '' }, labels: { app: 'frontend', tier: 'gold', unrelated: 'x' } }), OPTS);
  t.equal(eds(other), eds(a), 'labels no failoverPriority names do not split the cache');
  const grpc = translate(spreadMesh(OUTLIER), node({ proxyless: true, locality: { region: 'gcp-us-east4', zone: 'gcp-us-east4-b', subZone: '' } }), OPTS);
  t.strictSame(priorities(grpc), { '10.1.1.1': 0, '10.1.0.1': 1, '10.0.0.1': 2, '10.0.1.1': 2, '10.2.0.1': 2, '10.2.1.1': 2 });
  grpcAccepts(t, grpc);
  t.end();
});

t.test('proxyless clusters: what grpc-js-xds 1.14 supports (ROUND_ROBIN, RING_HASH), everything else round robin', (t) => {
  const lbOf = (loadBalancer: LoadBalancerSettings) => {
    const s = translate(meshWith({ loadBalancer, outlierDetection: { consecutive5xxErrors: 2 } }), node({ proxyless: true }), OPTS);
    grpcAccepts(t, s);
    return proto(s, CLUSTER_TYPE_URL, C);
  };
  t.match(lbOf({ consistentHash: { httpHeaderName: 'x-user', ringHash: { minimumRingSize: 64 } } }), { lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: { value: '64' } } });
  for (const loadBalancer of [{ simple: 'PEAK_EWMA' }, { simple: 'LEAST_REQUEST' }, { consistentHash: { useSourceIp: true, maglev: { tableSize: 7 } } }] as LoadBalancerSettings[]) {
    const c = lbOf(loadBalancer);
    t.equal(c.lb_policy ?? 'ROUND_ROBIN', 'ROUND_ROBIN', JSON.stringify(loadBalancer));
    t.notOk(c.load_balancing_policy);
    t.notOk(c.outlier_detection, "istiod's gRPC generator writes no outlier detection");
  }
  t.end();
});

t.test('a ServiceEntry endpoint without locality, and the gRPC route of a hashed service', (t) => {
  const mesh = bookinfo({
    serviceEntries: [se('reviews', [REVIEWS], [{ number: 9080, protocol: 'HTTP', name: 'http' }], { selector: { app: 'reviews' } })],
    workloadEntries: [we('r1', '10.0.0.7', { labels: { app: 'reviews' }, sa: 'r' })],
    virtualServices: [vs('reviews', [REVIEWS], [{ match: [], route: [{ destination: dest(REVIEWS), weight: 100 }] }])],
    destinationRules: [dr('reviews', REVIEWS, { trafficPolicy: policy({ ...OUTLIER, loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } }) })],
  });
  const s = translate(mesh, node({ proxyless: true, locality: { region: 'r', zone: 'z', subZone: '' } }), OPTS);
  const r = grpcAccepts(t, s);
  t.strictSame(priorities(s), { '10.0.0.7': 0 }, 'another region than the caller, but the only level: renumbered to P0');
  t.match(r.get(ROUTE_CONFIGURATION_TYPE_URL)!.get(`${REVIEWS}:9080`), { virtual_hosts: [{ routes: [{ route: { hash_policy: [{ header: { header_name: 'x-user' } }] } }] }] });
  t.end();
});

t.test("the sidecar's own decoders read what the translator writes into the balancer's model", (t) => {
  const mesh = spreadMesh({
    outlierDetection: { consecutive5xxErrors: 2, consecutiveGatewayErrors: 1, minHealthPercent: 30, baseEjectionTimeMs: 5000 },
    loadBalancer: { simple: 'PEAK_EWMA', localityLbSetting: { distribute: [], failover: [{ from: 'aws-us-east-1', to: 'azure-eastus' }], failoverPriority: [] } },
  });
  const s = translate(mesh, at('aws-us-east-1', 'a'), OPTS);
  const c = decodeAll(s, CLUSTER_TYPE_URL).get(C)!;
  t.match(c, { lbPolicy: 'PEAK_EWMA', lb: { policy: 'PEAK_EWMA', healthyPanicThresholdPercent: 30, localityWeighted: true } });
  t.match(c.outlierDetection, { consecutive5xx: 2, enforcingConsecutive5xx: 100, consecutiveGatewayFailure: 1, enforcingConsecutiveGatewayFailure: 100, enforcingSuccessRate: 0, baseEjectionTimeMs: 5000 });
  const cla = decodeAll(s, CLUSTER_LOAD_ASSIGNMENT_TYPE_URL).get(C)!;
  t.strictSame(
    cla.localities.map((l) => [l.locality.zone, l.priority]),
    [['aws-us-east-1-a', 0], ['aws-us-east-1-b', 1], ['azure-eastus-a', 2], ['azure-eastus-b', 2], ['gcp-us-east4-a', 3], ['gcp-us-east4-b', 3]],
  );
  const hashed = translate(meshWith({ loadBalancer: { consistentHash: { httpCookie: { name: 'sid', ttlMs: 1000 } } } }), node(), OPTS);
  t.match(decodeAll(hashed, CLUSTER_TYPE_URL).get(C), { lbPolicy: 'RING_HASH', lb: { ringHash: { minimumRingSize: 1024 } } });
  const rc = decodeAll(hashed, ROUTE_CONFIGURATION_TYPE_URL).get('outbound')!;
  const route = rc.virtualHosts.find((v) => v.name === `${REVIEWS}:9080`)!.routes[0]!;
  t.match(route.action, { kind: 'route', action: { hashPolicy: [{ kind: 'cookie', name: 'sid', ttlMs: 1000 }] } });
  t.end();
});
