// Decodes a security.istio.io/v1 AuthorizationPolicy spec, refusing what istiod refuses (and CUSTOM, targetRef).
import { isIP } from 'node:net';
import { joinPath } from '../../xds/json.js';
import { Reader, defined, type Obj, type Shape } from './schema.js';
import { AUTHZ_OPERATION_FIELDS as OPERATION_FIELDS, AUTHZ_SOURCE_FIELDS as SOURCE_FIELDS, type AuthorizationPolicy, type AuthzCondition, type AuthzOperation, type AuthzRule, type AuthzSource } from './types.js';

/** Istio serves AuthorizationPolicy under security.istio.io at v1 and v1beta1 with the same schema. */
export const SECURITY_API_VERSIONS = ['security.istio.io/v1', 'security.istio.io/v1beta1'];


const POLICY: Shape = { fields: ['selector', 'action', 'rules', 'provider', 'targetRef', 'targetRefs'] };
const SELECTOR: Shape = { fields: ['matchLabels'] };
const RULE: Shape = { fields: ['from', 'to', 'when'] };
const FROM: Shape = { fields: ['source'] };
const TO: Shape = { fields: ['operation'] };
const SOURCE: Shape = { fields: SOURCE_FIELDS };
const OPERATION: Shape = { fields: OPERATION_FIELDS };
const CONDITION: Shape = { fields: ['key', 'values', 'notValues'] };

const ACTIONS = ['ALLOW', 'DENY', 'AUDIT'] as const;
const UNSUPPORTED_ACTIONS = { CUSTOM: 'not supported (CUSTOM delegates to an external authorizer through ext_authz, which Outrigger does not have); use ALLOW, DENY or AUDIT' };

/** `<trust domain>/ns/<namespace>/sa/<service account>`: a SPIFFE ID as Istio writes principals. */
const SPIFFE_PRINCIPAL = /^[^/\s*]+\/ns\/[^/\s*]+\/sa\/[^/\s*]+$/;
export const SPIFFE_SCHEME = 'spiffe://';

/**
 * The `when` keys Istio's AuthorizationPolicy accepts on HTTP (istio.io "Authorization Policy Conditions"),
 * with a check of each value. request.headers[...] and request.auth.claims[...] are matched by prefix.
 */
const CONDITION_KEYS: Readonly<Record<string, ((v: string) => string | undefined) | undefined>> = {
  'source.ip': cidrProblem,
  'remote.ip': cidrProblem,
  'destination.ip': cidrProblem,
  'destination.port': portProblem,
  'source.namespace': wildcardProblem,
  'source.principal': principalProblem,
  'request.auth.principal': wildcardProblem,
  'request.auth.audiences': wildcardProblem,
  'request.auth.presenter': wildcardProblem,
  'connection.sni': wildcardProblem,
};
export const HEADER_KEY = 'request.headers';
export const CLAIMS_KEY = 'request.auth.claims';

/** An address or CIDR as Envoy's CidrRange; undefined when it is neither (istiod's AddrStrToCidrRange). */
export function parseCidr(s: string): { address_prefix: string; prefix_len: number } | undefined {
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const family = isIP(addr);
  if (family === 0) return undefined;
  const max = family === 4 ? 32 : 128;
  if (slash < 0) return { address_prefix: addr, prefix_len: max };
  const bits = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return undefined;
  return { address_prefix: addr, prefix_len: Number(bits) };
}

function cidrProblem(s: string): string | undefined {
  return parseCidr(s) ? undefined : `${JSON.stringify(s)} is not an IP address or CIDR range`;
}

function portProblem(s: string): string | undefined {
  return /^\d{1,5}$/.test(s) && Number(s) <= 65535 ? undefined : `${JSON.stringify(s)} is not a port (0..65535)`;
}

/** Istio matches `*`, `prefix*` and `*suffix`; a `*` anywhere else would be taken literally, so istiod refuses it. */
function wildcardProblem(s: string): string | undefined {
  if (s === '') return 'must not be empty';
  if (s.length > 1 && s.slice(1, -1).includes('*')) return `${JSON.stringify(s)}: a wildcard (*) may only be the whole value, a prefix (*suffix) or a suffix (prefix*)`;
  if (s.length > 2 && s.startsWith('*') && s.endsWith('*')) return `${JSON.stringify(s)}: use one wildcard, at the start or at the end`;
  return undefined;
}

/** Paths: `*`, `/api/*`, `*.png` or exact; Istio's newer `{*}` / `{**}` templates are not read yet. */
function pathProblem(s: string): string | undefined {
  if (s.includes('{*}') || s.includes('{**}')) return `${JSON.stringify(s)}: path templates ({*}, {**}) are not supported yet`;
  return wildcardProblem(s);
}

/** A SPIFFE ID (`<td>/ns/<ns>/sa/<sa>`, spiffe:// optional) or a wildcard form of one. */
function principalProblem(s: string): string | undefined {
  const w = wildcardProblem(s);
  if (w || s.includes('*')) return w;
  const id = s.startsWith(SPIFFE_SCHEME) ? s.slice(SPIFFE_SCHEME.length) : s;
  return SPIFFE_PRINCIPAL.test(id) ? undefined : `${JSON.stringify(s)} is not a SPIFFE principal (<trust domain>/ns/<namespace>/sa/<service account>) or *`;
}

const SOURCE_CHECKS: Readonly<Record<(typeof SOURCE_FIELDS)[number], (s: string) => string | undefined>> = {
  principals: principalProblem,
  notPrincipals: principalProblem,
  requestPrincipals: wildcardProblem,
  notRequestPrincipals: wildcardProblem,
  namespaces: wildcardProblem,
  notNamespaces: wildcardProblem,
  ipBlocks: cidrProblem,
  notIpBlocks: cidrProblem,
  remoteIpBlocks: cidrProblem,
  notRemoteIpBlocks: cidrProblem,
};
const OPERATION_CHECKS: Readonly<Record<(typeof OPERATION_FIELDS)[number], (s: string) => string | undefined>> = {
  hosts: wildcardProblem,
  notHosts: wildcardProblem,
  ports: portProblem,
  notPorts: portProblem,
  methods: wildcardProblem,
  notMethods: wildcardProblem,
  paths: pathProblem,
  notPaths: pathProblem,
};

export type AuthorizationPolicySpec = Omit<AuthorizationPolicy, 'kind' | 'meta'>;

export function decodeAuthorizationPolicy(r: Reader, v: unknown, path: string): AuthorizationPolicySpec | undefined {
  const o = r.object(v, path, POLICY);
  if (!o) return undefined;
  for (const key of ['targetRef', 'targetRefs']) {
    // targetRef(s) attach a policy to a Gateway or Service (ambient waypoints); sidecars are chosen by selector.
    if (o[key] !== undefined && o[key] !== null) r.issue(joinPath(path, key), 'not supported: Outrigger applies policies to sidecars, chosen by selector.matchLabels');
  }
  const action = r.enumOf(o, 'action', path, ACTIONS, UNSUPPORTED_ACTIONS) ?? 'ALLOW';
  if (o.provider !== undefined && o.provider !== null) r.issue(joinPath(path, 'provider'), 'only for action CUSTOM, which is not supported');
  let selector: AuthorizationPolicySpec['selector'];
  if (o.selector !== undefined && o.selector !== null) {
    const sp = joinPath(path, 'selector');
    const s = r.object(o.selector, sp, SELECTOR);
    if (s) selector = { matchLabels: r.labels(s, 'matchLabels', sp) ?? {} };
  }
  const rules = r.list(o, 'rules', path, (rv, p) => rule(r, rv, p));
  return defined({ selector, action, rules });
}

function rule(r: Reader, v: unknown, path: string): AuthzRule | undefined {
  // A null rule (`- ` in YAML) is refused by istiod ("rule must not be nil"); `- {}` is a rule matching everything.
  if (v === null) return r.issue(path, 'must not be null (write {} for a rule that matches every request)');
  const o = r.object(v, path, RULE);
  if (!o) return undefined;
  const from = nonEmptyList(r, o, 'from', path, (x, p) => clause(r, x, p, FROM, 'source', SOURCE, SOURCE_CHECKS) as AuthzSource | undefined);
  const to = nonEmptyList(r, o, 'to', path, (x, p) => clause(r, x, p, TO, 'operation', OPERATION, OPERATION_CHECKS) as AuthzOperation | undefined);
  const when = r.list(o, 'when', path, (x, p) => condition(r, x, p));
  return { from, to, when };
}

/** istiod: `from` / `to`, when written, must not be empty (an empty list would read as "any" and surprise). */
function nonEmptyList<T>(r: Reader, o: Obj, key: string, path: string, item: (v: unknown, p: string) => T | undefined): T[] {
  if (Array.isArray(o[key]) && (o[key] as unknown[]).length === 0) r.issue(joinPath(path, key), 'must not be empty (leave it out to match any)');
  return r.list(o, key, path, item);
}

/** One `from[i]` / `to[i]`: its `source` / `operation`, which must be present and set at least one field. */
function clause(r: Reader, v: unknown, path: string, outer: Shape, inner: string, shape: Shape, checks: Readonly<Record<string, (s: string) => string | undefined>>): Record<string, string[]> | undefined {
  const o = r.object(v, path, outer);
  if (!o || !r.need(o, inner, path)) return undefined;
  const ip = joinPath(path, inner);
  const s = r.object(o[inner], ip, shape);
  if (!s) return undefined;
  const out = Object.fromEntries(shape.fields.map((f) => [f, r.strings(s, f, ip, checks[f])]));
  if (Object.values(out).every((l) => l.length === 0)) r.issue(ip, `must set at least one of ${shape.fields.join(', ')}`);
  return out;
}

function condition(r: Reader, v: unknown, path: string): AuthzCondition | undefined {
  const o = r.object(v, path, CONDITION);
  if (!o) return undefined;
  r.need(o, 'key', path);
  const key = r.string(o, 'key', path, keyProblem);
  const check = key === undefined ? undefined : (CONDITION_KEYS[key] ?? wildcardProblem);
  const values = r.strings(o, 'values', path, check);
  const notValues = r.strings(o, 'notValues', path, check);
  // Counted as written, so a refused value is not reported a second time as a missing one.
  const written = (k: string) => (Array.isArray(o[k]) ? (o[k] as unknown[]).length : 0);
  if (written('values') + written('notValues') === 0) r.issue(path, 'at least one of values, notValues is required');
  return key === undefined ? undefined : { key, values, notValues };
}

function keyProblem(key: string): string | undefined {
  if (Object.hasOwn(CONDITION_KEYS, key)) return undefined;
  if (key.startsWith(`${HEADER_KEY}[`)) return bracketNames(key.slice(HEADER_KEY.length))?.length === 1 ? undefined : `${JSON.stringify(key)}: write ${HEADER_KEY}[<header name>]`;
  if (key.startsWith(`${CLAIMS_KEY}[`)) return bracketNames(key.slice(CLAIMS_KEY.length)) ? undefined : `${JSON.stringify(key)}: write ${CLAIMS_KEY}[<claim>] or, for a nested claim, ${CLAIMS_KEY}[<claim>][<nested claim>]`;
  const known = [...Object.keys(CONDITION_KEYS), `${HEADER_KEY}[...]`, `${CLAIMS_KEY}[...]`].join(', ');
  return `unknown key ${JSON.stringify(key)} (Istio's keys: ${known})`;
}

/** `[a][b]` -> ['a', 'b'] (istiod's extractNameInNestedBrackets); undefined when not of that form or a name is empty. */
export function bracketNames(s: string): string[] | undefined {
  const m = s.match(/^(\[[^[\]]+\])+$/);
  return m ? s.slice(1, -1).split('][') : undefined;
}
