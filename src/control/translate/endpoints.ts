// EDS: one ClusterLoadAssignment per outbound cluster, the service's workloads grouped by locality.
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

interface Group {
  readonly locality: { region: string; zone: string; sub_zone: string };
  readonly endpoints: { address: string; port: number; weight: number }[];
}

/**
 * The endpoints of one cluster (a subset keeps those whose labels include the subset's), one LocalityLbEndpoints
 * per WorkloadEntry locality (region/zone/sub_zone), all at priority 0 for now (per-caller priorities come with
 * locality-aware balancing, issue 5). Endpoint weight = WorkloadEntry.weight (Istio treats 0 as 1); a locality's
 * weight is the sum of its endpoints' weights, which gRPC requires (gRFC A27 ignores a locality without one) and
 * Envoy uses under locality-weighted balancing. One address:port appears once: grpc-js-xds refuses duplicates.
 * Weights whose total would not fit a uint32 are scaled down (fitWeights).
 */
export function loadAssignment(p: ClusterPlan): Built {
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
      g = { locality: { region: l.region, zone: l.zone, sub_zone: l.subZone }, endpoints: [] };
      groups.set(key, g);
    }
    g.endpoints.push({ address: e.spec.address, port, weight: e.spec.weight || 1 });
  }
  fitWeights([...groups.values()].flatMap((g) => g.endpoints));
  // Sorted so the bytes, and so the version, do not depend on the order documents were written in.
  const ordered = [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, g]) => g);
  return {
    name: p.name,
    json: {
      cluster_name: p.name,
      endpoints: ordered.map((g) => ({
        locality: g.locality,
        load_balancing_weight: g.endpoints.reduce((s, e) => s + e.weight, 0),
        lb_endpoints: g.endpoints
          .sort((a, b) => a.address.localeCompare(b.address) || a.port - b.port)
          .map((e) => ({ endpoint: { address: socketAddress(e.address, e.port) }, load_balancing_weight: e.weight })),
      })),
    },
  };
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
