// Decodes RouteAction.request_mirror_policies: which clusters get a fire-and-forget shadow copy, and how often.
import type { MirrorPolicy } from '../../model/types.js';
import type { ProtoObj } from '../canonical.js';
import { Issues, joinPath, list, msg, num, onlyFields, required } from './common.js';

/** envoy.type.v3.FractionalPercent.DenominatorType. */
const DENOMINATORS: Readonly<Record<string, number>> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };

/**
 * Each RequestMirrorPolicy: a cluster (cluster_header is not supported) and runtime_fraction's default_value (no
 * runtime here, so runtime_key is refused); no fraction mirrors every request, as in Envoy. trace_sampled is
 * accepted and has nothing to act on (the proxy does not trace). A numerator above its denominator means always,
 * as Envoy clamps it.
 */
export function decodeMirrorPolicies(o: ProtoObj, path: string, issues: Issues): { mirrorPolicies?: MirrorPolicy[] } {
  const raw = list(o, 'request_mirror_policies');
  if (raw.length === 0) return {};
  const mirrorPolicies = raw.map((m, i) => {
    const p = joinPath(path, `request_mirror_policies[${i}]`);
    onlyFields(m, p, ['cluster', 'runtime_fraction', 'trace_sampled'], issues);
    const cluster = required(m, 'cluster', p, issues);
    const rf = msg(m, 'runtime_fraction');
    if (!rf) return { cluster, numerator: 1, denominator: 1 };
    const rp = joinPath(p, 'runtime_fraction');
    onlyFields(rf, rp, ['default_value'], issues);
    const dv = msg(rf, 'default_value') ?? {};
    onlyFields(dv, joinPath(rp, 'default_value'), ['numerator', 'denominator'], issues);
    // The canonical form has already refused an enum value the proto does not name.
    const denominator = DENOMINATORS[String(dv.denominator ?? 'HUNDRED')]!;
    return { cluster, numerator: num(dv, 'numerator'), denominator };
  });
  return { mirrorPolicies };
}
