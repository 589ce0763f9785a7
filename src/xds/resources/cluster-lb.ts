// Decodes a Cluster's load-balancing settings into LbConfig: lb_policy with its lb_config oneof member, or the
// typed load_balancing_policy list (Envoy's extensions and Outrigger's PEAK_EWMA), plus common_lb_config.
import { parseDurationMs } from '../../core/duration.js';
import { LB_DEFAULTS, TYPE_URL_PEAK_EWMA, type LbConfig, type LbPolicy } from '../../model/types.js';
import { unpackAs, type ProtoObj } from '../canonical.js';
import { Issues, enumOf, joinPath, list, msg, num, onlyFields, requireOne, required, str, structToPlain, u32Value } from './common.js';

type EnvoyLbPolicy = Exclude<LbPolicy, 'PEAK_EWMA'>;
const LB_POLICIES: readonly EnvoyLbPolicy[] = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH', 'MAGLEV'];

/** What one policy message contributes to LbConfig; the rest keeps LB_DEFAULTS. */
type LbParts = Partial<Pick<LbConfig, 'leastRequest' | 'ringHash' | 'maglev' | 'peakEwma' | 'localityWeighted'>>;
interface LbChoice {
  readonly policy: LbPolicy;
  readonly parts: LbParts;
}
type PartsDecoder = (config: ProtoObj, path: string, issues: Issues) => LbParts;

/** The Cluster fields decodeClusterLb reads (cluster.ts lists them as handled). */
export const CLUSTER_LB_FIELDS = [
  'lb_policy',
  'load_balancing_policy',
  'common_lb_config',
  'round_robin_lb_config',
  'least_request_lb_config',
  'ring_hash_lb_config',
  'maglev_lb_config',
] as const;

/** RingHashLbConfig / RingHash size bounds (validate rules: lte 8M), MaglevLbConfig.table_size (lte 5000011). */
const MAX_RING_SIZE = 8_388_608;
const MAX_MAGLEV_TABLE_SIZE = 5_000_011;

/** A google.protobuf.UInt64Value (canonical shape: the value is a decimal string). */
const u64Value = (o: ProtoObj, k: string): number | undefined => (o[k] === undefined ? undefined : Number((o[k] as ProtoObj).value ?? 0));

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/** An envoy.type.v3.Percent field (validate rule: 0 <= value <= 100); undefined when unset. */
export function percent(o: ProtoObj, k: string, path: string, issues: Issues): number | undefined {
  const m = msg(o, k);
  if (m === undefined) return undefined;
  const p = joinPath(path, k);
  onlyFields(m, p, ['value'], issues);
  const v = num(m, 'value');
  if (!(v >= 0 && v <= 100)) issues.add(joinPath(p, 'value'), `${v} is outside [0, 100]`);
  return v;
}

/**
 * LeastRequestLbConfig / LeastRequest: choice_count (validate rule gte 2) and active_request_bias, a
 * RuntimeDouble. There is no runtime layer, so its default_value is what applies (Envoy with no override);
 * runtime_key is still required, as Envoy's validate rule has it. A negative or NaN bias is replaced by 1.0,
 * as Envoy does (with a warning) rather than refused.
 */
function leastRequest(o: ProtoObj, path: string, issues: Issues, extra: readonly string[]): LbParts {
  onlyFields(o, path, ['choice_count', 'active_request_bias', ...extra], issues);
  const choiceCount = u32Value(o, 'choice_count') ?? LB_DEFAULTS.leastRequest.choiceCount;
  if (choiceCount < 2) issues.add(joinPath(path, 'choice_count'), `must be at least 2, got ${choiceCount}`);
  let activeRequestBias = LB_DEFAULTS.leastRequest.activeRequestBias;
  const bias = msg(o, 'active_request_bias');
  if (bias) {
    const p = joinPath(path, 'active_request_bias');
    onlyFields(bias, p, ['default_value', 'runtime_key'], issues);
    required(bias, 'runtime_key', p, issues);
    const v = num(bias, 'default_value');
    activeRequestBias = v >= 0 ? v : 1;
  }
  return { leastRequest: { choiceCount, activeRequestBias } };
}

/**
 * RingHashLbConfig / RingHash: ring sizes within 8M, the minimum not above the maximum (Envoy refuses that),
 * and the hash function. The typed message's DEFAULT_HASH is xxHash, as in Envoy.
 */
function ringHash(o: ProtoObj, path: string, issues: Issues, extra: readonly string[], typed: boolean): LbParts {
  onlyFields(o, path, ['minimum_ring_size', 'maximum_ring_size', 'hash_function', ...extra], issues);
  const d = LB_DEFAULTS.ringHash;
  const size = (k: string, dflt: number, min: number): number => {
    const v = u64Value(o, k) ?? dflt;
    if (v < min || v > MAX_RING_SIZE) issues.add(joinPath(path, k), `${v} is outside [${min}, ${MAX_RING_SIZE}]`);
    return v;
  };
  // Only the typed RingHash has the validate rule gte 1 on minimum_ring_size.
  const minimumRingSize = size('minimum_ring_size', d.minimumRingSize, typed ? 1 : 0);
  const maximumRingSize = size('maximum_ring_size', d.maximumRingSize, 0);
  if (minimumRingSize > maximumRingSize) issues.add(joinPath(path, 'minimum_ring_size'), `${minimumRingSize} is greater than maximum_ring_size ${maximumRingSize}`);
  const fn = enumOf(o, 'hash_function', path, ['DEFAULT_HASH', 'XX_HASH', 'MURMUR_HASH_2'], 'XX_HASH', issues);
  return { ringHash: { minimumRingSize, maximumRingSize, hashFunction: fn === 'MURMUR_HASH_2' ? 'MURMUR_HASH_2' : 'XX_HASH' } };
}

/** MaglevLbConfig / Maglev: table_size within 5000011 and prime (Envoy: "The table size of maglev must be prime number"). */
function maglev(o: ProtoObj, path: string, issues: Issues, extra: readonly string[]): LbParts {
  onlyFields(o, path, ['table_size', ...extra], issues);
  const tableSize = u64Value(o, 'table_size') ?? LB_DEFAULTS.maglev.tableSize;
  if (tableSize > MAX_MAGLEV_TABLE_SIZE) issues.add(joinPath(path, 'table_size'), `${tableSize} is greater than ${MAX_MAGLEV_TABLE_SIZE}`);
  else if (!isPrime(tableSize)) issues.add(joinPath(path, 'table_size'), `${tableSize} is not a prime number`);
  return { maglev: { tableSize } };
}

/** RoundRobinLbConfig: only slow_start_config, which is not implemented. */
const roundRobin = (o: ProtoObj, path: string, issues: Issues, extra: readonly string[]): LbParts => {
  onlyFields(o, path, extra, issues);
  return {};
};

/**
 * ConsistentHashingLbConfig: use_hostname_for_hashing and hash_balance_factor (bounded loads) are not
 * implemented; an empty message (their defaults) is fine.
 */
function consistentHashing(o: ProtoObj, path: string, issues: Issues): void {
  const c = msg(o, 'consistent_hashing_lb_config');
  if (c) onlyFields(c, joinPath(path, 'consistent_hashing_lb_config'), [], issues);
}

/** A LocalityWeightedLbConfig (an empty message) at `o[k]`: its presence turns locality weighting on. */
function localityWeighted(o: ProtoObj, k: string, path: string, issues: Issues): boolean {
  const m = msg(o, k);
  if (m) onlyFields(m, joinPath(path, k), [], issues);
  return m !== undefined;
}

/** load_balancing_policies.common.v3.LocalityLbConfig: a required oneof; zone-aware routing is not implemented. */
function localityLbConfig(o: ProtoObj, path: string, issues: Issues): LbParts {
  const l = msg(o, 'locality_lb_config');
  if (l === undefined) return {};
  const p = joinPath(path, 'locality_lb_config');
  requireOne(l, p, ['zone_aware_lb_config', 'locality_weighted_lb_config'], onlyFields(l, p, ['locality_weighted_lb_config'], issues), issues);
  return { localityWeighted: localityWeighted(l, 'locality_weighted_lb_config', p, issues) };
}

/** Fields of the typed ring_hash / maglev messages besides their own sizes. */
function hashingExtras(o: ProtoObj, path: string, issues: Issues): LbParts {
  consistentHashing(o, path, issues);
  return { localityWeighted: localityWeighted(o, 'locality_weighted_lb_config', path, issues) };
}
const HASHING_EXTRAS = ['consistent_hashing_lb_config', 'locality_weighted_lb_config'];

const EXT = 'envoy.extensions.load_balancing_policies';

/**
 * Cluster.load_balancing_policy entries we implement, by message name. Their fields mean what the legacy
 * lb_config messages' fields mean; slow_start_config is not implemented.
 */
const TYPED_POLICIES: Readonly<Record<string, { readonly policy: EnvoyLbPolicy; readonly decode: PartsDecoder }>> = {
  [`${EXT}.round_robin.v3.RoundRobin`]: {
    policy: 'ROUND_ROBIN',
    decode: (o, p, i) => ({ ...roundRobin(o, p, i, ['locality_lb_config']), ...localityLbConfig(o, p, i) }),
  },
  [`${EXT}.least_request.v3.LeastRequest`]: {
    policy: 'LEAST_REQUEST',
    decode: (o, p, i) => {
      // FULL_SCAN (and the deprecated enable_full_scan) replace power of N choices by a scan: not implemented.
      enumOf(o, 'selection_method', p, ['N_CHOICES'], 'N_CHOICES', i);
      return { ...leastRequest(o, p, i, ['locality_lb_config', 'selection_method']), ...localityLbConfig(o, p, i) };
    },
  },
  [`${EXT}.random.v3.Random`]: {
    policy: 'RANDOM',
    decode: (o, p, i) => ({ ...roundRobin(o, p, i, ['locality_lb_config']), ...localityLbConfig(o, p, i) }),
  },
  [`${EXT}.ring_hash.v3.RingHash`]: {
    policy: 'RING_HASH',
    decode: (o, p, i) => ({ ...ringHash(o, p, i, HASHING_EXTRAS, true), ...hashingExtras(o, p, i) }),
  },
  [`${EXT}.maglev.v3.Maglev`]: {
    policy: 'MAGLEV',
    decode: (o, p, i) => ({ ...maglev(o, p, i, HASHING_EXTRAS), ...hashingExtras(o, p, i) }),
  },
};

/**
 * PeakEwma, as a TypedStruct's Struct value: `decay_time` (a proto3 JSON duration string, default 10 s), the
 * time constant with which the latency estimate decays towards faster observations.
 */
function peakEwma(value: ProtoObj, path: string, issues: Issues): LbParts {
  const v = structToPlain(value);
  for (const k of Object.keys(v)) if (k !== 'decay_time') issues.add(joinPath(path, k), `field '${k}' is not supported`);
  if (v.decay_time === undefined) return {};
  const ms = typeof v.decay_time === 'string' ? parseDurationMs(v.decay_time) : undefined;
  if (ms === undefined || ms <= 0) {
    issues.add(joinPath(path, 'decay_time'), `${JSON.stringify(v.decay_time)} is not a positive duration such as "10s"`);
    return {};
  }
  return { peakEwma: { decayTimeMs: ms } };
}

/** Policies that arrive as a TypedStruct (no .proto of their own), by the TypedStruct's type_url message name. */
const STRUCT_POLICIES: Readonly<Record<string, { readonly policy: LbPolicy; readonly decode: PartsDecoder }>> = {
  [typeName(TYPE_URL_PEAK_EWMA)]: { policy: 'PEAK_EWMA', decode: peakEwma },
};

/** xds.type.v3.TypedStruct and its historical udpa.type.v1 twin: the inner type_url names the extension. */
const TYPED_STRUCTS = ['xds.type.v3.TypedStruct', 'udpa.type.v1.TypedStruct'];

/** A type URL's message name: everything after the last '/', as Envoy resolves it. */
function typeName(url: string): string {
  return url.slice(url.lastIndexOf('/') + 1);
}

/**
 * One typed_config: the policy it names if we implement it, else its type URL (to be skipped), or null when a
 * policy we implement is malformed (already reported; Envoy stops there too).
 */
function typedPolicy(any: ProtoObj, path: string, issues: Issues): LbChoice | string | null {
  const url = str(any, 'type_url');
  if (TYPED_STRUCTS.includes(typeName(url))) {
    const ts = issues.take(unpackAs(any, path, url));
    if (!ts) return null;
    onlyFields(ts, path, ['type_url', 'value'], issues);
    const inner = str(ts, 'type_url');
    const known = STRUCT_POLICIES[typeName(inner)];
    if (!known) return inner;
    return { policy: known.policy, parts: known.decode(msg(ts, 'value') ?? {}, joinPath(path, 'value'), issues) };
  }
  const known = TYPED_POLICIES[typeName(url)];
  if (!known) return url;
  const config = issues.take(unpackAs(any, path, url));
  return config ? { policy: known.policy, parts: known.decode(config, path, issues) } : null;
}

const SUPPORTED_TYPED = [...Object.keys(TYPED_POLICIES), ...Object.keys(STRUCT_POLICIES).map((n) => `${n} (as a TypedStruct)`)];

/**
 * Cluster.LoadBalancingPolicy: as in Envoy, the first policy in the list that this proxy implements is used and
 * the ones after it are not read; the ones before it are skipped. If none is implemented, the cluster is refused.
 */
function loadBalancingPolicy(o: ProtoObj, path: string, issues: Issues): LbChoice | undefined {
  onlyFields(o, path, ['policies'], issues);
  const policies = list(o, 'policies');
  const listPath = joinPath(path, 'policies');
  if (policies.length === 0) {
    issues.add(listPath, 'at least one policy is required');
    return undefined;
  }
  const skipped: string[] = [];
  for (const [i, entry] of policies.entries()) {
    const p = joinPath(path, `policies[${i}]`);
    requireOne(entry, p, ['typed_extension_config'], onlyFields(entry, p, ['typed_extension_config'], issues), issues);
    const ext = msg(entry, 'typed_extension_config');
    if (ext === undefined) continue;
    const ep = joinPath(p, 'typed_extension_config');
    requireOne(ext, ep, ['typed_config'], onlyFields(ext, ep, ['name', 'typed_config'], issues), issues);
    required(ext, 'name', ep, issues);
    const any = msg(ext, 'typed_config');
    if (any === undefined) continue;
    const found = typedPolicy(any, joinPath(ep, 'typed_config'), issues);
    if (found === null) return undefined;
    if (typeof found !== 'string') return found;
    skipped.push(JSON.stringify(found));
  }
  if (skipped.length === policies.length) {
    issues.add(listPath, `none of the policies is supported (${skipped.join(', ')}); supported: ${SUPPORTED_TYPED.join(', ')}`);
  }
  return undefined;
}

/** The lb_config oneof member that goes with each lb_policy; Envoy ignores a mismatched one, we refuse it. */
const LB_CONFIG_FOR: Readonly<Record<string, EnvoyLbPolicy>> = {
  round_robin_lb_config: 'ROUND_ROBIN',
  least_request_lb_config: 'LEAST_REQUEST',
  ring_hash_lb_config: 'RING_HASH',
  maglev_lb_config: 'MAGLEV',
};

const LEGACY_DECODERS: Readonly<Record<string, PartsDecoder>> = {
  round_robin_lb_config: (o, p, i) => roundRobin(o, p, i, []),
  least_request_lb_config: (o, p, i) => leastRequest(o, p, i, []),
  ring_hash_lb_config: (o, p, i) => ringHash(o, p, i, [], false),
  maglev_lb_config: (o, p, i) => maglev(o, p, i, []),
};

/**
 * Cluster.CommonLbConfig: healthy_panic_threshold (default 50 %, 0 disables panic mode) and
 * locality_weighted_lb_config. Zone-aware routing and the other knobs are not implemented.
 */
function commonLbConfig(o: ProtoObj | undefined, path: string, issues: Issues): Pick<LbConfig, 'healthyPanicThresholdPercent' | 'localityWeighted'> {
  if (o === undefined) return LB_DEFAULTS;
  onlyFields(o, path, ['healthy_panic_threshold', 'locality_weighted_lb_config', 'consistent_hashing_lb_config'], issues);
  consistentHashing(o, path, issues);
  return {
    healthyPanicThresholdPercent: percent(o, 'healthy_panic_threshold', path, issues) ?? LB_DEFAULTS.healthyPanicThresholdPercent,
    localityWeighted: localityWeighted(o, 'locality_weighted_lb_config', path, issues),
  };
}

/**
 * The cluster's LbConfig. Either lb_policy (ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV) with the
 * lb_config member of that policy, or load_balancing_policy (lb_policy unset or LOAD_BALANCING_POLICY_CONFIG,
 * and no lb_config member: Envoy reads the policy's own message then). common_lb_config applies to both;
 * locality weighting is on when common_lb_config or the chosen typed policy asks for it.
 */
export function decodeClusterLb(o: ProtoObj, path: string, issues: Issues): LbConfig {
  const lbPolicy = enumOf(o, 'lb_policy', path, [...LB_POLICIES, 'LOAD_BALANCING_POLICY_CONFIG'], 'ROUND_ROBIN', issues);
  const lbp = msg(o, 'load_balancing_policy');
  let choice: LbChoice = { policy: lbPolicy === 'LOAD_BALANCING_POLICY_CONFIG' ? 'ROUND_ROBIN' : lbPolicy, parts: {} };
  if (lbp) {
    if (o.lb_policy !== undefined && lbPolicy !== 'LOAD_BALANCING_POLICY_CONFIG') {
      issues.add(joinPath(path, 'lb_policy'), `${lbPolicy} conflicts with load_balancing_policy; set only one of them`);
    }
    choice = loadBalancingPolicy(lbp, joinPath(path, 'load_balancing_policy'), issues) ?? choice;
  } else if (lbPolicy === 'LOAD_BALANCING_POLICY_CONFIG') {
    issues.add(joinPath(path, 'lb_policy'), 'LOAD_BALANCING_POLICY_CONFIG requires load_balancing_policy');
  }
  for (const [k, forPolicy] of Object.entries(LB_CONFIG_FOR)) {
    const m = msg(o, k);
    if (m === undefined) continue;
    const p = joinPath(path, k);
    if (lbp) issues.add(p, 'is not read with load_balancing_policy; configure the chosen policy instead');
    else if (lbPolicy !== forPolicy) issues.add(p, `applies only to lb_policy ${forPolicy} (lb_policy is ${lbPolicy})`);
    else choice = { policy: lbPolicy, parts: LEGACY_DECODERS[k]!(m, p, issues) };
  }
  const common = commonLbConfig(msg(o, 'common_lb_config'), joinPath(path, 'common_lb_config'), issues);
  return {
    ...LB_DEFAULTS,
    ...choice.parts,
    policy: choice.policy,
    healthyPanicThresholdPercent: common.healthyPanicThresholdPercent,
    localityWeighted: common.localityWeighted || choice.parts.localityWeighted === true,
  };
}
