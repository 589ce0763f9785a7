// Decodes envoy.config.endpoint.v3.ClusterLoadAssignment (the EDS resource, and a cluster's load_assignment).
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import type { ClusterLoadAssignment, HealthStatus, LbEndpoint, LocalityLbEndpoints } from '../../model/types.js';
import type { ProtoObj } from '../canonical.js';
import { Issues, enumOf, joinPath, list, locality, msg, num, onlyFields, requireOne, required, socketAddress, str, u32Value } from './common.js';

/** ClusterLoadAssignment.Policy.overprovisioning_factor default (Envoy docs: 140 %). */
const DEFAULT_OVERPROVISIONING_FACTOR = 140;

/** LocalityLbEndpoints.priority validate rule: lte 128. */
const MAX_PRIORITY = 128;

const HEALTH: readonly HealthStatus[] = ['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DRAINING', 'TIMEOUT', 'DEGRADED'];

export function decodeClusterLoadAssignment(o: ProtoObj, path: string): Result<ClusterLoadAssignment, FieldIssue> {
  const issues = new Issues();
  onlyFields(o, path, ['cluster_name', 'endpoints', 'policy'], issues);
  const clusterName = required(o, 'cluster_name', path, issues);
  const localities = list(o, 'endpoints').map((l, i) => localityEndpoints(l, joinPath(path, `endpoints[${i}]`), issues));
  const policy = msg(o, 'policy') ?? {};
  const policyPath = joinPath(path, 'policy');
  onlyFields(policy, policyPath, ['overprovisioning_factor'], issues);
  const factor = u32Value(policy, 'overprovisioning_factor') ?? DEFAULT_OVERPROVISIONING_FACTOR;
  // validate rule gt: 0; a factor of 0 would make every priority look unhealthy.
  if (factor === 0) issues.add(joinPath(policyPath, 'overprovisioning_factor'), 'must be greater than 0');
  return issues.result(() => ({ clusterName, localities, overprovisioningFactor: factor }));
}

/** LocalityLbEndpoints: locality, priority, weight (0 = unset) and the endpoints themselves. */
function localityEndpoints(o: ProtoObj, path: string, issues: Issues): LocalityLbEndpoints {
  onlyFields(o, path, ['locality', 'lb_endpoints', 'load_balancing_weight', 'priority'], issues);
  const weight = u32Value(o, 'load_balancing_weight');
  if (weight === 0) issues.add(joinPath(path, 'load_balancing_weight'), 'must be at least 1');
  const priority = num(o, 'priority');
  if (priority > MAX_PRIORITY) issues.add(joinPath(path, 'priority'), `${priority} is greater than ${MAX_PRIORITY}`);
  return {
    locality: locality(msg(o, 'locality') ?? {}, joinPath(path, 'locality'), issues),
    priority,
    weight: weight ?? 0,
    endpoints: list(o, 'lb_endpoints').map((e, i) => lbEndpoint(e, joinPath(path, `lb_endpoints[${i}]`), issues)),
  };
}

/** LbEndpoint: an IP endpoint with health status and weight (default 1). */
function lbEndpoint(o: ProtoObj, path: string, issues: Issues): LbEndpoint {
  const clean = onlyFields(o, path, ['endpoint', 'health_status', 'load_balancing_weight'], issues);
  requireOne(o, path, ['endpoint'], clean, issues);
  const e = msg(o, 'endpoint');
  const ePath = joinPath(path, 'endpoint');
  if (e) onlyFields(e, ePath, ['address', 'hostname'], issues);
  const weight = u32Value(o, 'load_balancing_weight') ?? 1;
  if (weight === 0) issues.add(joinPath(path, 'load_balancing_weight'), 'must be at least 1');
  return {
    address: e ? socketAddress(msg(e, 'address'), joinPath(ePath, 'address'), issues, { portZeroOk: false }) : { host: '', port: 0 },
    healthStatus: enumOf(o, 'health_status', path, HEALTH, 'UNKNOWN', issues),
    weight,
    hostname: e ? str(e, 'hostname') : '',
  };
}
