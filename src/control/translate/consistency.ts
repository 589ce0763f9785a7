// go-control-plane's Snapshot.Consistent for our snapshots: every RDS and EDS name a resource references exists.
import { decodeCanonical, unpackAny, type ProtoObj } from '../../xds/canonical.js';
import { typeForUrl } from '../../xds/protos.js';
import type { NodeSnapshot, ServedType } from '../snapshot.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL, HCM_TYPE_URL, LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL } from './common.js';

const list = (o: ProtoObj | undefined, k: string) => ((o?.[k] as ProtoObj[] | undefined) ?? []);
const msg = (o: ProtoObj | undefined, k: string) => o?.[k] as ProtoObj | undefined;

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

/** An EDS cluster's ClusterLoadAssignment name: eds_cluster_config.service_name, else its name (as Envoy defaults it). */
function edsName(c: ProtoObj): string[] {
  if (c.type !== 'EDS') return [];
  return [(msg(c, 'eds_cluster_config')?.service_name as string | undefined) || (c.name as string)];
}

/**
 * The names one encoded resource references, decoded once per bytes object: the resources every proxy of a
 * kind shares are the same objects, so checking another proxy's snapshot decodes only what is its own.
 */
const refCache = new WeakMap<Uint8Array, readonly string[]>();
function refsOf(type: ServedType, bytes: Uint8Array, find: (o: ProtoObj) => string[]): readonly string[] {
  let refs = refCache.get(bytes);
  if (!refs) {
    refs = find(decodeCanonical(typeForUrl(type)!, bytes));
    refCache.set(bytes, refs);
  }
  return refs;
}

/**
 * Every problem that would leave a proxy waiting for a resource that never comes: a listener naming a route
 * configuration that is not in the snapshot, an EDS cluster whose service_name (else its name) has no
 * ClusterLoadAssignment. Empty = consistent: the only kind of snapshot translate() returns.
 */
export function checkConsistent(s: NodeSnapshot): string[] {
  const problems: string[] = [];
  const check = (from: ServedType, to: ServedType, find: (o: ProtoObj) => string[], say: (name: string, ref: string) => string) => {
    const targets = s.resources.get(to) ?? new Map<string, Uint8Array>();
    for (const [name, bytes] of s.resources.get(from) ?? []) {
      for (const ref of refsOf(from, bytes, find)) if (!targets.has(ref)) problems.push(say(name, ref));
    }
  };
  check(LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL, rdsNames, (l, r) => `listener ${JSON.stringify(l)} uses route configuration ${JSON.stringify(r)}, which is not in the snapshot`);
  check(CLUSTER_TYPE_URL, CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, edsName, (c, e) => `cluster ${JSON.stringify(c)} takes endpoints from ${JSON.stringify(e)}, which is not in the snapshot`);
  return problems;
}
