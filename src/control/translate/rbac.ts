// AuthorizationPolicy -> the inbound listener's envoy.filters.http.rbac filters, in the shapes istiod's authz builder writes.
import { CLAIMS_KEY, HEADER_KEY, SPIFFE_SCHEME, bracketNames, parseCidr } from '../mesh/authorization-policy.js';
import { ISTIO_AUTHN_METADATA } from '../../model/jwt.js';
import { RBAC_TYPE_URL } from '../../model/rbac.js';
import type { AuthorizationPolicy, AuthzCondition, AuthzRule } from '../mesh/types.js';
import { escapeRegex, policiesSelecting, type NodeCtx } from './common.js';

export { RBAC_TYPE_URL };
export const RBAC_FILTER_NAME = 'envoy.filters.http.rbac';

type Json = Record<string, unknown>;
/** One generator per attribute, as istiod's `generator`s: a value to an RBAC Permission or Principal. */
type Gen = (value: string) => Json;

/** A condition of one rule: OR over `values`, and NOT(OR over `notValues`) (istiod's ruleList entries). */
interface Cond {
  readonly gen: Gen;
  readonly values: readonly string[];
  readonly notValues: readonly string[];
}


/**
 * istiod's StringMatcherWithPrefix: `*` is any non-empty value, `*x` a suffix, `x*` a prefix, else exact; `prefix`
 * (spiffe:// for principals) is prepended. With a prefix, a suffix form becomes a regex, since Envoy has no
 * "prefix and suffix" matcher.
 */
export function stringMatcher(v: string, prefix = ''): Json {
  if (v === '*') return { safe_regex: { regex: '.+' } };
  if (v.startsWith('*')) return prefix === '' ? { suffix: v.slice(1) } : { safe_regex: { regex: `${escapeRegex(prefix)}.*${escapeRegex(v.slice(1))}` } };
  if (v.endsWith('*')) return { prefix: prefix + v.slice(0, -1) };
  return { exact: prefix + v };
}

/** istiod's HeaderMatcher / HostMatcher: `*` = present; prefix / suffix / exact string_match (hosts ignore case, RFC 4343). */
function headerMatcher(name: string, v: string, ignoreCase = false): Json {
  if (v === '*') return { name, present_match: true };
  const sm = stringMatcher(v);
  return { name, string_match: ignoreCase ? { ...sm, ignore_case: true } : sm };
}

/** Istio writes principals without the scheme; one written with it is read the same (not as spiffe://spiffe://…). */
const principalName = (v: string) => stringMatcher(v.startsWith(SPIFFE_SCHEME) ? v.slice(SPIFFE_SCHEME.length) : v, SPIFFE_SCHEME);
/** Every SPIFFE ID of a namespace: the regex `.*` + `/ns/<ns>/` + `.*`, a `*` in the namespace standing for any characters (istiod). */
const namespaceRegex = (v: string) => ({ safe_regex: { regex: `.*/ns/${v.split('*').map(escapeRegex).join('.*')}/.*` } });
const cidr = (v: string) => parseCidr(v)!;
/** metadata matcher on the istio_authn namespace: `request.auth.*` keys hold strings, claims hold lists (istiod). */
const authnString = (key: string) => (v: string) => ({ metadata: { filter: ISTIO_AUTHN_METADATA, path: [{ key }], value: { string_match: stringMatcher(v) } } });
const authnClaim = (claims: readonly string[]) => (v: string) => ({
  metadata: { filter: ISTIO_AUTHN_METADATA, path: [CLAIMS_KEY, ...claims].map((key) => ({ key })), value: { list_match: { one_of: { string_match: stringMatcher(v) } } } },
});

const P = {
  host: (v: string) => ({ header: headerMatcher(':authority', v, true) }),
  method: (v: string) => ({ header: headerMatcher(':method', v) }),
  path: (v: string) => ({ url_path: { path: stringMatcher(v) } }),
  port: (v: string) => ({ destination_port: Number(v) }),
  destIp: (v: string) => ({ destination_ip: cidr(v) }),
  sni: (v: string) => ({ requested_server_name: stringMatcher(v) }),
};
const ID = {
  principal: (v: string) => ({ authenticated: { principal_name: principalName(v) } }),
  namespace: (v: string) => ({ authenticated: { principal_name: namespaceRegex(v) } }),
  ip: (v: string) => ({ direct_remote_ip: cidr(v) }),
  remoteIp: (v: string) => ({ remote_ip: cidr(v) }),
  requestPrincipal: authnString('request.auth.principal'),
};

/** A `when` key: which side of the policy it constrains (permissions = the request's target, principals = its source). */
function conditionGen(key: string): { side: 'permission' | 'principal'; gen: Gen } {
  const fixed: Readonly<Record<string, { side: 'permission' | 'principal'; gen: Gen }>> = {
    'destination.ip': { side: 'permission', gen: P.destIp },
    'destination.port': { side: 'permission', gen: P.port },
    'connection.sni': { side: 'permission', gen: P.sni },
    'source.ip': { side: 'principal', gen: ID.ip },
    'remote.ip': { side: 'principal', gen: ID.remoteIp },
    'source.namespace': { side: 'principal', gen: ID.namespace },
    'source.principal': { side: 'principal', gen: ID.principal },
    'request.auth.principal': { side: 'principal', gen: ID.requestPrincipal },
    'request.auth.audiences': { side: 'principal', gen: authnString('request.auth.audiences') },
    'request.auth.presenter': { side: 'principal', gen: authnString('request.auth.presenter') },
  };
  if (Object.hasOwn(fixed, key)) return fixed[key]!;
  // Validation admitted only request.headers[<name>] and request.auth.claims[<claim>]...[<claim>] besides these.
  if (key.startsWith(HEADER_KEY)) {
    const name = bracketNames(key.slice(HEADER_KEY.length))![0]!.toLowerCase();
    return { side: 'principal', gen: (v) => ({ header: headerMatcher(name, v) }) };
  }
  return { side: 'principal', gen: authnClaim(bracketNames(key.slice(CLAIMS_KEY.length))!) };
}

/**
 * A source's / an operation's fields in istiod's order (it inserts each at the front of the `when` conditions):
 * generator, values field, notValues field.
 */
const SOURCE_GENS = [
  [ID.principal, 'principals', 'notPrincipals'],
  [ID.requestPrincipal, 'requestPrincipals', 'notRequestPrincipals'],
  [ID.namespace, 'namespaces', 'notNamespaces'],
  [ID.remoteIp, 'remoteIpBlocks', 'notRemoteIpBlocks'],
  [ID.ip, 'ipBlocks', 'notIpBlocks'],
] as const;
const OPERATION_GENS = [
  [P.host, 'hosts', 'notHosts'],
  [P.method, 'methods', 'notMethods'],
  [P.path, 'paths', 'notPaths'],
  [P.port, 'ports', 'notPorts'],
] as const;

function fieldConds<T extends Record<string, readonly string[]>>(o: T, gens: readonly (readonly [Gen, keyof T, keyof T])[]): Cond[] {
  return gens.map(([gen, values, notValues]) => ({ gen, values: o[values]!, notValues: o[notValues]! }));
}

/** The two proto vocabularies (Permission: and_rules/or_rules/not_rule; Principal: and_ids/or_ids/not_id). */
const PERMISSION = { and: 'and_rules', or: 'or_rules', not: 'not_rule', list: 'rules' } as const;
const PRINCIPAL = { and: 'and_ids', or: 'or_ids', not: 'not_id', list: 'ids' } as const;
type Vocab = typeof PERMISSION | typeof PRINCIPAL;

/** AND of the conditions, each an OR of its values (and a NOT of the OR of its notValues); none = `any`. */
function combine(conds: readonly Cond[], v: Vocab): Json {
  const and: Json[] = [];
  const or = (vals: readonly string[], gen: Gen) => ({ [v.or]: { [v.list]: vals.map(gen) } });
  for (const c of conds) {
    if (c.values.length > 0) and.push(or(c.values, c.gen));
    if (c.notValues.length > 0) and.push({ [v.not]: or(c.notValues, c.gen) });
  }
  return { [v.and]: { [v.list]: and.length > 0 ? and : [{ any: true }] } };
}

/**
 * One rule as istiod's authz model builds it: a Permission per `to` (OR), a Principal per `from` (OR), the
 * `when` conditions ANDed into each of them on the side their key belongs to.
 */
export function rulePolicy(rule: AuthzRule): Json {
  const base = { permission: [] as Cond[], principal: [] as Cond[] };
  for (const w of rule.when) base[conditionGen(w.key).side].push(whenCond(w));
  const permissions = (rule.to.length > 0 ? rule.to.map((o) => [...fieldConds(o, OPERATION_GENS), ...base.permission]) : [base.permission]).map((c) => combine(c, PERMISSION));
  const principals = (rule.from.length > 0 ? rule.from.map((s) => [...fieldConds(s, SOURCE_GENS), ...base.principal]) : [base.principal]).map((c) => combine(c, PRINCIPAL));
  return { permissions, principals };
}

const whenCond = (w: AuthzCondition): Cond => ({ gen: conditionGen(w.key).gen, values: w.values, notValues: w.notValues });

/** istiod's policy names: what the sidecar reports as the matched policy (access log, 403 message). */
export const policyName = (p: AuthorizationPolicy, i: number) => `ns[${p.meta.namespace}]-policy[${p.meta.name}]-rule[${i}]`;

/** The AuthorizationPolicies that apply to this workload (istiod's selection, policiesSelecting). */
export function policiesFor(ctx: NodeCtx): AuthorizationPolicy[] {
  return policiesSelecting(ctx, ctx.mesh.authorizationPolicies);
}

const ENVOY_ACTION = { AUDIT: 'LOG', DENY: 'DENY', ALLOW: 'ALLOW' } as const;

/**
 * The inbound HCM's RBAC filters in istiod's order: AUDIT (action LOG), DENY, ALLOW, each present only when a
 * policy of that action applies. Rules become policies; a policy with no rules contributes none, so an ALLOW
 * policy without rules leaves an ALLOW filter that matches nothing (allow-nothing) and, with no ALLOW policy at
 * all, there is no ALLOW filter (allow by default). The filters ride inline in the listener, so one LDS update
 * carries the whole policy set: no sidecar ever enforces half of it.
 */
export function inboundRbacFilters(ctx: NodeCtx): object[] {
  const applied = policiesFor(ctx);
  const filters: object[] = [];
  for (const action of ['AUDIT', 'DENY', 'ALLOW'] as const) {
    const of = applied.filter((p) => p.action === action);
    if (of.length === 0) continue;
    const policies: Json = {};
    for (const p of of) p.rules.forEach((r, i) => (policies[policyName(p, i)] = rulePolicy(r)));
    filters.push({ name: RBAC_FILTER_NAME, typed_config: { '@type': RBAC_TYPE_URL, rules: { action: ENVOY_ACTION[action], policies } } });
  }
  return filters;
}
