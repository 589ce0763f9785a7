// Cluster load-balancing decoders: lb_policy and its lb_config, load_balancing_policy (typed, PEAK_EWMA), common_lb_config.
import t from 'tap';
import type { Type } from 'protobufjs';
import { LB_DEFAULTS, TYPE_URL_PEAK_EWMA, type LbConfig } from '../../src/model/types.js';
import { CLUSTER_TYPE_URL, typeForUrl } from '../../src/xds/protos.js';
import { decodeResource } from '../../src/xds/resources/index.js';
import { problems, viaJson } from './helpers.js';

const decode = (json: Record<string, unknown>) => viaJson(CLUSTER_TYPE_URL, { name: 'c', ...json });
const lbOf = (json: Record<string, unknown>): LbConfig | string[] => {
  const r = decode(json);
  return r.ok ? r.value.lb : problems(r);
};
const lb = (over: Partial<LbConfig>): LbConfig => ({ ...LB_DEFAULTS, ...over });

const EXT = 'type.googleapis.com/envoy.extensions.load_balancing_policies';
const RR = `${EXT}.round_robin.v3.RoundRobin`;
const LR = `${EXT}.least_request.v3.LeastRequest`;
const RANDOM = `${EXT}.random.v3.Random`;
const RING = `${EXT}.ring_hash.v3.RingHash`;
const MAGLEV = `${EXT}.maglev.v3.Maglev`;
const WRR_LOCALITY = `${EXT}.wrr_locality.v3.WrrLocality`;
const XDS_TS = 'type.googleapis.com/xds.type.v3.TypedStruct';
const UDPA_TS = 'type.googleapis.com/udpa.type.v1.TypedStruct';

/** Cluster.load_balancing_policy with one TypedExtensionConfig per typed_config. */
const policies = (...configs: object[]) => ({
  load_balancing_policy: { policies: configs.map((typed_config, i) => ({ typed_extension_config: { name: `p${i}`, typed_config } })) },
});
const peakEwma = (value?: object, ts = XDS_TS) => ({ '@type': ts, type_url: TYPE_URL_PEAK_EWMA, ...(value && { value }) });
const P = 'load_balancing_policy.policies';
const TC = (i: number) => `${P}[${i}].typed_extension_config.typed_config`;

t.test('lb_policy: the five Envoy policies, with their defaults', (t) => {
  t.strictSame(lbOf({}), LB_DEFAULTS);
  for (const policy of ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH', 'MAGLEV'] as const) {
    const r = decode({ lb_policy: policy });
    t.strictSame(r.ok && [r.value.lbPolicy, r.value.lb], [policy, lb({ policy })], policy);
  }
  t.strictSame(lbOf({ lb_policy: 'CLUSTER_PROVIDED' }), ['lb_policy: CLUSTER_PROVIDED is not supported']);
  t.strictSame(lbOf({ lb_policy: 'LOAD_BALANCING_POLICY_CONFIG' }), ['lb_policy: LOAD_BALANCING_POLICY_CONFIG requires load_balancing_policy']);
  t.end();
});

t.test('least_request_lb_config: choice_count >= 2 and active_request_bias (RuntimeDouble default_value)', (t) => {
  const bias = (v: number | string) => ({ default_value: v, runtime_key: 'upstream.lr_bias' });
  t.strictSame(
    lbOf({ lb_policy: 'LEAST_REQUEST', least_request_lb_config: { choice_count: 3, active_request_bias: bias(0.5) } }),
    lb({ policy: 'LEAST_REQUEST', leastRequest: { choiceCount: 3, activeRequestBias: 0.5 } }),
  );
  t.strictSame(lbOf({ lb_policy: 'LEAST_REQUEST', least_request_lb_config: { active_request_bias: bias(0) } }), lb({ policy: 'LEAST_REQUEST', leastRequest: { choiceCount: 2, activeRequestBias: 0 } }));
  // Envoy replaces a negative or NaN bias by 1.0 (with a warning) rather than refusing the cluster.
  for (const v of [-2, 'NaN']) {
    t.strictSame(lbOf({ lb_policy: 'LEAST_REQUEST', least_request_lb_config: { active_request_bias: bias(v) } }), lb({ policy: 'LEAST_REQUEST' }), `bias ${v}`);
  }
  t.strictSame(lbOf({ lb_policy: 'LEAST_REQUEST', least_request_lb_config: { choice_count: 1, active_request_bias: { default_value: 2 }, slow_start_config: {} } }), [
    "least_request_lb_config.slow_start_config: field 'slow_start_config' is not supported",
    'least_request_lb_config.choice_count: must be at least 2, got 1',
    'least_request_lb_config.active_request_bias.runtime_key: is required',
  ]);
  t.strictSame(lbOf({ least_request_lb_config: {} }), ['least_request_lb_config: applies only to lb_policy LEAST_REQUEST (lb_policy is ROUND_ROBIN)']);
  t.end();
});

t.test('ring_hash_lb_config: ring sizes within 8M, minimum <= maximum, XX_HASH or MURMUR_HASH_2', (t) => {
  t.strictSame(
    lbOf({ lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: '64', maximum_ring_size: 4096, hash_function: 'MURMUR_HASH_2' } }),
    lb({ policy: 'RING_HASH', ringHash: { minimumRingSize: 64, maximumRingSize: 4096, hashFunction: 'MURMUR_HASH_2' } }),
  );
  t.strictSame(
    lbOf({ lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: 0, hash_function: 'XX_HASH' } }),
    lb({ policy: 'RING_HASH', ringHash: { ...LB_DEFAULTS.ringHash, minimumRingSize: 0 } }),
  );
  t.strictSame(lbOf({ lb_policy: 'RING_HASH', ring_hash_lb_config: { maximum_ring_size: 8_388_609 } }), ['ring_hash_lb_config.maximum_ring_size: 8388609 is outside [0, 8388608]']);
  t.strictSame(lbOf({ lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: 2048, maximum_ring_size: 1024 } }), [
    'ring_hash_lb_config.minimum_ring_size: 2048 is greater than maximum_ring_size 1024',
  ]);
  t.strictSame(lbOf({ lb_policy: 'MAGLEV', ring_hash_lb_config: {} }), ['ring_hash_lb_config: applies only to lb_policy RING_HASH (lb_policy is MAGLEV)']);
  t.end();
});

t.test('maglev_lb_config.table_size: prime and at most 5000011, as Envoy requires', (t) => {
  t.strictSame(lbOf({ lb_policy: 'MAGLEV', maglev_lb_config: { table_size: 5_000_011 } }), lb({ policy: 'MAGLEV', maglev: { tableSize: 5_000_011 } }));
  t.strictSame(lbOf({ lb_policy: 'MAGLEV', maglev_lb_config: { table_size: 251 } }), lb({ policy: 'MAGLEV', maglev: { tableSize: 251 } }));
  t.strictSame(lbOf({ lb_policy: 'MAGLEV', maglev_lb_config: { table_size: 65536 } }), ['maglev_lb_config.table_size: 65536 is not a prime number']);
  t.strictSame(lbOf({ lb_policy: 'MAGLEV', maglev_lb_config: { table_size: 1 } }), ['maglev_lb_config.table_size: 1 is not a prime number']);
  t.strictSame(lbOf({ lb_policy: 'MAGLEV', maglev_lb_config: { table_size: 5_000_012 } }), ['maglev_lb_config.table_size: 5000012 is greater than 5000011']);
  t.end();
});

t.test('round_robin_lb_config and the other lb_config members', (t) => {
  t.strictSame(lbOf({ round_robin_lb_config: {} }), LB_DEFAULTS);
  t.strictSame(lbOf({ round_robin_lb_config: { slow_start_config: { slow_start_window: '10s' } } }), [
    "round_robin_lb_config.slow_start_config: field 'slow_start_config' is not supported",
  ]);
  t.strictSame(lbOf({ lb_policy: 'RANDOM', round_robin_lb_config: {} }), ['round_robin_lb_config: applies only to lb_policy ROUND_ROBIN (lb_policy is RANDOM)']);
  t.strictSame(lbOf({ original_dst_lb_config: {} }), ["original_dst_lb_config: field 'original_dst_lb_config' is not supported"]);
  t.end();
});

t.test('common_lb_config: healthy_panic_threshold (0..100 %) and locality_weighted_lb_config', (t) => {
  t.strictSame(lbOf({ common_lb_config: { healthy_panic_threshold: { value: 25.5 }, locality_weighted_lb_config: {} } }), lb({ healthyPanicThresholdPercent: 25.5, localityWeighted: true }));
  t.strictSame(lbOf({ common_lb_config: { healthy_panic_threshold: {} } }), lb({ healthyPanicThresholdPercent: 0 }), 'an empty Percent is 0: panic mode off');
  t.strictSame(lbOf({ common_lb_config: { consistent_hashing_lb_config: {} } }), LB_DEFAULTS);
  t.strictSame(lbOf({ common_lb_config: { healthy_panic_threshold: { value: 100.5 } } }), ['common_lb_config.healthy_panic_threshold.value: 100.5 is outside [0, 100]']);
  t.strictSame(lbOf({ common_lb_config: { healthy_panic_threshold: { value: -1 } } }), ['common_lb_config.healthy_panic_threshold.value: -1 is outside [0, 100]']);
  t.strictSame(
    lbOf({
      common_lb_config: {
        zone_aware_lb_config: { min_cluster_size: 3 },
        update_merge_window: '1s',
        consistent_hashing_lb_config: { use_hostname_for_hashing: true, hash_balance_factor: 150 },
      },
    }),
    [
      "common_lb_config.zone_aware_lb_config: field 'zone_aware_lb_config' is not supported",
      "common_lb_config.update_merge_window: field 'update_merge_window' is not supported",
      "common_lb_config.consistent_hashing_lb_config.use_hostname_for_hashing: field 'use_hostname_for_hashing' is not supported",
      "common_lb_config.consistent_hashing_lb_config.hash_balance_factor: field 'hash_balance_factor' is not supported",
    ],
  );
  t.end();
});

t.test('load_balancing_policy: each Envoy typed policy maps onto the same LbConfig', (t) => {
  const lw = { locality_lb_config: { locality_weighted_lb_config: {} } };
  t.strictSame(lbOf(policies({ '@type': RR, ...lw })), lb({ localityWeighted: true }));
  t.strictSame(lbOf(policies({ '@type': RANDOM })), lb({ policy: 'RANDOM' }));
  t.strictSame(
    lbOf(policies({ '@type': LR, choice_count: 4, active_request_bias: { default_value: 1.5, runtime_key: 'k' }, selection_method: 'N_CHOICES', ...lw })),
    lb({ policy: 'LEAST_REQUEST', leastRequest: { choiceCount: 4, activeRequestBias: 1.5 }, localityWeighted: true }),
  );
  t.strictSame(
    lbOf(policies({ '@type': RING, minimum_ring_size: 16, maximum_ring_size: 1024, hash_function: 'MURMUR_HASH_2', consistent_hashing_lb_config: {}, locality_weighted_lb_config: {} })),
    lb({ policy: 'RING_HASH', ringHash: { minimumRingSize: 16, maximumRingSize: 1024, hashFunction: 'MURMUR_HASH_2' }, localityWeighted: true }),
  );
  for (const hash_function of ['DEFAULT_HASH', 'XX_HASH']) {
    t.strictSame(lbOf(policies({ '@type': RING, hash_function })), lb({ policy: 'RING_HASH' }), `${hash_function} is xxHash`);
  }
  t.strictSame(lbOf(policies({ '@type': MAGLEV, table_size: 131 })), lb({ policy: 'MAGLEV', maglev: { tableSize: 131 } }));
  t.match(decode({ lb_policy: 'LOAD_BALANCING_POLICY_CONFIG', ...policies({ '@type': MAGLEV }) }), { ok: true, value: { lbPolicy: 'MAGLEV' } });
  // common_lb_config still applies; either place turns locality weighting on.
  t.strictSame(
    lbOf({ ...policies({ '@type': MAGLEV }), common_lb_config: { healthy_panic_threshold: { value: 10 }, locality_weighted_lb_config: {} } }),
    lb({ policy: 'MAGLEV', healthyPanicThresholdPercent: 10, localityWeighted: true }),
  );
  t.end();
});

t.test('typed policies refuse what they cannot honour, at the policy path', (t) => {
  t.strictSame(lbOf(policies({ '@type': RR, slow_start_config: {}, locality_lb_config: { zone_aware_lb_config: {} } })), [
    `${TC(0)}.slow_start_config: field 'slow_start_config' is not supported`,
    `${TC(0)}.locality_lb_config.zone_aware_lb_config: field 'zone_aware_lb_config' is not supported`,
  ]);
  t.strictSame(lbOf(policies({ '@type': RANDOM, locality_lb_config: {} })), [`${TC(0)}.locality_lb_config: one of zone_aware_lb_config, locality_weighted_lb_config is required`]);
  t.strictSame(lbOf(policies({ '@type': LR, choice_count: 1, selection_method: 'FULL_SCAN', enable_full_scan: true })), [
    `${TC(0)}.selection_method: FULL_SCAN is not supported`,
    `${TC(0)}.enable_full_scan: field 'enable_full_scan' is not supported`,
    `${TC(0)}.choice_count: must be at least 2, got 1`,
  ]);
  t.strictSame(lbOf(policies({ '@type': RING, minimum_ring_size: 0, hash_balance_factor: 120, consistent_hashing_lb_config: { use_hostname_for_hashing: true } })), [
    `${TC(0)}.hash_balance_factor: field 'hash_balance_factor' is not supported`,
    `${TC(0)}.minimum_ring_size: 0 is outside [1, 8388608]`,
    `${TC(0)}.consistent_hashing_lb_config.use_hostname_for_hashing: field 'use_hostname_for_hashing' is not supported`,
  ]);
  t.strictSame(lbOf(policies({ '@type': MAGLEV, table_size: 100, locality_weighted_lb_config: {} })), [`${TC(0)}.table_size: 100 is not a prime number`]);
  t.end();
});

t.test("PEAK_EWMA: Outrigger's policy as a TypedStruct (xds.type.v3 or udpa.type.v1), decay_time default 10 s", (t) => {
  t.strictSame(lbOf(policies(peakEwma())), lb({ policy: 'PEAK_EWMA' }));
  t.strictSame(lbOf(policies(peakEwma({ decay_time: '2.5s' }))), lb({ policy: 'PEAK_EWMA', peakEwma: { decayTimeMs: 2500 } }));
  t.strictSame(lbOf(policies(peakEwma({ decay_time: '500ms' }, UDPA_TS))), lb({ policy: 'PEAK_EWMA', peakEwma: { decayTimeMs: 500 } }));
  const r = decode(policies(peakEwma({}), { '@type': RR }));
  t.strictSame(r.ok && r.value.lbPolicy, 'PEAK_EWMA', 'listed first, it wins over the standard fallback');
  for (const decay_time of ['0s', 'soon', 10]) {
    t.strictSame(lbOf(policies(peakEwma({ decay_time }))), [`${TC(0)}.value.decay_time: ${JSON.stringify(decay_time)} is not a positive duration such as "10s"`]);
  }
  t.strictSame(lbOf(policies(peakEwma({ decay: '1s' }))), [`${TC(0)}.value.decay: field 'decay' is not supported`]);
  t.end();
});

t.test("Envoy's rule: the first policy this proxy implements is used; none implemented is an error naming them", (t) => {
  const wrr = { '@type': WRR_LOCALITY, endpoint_picking_policy: { policies: [] } };
  const otherStruct = { '@type': UDPA_TS, type_url: 'type.googleapis.com/acme.lb.v1.Fancy', value: { x: 1 } };
  t.strictSame(lbOf(policies(wrr, otherStruct, { '@type': LR })), lb({ policy: 'LEAST_REQUEST' }));
  // After the chosen policy nothing is read, as in Envoy: a bad entry there does not matter.
  t.strictSame(lbOf(policies({ '@type': RANDOM }, { '@type': MAGLEV, table_size: 4 })), lb({ policy: 'RANDOM' }));
  t.strictSame(lbOf(policies(wrr, otherStruct)), [
    `${P}: none of the policies is supported ("${WRR_LOCALITY}", "type.googleapis.com/acme.lb.v1.Fancy"); supported: ` +
      'envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin, envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest, ' +
      'envoy.extensions.load_balancing_policies.random.v3.Random, envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash, ' +
      'envoy.extensions.load_balancing_policies.maglev.v3.Maglev, outrigger.extensions.load_balancing_policies.peak_ewma.v1alpha1.PeakEwma (as a TypedStruct)',
  ]);
  // A supported policy that is malformed stops the walk: the cluster is refused for that, not skipped past.
  t.strictSame(lbOf(policies({ '@type': MAGLEV, table_size: 4 }, { '@type': RR })), [`${TC(0)}.table_size: 4 is not a prime number`]);
  t.strictSame(lbOf({ load_balancing_policy: {} }), [`${P}: at least one policy is required`]);
  t.strictSame(lbOf({ load_balancing_policy: { policies: [{}, { typed_extension_config: { name: 'x' } }, { typed_extension_config: { typed_config: { '@type': RANDOM } } }] } }), [
    `${P}[0].typed_extension_config: is required`,
    `${P}[1].typed_extension_config.typed_config: is required`,
    `${P}[2].typed_extension_config.name: is required`,
  ]);
  t.end();
});

t.test('an Any of a type no proto describes (a control plane extension) is skipped on the wire, as Envoy does', (t) => {
  const T = typeForUrl(CLUSTER_TYPE_URL) as Type;
  const policy = (type_url: string, value = new Uint8Array()) => ({ typed_extension_config: { name: 'x', typed_config: { type_url, value } } });
  const bytes = (...ps: object[]) => T.encode(T.fromObject({ name: 'c', load_balancing_policy: { policies: ps } })).finish();
  const r = decodeResource(CLUSTER_TYPE_URL, bytes(policy('type.googleapis.com/acme.lb.v1.Unknown'), policy(RANDOM)));
  t.strictSame(r.ok && r.value.lbPolicy, 'RANDOM');
  t.match(problems(decodeResource(CLUSTER_TYPE_URL, bytes(policy(MAGLEV, new Uint8Array([0xff]))))), [`${TC(0)}: malformed Maglev: index out of range`]);
  t.match(problems(decodeResource(CLUSTER_TYPE_URL, bytes(policy(XDS_TS, new Uint8Array([0xff]))))), [`${TC(0)}: malformed TypedStruct: index out of range`]);
  t.end();
});

t.test('lb_policy and load_balancing_policy together, or with a legacy lb_config member, are refused', (t) => {
  t.strictSame(lbOf({ lb_policy: 'RING_HASH', ...policies({ '@type': RR }) }), ['lb_policy: RING_HASH conflicts with load_balancing_policy; set only one of them']);
  t.strictSame(lbOf({ ring_hash_lb_config: {}, ...policies({ '@type': RING }) }), ['ring_hash_lb_config: is not read with load_balancing_policy; configure the chosen policy instead']);
  t.end();
});


t.test("istiod's shapes for DestinationRule trafficPolicy decode (consistentHash, localityLbSetting, outlierDetection, PEAK_EWMA)", (t) => {
  const eds = { type: 'EDS', eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: 'outbound|9080||reviews.default.svc.cluster.local' } };
  const ok = (json: Record<string, unknown>) => {
    const r = decode({ ...eds, connect_timeout: '10s', ...json });
    t.strictSame(problems(r), []);
    return r.ok ? r.value : undefined;
  };
  // consistentHash.ringHash.minimumRingSize / consistentHash.maglev.tableSize
  t.match(ok({ lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: '1024' }, common_lb_config: {} }), {
    lbPolicy: 'RING_HASH',
    lb: { ringHash: { minimumRingSize: 1024, maximumRingSize: 8_388_608, hashFunction: 'XX_HASH' } },
  });
  t.match(ok({ lb_policy: 'MAGLEV', maglev_lb_config: { table_size: '65537' } }), { lbPolicy: 'MAGLEV', lb: { maglev: { tableSize: 65537 } } });
  // localityLbSetting (distribute: locality weights) and outlierDetection with minHealthPercent -> panic threshold.
  const c = ok({
    lb_policy: 'LEAST_REQUEST',
    common_lb_config: { locality_weighted_lb_config: {}, healthy_panic_threshold: { value: 30 } },
    outlier_detection: {
      consecutive_5xx: 7,
      enforcing_consecutive_5xx: 100,
      consecutive_gateway_failure: 0,
      enforcing_consecutive_gateway_failure: 0,
      interval: '5s',
      base_ejection_time: '30s',
      max_ejection_percent: 50,
      enforcing_success_rate: 0,
      split_external_local_origin_errors: true,
      consecutive_local_origin_failure: 3,
      enforcing_consecutive_local_origin_failure: 100,
    },
  });
  t.match(c, {
    lbPolicy: 'LEAST_REQUEST',
    lb: { localityWeighted: true, healthyPanicThresholdPercent: 30 },
    outlierDetection: { consecutive5xx: 7, consecutiveGatewayFailure: 0, intervalMs: 5000, maxEjectionPercent: 50, enforcingSuccessRate: 0, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailure: 3 },
  });
  // simple: PEAK_EWMA, listed before a standard fallback so Envoy and gRPC clients still get a policy.
  t.match(ok({ common_lb_config: { locality_weighted_lb_config: {} }, ...policies(peakEwma({ decay_time: '10s' }), { '@type': RR, locality_lb_config: { locality_weighted_lb_config: {} } }) }), {
    lbPolicy: 'PEAK_EWMA',
    lb: { policy: 'PEAK_EWMA', peakEwma: { decayTimeMs: 10_000 }, localityWeighted: true },
  });
  t.end();
});
