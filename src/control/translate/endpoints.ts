// EDS: one ClusterLoadAssignment per outbound cluster, the service's workloads grouped by locality, with the
// priorities and locality weights of Istio's locality load balancing relative to the caller.
import type { Locality } from '../../model/types.js';
import type { LocalityLbSetting } from '../mesh/types.js';
import type { Endpoint } from './mesh-index.js';
import { labelsMatch } from './mesh-index.js';
import { INBOUND_PORT, socketAddress, type Built } from './common.js';
import type { ClusterPlan } from './clusters.js';

/**
 * Where a caller connects for one endpoint (the mesh's endpoint convention):
 * - mTLS: every workload's sidecar takes mesh traffic on its inbound port 15006 at the WorkloadEntry address; the
 *   service port travels in the request's authority (host:port), which the far sidecar routes on.
 * - plaintext (tls.mode DISABLE: a workload without a sidecar): the workload itself, on Istio's port rule
 *   WorkloadEntry.ports[<service port name>] ?? port.targetPort ?? port.number.
 */
export function endpointPort(p: ClusterPlan, e: Endpoint): number {
  return p.mtls ? INBOUND_PORT : (e.spec.ports[p.port.name] ?? p.port.targetPort ?? p.port.number);
}

/** Istio's topology label keys (label.TopologyNetwork, LabelTopologyRegion/Zone, TopologySubzone). */
export const TOPOLOGY = {
  network: 'topology.istio.io/network',
  region: 'topology.kubernetes.io/region',
  zone: 'topology.kubernetes.io/zone',
  subZone: 'topology.istio.io/subzone',
} as const;

/**
 * A workload's labels as istiod matches failoverPriority against them (labelutil.AugmentLabels): its own labels
 * plus the topology labels of its locality and network, each only when it has a value.
 */
export function topologyLabels(labels: Readonly<Record<string, string>>, l: Locality, network: string | undefined): Record<string, string> {
  const out: Record<string, string> = { ...labels };
  const put = (k: string, v: string | undefined) => {
    if (v) out[k] = v;
  };
  put(TOPOLOGY.region, l.region);
  put(TOPOLOGY.zone, l.zone);
  put(TOPOLOGY.subZone, l.subZone);
  put(TOPOLOGY.network, network);
  return out;
}

/** Who the endpoints are for: the caller's locality and its (topology-augmented) labels. */
export interface EdsCaller {
  readonly locality: Locality;
  readonly labels: Readonly<Record<string, string>>;
}

interface Ep {
  readonly address: string;
  readonly port: number;
  weight: number;
  readonly labels: Readonly<Record<string, string>>;
}

/** One LocalityLbEndpoints being built. */
interface Group {
  readonly locality: Locality;
  priority: number;
  /** load_balancing_weight; undefined = the sum of its endpoints' weights. */
  weight?: number;
  endpoints: Ep[];
}

const sum = (eps: readonly Ep[]) => eps.reduce((s, e) => s + e.weight, 0);
const groupWeight = (g: Group) => g.weight ?? sum(g.endpoints);

/**
 * The endpoints of one cluster for one caller (a subset keeps those whose labels include the subset's), one
 * LocalityLbEndpoints per WorkloadEntry locality (region/zone/sub_zone) and priority. Endpoint weight =
 * WorkloadEntry.weight (Istio treats 0 as 1); a locality's weight is the sum of its endpoints' weights, which gRPC
 * requires (gRFC A27 ignores a locality without one) and Envoy uses under locality-weighted balancing. One
 * address:port appears once: grpc-js-xds refuses duplicates. Weights whose total would not fit a uint32 are
 * scaled down (fitWeights). Then Istio's locality load balancing (loadbalancer.ApplyLocalityLoadBalancer), in
 * its order: `distribute` rewrites the locality weights; otherwise, only when the cluster has outlier detection
 * (without it Envoy would never leave priority 0), failoverPriority and/or failover set the priorities.
 */
export function loadAssignment(p: ClusterPlan, caller: EdsCaller): Built {
  const groups = new Map<string, Group>();
  const seen = new Set<string>();
  for (const e of p.service.endpoints) {
    if (p.subsetLabels && !labelsMatch(p.subsetLabels, e.spec.labels)) continue;
    const port = endpointPort(p, e);
    const at = `${e.spec.address}|${port}`;
    if (seen.has(at)) continue;
    seen.add(at);
    const l = e.spec.localityParts;
    const key = JSON.stringify([l.region, l.zone, l.subZone]);
    let g = groups.get(key);
    if (!g) {
      g = { locality: { region: l.region, zone: l.zone, subZone: l.subZone }, priority: 0, endpoints: [] };
      groups.set(key, g);
    }
    g.endpoints.push({ address: e.spec.address, port, weight: e.spec.weight || 1, labels: topologyLabels(e.spec.labels, l, e.spec.network) });
  }
  fitWeights([...groups.values()].flatMap((g) => g.endpoints));
  const out = applyLocalityLb([...groups.values()], caller, p.localityLb, !!p.outlierDetection);
  // Sorted so the bytes, and so the version, do not depend on the order documents were written in.
  const key = (g: Group) => [g.priority, g.locality.region, g.locality.zone, g.locality.subZone] as const;
  out.sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    return x[0] - y[0] || x[1].localeCompare(y[1]) || x[2].localeCompare(y[2]) || x[3].localeCompare(y[3]);
  });
  return {
    name: p.name,
    json: {
      cluster_name: p.name,
      endpoints: out.map((g) => ({
        locality: { region: g.locality.region, zone: g.locality.zone, sub_zone: g.locality.subZone },
        load_balancing_weight: groupWeight(g),
        ...(g.priority > 0 && { priority: g.priority }),
        lb_endpoints: [...g.endpoints]
          .sort((a, b) => a.address.localeCompare(b.address) || a.port - b.port)
          .map((e) => ({ endpoint: { address: socketAddress(e.address, e.port) }, load_balancing_weight: e.weight })),
      })),
    },
  };
}

/** Istio's ApplyLocalityLoadBalancer on our groups (priorities all 0 on entry). */
function applyLocalityLb(groups: Group[], caller: EdsCaller, s: LocalityLbSetting | undefined, outlier: boolean): Group[] {
  if (!s) return groups;
  if (s.distribute.length > 0) return applyLocalityWeights(groups, caller.locality, s.distribute);
  if (!outlier) return groups;
  if (s.failoverPriority.length === 0) return applyLocalityFailover(groups, caller.locality, s.failover);
  const split = applyFailoverPriorities(groups, caller.labels, s.failoverPriority);
  return s.failover.length > 0 ? applyLocalityFailover(split, caller.locality, s.failover) : split;
}

/**
 * istio util.LocalityMatch: a pattern `region[/zone[/subzone]]` where "*" (or a missing part after the
 * region) matches anything.
 */
export function localityMatch(l: Locality, pattern: string): boolean {
  const [region = '', zone = '', subZone = ''] = pattern.split('/');
  const part = (rule: string, v: string, optional: boolean) => rule === '*' || (optional && rule === '') || rule === v;
  return part(region, l.region, false) && part(zone, l.zone, true) && part(subZone, l.subZone, true);
}

/**
 * `distribute` (istio applyLocalityWeights): the first entry whose `from` matches the caller decides. Each `to`
 * pattern's share is split over the localities it matches (those not taken by an earlier pattern) in
 * proportion to their weights, rounded up; localities no pattern matches get no traffic (Istio empties them;
 * we leave them out, which Envoy and gRPC treat alike). A caller no `from` matches keeps the plain weights.
 */
function applyLocalityWeights(groups: Group[], caller: Locality, distribute: LocalityLbSetting['distribute']): Group[] {
  const rule = distribute.find((d) => localityMatch(caller, d.from));
  if (!rule) return groups;
  const kept: Group[] = [];
  const left = new Set(groups);
  for (const [pattern, share] of Object.entries(rule.to)) {
    const matched = [...left].filter((g) => localityMatch(g.locality, pattern));
    const total = matched.reduce((s, g) => s + groupWeight(g), 0);
    for (const g of matched) {
      left.delete(g);
      g.weight = Math.ceil((groupWeight(g) * share) / total);
      kept.push(g);
    }
  }
  return kept;
}

/** istio util.LbPriority: 0 same region/zone/subzone, 1 same region/zone, 2 same region, 3 elsewhere. */
function lbPriority(caller: Locality, l: Locality): number {
  if (caller.region !== l.region) return 3;
  if (caller.zone !== l.zone) return 2;
  return caller.subZone === l.subZone ? 0 : 1;
}

/**
 * istio applyLocalityFailover: each group's priority becomes (its priority so far) × 5 + lbPriority, where a
 * region other than the caller's is 3 when it is the caller region's `failover` target (or no failover entry
 * names the caller's region) and 4 otherwise; then the distinct values are renumbered 0..N without gaps.
 */
function applyLocalityFailover(groups: Group[], caller: Locality, failover: LocalityLbSetting['failover']): Group[] {
  const target = failover.find((f) => f.from === caller.region)?.to;
  for (const g of groups) {
    let p = lbPriority(caller, g.locality);
    if (p === 3 && target !== undefined && g.locality.region !== target) p = 4;
    g.priority = g.priority * 5 + p;
  }
  return compact(groups);
}

/** Priorities must run 0..N without gaps (Envoy and gRPC): renumber the distinct values in order. */
function compact(groups: Group[]): Group[] {
  const levels = [...new Set(groups.map((g) => g.priority))].sort((a, b) => a - b);
  for (const g of groups) g.priority = levels.indexOf(g.priority);
  return groups;
}

/**
 * istio applyFailoverPriorities: an endpoint's priority is n - j for the first of the n labels (j counted from
 * 0) whose value differs from the caller's, 0 when all agree; `key=value` compares with that value instead of
 * the caller's. A locality splits into one group per priority (weight = its endpoints' sum), then the
 * priorities are renumbered without gaps.
 */
function applyFailoverPriorities(groups: Group[], callerLabels: Readonly<Record<string, string>>, priorities: readonly string[]): Group[] {
  const rules = priorities.map((p) => {
    const eq = p.indexOf('=');
    return eq < 0 ? { key: p, value: callerLabels[p] } : { key: p.slice(0, eq), value: p.slice(eq + 1) };
  });
  const priorityOf = (e: Ep) => {
    const j = rules.findIndex((r) => r.value !== e.labels[r.key]);
    return j < 0 ? 0 : rules.length - j;
  };
  const out: Group[] = [];
  for (const g of groups) {
    const by = new Map<number, Ep[]>();
    for (const e of g.endpoints) {
      const p = priorityOf(e);
      by.set(p, [...(by.get(p) ?? []), e]);
    }
    for (const [priority, endpoints] of by) out.push({ locality: g.locality, priority, endpoints });
  }
  return compact(out);
}

const UINT32_MAX = 0xffff_ffff;

/**
 * A WorkloadEntry weight may be anything up to 2^32-1 (Istio's uint32), but the weights of one priority must add
 * up to at most 2^32-1: Envoy requires it of the endpoints of a locality and of the localities of a priority
 * (LbEndpoint / LocalityLbEndpoints.load_balancing_weight), and gRPC refuses the whole assignment otherwise
 * (grpc-js-xds EDS validation: "priority 0 has total weight greater than UINT32_MAX"). When the total of n
 * endpoints is over, every weight is divided by k = ceil(total / (2^32-1 - n)), keeping at least 1 (Istio's
 * floor): the ratios stay, and the new total is at most total/k + n <= 2^32-1.
 */
function fitWeights(endpoints: { weight: number }[]): void {
  const total = endpoints.reduce((s, e) => s + e.weight, 0);
  if (total <= UINT32_MAX) return;
  const k = Math.ceil(total / (UINT32_MAX - endpoints.length));
  for (const e of endpoints) e.weight = Math.max(1, Math.floor(e.weight / k));
}
