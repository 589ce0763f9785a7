// HTTPRoute mirrors -> RouteAction.request_mirror_policies, as istiod writes them (MirrorPercent,
// TranslateRequestMirrorPolicy): the destination's outbound cluster and a runtime_fraction in millionths.
import type { HTTPRoute } from '../mesh/types.js';
import { outboundClusterName, type Ctx } from './common.js';

/**
 * One policy per target with a percentage above 0 (istiod drops a 0 % mirror). A destination without a port takes
 * the service's only port, else the port of the virtual host being built, as route destinations do.
 */
export function mirrorPolicies(ctx: Ctx, r: HTTPRoute, vhostPort: number): Record<string, unknown> {
  const policies = (r.mirrors ?? [])
    .filter((m) => m.percent > 0)
    .map(({ destination: d, percent }) => {
      const target = ctx.mesh.service(d.fqdn);
      const port = d.port ?? (target?.entry.ports.length === 1 ? target.entry.ports[0]!.number : vhostPort);
      return {
        cluster: outboundClusterName(port, d.subset ?? '', d.fqdn),
        // istiod's translatePercentToFractionalPercent: the percentage x 10 000 over a million.
        runtime_fraction: { default_value: { numerator: Math.round(percent * 10_000), denominator: 'MILLION' } },
      };
    });
  return policies.length ? { request_mirror_policies: policies } : {};
}
