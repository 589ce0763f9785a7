// The validated mesh config: Istio's networking.istio.io/v1 kinds in their API shapes (camelCase, as users write them).
// Produced by the mesh loader (every field checked, cross-references resolved), consumed by the translator.
// Only fields listed here are accepted; anything else in a document is an error naming file, line and field path.

import type { HTTPFaultInjection } from './fault.js';

/** Where a document came from: named in every error and in `outrigger status`. */
export interface Meta {
  readonly name: string;
  /** metadata.namespace; defaults to "default" as kubectl does. */
  readonly namespace: string;
  /** File path as given (relative to the config dir), and the 1-based line of the document's start. */
  readonly file: string;
  readonly line: number;
  /** metadata.creationTimestamp (RFC 3339) in ms since the epoch, when the document has one (PeerAuthentication: the oldest wins). */
  readonly creationTimestampMs?: number;
}

/** Istio's port protocols; HTTP, HTTP2 and GRPC get HTTP routing, TCP/TLS are accepted but not routed (yet). */
export type PortProtocol = 'HTTP' | 'HTTP2' | 'GRPC' | 'TCP' | 'TLS' | 'HTTPS';

/** networking.istio.io/v1 ServiceEntry spec.ports[] */
export interface ServicePort {
  readonly number: number;
  readonly protocol: PortProtocol;
  readonly name: string;
  /** targetPort: the endpoint port when a WorkloadEntry does not map this port by name. */
  readonly targetPort?: number;
}

export interface ServiceEntry {
  readonly kind: 'ServiceEntry';
  readonly meta: Meta;
  /** FQDNs, e.g. reviews.default.svc.cluster.local. */
  readonly hosts: readonly string[];
  readonly ports: readonly ServicePort[];
  readonly location: 'MESH_INTERNAL' | 'MESH_EXTERNAL';
  /** Only STATIC is supported: endpoints are WorkloadEntries (or inline `endpoints`). */
  readonly resolution: 'STATIC';
  readonly workloadSelector?: { readonly labels: Readonly<Record<string, string>> };
  /** Inline endpoints (Istio allows WorkloadEntry specs here); they behave like WorkloadEntries in this namespace. */
  readonly endpoints: readonly WorkloadEntrySpec[];
}

/** networking.istio.io/v1 WorkloadEntry spec */
export interface WorkloadEntrySpec {
  /** Where the workload's sidecar inbound listener (or, without a sidecar, the workload itself) is reachable. */
  readonly address: string;
  /** servicePortName -> endpoint port. */
  readonly ports: Readonly<Record<string, number>>;
  readonly labels: Readonly<Record<string, string>>;
  /** region/zone/subzone as written; parsed in `localityParts`. */
  readonly locality?: string;
  readonly localityParts: { readonly region: string; readonly zone: string; readonly subZone: string };
  readonly serviceAccount?: string;
  /** Load-balancing weight, default 1 (Istio: 0 is treated as 1). */
  readonly weight: number;
  readonly network?: string;
}

export interface WorkloadEntry extends WorkloadEntrySpec {
  readonly kind: 'WorkloadEntry';
  readonly meta: Meta;
}

/** networking.istio.io/v1 StringMatch: exactly one of exact/prefix/regex (RE2 syntax). */
export type StringMatch = { readonly exact: string } | { readonly prefix: string } | { readonly regex: string };

export interface HTTPMatchRequest {
  readonly name?: string;
  readonly uri?: StringMatch;
  /** Keys lowercased. */
  readonly headers: Readonly<Record<string, StringMatch>>;
  readonly port?: number;
  /** Query parameters by name (case-sensitive, as sent). */
  readonly queryParams?: Readonly<Record<string, StringMatch>>;
  readonly method?: StringMatch;
  readonly authority?: StringMatch;
  /** Case-insensitive exact / prefix uri (Envoy's case_sensitive: false; no effect on a regex). */
  readonly ignoreUriCase?: boolean;
  /** The request matches only if none of these header matches holds (keys lowercased). */
  readonly withoutHeaders?: Readonly<Record<string, StringMatch>>;
}

/** networking.istio.io/v1 Headers.HeaderOperations: set (overwrite), add (append), remove. Names lowercased. */
export interface HeaderOperations {
  readonly set?: Readonly<Record<string, string>>;
  readonly add?: Readonly<Record<string, string>>;
  readonly remove?: readonly string[];
}

/** networking.istio.io/v1 Headers. */
export interface HeaderEdits {
  readonly request?: HeaderOperations;
  readonly response?: HeaderOperations;
}

/** networking.istio.io/v1 HTTPRedirect. */
export interface HTTPRedirect {
  readonly uri?: string;
  readonly authority?: string;
  readonly port?: number;
  readonly derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT';
  readonly scheme?: string;
  /** 301 (default), 302, 303, 307 or 308: the codes Envoy's RedirectAction can send. */
  readonly redirectCode: 301 | 302 | 303 | 307 | 308;
}

/** networking.istio.io/v1 HTTPDirectResponse (body.string only). */
export interface HTTPDirectResponse {
  readonly status: number;
  readonly body?: string;
}

/** networking.istio.io/v1 HTTPRewrite. */
export interface HTTPRewrite {
  readonly uri?: string;
  readonly authority?: string;
  /** RE2 `match`, and `rewrite` with \1-style groups (Envoy's regex_rewrite). */
  readonly uriRegexRewrite?: { readonly match: string; readonly rewrite: string };
}

export interface Destination {
  /** As written; resolved against the VirtualService's namespace by the loader into `fqdn`. */
  readonly host: string;
  readonly fqdn: string;
  readonly subset?: string;
  readonly port?: number;
}

export interface HTTPRouteDestination {
  readonly destination: Destination;
  /** 0..100; the weights of one route sum to 100 (a single destination may omit it: 100). */
  readonly weight: number;
  /** Header edits applied when this destination is picked (before the route's own). */
  readonly headers?: HeaderEdits;
}

/**
 * networking.istio.io/v1 HTTPRetry. A route without it gets istiod's default policy (2 retries on
 * connect-failure, refused-stream, unavailable, cancelled and 503); `attempts: 0` turns retries off.
 */
export interface HTTPRetry {
  /** Retries after the first try; 0 = none (istiod then writes no retry_policy at all). */
  readonly attempts: number;
  readonly perTryTimeoutMs?: number;
  /**
   * `retryOn` split as istiod splits it: Envoy's retry_on conditions, and the HTTP status codes written among
   * them (which become retriable_status_codes). Undefined = istiod's default conditions.
   */
  readonly retryOn?: { readonly conditions: readonly string[]; readonly statusCodes: readonly number[] };
  /** Retries go to other localities' priorities first (Envoy's previous_priorities). */
  readonly retryRemoteLocalities?: boolean;
  /** Overrides the default previous_hosts predicate: false lets a retry land on a host already tried. */
  readonly retryIgnorePreviousHosts?: boolean;
  /** retry_back_off.base_interval in ms (Envoy's default 25 ms when unset). */
  readonly backoffMs?: number;
}

export interface HTTPRoute {
  readonly name?: string;
  /** Empty = match everything. Several = OR; fields inside one = AND (Istio). */
  readonly match: readonly HTTPMatchRequest[];
  /** Empty exactly when the route redirects or answers directly. */
  readonly route: readonly HTTPRouteDestination[];
  readonly redirect?: HTTPRedirect;
  readonly directResponse?: HTTPDirectResponse;
  readonly rewrite?: HTTPRewrite;
  readonly headers?: HeaderEdits;
  /** Route timeout in ms (Istio `timeout`, e.g. "5s"); undefined = the mesh default (Envoy's 15 s is not Istio's: Istio disables it). */
  readonly timeoutMs?: number;
  /** Undefined = istiod's default retry policy. */
  readonly retries?: HTTPRetry;
  /** `mirror` (with mirrorPercentage / mirrorPercent) or `mirrors`, as one list; undefined = no mirroring. */
  readonly mirrors?: readonly HTTPMirror[];
  /** HTTPFaultInjection: a delay and/or an abort injected by the caller's sidecar (issue 6). */
  readonly fault?: HTTPFaultInjection;
}

/** One shadow target of an HTTP route: Istio's HTTPMirrorPolicy, or `mirror` with its percentage. */
export interface HTTPMirror {
  readonly destination: Destination;
  /** 0..100 (fractions allowed); Istio's default is 100. 0 = written but off (istiod then writes no policy). */
  readonly percent: number;
  /** Where the destination was written, under spec.http[i] ("mirror" or "mirrors[j].destination"), for cross-checks. */
  readonly at: string;
}

export interface VirtualService {
  readonly kind: 'VirtualService';
  readonly meta: Meta;
  readonly hosts: readonly string[];
  /** hosts resolved to FQDNs (short names against meta.namespace). */
  readonly fqdns: readonly string[];
  readonly http: readonly HTTPRoute[];
}

/** Istio's simple policies Outrigger accepts (PASSTHROUGH is refused by validation), plus its PEAK_EWMA. */
export type SimpleLb = 'UNSPECIFIED' | 'LEAST_REQUEST' | 'RANDOM' | 'ROUND_ROBIN' | 'LEAST_CONN' | 'PEAK_EWMA';

/*
 * DestinationRule trafficPolicy, parsed and validated now, enforced by the balancer (issue 5) and breakers
 * (issue 6). Field names are Istio's; durations are converted to ms (`…Ms`). A field left out of the document
 * is undefined here, so Istio's defaults (documented per field in destination_rule.proto) are applied by
 * whoever enforces it, not guessed at load time.
 */

/** LoadBalancerSettings.ConsistentHashLB: exactly one hash key (Istio's oneof hash_key), at most one algorithm. */
export interface ConsistentHashLb {
  readonly httpHeaderName?: string;
  readonly httpCookie?: { readonly name: string; readonly path?: string; readonly ttlMs?: number };
  readonly useSourceIp?: boolean;
  readonly httpQueryParameterName?: string;
  /** oneof hash_algorithm; neither = ring hash (Istio's default). The deprecated top-level minimumRingSize lands here. */
  readonly ringHash?: { readonly minimumRingSize?: number };
  /** tableSize: a prime below 5000011 (Envoy's Maglev). */
  readonly maglev?: { readonly tableSize: number };
}

/** LocalityLoadBalancerSetting: at most one of distribute and failover (Istio's rule). */
export interface LocalityLbSetting {
  readonly enabled?: boolean;
  /** from: a locality pattern; to: locality pattern -> weight 1..100, summing to 100. */
  readonly distribute: readonly { readonly from: string; readonly to: Readonly<Record<string, number>> }[];
  /** Region to region. */
  readonly failover: readonly { readonly from: string; readonly to: string }[];
  /** Label keys, or key=value pairs, ordered by priority. */
  readonly failoverPriority: readonly string[];
}

export interface LoadBalancerSettings {
  /** oneof lb_policy with consistentHash; PEAK_EWMA is Outrigger's extension. */
  readonly simple?: SimpleLb;
  readonly consistentHash?: ConsistentHashLb;
  readonly localityLbSetting?: LocalityLbSetting;
}

export interface TcpSettings {
  readonly maxConnections?: number;
  readonly connectTimeoutMs?: number;
  readonly tcpKeepalive?: { readonly probes?: number; readonly timeMs?: number; readonly intervalMs?: number };
  readonly maxConnectionDurationMs?: number;
  /** 0 disables the idle timeout (Istio). */
  readonly idleTimeoutMs?: number;
}

export interface HttpSettings {
  readonly http1MaxPendingRequests?: number;
  readonly http2MaxRequests?: number;
  readonly maxRequestsPerConnection?: number;
  readonly maxRetries?: number;
  readonly idleTimeoutMs?: number;
  readonly h2UpgradePolicy?: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE';
  readonly useClientProtocol?: boolean;
  readonly maxConcurrentStreams?: number;
}

export interface ConnectionPoolSettings {
  readonly tcp?: TcpSettings;
  readonly http?: HttpSettings;
}

export interface OutlierDetection {
  readonly consecutiveGatewayErrors?: number;
  readonly consecutive5xxErrors?: number;
  readonly consecutiveLocalOriginFailures?: number;
  readonly splitExternalLocalOriginErrors?: boolean;
  readonly intervalMs?: number;
  readonly baseEjectionTimeMs?: number;
  /** Percentages 0..100. */
  readonly maxEjectionPercent?: number;
  readonly minHealthPercent?: number;
}

/** The settings a port-level policy may override (all of TrafficPolicy but portLevelSettings). */
export interface PolicySettings {
  readonly loadBalancer?: LoadBalancerSettings;
  readonly connectionPool?: ConnectionPoolSettings;
  readonly outlierDetection?: OutlierDetection;
  /** DISABLE = plaintext to these endpoints; ISTIO_MUTUAL = mTLS with SVIDs. Default: see the translator. */
  readonly tls?: { readonly mode: 'DISABLE' | 'ISTIO_MUTUAL' };
}

/** TrafficPolicy.PortTrafficPolicy: port.number plus the same settings; replaces (not merges with) the outer ones. */
export interface PortTrafficPolicy extends PolicySettings {
  readonly port: number;
}

export interface TrafficPolicy extends PolicySettings {
  readonly portLevelSettings: readonly PortTrafficPolicy[];
}

export interface Subset {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly trafficPolicy?: TrafficPolicy;
}

export interface DestinationRule {
  readonly kind: 'DestinationRule';
  readonly meta: Meta;
  readonly host: string;
  readonly fqdn: string;
  readonly trafficPolicy?: TrafficPolicy;
  readonly subsets: readonly Subset[];
}

/** outrigger.dev/v1alpha1 RateLimitPolicy rules[] (see rate-limit-policy.ts and the README's "Local rate limiting"). */
export interface RateLimitRule {
  readonly name?: string;
  /** All conditions set must hold (AND); none = every request to the workload. */
  readonly match: {
    readonly path?: { readonly exact: string } | { readonly prefix: string };
    readonly method?: string;
    /** Lowercased header name -> StringMatch. */
    readonly headers: Readonly<Record<string, StringMatch>>;
    /** Istio's principal form, `<trust domain>/ns/<ns>/sa/<sa>` (the caller's SPIFFE ID without spiffe://). */
    readonly sourcePrincipal?: string;
  };
  readonly tokenBucket: { readonly maxTokens: number; readonly tokensPerFill: number; readonly fillIntervalMs: number };
  /** A bucket per value of a request header (lowercased), or per calling workload identity. */
  readonly perKey?: { readonly header: string } | { readonly sourcePrincipal: true };
  /** Count what would be refused, refuse nothing. */
  readonly shadow: boolean;
}

export interface RateLimitPolicy {
  readonly kind: 'RateLimitPolicy';
  readonly meta: Meta;
  /** Workloads of the policy's namespace with these labels; absent = every workload of the namespace. */
  readonly workloadSelector?: { readonly labels: Readonly<Record<string, string>> };
  readonly rules: readonly RateLimitRule[];
}

/** The API versions of Istio's security kinds (security.istio.io); v1beta1 is still what many users write. */
export const SECURITY_API_VERSIONS: readonly string[] = ['security.istio.io/v1', 'security.istio.io/v1beta1'];

/** What every mesh resource has: its kind, and where it came from. */
interface Resource<K extends string> {
  readonly kind: K;
  readonly meta: Meta;
}

/** security.istio.io/v1 JWTRule (see request-authentication.ts and the README's "RequestAuthentication"). */
export interface JwtRule {
  readonly issuer: string;
  /** Empty = any audience (Envoy's provider.audiences unset). */
  readonly audiences: readonly string[];
  /** Exactly one of jwksUri (fetched by the control server) and jwks (inline JWKS JSON). */
  readonly jwksUri?: string;
  readonly jwks?: string;
  /** Header names lowercased; none of fromHeaders/fromParams/fromCookies = Envoy's default (Authorization: Bearer, access_token). */
  readonly fromHeaders: readonly { readonly name: string; readonly prefix?: string }[];
  readonly fromParams: readonly string[];
  readonly fromCookies: readonly string[];
  readonly outputPayloadToHeader?: string;
  readonly outputClaimToHeaders: readonly { readonly header: string; readonly claim: string }[];
  readonly forwardOriginalToken: boolean;
}

/** security.istio.io/v1 RequestAuthentication: root namespace = mesh-wide, else its namespace; selector narrows. */
export interface RequestAuthentication extends Resource<'RequestAuthentication'> {
  readonly selector?: { readonly matchLabels: Readonly<Record<string, string>> };
  readonly jwtRules: readonly JwtRule[];
}

/** security.istio.io/v1 AuthorizationPolicy Source fields (rules[].from[].source), each a list; any may be empty. */
export const AUTHZ_SOURCE_FIELDS = ['principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks'] as const;
export type AuthzSource = { readonly [K in (typeof AUTHZ_SOURCE_FIELDS)[number]]: readonly string[] };

/** security.istio.io/v1 Operation fields (rules[].to[].operation); ports as Istio writes them (strings). */
export const AUTHZ_OPERATION_FIELDS = ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;
export type AuthzOperation = { readonly [K in (typeof AUTHZ_OPERATION_FIELDS)[number]]: readonly string[] };

/** security.istio.io/v1 Condition (rules[].when[]): `key` is one of Istio's attributes (see authorization-policy.ts). */
export interface AuthzCondition {
  readonly key: string;
  readonly values: readonly string[];
  readonly notValues: readonly string[];
}

export interface AuthzRule {
  /** OR of sources; empty = any source. */
  readonly from: readonly AuthzSource[];
  /** OR of operations; empty = any operation. */
  readonly to: readonly AuthzOperation[];
  /** AND of conditions. */
  readonly when: readonly AuthzCondition[];
}

/** security.istio.io/v1 AuthorizationPolicy (see authorization-policy.ts and the README's "AuthorizationPolicy"). */
export interface AuthorizationPolicy {
  readonly kind: 'AuthorizationPolicy';
  readonly meta: Meta;
  /** selector.matchLabels: workloads with these labels (in the policy's namespace, or any namespace from the root namespace). */
  readonly selector?: { readonly matchLabels: Readonly<Record<string, string>> };
  /** CUSTOM is refused by validation. */
  readonly action: 'ALLOW' | 'DENY' | 'AUDIT';
  /** Empty: an ALLOW policy allows nothing, a DENY or AUDIT policy matches nothing (Istio). */
  readonly rules: readonly AuthzRule[];
}

/** security.istio.io/v1 PeerAuthentication mutual TLS modes (UNSET inherits from the parent level). */
export type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

/** security.istio.io/v1 PeerAuthentication (see peer-authentication.ts and the README's "PeerAuthentication (mTLS modes)"). */
export interface PeerAuthentication {
  readonly kind: 'PeerAuthentication';
  readonly meta: Meta;
  /** selector.matchLabels; absent (or empty) = the whole namespace, or the mesh in the root namespace. */
  readonly selector?: { readonly matchLabels: Readonly<Record<string, string>> };
  readonly mtls: MtlsMode;
  /** Workload port -> mode; only with a selector (Istio). */
  readonly portLevelMtls?: Readonly<Record<number, MtlsMode>>;
}


export type MeshResource = ServiceEntry | WorkloadEntry | VirtualService | DestinationRule | RateLimitPolicy | RequestAuthentication | AuthorizationPolicy | PeerAuthentication;

/** One consistent, validated view of the config directory. */
export interface MeshConfig {
  readonly serviceEntries: readonly ServiceEntry[];
  readonly workloadEntries: readonly WorkloadEntry[];
  readonly virtualServices: readonly VirtualService[];
  readonly destinationRules: readonly DestinationRule[];
  readonly rateLimitPolicies: readonly RateLimitPolicy[];
  /** Optional so configs built by hand (tests, other tools) need not name it; the loader always sets it. */
  readonly requestAuthentications?: readonly RequestAuthentication[];
  /** security.istio.io AuthorizationPolicies; absent = none. */
  readonly authorizationPolicies?: readonly AuthorizationPolicy[];
  readonly peerAuthentications: readonly PeerAuthentication[];
  /** The DNS suffix short names resolve against (Istio's cluster.local). */
  readonly domainSuffix: string;
}

/**
 * One validation problem, formatted as `file:line Kind name: field.path: message`, e.g.
 * `mesh/reviews.yaml:14 VirtualService reviews: spec.http[0].route[1].weight: must be 0..100`.
 */
export interface MeshIssue {
  readonly file: string;
  readonly line?: number;
  /** Kind and metadata.name of the document, when known. */
  readonly kind?: string;
  readonly name?: string;
  readonly path: string;
  readonly message: string;
}

export function formatMeshIssue(i: MeshIssue): string {
  const where = `${i.file}${i.line !== undefined ? `:${i.line}` : ''}`;
  const what = i.kind ? ` ${i.kind}${i.name ? ` ${i.name}` : ''}` : '';
  return `${where}${what}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
}
