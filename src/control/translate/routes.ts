// RDS: VirtualService http routes -> Envoy routes, the sidecar's `outbound` and `inbound` route tables.
import type { ConsistentHashLb, HTTPMatchRequest, HTTPRedirect, HTTPRetry, HTTPRoute, HeaderEdits, HeaderOperations, StringMatch } from '../mesh/types.js';
import { clusterPlan } from './clusters.js';
import { routeFault } from './fault.js';
import { domainsFor, duration, hostForms, inboundClusterName, outboundClusterName, type Built, type Ctx, type NodeCtx } from './common.js';
import { isH2Protocol, isHttpProtocol, labelsMatch, type Service } from './mesh-index.js';
import { mirrorPolicies } from './mirror.js';
import { inboundRateLimits } from './rate-limit.js';

/** Istio's route timeout when a VirtualService sets none: disabled (Envoy's own default would be 15 s). */
const NO_TIMEOUT = duration(0);

type Kind = Ctx['caller']['kind'];

/**
 * RegexMatcher in RE2 (Istio's regex syntax), with the engine named as Envoy and Istio write it. Envoy (and
 * grpc-go/java) match the whole value; grpc-js-xds compiles `^${regex}$` (matcher.js SafeRegexValueMatcher),
 * where an alternation binds to the anchors: `v1|v2` would take any value starting with v1 or ending with v2. A
 * proxyless client gets the regex grouped, which is the same regex to a whole-value matcher.
 */
const regex = (r: string, kind: Kind) => ({ google_re2: {}, regex: kind === 'proxyless' ? `(?:${r})` : r });

/** Istio StringMatch -> envoy.type.matcher.v3.StringMatcher. */
function stringMatcher(m: StringMatch, kind: Kind): Record<string, unknown> {
  if ('exact' in m) return { exact: m.exact };
  if ('prefix' in m) return { prefix: m.prefix };
  return { safe_regex: regex(m.regex, kind) };
}

/**
 * HTTPMatchRequest -> RouteMatch, as istiod's translateRouteMatch: uri exact/prefix/regex -> path/prefix/safe_regex
 * (no uri = prefix "/"); ignoreUriCase -> case_sensitive false; each header a string_match, each of
 * withoutHeaders the same with invert_match; method and authority as the pseudo-headers `:method` and
 * `:authority`; queryParams -> query_parameters. Header names are lowercased: HTTP/2 sends them so, and Envoy
 * compares them so. Every condition of one match block must hold (Envoy ANDs them).
 */
function routeMatch(m: HTTPMatchRequest | undefined, kind: Kind): Record<string, unknown> {
  const uri = m?.uri;
  const path = !uri ? { prefix: '/' } : 'exact' in uri ? { path: uri.exact } : 'prefix' in uri ? { prefix: uri.prefix } : { safe_regex: regex(uri.regex, kind) };
  const header = (name: string, v: StringMatch, invert = false) => ({ name: name.toLowerCase(), string_match: stringMatcher(v, kind), ...(invert && { invert_match: true }) });
  const headers = [
    ...Object.entries(m?.headers ?? {}).map(([name, v]) => header(name, v)),
    ...Object.entries(m?.withoutHeaders ?? {}).map(([name, v]) => header(name, v, true)),
    ...(m?.method ? [header(':method', m.method)] : []),
    ...(m?.authority ? [header(':authority', m.authority)] : []),
  ];
  const query = Object.entries(m?.queryParams ?? {}).map(([name, v]) => ({ name, string_match: stringMatcher(v, kind) }));
  return { ...path, ...(m?.ignoreUriCase && { case_sensitive: false }), ...(headers.length && { headers }), ...(query.length && { query_parameters: query }) };
}

/** Header values are Envoy formatter strings; validation allowed only literal text (with %% for %). */
const headerValue = (key: string, value: string, append: boolean) => ({ header: { key, value }, append_action: append ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD' });

/**
 * Headers -> the Envoy header fields of one level, as istiod's TranslateHeadersOperations: `set` overwrites
 * (OVERWRITE_IF_EXISTS_OR_ADD), then `add` appends (APPEND_IF_EXISTS_OR_ADD), each in name order; `remove`
 * lists. A request `host` is not a header Envoy lets a route write: it is returned as the authority rewrite.
 */
function headerFields(ops: readonly (HeaderEdits | undefined)[]): { fields: Record<string, unknown>; host?: string } {
  let host: string | undefined;
  const adds = (dir: 'request' | 'response') =>
    ops.flatMap((e) => {
      const o: HeaderOperations | undefined = e?.[dir];
      const list = (m: Readonly<Record<string, string>> | undefined, append: boolean) =>
        Object.keys(m ?? {})
          .sort()
          .flatMap((k) => {
            if (dir === 'request' && k === 'host') {
              host = m![k];
              return [];
            }
            return [headerValue(k, m![k]!, append)];
          });
      return [...list(o?.set, false), ...list(o?.add, true)];
    });
  const removes = (dir: 'request' | 'response') => ops.flatMap((e) => e?.[dir]?.remove ?? []);
  const fields: Record<string, unknown> = {};
  const put = (k: string, v: unknown[]) => {
    if (v.length) fields[k] = v;
  };
  put('request_headers_to_add', adds('request'));
  put('request_headers_to_remove', removes('request'));
  put('response_headers_to_add', adds('response'));
  put('response_headers_to_remove', removes('response'));
  return { fields, ...(host !== undefined && { host }) };
}

const REDIRECT_CODES: Readonly<Record<number, string>> = { 301: 'MOVED_PERMANENTLY', 302: 'FOUND', 303: 'SEE_OTHER', 307: 'TEMPORARY_REDIRECT', 308: 'PERMANENT_REDIRECT' };

/**
 * HTTPRedirect -> RedirectAction, as istiod's applyRedirect: uri -> path_redirect, authority -> host_redirect,
 * scheme -> scheme_redirect, port -> port_redirect; derivePort FROM_REQUEST_PORT becomes the port of the virtual
 * host being built (Envoy cannot derive it per request; the route serves that one port).
 */
function redirectAction(r: HTTPRedirect, vhostPort: number): Record<string, unknown> {
  const port = r.port ?? (r.derivePort === 'FROM_REQUEST_PORT' ? vhostPort : undefined);
  return {
    ...(r.uri !== undefined && { path_redirect: r.uri }),
    ...(r.authority !== undefined && { host_redirect: r.authority }),
    ...(r.scheme !== undefined && { scheme_redirect: r.scheme }),
    ...(port !== undefined && { port_redirect: port }),
    response_code: REDIRECT_CODES[r.redirectCode],
  };
}

/**
 * consistentHash's key -> RouteAction.HashPolicy, as istiod's consistentHashToHashPolicy (route.go): header,
 * cookie (name, path, ttl: Envoy generates the cookie when a ttl is given), source IP
 * (connection_properties), query parameter. gRPC honours header only (gRFC A42) and ignores the others.
 */
function hashPolicyJson(h: ConsistentHashLb): Record<string, unknown> {
  if (h.httpHeaderName !== undefined) return { header: { header_name: h.httpHeaderName } };
  if (h.httpCookie) {
    const c = h.httpCookie;
    return { cookie: { name: c.name, ...(c.ttlMs !== undefined && { ttl: duration(c.ttlMs) }), ...(c.path !== undefined && { path: c.path }) } };
  }
  if (h.useSourceIp) return { connection_properties: { source_ip: true } };
  return { query_parameter: { name: h.httpQueryParameterName ?? '' } };
}

/**
 * The hash policies of a route to these clusters: one per destination whose cluster balances by consistent hash,
 * in destination order, as istiod appends them (processDestination / processWeightedDestination).
 */
function hashPolicies(ctx: Ctx, clusters: readonly string[]): Record<string, unknown> {
  const policies = clusters.flatMap((c) => {
    const h = clusterPlan(ctx, c)?.hash;
    return h ? [hashPolicyJson(h)] : [];
  });
  return policies.length ? { hash_policy: policies } : {};
}

/** The retry host predicate istiod always writes (xdsfilters.RetryPreviousHosts): a retry avoids hosts already tried. */
const PREVIOUS_HOSTS = { name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } };
/**
 * retryRemoteLocalities: istiod's previous_priorities with update_frequency 2 (buildPreviousPrioritiesConfig), so
 * every second try leaves the priorities already tried: a retry crosses to the next zone, region or cloud.
 */
const PREVIOUS_PRIORITIES = {
  name: 'envoy.retry_priorities.previous_priorities',
  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig', update_frequency: 2 },
};
/** istiod's DefaultPolicy() (route/retry/retry.go): what a route gets when its VirtualService sets no `retries`. */
const DEFAULT_RETRY = { retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'], numRetries: 2, statusCodes: [503], hostSelectionAttempts: 5 };

/**
 * HTTPRetry -> RouteAction.retry_policy, as istiod's retry.ConvertPolicy: no `retries` = DefaultPolicy();
 * `attempts: 0` = no policy at all; otherwise the default with the written fields replacing its own. retryOn
 * replaces both the conditions and the status codes (codes written among the conditions also add
 * `retriable-status-codes`). With consistent hashing to a single destination the previous_hosts predicate is
 * left out (DefaultConsistentHashPolicy): a retry should stay on the key's host. Proxyless gRPC clients get the
 * same policy, as istiod's gRPC generator builds their routes with the sidecar's code; gRPC (gRFC A44) reads its
 * gRPC conditions (cancelled, unavailable, ...) and num_retries and ignores the rest.
 */
function retryPolicy(r: HTTPRetry | undefined, consistentHash: boolean): Record<string, unknown> {
  if (r?.attempts === 0) return {};
  let retryOn = DEFAULT_RETRY.retryOn;
  let codes = DEFAULT_RETRY.statusCodes;
  if (r?.retryOn) {
    codes = [...r.retryOn.statusCodes];
    retryOn = codes.length && !r.retryOn.conditions.includes('retriable-status-codes') ? [...r.retryOn.conditions, 'retriable-status-codes'] : [...r.retryOn.conditions];
  }
  const previousHosts = r?.retryIgnorePreviousHosts ?? !consistentHash;
  return {
    retry_policy: {
      retry_on: retryOn.join(','),
      num_retries: r?.attempts ?? DEFAULT_RETRY.numRetries,
      ...(codes.length && { retriable_status_codes: codes }),
      ...(r?.perTryTimeoutMs !== undefined && { per_try_timeout: duration(r.perTryTimeoutMs) }),
      ...(previousHosts && { retry_host_predicate: [PREVIOUS_HOSTS] }),
      ...(r?.retryRemoteLocalities && { retry_priority: PREVIOUS_PRIORITIES }),
      host_selection_retry_max_attempts: DEFAULT_RETRY.hostSelectionAttempts,
      ...(r?.backoffMs !== undefined && { retry_back_off: { base_interval: duration(r.backoffMs) } }),
    },
  };
}

/**
 * HTTPRoute.route -> RouteAction: one cluster, or weighted_clusters (Envoy picks by weight / sum of weights, so
 * Istio's weights that add up to 100 read as percentages). Zero-weight destinations are left out, as Istio does.
 * A destination without a port takes the service's only port, else the port of the virtual host being built.
 */
function routeAction(ctx: Ctx, r: HTTPRoute, vhostPort: number): Record<string, unknown> {
  const clusters = r.route
    .filter((d) => d.weight > 0 || r.route.length === 1)
    .map((d) => {
      const target = ctx.mesh.service(d.destination.fqdn);
      const port = d.destination.port ?? (target?.entry.ports.length === 1 ? target.entry.ports[0]!.number : vhostPort);
      // Several destinations: each weighted cluster carries its own header edits (a single one's join the route's).
      return { name: outboundClusterName(port, d.destination.subset ?? '', d.destination.fqdn), weight: d.weight, ...(r.route.length > 1 && headerFields([d.headers]).fields) };
    });
  // istiod counts a route as hashed only with a single destination (applyHTTPRouteDestination's consistentHash).
  const consistentHash = r.route.length === 1 && clusterPlan(ctx, clusters[0]!.name)?.hash !== undefined;
  const rw = r.rewrite;
  return {
    ...(clusters.length === 1 ? { cluster: clusters[0]!.name } : { weighted_clusters: { clusters } }),
    // Envoy's prefix_rewrite replaces the matched prefix, or the whole path after an exact or regex match: Istio's rewrite.uri.
    ...(rw?.uri !== undefined && { prefix_rewrite: rw.uri }),
    ...(rw?.uriRegexRewrite && { regex_rewrite: { pattern: regex(rw.uriRegexRewrite.match, 'sidecar'), substitution: rw.uriRegexRewrite.rewrite } }),
    ...(rw?.authority !== undefined && { host_rewrite_literal: rw.authority }),
    ...timeouts(ctx, r.timeoutMs ?? 0),
    ...retryPolicy(r.retries, consistentHash),
    ...hashPolicies(ctx, clusters.map((c) => c.name)),
    ...mirrorPolicies(ctx, r, vhostPort),
  };
}

/**
 * The route timeout (0 = none, Istio's default). gRPC reads max_stream_duration instead of timeout (gRFC A31),
 * so a proxyless client gets both, as istiod writes them for it. A sidecar also gets max_grpc_timeout = timeout
 * (istiod's translateRoute): a gRPC caller's grpc-timeout is honoured, capped by the route timeout when there is one.
 */
function timeouts(ctx: Ctx, ms: number): Record<string, unknown> {
  const timeout = duration(ms);
  return ctx.caller.kind === 'proxyless' ? { timeout, max_stream_duration: { max_stream_duration: timeout } } : { timeout, max_grpc_timeout: timeout };
}

/**
 * The routes of one (service, port) virtual host. With a VirtualService: each http route, in order, becomes
 * one Envoy route per match block (Istio's matches are ORed); a match with `port` applies only to that port's
 * virtual host. Route names as Istio builds them: the http route's name, plus `.<match name>` when the match has one.
 * Without a VirtualService: Istio's single "default" route, prefix "/", to `outbound|<port>||<fqdn>`.
 */
export function routesFor(ctx: Ctx, svc: Service, port: number): Record<string, unknown>[] {
  const vs = ctx.mesh.virtualService(svc.host, ctx.caller.namespace, svc.namespace);
  if (!vs) {
    const cluster = outboundClusterName(port, '', svc.host);
    // istiod's BuildDefaultHTTPOutboundRoute: the default policy, previous_hosts included even when hashed.
    return [{ name: 'default', match: { prefix: '/' }, route: { cluster, ...timeouts(ctx, 0), ...retryPolicy(undefined, false), ...hashPolicies(ctx, [cluster]) } }];
  }
  return vs.http.flatMap((r) =>
    (r.match.length ? r.match : [undefined])
      .filter((m) => m?.port === undefined || m.port === port)
      // A gRPC call has no query string, so a match with queryParams never holds for one; grpc-js-xds would
      // ignore the condition and match it anyway (grpc-go skips such routes), so a proxyless client gets none.
      .filter((m) => !(ctx.caller.kind === 'proxyless' && Object.keys(m?.queryParams ?? {}).length))
      .map((m) => {
        const name = (r.name ?? '') + (m?.name ? `.${m.name}` : '');
        return { ...(name && { name }), match: routeMatch(m, ctx.caller.kind), ...actionOf(ctx, r, port), ...routeFault(r.fault) };
      }),
  );
}

/**
 * The action of one Envoy route and its route-level header edits: redirect, direct_response or route. A single
 * destination's header edits follow the route's at route level, as istiod appends them (processDestination); a
 * request `host` in them becomes the authority rewrite (host_rewrite_literal), as istiod does.
 */
function actionOf(ctx: Ctx, r: HTTPRoute, port: number): Record<string, unknown> {
  const single = r.route.length === 1 ? r.route[0]!.headers : undefined;
  const { fields, host } = headerFields([r.headers, single]);
  // grpc-js-xds refuses a route table with a redirect or direct_response (a gRPC client can follow neither) but
  // takes non_forwarding_action, on which a client fails the call (gRFC A36): the same RPCs fail, the rest route.
  if ((r.redirect || r.directResponse) && ctx.caller.kind === 'proxyless') return { non_forwarding_action: {} };
  if (r.redirect) return { redirect: redirectAction(r.redirect, port), ...fields };
  if (r.directResponse) {
    const d = r.directResponse;
    return { direct_response: { status: d.status, ...(d.body !== undefined && { body: { inline_string: d.body } }) }, ...fields };
  }
  const route = routeAction(ctx, r, port);
  return { route: host === undefined ? route : { ...route, host_rewrite_literal: host }, ...fields };
}

/** Keeps the first claim of each domain: Envoy refuses a route table where two virtual hosts share one. */
function claimer(): (domains: string[]) => string[] {
  const seen = new Set<string>();
  return (domains) =>
    domains.filter((d) => {
      const k = d.toLowerCase();
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
}

/**
 * The `outbound` route table of a sidecar's 15001 listener: one virtual host per (service host, HTTP port),
 * named `<fqdn>:<port>` as in Istio, answering to the host forms a caller in this namespace may use.
 */
export function outboundRouteConfig(ctx: Ctx): Built {
  const claim = claimer();
  const virtualHosts = ctx.mesh.services.flatMap((svc) =>
    svc.httpPorts.flatMap((port) => {
      const domains = claim(domainsFor(hostForms(svc.host, ctx.domainSuffix, ctx.caller.namespace), port.number, port === svc.defaultPort));
      return domains.length ? [{ name: `${svc.host}:${port.number}`, domains, routes: routesFor(ctx, svc, port.number) }] : [];
    }),
  );
  return { name: 'outbound', json: { name: 'outbound', virtual_hosts: virtualHosts } };
}

/** Istio's port naming convention `<protocol>[-<suffix>]` for a pod's container ports. */
function protocolFromPortName(name: string): string | undefined {
  return ({ http: 'HTTP', http2: 'HTTP2', grpc: 'GRPC' } as Record<string, string>)[name.toLowerCase().split('-')[0]!];
}

/** The inbound route table and the app ports it sends to (port -> HTTP/2?), for the inbound clusters. */
export interface InboundRoutes {
  readonly routeConfig: Built;
  readonly appPorts: ReadonlyMap<number, boolean>;
}

/**
 * The `inbound` route table of a sidecar's 15006 listener. A service selects this workload when its
 * workloadSelector matches the node's labels in the node's namespace, or when one of its endpoints has one of
 * the node's INSTANCE_IPS. Each selecting (service, HTTP port) gets a virtual host answering to the service's
 * host forms (the short name too: inbound, it can only have come from this namespace) that routes to
 * `inbound|<target port>||`, the target port being Istio's: the matching WorkloadEntry's ports[<name>] ??
 * targetPort ?? number. A `*` virtual host takes everything else to the first selecting service's default port,
 * or, when nothing selects the node, to its first HTTP container port (POD_PORTS, by Istio's port naming).
 */
export function inboundRoutes(ctx: NodeCtx): InboundRoutes {
  const { node } = ctx;
  const claim = claimer();
  const appPorts = new Map<number, boolean>();
  const limits = inboundRateLimits(ctx);
  const route = (target: number, h2: boolean) => {
    if (!appPorts.has(target)) appPorts.set(target, h2);
    return [{ name: 'default', match: { prefix: '/' }, route: { cluster: inboundClusterName(target), timeout: NO_TIMEOUT, ...limits } }];
  };
  const virtualHosts: Record<string, unknown>[] = [];
  let catchAll: { target: number; h2: boolean } | undefined;
  for (const svc of ctx.mesh.services) {
    const sel = svc.entry.workloadSelector?.labels;
    const own = svc.endpoints.find((e) => node.ips.includes(e.spec.address));
    if (!own && !(sel && svc.namespace === node.namespace && labelsMatch(sel, node.labels))) continue;
    for (const port of svc.httpPorts) {
      const target = own?.spec.ports[port.name] ?? port.targetPort ?? port.number;
      const h2 = isH2Protocol(port.protocol);
      if (port === svc.defaultPort) catchAll ??= { target, h2 };
      const domains = claim(domainsFor(hostForms(svc.host, ctx.domainSuffix, undefined), port.number, port === svc.defaultPort));
      if (domains.length) virtualHosts.push({ name: `inbound|${svc.host}:${port.number}`, domains, routes: route(target, h2) });
    }
  }
  if (!catchAll) {
    const first = node.appPorts.map((p) => ({ p, protocol: protocolFromPortName(p.name) })).find((x) => x.protocol && isHttpProtocol(x.protocol));
    if (first) catchAll = { target: first.p.port, h2: isH2Protocol(first.protocol!) };
  }
  if (catchAll) virtualHosts.push({ name: 'inbound|*', domains: ['*'], routes: route(catchAll.target, catchAll.h2) });
  return { routeConfig: { name: 'inbound', json: { name: 'inbound', virtual_hosts: virtualHosts } }, appPorts };
}
