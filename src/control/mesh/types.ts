// The validated mesh config: Istio's networking.istio.io/v1 kinds in their API shapes (camelCase, as users write them).
// Produced by the mesh loader (every field checked, cross-references resolved), consumed by the translator.
// Only fields listed here are accepted; anything else in a document is an error naming file, line and field path.

/** Where a document came from: named in every error and in `outrigger status`. */
export interface Meta {
  readonly name: string;
  /** metadata.namespace; defaults to "default" as kubectl does. */
  readonly namespace: string;
  /** File path as given (relative to the config dir), and the 1-based line of the document's start. */
  readonly file: string;
  readonly line: number;
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
  readonly headers: Readonly<Record<string, StringMatch>>;
  readonly port?: number;
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
}

export interface HTTPRoute {
  readonly name?: string;
  /** Empty = match everything. Several = OR; fields inside one = AND (Istio). */
  readonly match: readonly HTTPMatchRequest[];
  readonly route: readonly HTTPRouteDestination[];
  /** Route timeout in ms (Istio `timeout`, e.g. "5s"); undefined = the mesh default (Envoy's 15 s is not Istio's: Istio disables it). */
  readonly timeoutMs?: number;
}

export interface VirtualService {
  readonly kind: 'VirtualService';
  readonly meta: Meta;
  readonly hosts: readonly string[];
  /** hosts resolved to FQDNs (short names against meta.namespace). */
  readonly fqdns: readonly string[];
  readonly http: readonly HTTPRoute[];
}

export type SimpleLb = 'UNSPECIFIED' | 'LEAST_REQUEST' | 'RANDOM' | 'PASSTHROUGH' | 'ROUND_ROBIN' | 'LEAST_CONN' | 'PEAK_EWMA';

/** DestinationRule trafficPolicy; parsed and validated now, enforced by the balancer (issue 5) and breakers (issue 6). */
export interface TrafficPolicy {
  readonly loadBalancer?: {
    readonly simple?: SimpleLb;
    readonly consistentHash?: Readonly<Record<string, unknown>>;
    readonly localityLbSetting?: Readonly<Record<string, unknown>>;
    readonly warmupDurationSecs?: string;
  };
  readonly connectionPool?: {
    readonly tcp?: Readonly<Record<string, unknown>>;
    readonly http?: Readonly<Record<string, unknown>>;
  };
  readonly outlierDetection?: Readonly<Record<string, unknown>>;
  /** DISABLE = plaintext to these endpoints; ISTIO_MUTUAL = mTLS with SVIDs. Default: see the translator. */
  readonly tls?: { readonly mode: 'DISABLE' | 'ISTIO_MUTUAL' };
  readonly portLevelSettings: readonly (Omit<TrafficPolicy, 'portLevelSettings'> & { readonly port: number })[];
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

export type MeshResource = ServiceEntry | WorkloadEntry | VirtualService | DestinationRule;

/** One consistent, validated view of the config directory. */
export interface MeshConfig {
  readonly serviceEntries: readonly ServiceEntry[];
  readonly workloadEntries: readonly WorkloadEntry[];
  readonly virtualServices: readonly VirtualService[];
  readonly destinationRules: readonly DestinationRule[];
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
