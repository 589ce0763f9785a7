// The sidecar's internal config model: immutable, decoded from Envoy v3 resources (static bootstrap or ADS).
// Nothing past xds/ sees a raw proto; everything here is plain frozen data built once per config version.
import type { RateLimitEntry } from './rate-limit.js';

export interface SocketAddress {
  readonly host: string;
  readonly port: number;
}

/** envoy.config.core.v3.Locality */
export interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subZone: string;
}

/** envoy.config.core.v3.DataSource: where PEM material comes from. Inline values are redacted in dumps. */
export type DataSource =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'inline'; readonly value: string };

/** envoy.type.matcher.v3.StringMatcher */
export type StringMatcher =
  | { readonly kind: 'exact' | 'prefix' | 'suffix' | 'contains'; readonly value: string; readonly ignoreCase: boolean }
  | { readonly kind: 'regex'; readonly regex: string; readonly ignoreCase: false };

/** envoy.extensions.transport_sockets.tls.v3.TlsCertificate (files or inline) */
export interface TlsCertificate {
  readonly certificateChain: DataSource;
  readonly privateKey: DataSource;
}

/** envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext (the subset we enforce) */
export interface ValidationContext {
  /** Static trust bundle; absent when it comes from SDS (`sdsBundle`). */
  readonly trustedCa?: DataSource;
  /** validation_context_sds_secret_config.name: Istio's `ROOTCA`, served by the sidecar's identity manager. */
  readonly sdsBundle?: string;
  /** match_typed_subject_alt_names with san_type URI; empty = any valid SVID of our trust domain. */
  readonly uriSanMatchers: readonly StringMatcher[];
}

/**
 * CommonTlsContext. The certificate is either static (files or inline) or named by SDS: Istio's secret
 * names `default` (workload SVID + key) and `ROOTCA` (trust bundle), which the sidecar's own identity
 * manager resolves against the mesh CA (node metadata CA_ADDR), as istio-agent does for Envoy.
 */
export interface CommonTls {
  readonly certificates: readonly TlsCertificate[];
  /** tls_certificate_sds_secret_configs[0].name (`default`) when the certificate comes from SDS. */
  readonly sdsCertificate?: string;
  readonly validation?: ValidationContext;
  readonly alpnProtocols: readonly string[];
}

export interface DownstreamTls {
  readonly common: CommonTls;
  readonly requireClientCertificate: boolean;
}

export interface UpstreamTls {
  readonly common: CommonTls;
  readonly sni: string;
}

/** envoy.config.route.v3.HeaderMatcher */
export interface HeaderMatcher {
  readonly name: string;
  /** 'present' = present_match; otherwise a string matcher on the value (joined with "," if repeated). */
  readonly match: { readonly kind: 'present'; readonly present: boolean } | { readonly kind: 'string'; readonly matcher: StringMatcher };
  readonly invert: boolean;
}

/** envoy.config.route.v3.RouteMatch path specifier */
export type PathMatch =
  | { readonly kind: 'prefix'; readonly value: string }
  | { readonly kind: 'path'; readonly value: string }
  | { readonly kind: 'regex'; readonly regex: string };

/**
 * envoy.config.route.v3.QueryParameterMatcher: the first value of the parameter, as sent (not percent-decoded),
 * as Envoy reads it. A parameter written without '=' has the value "".
 */
export interface QueryParameterMatcher {
  readonly name: string;
  readonly match: { readonly kind: 'present' } | { readonly kind: 'string'; readonly matcher: StringMatcher };
}

export interface RouteMatch {
  readonly path: PathMatch;
  /** RouteMatch.case_sensitive, default true. Applies to prefix and path. */
  readonly caseSensitive: boolean;
  /** All must match (AND); `:method`, `:authority` and `:path` are matchable, as in Envoy. */
  readonly headers: readonly HeaderMatcher[];
  /** RouteMatch.query_parameters; all must match. Absent when none (the decoder leaves empty lists out). */
  readonly queryParameters?: readonly QueryParameterMatcher[];
}

/** envoy.config.core.v3.HeaderValueOption.HeaderAppendAction (the deprecated `append` maps onto the first and third). */
export type HeaderAppendAction = 'APPEND_IF_EXISTS_OR_ADD' | 'ADD_IF_ABSENT' | 'OVERWRITE_IF_EXISTS_OR_ADD' | 'OVERWRITE_IF_EXISTS';

/** envoy.config.core.v3.HeaderValueOption; the name is lowercased, the value literal (no %COMMAND% operators). */
export interface HeaderValueOption {
  readonly name: string;
  readonly value: string;
  readonly appendAction: HeaderAppendAction;
}

/**
 * The request_headers_to_add / _to_remove and response_headers_to_add / _to_remove of one level (a Route, or a
 * WeightedCluster.ClusterWeight). As in Envoy's HeaderParser, each level removes first, then adds.
 */
export interface HeaderMutations {
  readonly requestHeadersToAdd: readonly HeaderValueOption[];
  readonly requestHeadersToRemove: readonly string[];
  readonly responseHeadersToAdd: readonly HeaderValueOption[];
  readonly responseHeadersToRemove: readonly string[];
}

/** envoy.config.route.v3.WeightedCluster.ClusterWeight */
export interface WeightedCluster {
  readonly name: string;
  /** Chosen with probability weight / sum of the route's weights; 0 = never. */
  readonly weight: number;
  /** ClusterWeight's own header mutations, applied before the route's (Envoy's order: most specific first); absent = none. */
  readonly headers?: HeaderMutations;
}

/** envoy.type.matcher.v3.RegexMatchAndSubstitute: every match of `regex` in the path (no query) becomes `substitution` (\\1 = group 1). */
export interface RegexRewrite {
  readonly regex: string;
  readonly substitution: string;
}

/** envoy.config.route.v3.RouteAction (subset) */
export interface RouteAction {
  /** The upstream cluster; "" when weightedClusters chooses one per request. */
  readonly cluster: string;
  /** RouteAction.weighted_clusters: one cluster per request, by weight (the router picks with the injected rng). */
  readonly weightedClusters?: readonly WeightedCluster[];
  /** RouteAction.timeout; Envoy's default is 15 s; 0 disables. */
  readonly timeoutMs: number;
  /**
   * RouteAction.prefix_rewrite: replaces what the match matched: the prefix of a prefix match, the whole path of
   * a path or safe_regex match (Envoy's rule). The query string is kept.
   */
  readonly prefixRewrite?: string;
  /** RouteAction.regex_rewrite (exclusive with prefixRewrite). */
  readonly regexRewrite?: RegexRewrite;
  readonly hostRewriteLiteral?: string;
  /** RouteAction.hash_policy, in order: the request hash for RING_HASH / MAGLEV. Empty = no hash (a random pick). */
  readonly hashPolicy: readonly HashPolicy[];
  /** RouteAction.retry_policy; absent = no retries (beyond the one replay of a stream the upstream refused unseen). */
  readonly retryPolicy?: RetryPolicy;
  /**
   * RouteAction.max_grpc_timeout: set = a gRPC request's deadline is its grpc-timeout header (none = no deadline)
   * instead of `timeout`, capped at this value unless it is 0.
   */
  readonly maxGrpcTimeoutMs?: number;
  /** RouteAction.request_mirror_policies: fire-and-forget shadow copies of the request. */
  readonly mirrorPolicies?: readonly MirrorPolicy[];
  /** RouteAction.rate_limits: the descriptors the local_ratelimit filter looks its buckets up by. */
  readonly rateLimits?: readonly RateLimitEntry[];
}

/** envoy.config.route.v3.RouteAction.RequestMirrorPolicy (cluster and runtime_fraction's default_value). */
export interface MirrorPolicy {
  readonly cluster: string;
  /** Mirrored with probability numerator / denominator (FractionalPercent: denominator 100, 10 000 or 1 000 000). */
  readonly numerator: number;
  readonly denominator: number;
}

/** The retry_on conditions Envoy defines for HTTP and gRPC (x-envoy-retry-on / x-envoy-retry-grpc-on). */
export const RETRY_ON_HTTP = ['5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'retriable-4xx', 'refused-stream', 'retriable-status-codes', 'envoy-ratelimited', 'retriable-headers', 'http3-post-connect-failure'] as const;
export const RETRY_ON_GRPC = ['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable'] as const;
export type RetryOn = (typeof RETRY_ON_HTTP)[number] | (typeof RETRY_ON_GRPC)[number];

/** envoy.config.route.v3.RetryPolicy (subset), with Envoy's defaults filled in. */
export interface RetryPolicy {
  readonly retryOn: ReadonlySet<RetryOn>;
  /** num_retries, default 1: retries after the first attempt. */
  readonly numRetries: number;
  /** per_try_timeout; 0 = the route timeout bounds each try. */
  readonly perTryTimeoutMs: number;
  readonly retriableStatusCodes: readonly number[];
  /** retry_host_predicate envoy.retry_host_predicates.previous_hosts: a retry avoids the hosts already tried. */
  readonly previousHosts: boolean;
  /**
   * retry_priority envoy.retry_priorities.previous_priorities update_frequency; 0 = no retry priority. Every
   * `n` attempts, the priorities tried so far are excluded from the next picks (Istio's retryRemoteLocalities).
   */
  readonly previousPrioritiesUpdateFrequency: number;
  /** host_selection_retry_max_attempts: how many picks a retry makes to find a host the predicate accepts (default 1). */
  readonly hostSelectionRetryMaxAttempts: number;
  /** retry_back_off: base_interval (default 25 ms) and max_interval (default 10 x base); full jitter. */
  readonly backOffBaseMs: number;
  readonly backOffMaxMs: number;
}

/**
 * envoy.config.route.v3.RouteAction.HashPolicy: what the consistent-hash pickers hash. As in Envoy, the
 * hashes of the policies that produce one are combined in order; a terminal policy that produced a hash
 * stops the walk.
 */
export type HashPolicy =
  | { readonly kind: 'header'; readonly headerName: string; readonly terminal: boolean }
  /** A cookie; with ttlMs set and the cookie absent, Envoy generates one (Istio's httpCookie with ttl). */
  | { readonly kind: 'cookie'; readonly name: string; readonly ttlMs?: number; readonly path?: string; readonly terminal: boolean }
  | { readonly kind: 'source_ip'; readonly terminal: boolean }
  | { readonly kind: 'query_parameter'; readonly name: string; readonly terminal: boolean };

/** envoy.config.route.v3.RedirectAction (the fields Istio's HTTPRedirect uses, plus strip_query). */
export interface RedirectAction {
  /** scheme_redirect, or "https" for https_redirect; absent = the request's scheme. */
  readonly scheme?: string;
  readonly host?: string;
  /** port_redirect; absent = keep the request's port (dropped when it is the old scheme's default and the scheme changes). */
  readonly port?: number;
  /** path_redirect: replaces the path; a query string in it replaces the request's. */
  readonly path?: string;
  /** response_code: MOVED_PERMANENTLY (301, default), FOUND, SEE_OTHER, TEMPORARY_REDIRECT, PERMANENT_REDIRECT. */
  readonly status: 301 | 302 | 303 | 307 | 308;
  readonly stripQuery: boolean;
}

export type RouteKind =
  | { readonly kind: 'route'; readonly action: RouteAction }
  | { readonly kind: 'direct_response'; readonly status: number; readonly body?: string }
  | { readonly kind: 'redirect'; readonly redirect: RedirectAction };

export interface Route {
  readonly name: string;
  readonly match: RouteMatch;
  readonly action: RouteKind;
  /**
   * Route.per_request_buffer_limit_bytes (else the virtual host's): how much of a request body is kept for a
   * retry. Unset = the listener default (1 MiB, Envoy's per_connection_buffer_limit_bytes default).
   */
  readonly perRequestBufferLimitBytes?: number;
  /** typed_per_filter_config by HTTP filter name, each decoded by its filter's decoder; absent when the route sets none (fault injection). */
  readonly typedPerFilterConfig?: Readonly<Record<string, Pick<HttpFilterConfig, 'typeUrl' | 'config'>>>;
  /**
   * Route-level header mutations; absent = none. They apply to every action: upstream responses, direct
   * responses, redirects and the router's own local replies (Envoy's router finalizes those headers too).
   */
  readonly headers?: HeaderMutations;
}

export interface VirtualHost {
  readonly name: string;
  readonly domains: readonly string[];
  readonly routes: readonly Route[];
}

/** envoy.config.route.v3.RouteConfiguration */
export interface RouteConfiguration {
  readonly name: string;
  readonly virtualHosts: readonly VirtualHost[];
}

/** An HCM http_filters entry, decoded by the filter's own decoder (registry keyed by type URL). */
export interface HttpFilterConfig {
  readonly name: string;
  readonly typeUrl: string;
  readonly optional: boolean;
  readonly config: Readonly<Record<string, unknown>>;
}

export type ForwardClientCertDetails =
  | 'SANITIZE'
  | 'FORWARD_ONLY'
  | 'APPEND_FORWARD'
  | 'SANITIZE_SET'
  | 'ALWAYS_FORWARD_ONLY';

export interface SetCurrentClientCertDetails {
  readonly subject: boolean;
  readonly cert: boolean;
  readonly chain: boolean;
  readonly dns: boolean;
  readonly uri: boolean;
}

/** envoy.config.core.v3.Http2ProtocolOptions (the sizing knobs we honour) */
export interface Http2Options {
  readonly maxConcurrentStreams: number;
  readonly initialStreamWindowSize: number;
  readonly initialConnectionWindowSize: number;
}

/** envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager (subset) */
export interface HttpConnectionManager {
  readonly statPrefix: string;
  readonly codecType: 'AUTO' | 'HTTP1' | 'HTTP2';
  readonly route:
    | { readonly kind: 'inline'; readonly config: RouteConfiguration }
    /** rds: the RouteConfiguration named here arrives over ADS; the listener warms until it does. */
    | { readonly kind: 'rds'; readonly name: string; readonly initialFetchTimeoutMs: number };
  readonly httpFilters: readonly HttpFilterConfig[];
  readonly forwardClientCertDetails: ForwardClientCertDetails;
  readonly setCurrentClientCertDetails: SetCurrentClientCertDetails;
  /** common_http_protocol_options.idle_timeout: downstream connection idle timeout (Envoy default 1 h). */
  readonly idleTimeoutMs: number;
  /** stream_idle_timeout (Envoy default 5 min). */
  readonly streamIdleTimeoutMs: number;
  /** request_timeout (Envoy default 0 = disabled). */
  readonly requestTimeoutMs: number;
  /** max_request_headers_kb (Envoy default 60). */
  readonly maxRequestHeadersKb: number;
  readonly http2: Http2Options;
  /** generate_request_id (default true). */
  readonly generateRequestId: boolean;
  /** use_remote_address: when true the peer's address is appended to x-forwarded-for. */
  readonly useRemoteAddress: boolean;
  /**
   * upgrade_configs[].upgrade_type of entries with enabled != false, lowercased (e.g. ["websocket"]).
   * As in Envoy, an Upgrade / extended CONNECT request whose type is not listed is refused (403).
   */
  readonly upgradeTypes: readonly string[];
}

/**
 * envoy.config.listener.v3.FilterChainMatch, the subset Outrigger selects on. Unset criteria match anything.
 * transport_protocol is what the connection looks like: `tls` once tls_inspector saw a ClientHello, else
 * `raw_buffer` (Envoy's default when no listener filter sets it).
 */
export interface FilterChainMatch {
  readonly destinationPort?: number;
  readonly transportProtocol?: 'tls' | 'raw_buffer';
  /** ALPN values offered in the ClientHello (tls_inspector); any one of them selects the chain. */
  readonly applicationProtocols: readonly string[];
}

export interface FilterChain {
  readonly name: string;
  readonly hcm: HttpConnectionManager;
  readonly tls?: DownstreamTls;
  /** filter_chain_match; absent when the chain set none (it matches every connection). */
  readonly match?: FilterChainMatch;
}

/** envoy.config.listener.v3.Listener */
export interface Listener {
  readonly name: string;
  readonly address: SocketAddress;
  readonly trafficDirection: 'UNSPECIFIED' | 'INBOUND' | 'OUTBOUND';
  /** filter_chains[0]: the chain of a single-chain listener (most of them); `filterChains` has all of them. */
  readonly filterChain: FilterChain;
  /** filter_chains, in order (at least one). */
  readonly filterChains: readonly FilterChain[];
  /** default_filter_chain: serves connections no chain matches (else they are refused). */
  readonly defaultFilterChain?: FilterChain;
  /**
   * listener_filters: `envoy.filters.listener.tls_inspector` (the one supported) peeks at the first bytes for a
   * ClientHello, within listener_filters_timeout; without it every connection is `raw_buffer`.
   */
  readonly tlsInspector?: { readonly timeoutMs: number; readonly continueOnTimeout: boolean };
}

/** A canonical key of a chain's match (unset = matches all): equal keys mean Envoy's "same matching rules". */
export function filterChainMatchKey(m: FilterChainMatch | undefined): string {
  return JSON.stringify([m?.destinationPort ?? null, m?.transportProtocol ?? null, [...(m?.applicationProtocols ?? [])].sort()]);
}

/** The field of the `i`th chain of listenerChains(l): `filter_chains[i]`, or `default_filter_chain` (for error paths). */
export const chainField = (l: Listener, i: number): string => (i === l.filterChains.length ? 'default_filter_chain' : `filter_chains[${i}]`);

/** Every filter chain of a listener, default_filter_chain last: what owns HCMs, routes and TLS material. */
export function listenerChains(l: Listener): readonly FilterChain[] {
  return l.defaultFilterChain ? [...l.filterChains, l.defaultFilterChain] : l.filterChains;
}

export type HealthStatus = 'UNKNOWN' | 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' | 'TIMEOUT' | 'DEGRADED';

export interface LbEndpoint {
  readonly address: SocketAddress;
  readonly healthStatus: HealthStatus;
  /** load_balancing_weight, default 1 */
  readonly weight: number;
  readonly hostname: string;
}

export interface LocalityLbEndpoints {
  readonly locality: Locality;
  readonly priority: number;
  /** load_balancing_weight of the locality; 0 = unset */
  readonly weight: number;
  readonly endpoints: readonly LbEndpoint[];
}

/** envoy.config.endpoint.v3.ClusterLoadAssignment */
export interface ClusterLoadAssignment {
  readonly clusterName: string;
  readonly localities: readonly LocalityLbEndpoints[];
  /** policy.overprovisioning_factor, percent (Envoy default 140). */
  readonly overprovisioningFactor: number;
}

/**
 * The endpoint picker. The first five are Envoy's (Cluster.lb_policy, or the typed policies
 * envoy.extensions.load_balancing_policies.*). PEAK_EWMA is Outrigger's extension (latency-aware, as
 * Linkerd's and Finagle's): it arrives only through Cluster.load_balancing_policy, as an
 * xds.type.v3.TypedStruct of type TYPE_URL_PEAK_EWMA, listed before a standard fallback so Envoy and
 * gRPC clients, which skip what they do not know, still get a policy.
 */
export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'RING_HASH' | 'MAGLEV' | 'PEAK_EWMA';

/** The TypedStruct type_url naming Outrigger's PEAK_EWMA policy in Cluster.load_balancing_policy. */
export const TYPE_URL_PEAK_EWMA = 'type.googleapis.com/outrigger.extensions.load_balancing_policies.peak_ewma.v1alpha1.PeakEwma';

/** Everything the picker and the priority/locality layers need from a Cluster, with Envoy's defaults filled in. */
export interface LbConfig {
  readonly policy: LbPolicy;
  /** LeastRequestLbConfig / LeastRequest: choice_count (default 2), active_request_bias (default 1.0). */
  readonly leastRequest: { readonly choiceCount: number; readonly activeRequestBias: number };
  /** RingHashLbConfig: minimum_ring_size (default 1024), maximum_ring_size (default 8M), hash_function. */
  readonly ringHash: { readonly minimumRingSize: number; readonly maximumRingSize: number; readonly hashFunction: 'XX_HASH' | 'MURMUR_HASH_2' };
  /** MaglevLbConfig.table_size (default 65537, must be prime). */
  readonly maglev: { readonly tableSize: number };
  /** PeakEwma.decay_time: the time constant with which the estimate decays towards faster observations (default 10 s). */
  readonly peakEwma: { readonly decayTimeMs: number };
  /** common_lb_config.healthy_panic_threshold, percent (default 50; 0 disables panic mode). */
  readonly healthyPanicThresholdPercent: number;
  /** common_lb_config.locality_weighted_lb_config is set: localities are picked by their load_balancing_weight. */
  readonly localityWeighted: boolean;
}

/**
 * envoy.config.cluster.v3.OutlierDetection with Envoy's defaults filled in. Percentages are 0..100;
 * success_rate_stdev_factor is in thousandths, as in the proto (1900 = 1.9).
 */
export interface OutlierDetection {
  readonly consecutive5xx: number; // 5
  readonly intervalMs: number; // 10 s
  readonly baseEjectionTimeMs: number; // 30 s
  readonly maxEjectionTimeMs: number; // 300 s
  readonly maxEjectionTimeJitterMs: number; // 0
  readonly maxEjectionPercent: number; // 10
  readonly enforcingConsecutive5xx: number; // 100
  readonly enforcingSuccessRate: number; // 100
  readonly successRateMinimumHosts: number; // 5
  readonly successRateRequestVolume: number; // 100
  readonly successRateStdevFactor: number; // 1900
  readonly consecutiveGatewayFailure: number; // 5
  readonly enforcingConsecutiveGatewayFailure: number; // 0
  readonly splitExternalLocalOriginErrors: boolean; // false
  readonly consecutiveLocalOriginFailure: number; // 5
  readonly enforcingConsecutiveLocalOriginFailure: number; // 100
  readonly enforcingLocalOriginSuccessRate: number; // 100
  readonly failurePercentageThreshold: number; // 85
  readonly enforcingFailurePercentage: number; // 0
  readonly enforcingFailurePercentageLocalOrigin: number; // 0
  readonly failurePercentageMinimumHosts: number; // 5
  readonly failurePercentageRequestVolume: number; // 50
}

export const OUTLIER_DEFAULTS: OutlierDetection = Object.freeze({
  consecutive5xx: 5,
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionTimeJitterMs: 0,
  maxEjectionPercent: 10,
  enforcingConsecutive5xx: 100,
  enforcingSuccessRate: 100,
  successRateMinimumHosts: 5,
  successRateRequestVolume: 100,
  successRateStdevFactor: 1900,
  consecutiveGatewayFailure: 5,
  enforcingConsecutiveGatewayFailure: 0,
  splitExternalLocalOriginErrors: false,
  consecutiveLocalOriginFailure: 5,
  enforcingConsecutiveLocalOriginFailure: 100,
  enforcingLocalOriginSuccessRate: 100,
  failurePercentageThreshold: 85,
  enforcingFailurePercentage: 0,
  enforcingFailurePercentageLocalOrigin: 0,
  failurePercentageMinimumHosts: 5,
  failurePercentageRequestVolume: 50,
});

export const LB_DEFAULTS: LbConfig = Object.freeze({
  policy: 'ROUND_ROBIN',
  leastRequest: Object.freeze({ choiceCount: 2, activeRequestBias: 1 }),
  ringHash: Object.freeze({ minimumRingSize: 1024, maximumRingSize: 8 * 1024 * 1024, hashFunction: 'XX_HASH' }),
  maglev: Object.freeze({ tableSize: 65537 }),
  peakEwma: Object.freeze({ decayTimeMs: 10_000 }),
  healthyPanicThresholdPercent: 50,
  localityWeighted: false,
}) as LbConfig;

/**
 * envoy.config.cluster.v3.CircuitBreakers.Thresholds for the DEFAULT routing priority, Envoy's defaults filled in.
 * Counts are cluster-wide (Envoy's ResourceManager is per cluster and priority), shared by every host's pool.
 */
export interface CircuitBreakerThresholds {
  /** max_connections: open (and opening) upstream connections. Default 1024. */
  readonly maxConnections: number;
  /** max_pending_requests: requests waiting for a connection or a stream slot. Default 1024. */
  readonly maxPendingRequests: number;
  /** max_requests: requests in flight on upstream connections. Default 1024. */
  readonly maxRequests: number;
  /** max_retries: retries in flight at once. Default 3. Ignored when retryBudget is set. */
  readonly maxRetries: number;
  /**
   * retry_budget: concurrent retries limited to budgetPercent of the active plus pending requests, never
   * below minRetryConcurrency (Envoy defaults 20 % and 3 when the message is present).
   */
  readonly retryBudget?: { readonly budgetPercent: number; readonly minRetryConcurrency: number };
  /** track_remaining: publish the remaining_* gauges. */
  readonly trackRemaining: boolean;
}

export const CIRCUIT_BREAKER_DEFAULTS: CircuitBreakerThresholds = Object.freeze({
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
  maxRetries: 3,
  trackRemaining: false,
});

/** CircuitBreakers.Thresholds.RetryBudget's defaults when the message is set without them. */
export const RETRY_BUDGET_DEFAULTS = Object.freeze({ budgetPercent: 20, minRetryConcurrency: 3 });

/** envoy.config.cluster.v3.Cluster (subset) */
export interface Cluster {
  readonly name: string;
  readonly type: 'STATIC' | 'EDS';
  /**
   * eds_cluster_config, for type EDS: the ClusterLoadAssignment name (service_name, else the cluster name)
   * and eds_config.initial_fetch_timeout (0 = wait for it forever).
   */
  readonly eds?: { readonly serviceName: string; readonly initialFetchTimeoutMs: number };
  /** connect_timeout, Envoy default 5 s */
  readonly connectTimeoutMs: number;
  readonly lbPolicy: LbPolicy;
  /** lb_policy / load_balancing_policy with its config, and common_lb_config; lb.policy === lbPolicy. */
  readonly lb: LbConfig;
  /** outlier_detection; absent = no outlier detection (Envoy: the field unset disables it). */
  readonly outlierDetection?: OutlierDetection;
  /** Inline load_assignment (STATIC) or, for EDS, filled in when the ClusterLoadAssignment arrives. */
  readonly loadAssignment?: ClusterLoadAssignment;
  /** From typed_extension_protocol_options envoy.extensions.upstreams.http.v3.HttpProtocolOptions. */
  readonly protocol: 'HTTP1' | 'HTTP2';
  readonly http2: Http2Options;
  /** common_http_protocol_options.idle_timeout for upstream connections (Envoy default 1 h). */
  readonly idleTimeoutMs: number;
  /**
   * common_http_protocol_options.max_requests_per_connection (or the deprecated Cluster field): a connection
   * takes no more requests after this many and closes once they finish. Absent = unlimited.
   */
  readonly maxRequestsPerConnection?: number;
  /** circuit_breakers, DEFAULT priority; absent = CIRCUIT_BREAKER_DEFAULTS (Envoy applies them to every cluster). */
  readonly circuitBreakers?: CircuitBreakerThresholds;
  readonly tls?: UpstreamTls;
}

export interface NodeInfo {
  readonly id: string;
  readonly cluster: string;
  readonly locality?: Locality;
  readonly metadata: Readonly<Record<string, unknown>>;
}

export interface AdminConfig {
  readonly address: SocketAddress;
}

/**
 * The mesh CA the sidecar's identity manager asks for its SVID, from node metadata in istio-agent's names
 * (CA_ADDR, …). Present exactly when a TLS context names the SDS secrets `default` / `ROOTCA`.
 */
export interface CaConfig {
  /** host:port of the control server's TLS port. */
  readonly address: string;
  /** PEM file with the root(s) that sign the CA's serving certificate: the trust anchor to start from. */
  readonly rootCertFile: string;
  readonly serverName?: string;
  /** Bootstrap token file for the first SVID (and after an expiry). */
  readonly tokenFile?: string;
  /** spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT */
  readonly spiffeId: string;
  readonly ttlMs: number;
}

/**
 * dynamic_resources in Istio's shape: one ADS stream (ads_config, gRPC, V3) to the control server carries
 * LDS and CDS (and the EDS/RDS they imply). The server is the first endpoint of the static cluster
 * ads_config names (or the `--xds` URL); a TLS transport socket on that cluster means mTLS.
 */
export interface AdsConfig {
  /** ads_config.grpc_services[0].envoy_grpc.cluster_name; empty when `--xds` named the server. */
  readonly clusterName: string;
  /** host may be a DNS name when it came from `--xds`. */
  readonly address: SocketAddress;
  readonly tls?: UpstreamTls;
  /** lds_config / cds_config initial_fetch_timeout (Envoy's default 15 s; 0 = wait forever). */
  readonly ldsInitialFetchTimeoutMs: number;
  readonly cdsInitialFetchTimeoutMs: number;
  /** ads_config.set_node_on_first_message_only (Istio sets it; the protocol only needs the node once). */
  readonly setNodeOnFirstMessageOnly: boolean;
}

/** envoy.config.bootstrap.v3.Bootstrap (node, static_resources, dynamic_resources, admin) */
export interface Bootstrap {
  readonly node: NodeInfo;
  readonly ca?: CaConfig;
  readonly ads?: AdsConfig;
  readonly listeners: readonly Listener[];
  readonly clusters: readonly Cluster[];
  readonly admin?: AdminConfig;
}

/**
 * Used where Http2ProtocolOptions leaves a knob unset. Envoy's own defaults are 256 MiB windows, which
 * in a single-threaded proxy would let one slow reader pin hundreds of MiB; 1 MiB per stream and 4 MiB
 * per connection keep a 1 Gbit/s x 10 ms path full while bounding memory per stream. Streams are capped
 * at 100 per connection, like Envoy's overload-safe recommendation for edge/downstream.
 */
export const HTTP2_DEFAULTS: Http2Options = Object.freeze({
  maxConcurrentStreams: 100,
  initialStreamWindowSize: 1 << 20,
  initialConnectionWindowSize: 4 << 20,
});
