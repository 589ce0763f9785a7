// Decodes a WorkloadEntry spec (networking.istio.io WorkloadEntry, and ServiceEntry.endpoints[] which share it).
import { isIP } from 'node:net';
import { Reader, defined, dnsLabelProblem, dnsSubdomainProblem, type Shape } from './schema.js';
import type { WorkloadEntrySpec } from './types.js';

/** istio.networking.v1.WorkloadEntry: every field Istio has is implemented. */
const WORKLOAD_ENTRY: Shape = { fields: ['address', 'ports', 'labels', 'locality', 'serviceAccount', 'weight', 'network'] };

const MAX_UINT32 = 2 ** 32 - 1;

export function decodeWorkloadEntrySpec(r: Reader, v: unknown, path: string): WorkloadEntrySpec | undefined {
  const o = r.object(v, path, WORKLOAD_ENTRY);
  if (!o) return undefined;
  r.need(o, 'address', path);
  // Only STATIC resolution is supported, so an address is used as is: it must be an IP (Istio requires the
  // same of STATIC endpoints); unix:// sockets and DNS names would need resolution modes Outrigger lacks.
  const address = r.string(o, 'address', path, (a) => (isIP(a) === 0 ? `${JSON.stringify(a)} is not an IP address (only STATIC resolution is supported)` : undefined));
  const ports = r.map(o, 'ports', path, (p, pp, name) => {
    const problem = dnsLabelProblem(name);
    return problem ? r.issue(pp, `port name ${problem}`) : r.intValue(p, pp, 1, 65535);
  });
  const locality = r.string(o, 'locality', path, localityProblem);
  const [region = '', zone = '', subZone = ''] = locality?.split('/') ?? [];
  const weight = r.int(o, 'weight', path, 0, MAX_UINT32);
  return defined({
    address: address ?? '',
    ports: ports ?? {},
    labels: r.labels(o, 'labels', path) ?? {},
    locality,
    localityParts: { region, zone, subZone },
    serviceAccount: r.string(o, 'serviceAccount', path, dnsSubdomainProblem),
    // Istio treats an unset or zero weight as 1.
    weight: weight || 1,
    network: r.string(o, 'network', path),
  });
}

/** region, region/zone or region/zone/subzone (Envoy's Locality), no empty parts. */
function localityProblem(l: string): string | undefined {
  const parts = l.split('/');
  if (parts.length > 3 || parts.some((p) => p === '')) return `${JSON.stringify(l)} is not a locality (region, region/zone or region/zone/subzone)`;
  return undefined;
}
