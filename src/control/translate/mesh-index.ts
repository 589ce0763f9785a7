// The mesh config indexed once per version for translation: services by host with their endpoints, and the
// VirtualService / DestinationRule that applies to a host for a caller's namespace.
import type { AuthorizationPolicy, DestinationRule, MeshConfig, PeerAuthentication, PolicySettings, RateLimitPolicy, RequestAuthentication, TrafficPolicy, PortProtocol, ServiceEntry, ServicePort, VirtualService, WorkloadEntrySpec } from '../mesh/types.js';
import { labelsMatch } from '../mesh/selector.js';

/** A workload behind a service: a selected WorkloadEntry or an inline ServiceEntry endpoint. */
export interface Endpoint {
  readonly spec: WorkloadEntrySpec;
  /** Its namespace (a WorkloadEntry is selected only in its ServiceEntry's namespace; inline ones live there). */
  readonly namespace: string;
}

/** One ServiceEntry host: what the translator routes to. */
export interface Service {
  readonly host: string;
  readonly namespace: string;
  readonly entry: ServiceEntry;
  /** The ports that get HTTP routing (HTTP, HTTP2, GRPC), in the order written. TCP/TLS ports are not routed yet. */
  readonly httpPorts: readonly ServicePort[];
  /** The port whose virtual host also answers to the host names without a port (see defaultPortOf). */
  readonly defaultPort: ServicePort | undefined;
  readonly endpoints: readonly Endpoint[];
}

const HTTP_PROTOCOLS: readonly PortProtocol[] = ['HTTP', 'HTTP2', 'GRPC'];
export const isHttpProtocol = (p: string): boolean => (HTTP_PROTOCOLS as readonly string[]).includes(p);
/** Ports whose traffic is HTTP/2 end to end (Istio: GRPC and HTTP2 ports get an h2 upstream). */
export const isH2Protocol = (p: string): boolean => p === 'GRPC' || p === 'HTTP2';

export { labelsMatch };

/**
 * Where "Host: reviews" (no port) goes: a client that omits the port means the scheme's default, so port 80
 * when the service has it; otherwise the first HTTP port, so the short name still reaches something. Only one
 * port can have these domains, because two virtual hosts of one route table cannot share a domain.
 */
function defaultPortOf(ports: readonly ServicePort[]): ServicePort | undefined {
  return ports.find((p) => p.number === 80) ?? ports[0];
}

const byMeta = (a: { meta: { namespace: string; name: string } }, b: { meta: { namespace: string; name: string } }) =>
  a.meta.namespace.localeCompare(b.meta.namespace) || a.meta.name.localeCompare(b.meta.name);

/** A config host (exact, "*.suffix" or "*") matches a service host; exact matches rank first. */
function hostRank(pattern: string, host: string): number | undefined {
  if (pattern === host) return 0;
  if (pattern === '*') return 2;
  if (pattern.startsWith('*.') && host.endsWith(pattern.slice(1))) return 1;
  return undefined;
}

export class MeshIndex {
  readonly services: readonly Service[];
  private readonly byHost = new Map<string, Service>();
  private readonly vs: readonly VirtualService[];
  private readonly dr: readonly DestinationRule[];
  /** By namespace and name, so a workload's filters come in the same order whatever the file order. */
  readonly rateLimitPolicies: readonly RateLimitPolicy[];
  /** By namespace and name: istiod then orders their jwtRules by issuer, a stable sort. */
  readonly requestAuthentications: readonly RequestAuthentication[];
  /** By namespace and name: istiod's order, so a workload's RBAC filters do not depend on file order. */
  readonly authorizationPolicies: readonly AuthorizationPolicy[];
  /** PeerAuthentications (composed per workload in peer-authn.ts; the order never decides, creation time does). */
  readonly peerAuthentications: readonly PeerAuthentication[];

  constructor(mesh: MeshConfig) {
    const services: Service[] = [];
    // Sorted so that, should two ServiceEntries claim one host, the choice does not depend on file order.
    for (const se of [...mesh.serviceEntries].sort(byMeta)) {
      const endpoints = [...selectedWorkloads(mesh, se), ...se.endpoints.map((spec) => ({ spec, namespace: se.meta.namespace }))];
      const httpPorts = se.ports.filter((p) => isHttpProtocol(p.protocol));
      for (const host of se.hosts) {
        if (this.byHost.has(host)) continue;
        const s: Service = { host, namespace: se.meta.namespace, entry: se, httpPorts, defaultPort: defaultPortOf(httpPorts), endpoints };
        this.byHost.set(host, s);
        services.push(s);
      }
    }
    this.services = services.sort((a, b) => a.host.localeCompare(b.host));
    this.vs = [...mesh.virtualServices].sort(byMeta);
    this.dr = [...mesh.destinationRules].sort(byMeta);
    this.rateLimitPolicies = [...mesh.rateLimitPolicies].sort(byMeta);
    this.requestAuthentications = [...(mesh.requestAuthentications ?? [])].sort(byMeta);
    this.authorizationPolicies = [...(mesh.authorizationPolicies ?? [])].sort(byMeta);
    this.peerAuthentications = mesh.peerAuthentications;
    this.failoverLabels = [...new Set(this.dr.flatMap(failoverLabelsOf))].sort();
  }

  /**
   * The label keys any DestinationRule's failoverPriority compares: the only labels of a caller its endpoints
   * depend on, so callers that agree on them (and on locality) share one EDS translation.
   */
  readonly failoverLabels: readonly string[];

  service(host: string): Service | undefined {
    return this.byHost.get(host);
  }

  /**
   * The VirtualService for a host as a caller in `callerNs` sees it. Istio keeps one per host for a sidecar:
   * the most specific host match wins, then one in the caller's own namespace, then one in the service's
   * namespace, then the rest in (namespace, name) order.
   */
  virtualService(host: string, callerNs: string, serviceNs: string): VirtualService | undefined {
    return best(this.vs, (v) => minRank(v.fqdns, host), callerNs, serviceNs);
  }

  /** The DestinationRule for a host, by Istio's lookup order: caller's namespace, service's namespace, the rest. */
  destinationRule(host: string, callerNs: string, serviceNs: string): DestinationRule | undefined {
    return best(this.dr, (d) => hostRank(d.fqdn, host), callerNs, serviceNs);
  }
}

function minRank(patterns: readonly string[], host: string): number | undefined {
  const ranks = patterns.map((p) => hostRank(p, host)).filter((r): r is number => r !== undefined);
  return ranks.length ? Math.min(...ranks) : undefined;
}

function best<T extends { meta: { namespace: string } }>(items: readonly T[], rank: (t: T) => number | undefined, callerNs: string, serviceNs: string): T | undefined {
  let winner: { item: T; key: [number, number] } | undefined;
  for (const item of items) {
    const r = rank(item);
    if (r === undefined) continue;
    const ns = item.meta.namespace === callerNs ? 0 : item.meta.namespace === serviceNs ? 1 : 2;
    // Items are in (namespace, name) order, so the first of equal keys is kept.
    if (!winner || r < winner.key[0] || (r === winner.key[0] && ns < winner.key[1])) winner = { item, key: [r, ns] };
  }
  return winner?.item;
}

/** WorkloadEntries a ServiceEntry's workloadSelector picks: same namespace, labels a superset of the selector. */
function selectedWorkloads(mesh: MeshConfig, se: ServiceEntry): Endpoint[] {
  const selector = se.workloadSelector?.labels;
  if (!selector) return [];
  return mesh.workloadEntries
    .filter((we) => we.meta.namespace === se.meta.namespace && labelsMatch(selector, we.labels))
    .sort(byMeta)
    .map((we) => ({ spec: we, namespace: we.meta.namespace }));
}

const cache = new WeakMap<MeshConfig, MeshIndex>();

/** The index of one config version, built once however many proxies are translated against it. */
export function meshIndex(mesh: MeshConfig): MeshIndex {
  let i = cache.get(mesh);
  if (!i) {
    i = new MeshIndex(mesh);
    cache.set(mesh, i);
  }
  return i;
}

/** The label keys (without `=value`) of every failoverPriority in a DestinationRule, at every level. */
function failoverLabelsOf(dr: DestinationRule): string[] {
  const policies = (tp: TrafficPolicy | undefined): PolicySettings[] => (tp ? [tp, ...tp.portLevelSettings] : []);
  return [dr.trafficPolicy, ...dr.subsets.map((s) => s.trafficPolicy)]
    .flatMap(policies)
    .flatMap((p) => p.loadBalancer?.localityLbSetting?.failoverPriority ?? [])
    .map((l) => l.split('=')[0]!);
}
