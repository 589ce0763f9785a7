// Decodes envoy.config.route.v3.RouteConfiguration (the RDS resource, and HCM's inline route_config).
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import type {
  HashPolicy,
  HeaderAppendAction,
  HeaderMutations,
  HeaderValueOption,
  RedirectAction,
  RegexRewrite,
  Route,
  RouteAction,
  RouteConfiguration,
  RouteKind,
  VirtualHost,
  WeightedCluster,
} from '../../model/types.js';
import type { ProtoObj } from '../canonical.js';
import { Issues, bool, boolValue, durationMs, enumOf, joinPath, list, msg, num, onlyFields, requireOne, required, str, strings, u32Value } from './common.js';
import { decodeRegexMatcher, decodeRouteMatch } from './matchers.js';
import { decodeMirrorPolicies } from './mirror.js';
import { decodeRateLimits } from './rate-limits.js';
import { decodeRetryPolicy } from './retry.js';
import { decodeTypedPerFilterConfig } from './per-filter-config.js';

/** RouteAction.timeout default (Envoy docs: 15 s; 0 disables the timeout). */
const DEFAULT_ROUTE_TIMEOUT_MS = 15_000;

export function decodeRouteConfiguration(o: ProtoObj, path: string): Result<RouteConfiguration, FieldIssue> {
  const issues = new Issues();
  onlyFields(o, path, ['name', 'virtual_hosts'], issues);
  const vhs = list(o, 'virtual_hosts');
  const virtualHosts = vhs.map((vh, i) => issues.take(decodeVirtualHost(vh, joinPath(path, `virtual_hosts[${i}]`))));
  // Envoy refuses a route table where a virtual host name or a domain (case-insensitively) appears twice.
  const names = new Map<string, number>();
  const domains = new Map<string, number>();
  vhs.forEach((vh, i) => {
    const vhPath = joinPath(path, `virtual_hosts[${i}]`);
    const name = str(vh, 'name');
    if (name !== '' && names.has(name)) issues.add(joinPath(vhPath, 'name'), `duplicate virtual host name ${JSON.stringify(name)} (also virtual_hosts[${names.get(name)}])`);
    names.set(name, i);
    strings(vh, 'domains').forEach((d, j) => {
      const key = d.toLowerCase();
      const other = domains.get(key);
      if (other !== undefined) issues.add(`${vhPath}.domains[${j}]`, `duplicate domain ${JSON.stringify(d)} (also in virtual_hosts[${other}])`);
      else domains.set(key, i);
    });
  });
  return issues.result(() => ({ name: str(o, 'name'), virtualHosts: virtualHosts as VirtualHost[] }));
}

/** Envoy's domain rule: one '*' at most, as the whole domain, a prefix ("*.example.com") or a suffix ("example.*"). */
function domainProblem(d: string): string | undefined {
  if (d === '') return 'must not be empty';
  const stars = d.split('*').length - 1;
  if (stars > 1) return `${JSON.stringify(d)}: only one wildcard is allowed`;
  if (stars === 1 && !d.startsWith('*') && !d.endsWith('*')) return `${JSON.stringify(d)}: the wildcard must be at the start or the end`;
  return undefined;
}

function decodeVirtualHost(o: ProtoObj, path: string): Result<VirtualHost, FieldIssue> {
  const issues = new Issues();
  onlyFields(o, path, ['name', 'domains', 'routes', 'per_request_buffer_limit_bytes'], issues);
  const name = required(o, 'name', path, issues);
  const domains = strings(o, 'domains');
  if (domains.length === 0) issues.add(joinPath(path, 'domains'), 'at least one domain is required');
  domains.forEach((d, i) => {
    const problem = domainProblem(d);
    if (problem) issues.add(`${path}.domains[${i}]`, problem);
  });
  const routes = list(o, 'routes').map((r, i) => issues.take(decodeRoute(r, joinPath(path, `routes[${i}]`))));
  return issues.result(() => ({ name, domains, routes: inheritBufferLimit(u32Value(o, 'per_request_buffer_limit_bytes'), routes as Route[]) }));
}

function decodeRoute(o: ProtoObj, path: string): Result<Route, FieldIssue> {
  const issues = new Issues();
  const clean = onlyFields(o, path, ['name', 'match', 'route', 'direct_response', 'redirect', 'typed_per_filter_config', 'per_request_buffer_limit_bytes', ...HEADER_MUTATION_FIELDS], issues);
  requireOne(o, path, ['match'], true, issues);
  const m = msg(o, 'match');
  const match = m && issues.take(decodeRouteMatch(m, joinPath(path, 'match')));
  requireOne(o, path, ['route', 'direct_response', 'redirect'], clean, issues);
  const route = msg(o, 'route');
  const direct = msg(o, 'direct_response');
  const redirect = msg(o, 'redirect');
  let action: RouteKind | undefined;
  if (route) {
    const a = issues.take(decodeRouteAction(route, joinPath(path, 'route')));
    if (a) action = { kind: 'route', action: a };
  } else if (direct) {
    action = directResponse(direct, joinPath(path, 'direct_response'), issues);
  } else if (redirect) {
    action = { kind: 'redirect', redirect: redirectAction(redirect, joinPath(path, 'redirect'), issues) };
  }
  const perFilter = decodeTypedPerFilterConfig(o, path, issues);
  const headers = headerMutations(o, path, issues);
  const limit = u32Value(o, 'per_request_buffer_limit_bytes');
  return issues.result(() => ({
    name: str(o, 'name'),
    match: match!,
    action: action!,
    ...(perFilter && { typedPerFilterConfig: perFilter }),
    ...(headers && { headers }),
    ...(limit !== undefined && { perRequestBufferLimitBytes: limit }),
  }));
}

function decodeRouteAction(o: ProtoObj, path: string): Result<RouteAction, FieldIssue> {
  const issues = new Issues();
  const clean = onlyFields(o, path, ['cluster', 'weighted_clusters', 'timeout', 'prefix_rewrite', 'regex_rewrite', 'host_rewrite_literal', 'hash_policy', 'retry_policy', 'rate_limits', 'max_grpc_timeout', 'request_mirror_policies'], issues);
  requireOne(o, path, ['cluster', 'weighted_clusters'], clean, issues);
  const timeoutMs = durationMs(o, 'timeout', path, issues) ?? DEFAULT_ROUTE_TIMEOUT_MS;
  const wc = msg(o, 'weighted_clusters');
  const weighted = wc && weightedClusters(wc, joinPath(path, 'weighted_clusters'), issues);
  const hashPolicy = list(o, 'hash_policy').flatMap((h, i) => hashPolicyOf(h, joinPath(path, `hash_policy[${i}]`), issues) ?? []);
  const rp = msg(o, 'retry_policy');
  const retryPolicy = rp && issues.take(decodeRetryPolicy(rp, joinPath(path, 'retry_policy')));
  const maxGrpcTimeoutMs = durationMs(o, 'max_grpc_timeout', path, issues);
  const mirror = decodeMirrorPolicies(o, path, issues);
  const rateLimits = o.rate_limits !== undefined ? decodeRateLimits(list(o, 'rate_limits'), joinPath(path, 'rate_limits'), issues) : undefined;
  const rr = msg(o, 'regex_rewrite');
  const regexRewrite = rr && regexRewriteOf(rr, joinPath(path, 'regex_rewrite'), issues);
  // Envoy: "Only one of regex_rewrite, path_rewrite_policy, or prefix_rewrite may be specified".
  if (rr && o.prefix_rewrite !== undefined) issues.add(joinPath(path, 'regex_rewrite'), 'cannot be set together with prefix_rewrite');
  return issues.result(() => ({
    cluster: str(o, 'cluster'),
    ...(weighted && { weightedClusters: weighted }),
    timeoutMs,
    hashPolicy,
    ...(retryPolicy && { retryPolicy }),
    ...(maxGrpcTimeoutMs !== undefined && { maxGrpcTimeoutMs }),
    ...mirror,
    ...(rateLimits && { rateLimits }),
    ...(o.prefix_rewrite !== undefined && { prefixRewrite: str(o, 'prefix_rewrite') }),
    ...(regexRewrite && { regexRewrite }),
    ...(o.host_rewrite_literal !== undefined && { hostRewriteLiteral: str(o, 'host_rewrite_literal') }),
  }));
}

/** Envoy's non-strict HTTP_HEADER_NAME rule (validate well_known_regex): no NUL, CR or LF. */
const BAD_HEADER_CHARS = /[\0\r\n]/;

/**
 * RouteAction.HashPolicy: header, cookie, connection_properties.source_ip or query_parameter, and terminal.
 * filter_state (no filter in this proxy writes any) and the header regex_rewrite / cookie attributes are not
 * implemented. A connection_properties with source_ip false gives no hash in Envoy, so it is left out. Header
 * names are lowercased, as Envoy looks them up.
 */
function hashPolicyOf(o: ProtoObj, path: string, issues: Issues): HashPolicy | undefined {
  const kinds = ['header', 'cookie', 'connection_properties', 'query_parameter'];
  requireOne(o, path, kinds, onlyFields(o, path, [...kinds, 'terminal'], issues), issues);
  const terminal = bool(o, 'terminal');
  const part = (k: string, fields: readonly string[]): [ProtoObj, string] | undefined => {
    const m = msg(o, k);
    if (m) onlyFields(m, joinPath(path, k), fields, issues);
    return m && [m, joinPath(path, k)];
  };
  const header = part('header', ['header_name']);
  const cookie = part('cookie', ['name', 'ttl', 'path']);
  const conn = part('connection_properties', ['source_ip']);
  const query = part('query_parameter', ['name']);
  if (header) {
    const name = required(header[0], 'header_name', header[1], issues);
    if (BAD_HEADER_CHARS.test(name)) issues.add(joinPath(header[1], 'header_name'), `${JSON.stringify(name)} is not a valid header name`);
    return { kind: 'header', headerName: name.toLowerCase(), terminal };
  }
  if (cookie) {
    const [c, p] = cookie;
    const name = required(c, 'name', p, issues);
    // ttl set (even 0s, a session cookie) means Envoy generates the cookie when the request lacks it.
    const ttlMs = durationMs(c, 'ttl', p, issues);
    const cookiePath = str(c, 'path');
    return { kind: 'cookie', name, ...(ttlMs !== undefined && { ttlMs }), ...(cookiePath !== '' && { path: cookiePath }), terminal };
  }
  if (conn) return bool(conn[0], 'source_ip') ? { kind: 'source_ip', terminal } : undefined;
  if (query) return { kind: 'query_parameter', name: required(query[0], 'name', query[1], issues), terminal };
  return undefined;
}

/**
 * WeightedCluster: each request goes to one cluster with probability weight / sum of weights (the deprecated
 * total_weight is not supported). Envoy and gRPC (gRFC A28) both refuse a set whose weights sum to 0.
 */
function weightedClusters(o: ProtoObj, path: string, issues: Issues): WeightedCluster[] {
  onlyFields(o, path, ['clusters'], issues);
  const clusters = list(o, 'clusters').map((c, i) => {
    const p = joinPath(path, `clusters[${i}]`);
    onlyFields(c, p, ['name', 'weight', ...HEADER_MUTATION_FIELDS], issues);
    const headers = headerMutations(c, p, issues);
    return { name: required(c, 'name', p, issues), weight: u32Value(c, 'weight') ?? 0, ...(headers && { headers }) };
  });
  if (clusters.length === 0) issues.add(joinPath(path, 'clusters'), 'at least one cluster is required');
  else if (clusters.reduce((s, c) => s + c.weight, 0) === 0) issues.add(joinPath(path, 'clusters'), 'the weights must not all be 0');
  return clusters;
}

/** DirectResponseAction: status in [200, 600) (Envoy's validate rule) and an optional inline body. */
function directResponse(o: ProtoObj, path: string, issues: Issues): RouteKind {
  onlyFields(o, path, ['status', 'body'], issues);
  const status = num(o, 'status');
  if (status < 200 || status >= 600) issues.add(joinPath(path, 'status'), `${status} is not an HTTP status in [200, 600)`);
  const body = msg(o, 'body');
  if (body) onlyFields(body, joinPath(path, 'body'), ['inline_string'], issues);
  return { kind: 'direct_response', status, ...(body && { body: str(body, 'inline_string') }) };
}

/** RegexMatchAndSubstitute: pattern (an RE2 RegexMatcher) and substitution. */
function regexRewriteOf(o: ProtoObj, path: string, issues: Issues): RegexRewrite | undefined {
  onlyFields(o, path, ['pattern', 'substitution'], issues);
  const p = msg(o, 'pattern');
  if (!p) {
    issues.add(joinPath(path, 'pattern'), 'is required');
    return undefined;
  }
  const regex = issues.take(decodeRegexMatcher(p, joinPath(path, 'pattern')));
  return regex === undefined ? undefined : { regex, substitution: str(o, 'substitution') };
}

const REDIRECT_CODES = { MOVED_PERMANENTLY: 301, FOUND: 302, SEE_OTHER: 303, TEMPORARY_REDIRECT: 307, PERMANENT_REDIRECT: 308 } as const;

/**
 * RedirectAction: scheme_redirect | https_redirect, host_redirect, port_redirect, path_redirect, response_code,
 * strip_query. prefix_rewrite and regex_rewrite inside a redirect are not supported.
 */
function redirectAction(o: ProtoObj, path: string, issues: Issues): RedirectAction {
  onlyFields(o, path, ['scheme_redirect', 'https_redirect', 'host_redirect', 'port_redirect', 'path_redirect', 'response_code', 'strip_query'], issues);
  if (o.scheme_redirect !== undefined && o.https_redirect !== undefined) issues.add(path, 'only one of scheme_redirect, https_redirect may be set');
  const scheme = bool(o, 'https_redirect') ? 'https' : str(o, 'scheme_redirect').toLowerCase();
  const port = num(o, 'port_redirect');
  if (port > 65535) issues.add(joinPath(path, 'port_redirect'), `${port} is not a port`);
  const code = enumOf(o, 'response_code', path, Object.keys(REDIRECT_CODES) as (keyof typeof REDIRECT_CODES)[], 'MOVED_PERMANENTLY', issues);
  const pathRedirect = str(o, 'path_redirect');
  if (BAD_HEADER_CHARS.test(pathRedirect)) issues.add(joinPath(path, 'path_redirect'), 'must not contain NUL, CR or LF');
  const host = str(o, 'host_redirect');
  return {
    ...(scheme !== '' && { scheme }),
    ...(host !== '' && { host }),
    ...(port > 0 && { port }),
    ...(pathRedirect !== '' && { path: pathRedirect }),
    status: REDIRECT_CODES[code],
    stripQuery: bool(o, 'strip_query'),
  };
}

const HEADER_MUTATION_FIELDS = ['request_headers_to_add', 'request_headers_to_remove', 'response_headers_to_add', 'response_headers_to_remove'];

/**
 * The header mutations of a Route or a ClusterWeight; undefined when none is set. Envoy refuses to let these
 * touch pseudo-headers or `host` (the authority is rewritten with host_rewrite_literal instead), and values
 * are formatter strings: `%%` is a literal '%', and command operators (%REQ(..)%, %UPSTREAM_...%) are not
 * supported here, so a value using one is refused rather than sent as literal text.
 */
function headerMutations(o: ProtoObj, path: string, issues: Issues): HeaderMutations | undefined {
  if (!HEADER_MUTATION_FIELDS.some((k) => o[k] !== undefined)) return undefined;
  const adds = (k: string) => list(o, k).map((h, i) => headerValueOption(h, joinPath(path, `${k}[${i}]`), issues));
  const removes = (k: string) =>
    strings(o, k).map((n, i) => {
      headerNameProblem(n, `${path}.${k}[${i}]`, issues);
      return n.toLowerCase();
    });
  return {
    requestHeadersToAdd: adds('request_headers_to_add'),
    requestHeadersToRemove: removes('request_headers_to_remove'),
    responseHeadersToAdd: adds('response_headers_to_add'),
    responseHeadersToRemove: removes('response_headers_to_remove'),
  };
}

function headerNameProblem(name: string, path: string, issues: Issues): void {
  if (name === '' || BAD_HEADER_CHARS.test(name) || /[\s:]/.test(name.slice(1))) issues.add(path, `${JSON.stringify(name)} is not a valid header name`);
  else if (name.startsWith(':') || name.toLowerCase() === 'host') issues.add(path, `${JSON.stringify(name)}: pseudo-headers and host cannot be modified (use host_rewrite_literal)`);
}

const APPEND_ACTIONS: readonly HeaderAppendAction[] = ['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS'];

/** HeaderValueOption: header {key, value}, append_action, or the deprecated append (true = append, false = overwrite). */
function headerValueOption(o: ProtoObj, path: string, issues: Issues): HeaderValueOption {
  onlyFields(o, path, ['header', 'append', 'append_action'], issues);
  const h = msg(o, 'header') ?? {};
  const hp = joinPath(path, 'header');
  if (!msg(o, 'header')) issues.add(hp, 'is required');
  else onlyFields(h, hp, ['key', 'value'], issues);
  const name = str(h, 'key');
  headerNameProblem(name, joinPath(hp, 'key'), issues);
  const raw = str(h, 'value');
  if (BAD_HEADER_CHARS.test(raw)) issues.add(joinPath(hp, 'value'), 'must not contain NUL, CR or LF');
  if (/%(?!%)/.test(raw.replace(/%%/g, ''))) issues.add(joinPath(hp, 'value'), `${JSON.stringify(raw)}: command operators (%...%) are not supported; write %% for a literal %`);
  const append = boolValue(o, 'append');
  if (append !== undefined && o.append_action !== undefined) issues.add(path, 'only one of append, append_action may be set');
  const appendAction = append === undefined ? enumOf(o, 'append_action', path, APPEND_ACTIONS, 'APPEND_IF_EXISTS_OR_ADD', issues) : append ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD';
  return { name: name.toLowerCase(), value: raw.replace(/%%/g, '%'), appendAction };
}

/** Every cluster a route table names, with the field path of the reference (for "does it exist" checks). */
export function routeClusterRefs(rc: RouteConfiguration, path: string): { cluster: string; path: string }[] {
  return rc.virtualHosts.flatMap((vh, v) =>
    vh.routes.flatMap((r, i) => {
      if (r.action.kind !== 'route') return [];
      const p = joinPath(path, `virtual_hosts[${v}].routes[${i}].route`);
      const weighted = r.action.action.weightedClusters;
      const mirrors = (r.action.action.mirrorPolicies ?? []).map((m, j) => ({ cluster: m.cluster, path: joinPath(p, `request_mirror_policies[${j}].cluster`) }));
      if (weighted) return [...weighted.map((c, j) => ({ cluster: c.name, path: joinPath(p, `weighted_clusters.clusters[${j}].name`) })), ...mirrors];
      return [{ cluster: r.action.action.cluster, path: joinPath(p, 'cluster') }, ...mirrors];
    }),
  );
}

/** VirtualHost.per_request_buffer_limit_bytes applies to its routes that set none of their own (Envoy's precedence). */
function inheritBufferLimit(limit: number | undefined, routes: Route[]): Route[] {
  if (limit === undefined) return routes;
  return routes.map((r) => (r.perRequestBufferLimitBytes === undefined ? { ...r, perRequestBufferLimitBytes: limit } : r));
}
