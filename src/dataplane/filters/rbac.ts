// envoy.filters.http.rbac at run time: shadow rules reported, enforced rules decide, 403 "RBAC: access denied" with the effective policy.
import type { RbacConfig } from '../../model/rbac.js';
import { RBAC_TYPE_URL } from '../../model/rbac.js';
import { compileRbac, parseIstioPolicyName, type RbacDecision, type RbacEngine, type RbacInput } from '../../policy/rbac.js';
import type { Tally } from '../../telemetry/metrics.js';
import { Replies, type LocalReply } from '../local-reply.js';
import type { CompiledRoute } from '../router.js';
import type { FilterDeps, FilterRequest, HttpFilter, HttpFilterFactory } from './filter.js';

export { RBAC_TYPE_URL };

type Outcome = 'allowed' | 'denied' | 'shadow_allowed' | 'shadow_denied' | 'logged';

/** A route's workload port (0: not an inbound route), parsed once per route config version: route models are frozen. */
const workloadPorts = new WeakMap<CompiledRoute['route'], number>();

/**
 * The port the request is for. On an inbound listener every request arrives on the one capture port (15006), so
 * Istio's `ports` mean the workload port, which the route names in its cluster `inbound|<port>||`; anything else
 * (an outbound or hand-written listener) uses the port the connection was accepted on, as Envoy's destination_port.
 */
export function destinationPort(route: CompiledRoute | undefined, localPort: number): number {
  if (!route) return localPort;
  let port = workloadPorts.get(route.route);
  if (port === undefined) {
    const action = route.route.action;
    const cluster = action.kind === 'route' ? action.action.cluster : '';
    const n = cluster.startsWith('inbound|') ? Number(cluster.slice(8, cluster.indexOf('|', 8))) : 0;
    port = Number.isInteger(n) && n > 0 ? n : 0;
    workloadPorts.set(route.route, port);
  }
  return port || localPort;
}

/** What RBAC sees of one request. remote_ip is the direct peer: x-forwarded-for is not consulted (README). */
export function rbacInput(req: FilterRequest): RbacInput {
  const { rec, route } = req;
  const c = rec.conn;
  // A plain object per filter: cheaper than sharing one across the chain's RBAC filters through a WeakMap.
  return {
    method: rec.method,
    path: rec.path,
    authority: rec.authority,
    headers: rec.headers,
    directRemoteIp: c.remoteIp,
    remoteIp: c.remoteIp,
    destinationIp: c.localIp ?? '',
    destinationPort: destinationPort(route, c.localPort ?? 0),
    // Envoy's principal: URI SAN first (the SPIFFE ID), else the subject.
    principal: c.peer?.uri ?? c.peer?.subject,
    sni: c.sni,
    metadata: rec.dynamicMetadata,
    tls: c.tls,
  };
}

/** One engine with its tallies by outcome and policy name, taken once per config version (names come from config). */
class Counted {
  private readonly tallies = new Map<Outcome, Map<string, Tally>>();

  constructor(
    readonly engine: RbacEngine,
    outcomes: readonly Outcome[],
    deps: FilterDeps,
  ) {
    for (const action of outcomes) {
      const byPolicy = new Map<string, Tally>();
      for (const policy of [...engine.policyNames, 'none']) byPolicy.set(policy, deps.metrics.rbacDecisions.tally({ listener: deps.listenerName, action, policy }));
      this.tallies.set(action, byPolicy);
    }
  }

  count(outcome: Outcome, d: RbacDecision): void {
    this.tallies.get(outcome)!.get(d.matchedPolicy ?? 'none')!.n++;
  }
}

class RbacFilter implements HttpFilter {
  private readonly rules: Counted | undefined;
  private readonly shadow: Counted | undefined;

  constructor(
    readonly name: string,
    cfg: RbacConfig,
    private readonly deps: FilterDeps,
  ) {
    this.rules = cfg.rules && new Counted(compileRbac(cfg.rules), cfg.rules.action === 'LOG' ? ['logged'] : ['allowed', 'denied'], deps);
    this.shadow = cfg.shadowRules && new Counted(compileRbac(cfg.shadowRules), ['shadow_allowed', 'shadow_denied'], deps);
  }

  /** The audit line: one per deny and per LOG or shadow match, naming the policy (and Istio's rule index). */
  private log(req: FilterRequest, input: RbacInput, d: RbacDecision, decision: Outcome): void {
    const id = d.matchedPolicy;
    const istio = id === undefined ? undefined : parseIstioPolicyName(id);
    this.deps.logger.info(
      {
        listener: this.deps.listenerName,
        filter: this.name,
        policy: istio ? `${istio.namespace}/${istio.policy}` : (id ?? 'none'),
        ...(istio && { rule: istio.rule }),
        principal: input.principal ?? null,
        path: input.path,
        decision,
        request_id: req.rec.requestId,
      },
      'rbac',
    );
  }

  decodeHeaders(req: FilterRequest): LocalReply | undefined {
    const { rules, shadow } = this;
    if (!rules && !shadow) return undefined;
    const input = rbacInput(req);
    if (shadow) {
      // Shadow rules never decide; Envoy counts the decision they would have made.
      const d = shadow.engine.evaluate(input);
      const outcome = d.allowed ? 'shadow_allowed' : 'shadow_denied';
      shadow.count(outcome, d);
      if (d.matchedPolicy !== undefined) this.log(req, input, d, outcome);
    }
    if (!rules) return undefined;
    const d = rules.engine.evaluate(input);
    if (rules.engine.action === 'LOG') {
      // LOG allows every request; a match is counted and logged (Istio's AUDIT).
      if (d.matchedPolicy !== undefined) {
        rules.count('logged', d);
        this.log(req, input, d, 'logged');
      }
      return undefined;
    }
    if (d.allowed) {
      rules.count('allowed', d);
      return undefined;
    }
    rules.count('denied', d);
    this.log(req, input, d, 'denied');
    return Replies.rbacDenied(d.matchedPolicy, shownAs(d.matchedPolicy));
  }
}

/** How a denial's message names the DENY policy that matched: Istio's `ns/name rule i`, else the policy's own name. */
function shownAs(id: string | undefined): string | undefined {
  if (id === undefined) return undefined;
  const istio = parseIstioPolicyName(id);
  return istio ? `policy ${istio.namespace}/${istio.policy} rule ${istio.rule}` : `policy ${id}`;
}

export const rbacFactory: HttpFilterFactory = {
  typeUrl: RBAC_TYPE_URL,
  create: (config, deps) => new RbacFilter(config.name, config.config as unknown as RbacConfig, deps),
};
