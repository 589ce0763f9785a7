// Decodes a DestinationRule spec: the host, its traffic policy and its subsets (named label selections).
import { joinPath } from '../../xds/json.js';
import { hostProblem, readExportTo, resolveHost } from './hosts.js';
import { Reader, defined, dnsLabelProblem, type Shape } from './schema.js';
import { decodeTrafficPolicy } from './traffic-policy.js';
import type { DestinationRule, Subset } from './types.js';

/** istio.networking.v1.DestinationRule; per-workload rules (workloadSelector) arrive later. */
const DESTINATION_RULE: Shape = { fields: ['host', 'trafficPolicy', 'subsets', 'exportTo'], notYet: ['workloadSelector'] };
const SUBSET: Shape = { fields: ['name', 'labels', 'trafficPolicy'] };

export type DestinationRuleSpec = Omit<DestinationRule, 'kind' | 'meta'>;

export function decodeDestinationRule(r: Reader, v: unknown, path: string, ns: string, domainSuffix: string): DestinationRuleSpec | undefined {
  const o = r.object(v, path, DESTINATION_RULE);
  if (!o) return undefined;
  r.need(o, 'host', path);
  const host = r.string(o, 'host', path, hostProblem) ?? '';
  const trafficPolicy = o.trafficPolicy === undefined || o.trafficPolicy === null ? undefined : decodeTrafficPolicy(r, o.trafficPolicy, joinPath(path, 'trafficPolicy'));
  const names = new Map<string, number>();
  const subsets = r.list(o, 'subsets', path, (sv, p, i): Subset | undefined => {
    const s = r.object(sv, p, SUBSET);
    if (!s) return undefined;
    r.need(s, 'name', p);
    const name = r.string(s, 'name', p, dnsLabelProblem) ?? '';
    // Istio (1.22+) rejects duplicate subset names: which one a route picks would be arbitrary.
    const first = names.get(name);
    if (name !== '' && first !== undefined) r.issue(joinPath(p, 'name'), `duplicate subset name ${name} (also subsets[${first}])`);
    if (first === undefined) names.set(name, i);
    const tp = s.trafficPolicy === undefined || s.trafficPolicy === null ? undefined : decodeTrafficPolicy(r, s.trafficPolicy, joinPath(p, 'trafficPolicy'));
    return defined({ name, labels: r.labels(s, 'labels', p) ?? {}, trafficPolicy: tp });
  });
  readExportTo(r, o, path);
  return defined({ host, fqdn: resolveHost(host, ns, domainSuffix), trafficPolicy, subsets });
}
