// Decodes envoy.config.route.v3.RouteConfiguration (the RDS resource, and HCM's inline route_config).
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import type { HashPolicy, HeaderMatcher, PathMatch, Route, RouteAction, RouteConfiguration, RouteKind, RouteMatch, VirtualHost, WeightedCluster } from '../../model/types.js';
import type { ProtoObj } from '../canonical.js';
import { Issues, bool, boolValue, durationMs, joinPath, list, msg, num, onlyFields, requireOne, required, str, strings, u32Value } from './common.js';
import { decodeHeaderMatcher, decodeRegexMatcher } from './matchers.js';
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
  const clean = onlyFields(o, path, ['name', 'match', 'route', 'direct_response', 'typed_per_filter_config', 'per_request_buffer_limit_bytes'], issues);
  requireOne(o, path, ['match'], true, issues);
  const m = msg(o, 'match');
  const match = m && issues.take(decodeRouteMatch(m, joinPath(path, 'match')));
  requireOne(o, path, ['route', 'direct_response'], clean, issues);
  const route = msg(o, 'route');
  const direct = msg(o, 'direct_response');
  let action: RouteKind | undefined;
  if (route) {
    const a = issues.take(decodeRouteAction(route, joinPath(path, 'route')));
    if (a) action = { kind: 'route', action: a };
  } else if (direct) {
    action = directResponse(direct, joinPath(path, 'direct_response'), issues);
  }
  const perFilter = decodeTypedPerFilterConfig(o, path, issues);
  const limit = u32Value(o, 'per_request_buffer_limit_bytes');
  return issues.result(() => ({ name: str(o, 'name'), match: match!, action: action!, ...(perFilter && { typedPerFilterConfig: perFilter }), ...(limit !== undefined && { perRequestBufferLimitBytes: limit }) }));
}

function decodeRouteMatch(o: ProtoObj, path: string): Result<RouteMatch, FieldIssue> {
  const issues = new Issues();
  const clean = onlyFields(o, path, ['prefix', 'path', 'safe_regex', 'case_sensitive', 'headers'], issues);
  requireOne(o, path, ['prefix', 'path', 'safe_regex'], clean, issues);
  let pathMatch: PathMatch | undefined;
  const re = msg(o, 'safe_regex');
  if (typeof o.prefix === 'string') pathMatch = { kind: 'prefix', value: o.prefix };
  else if (typeof o.path === 'string') pathMatch = { kind: 'path', value: o.path };
  else if (re) {
    const regex = issues.take(decodeRegexMatcher(re, joinPath(path, 'safe_regex')));
    if (regex !== undefined) pathMatch = { kind: 'regex', regex };
  }
  const headers = list(o, 'headers').map((h, i) => issues.take(decodeHeaderMatcher(h, joinPath(path, `headers[${i}]`))));
  return issues.result(() => ({
    path: pathMatch!,
    caseSensitive: boolValue(o, 'case_sensitive') ?? true,
    headers: headers as HeaderMatcher[],
  }));
}

function decodeRouteAction(o: ProtoObj, path: string): Result<RouteAction, FieldIssue> {
  const issues = new Issues();
  const clean = onlyFields(o, path, ['cluster', 'weighted_clusters', 'timeout', 'prefix_rewrite', 'host_rewrite_literal', 'hash_policy', 'retry_policy', 'rate_limits', 'max_grpc_timeout', 'request_mirror_policies'], issues);
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
    onlyFields(c, p, ['name', 'weight'], issues);
    return { name: required(c, 'name', p, issues), weight: u32Value(c, 'weight') ?? 0 };
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
