// go-control-plane's Snapshot.Consistent for our snapshots: every RDS and EDS name a resource references exists.
import { decodeCanonical, unpackAny, type ProtoObj } from '../../xds/canonical.js';
import { typeForUrl } from '../../xds/protos.js';
import type { NodeSnapshot, ServedType } from '../snapshot.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL, HCM_TYPE_URL, LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL } from './common.js';

const list = (o: ProtoObj | undefined, k: string) => ((o?.[k] as ProtoObj[] | undefined) ?? []);
const msg = (o: ProtoObj | undefined, k: string) => o?.[k] as ProtoObj | undefined;

function decoded(s: NodeSnapshot, type: ServedType): [string, ProtoObj][] {
  const t = typeForUrl(type)!;
  return [...(s.resources.get(type) ?? new Map<string, Uint8Array>())].map(([name, bytes]) => [name, decodeCanonical(t, bytes)]);
}

/** The RDS names a listener's HttpConnectionManagers use: in its filter chains, or as a gRPC api_listener. */
function rdsNames(l: ProtoObj): string[] {
  const hcms = [...list(l, 'filter_chains').flatMap((c) => list(c, 'filters').map((f) => msg(f, 'typed_config'))), msg(msg(l, 'api_listener'), 'api_listener')];
  return hcms.flatMap((any) => {
    if (!any || any.type_url !== HCM_TYPE_URL) return [];
    const hcm = unpackAny(any, '');
    const name = hcm.ok ? msg(hcm.value.value, 'rds')?.route_config_name : undefined;
    return typeof name === 'string' ? [name] : [];
  });
}

/**
 * Every problem that would leave a proxy waiting for a resource that never comes: a listener naming a route
 * configuration that is not in the snapshot, an EDS cluster whose service_name (else its name, as Envoy
 * defaults it) has no ClusterLoadAssignment. Empty = consistent: the only kind of snapshot translate() returns.
 */
export function checkConsistent(s: NodeSnapshot): string[] {
  const problems: string[] = [];
  const routes = s.resources.get(ROUTE_CONFIGURATION_TYPE_URL) ?? new Map();
  const assignments = s.resources.get(CLUSTER_LOAD_ASSIGNMENT_TYPE_URL) ?? new Map();
  for (const [name, l] of decoded(s, LISTENER_TYPE_URL)) {
    for (const rds of rdsNames(l)) {
      if (!routes.has(rds)) problems.push(`listener ${JSON.stringify(name)} uses route configuration ${JSON.stringify(rds)}, which is not in the snapshot`);
    }
  }
  for (const [name, c] of decoded(s, CLUSTER_TYPE_URL)) {
    if (c.type !== 'EDS') continue;
    const eds = (msg(c, 'eds_cluster_config')?.service_name as string | undefined) || name;
    if (!assignments.has(eds)) problems.push(`cluster ${JSON.stringify(name)} takes endpoints from ${JSON.stringify(eds)}, which is not in the snapshot`);
  }
  return problems;
}
