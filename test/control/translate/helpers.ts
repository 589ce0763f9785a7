// A bookinfo-like MeshConfig across three clouds, proxy nodes, and a way to decode a snapshot with our own decoders.
import type { FieldIssue } from '../../../src/core/errors.js';
import { formatIssue } from '../../../src/core/errors.js';
import type {
  DestinationRule,
  HTTPRoute,
  MeshConfig,
  ServiceEntry,
  ServicePort,
  TrafficPolicy,
  VirtualService,
  WorkloadEntry,
  WorkloadEntrySpec,
} from '../../../src/control/mesh/types.js';
import type { NodeSnapshot, ProxyNode } from '../../../src/control/snapshot.js';
import { proxyNodeFrom } from '../../../src/control/translate/node.js';
import { decodeResource, type ResourceModels, type ResourceTypeUrl } from '../../../src/xds/resources/index.js';

export const TD = 'cluster.local';
export const SUFFIX = 'cluster.local';
export const OPTS = { trustDomain: TD, domainSuffix: SUFFIX };

export const REVIEWS = 'reviews.default.svc.cluster.local';
export const RATINGS = 'ratings.default.svc.cluster.local';
export const FRONTEND = 'frontend.default.svc.cluster.local';
export const DETAILS = 'details.other.svc.cluster.local';
export const EXTERNAL = 'api.example.com';

const meta = (name: string, namespace = 'default') => ({ name, namespace, file: `mesh/${name}.yaml`, line: 1 });

function locality(l: string) {
  const [region = '', zone = '', subZone = ''] = l.split('/');
  return { locality: l, localityParts: { region, zone, subZone } };
}

export function spec(address: string, o: { labels?: Record<string, string>; locality?: string; sa?: string; weight?: number; ports?: Record<string, number> } = {}): WorkloadEntrySpec {
  return {
    address,
    ports: o.ports ?? {},
    labels: o.labels ?? {},
    ...(o.locality ? locality(o.locality) : { localityParts: { region: '', zone: '', subZone: '' } }),
    ...(o.sa && { serviceAccount: o.sa }),
    weight: o.weight ?? 1,
  };
}

export function we(name: string, address: string, o: Parameters<typeof spec>[1] & { namespace?: string }): WorkloadEntry {
  return { kind: 'WorkloadEntry', meta: meta(name, o.namespace), ...spec(address, o) };
}

export function se(name: string, hosts: string[], ports: ServicePort[], o: { namespace?: string; selector?: Record<string, string>; endpoints?: WorkloadEntrySpec[]; external?: boolean } = {}): ServiceEntry {
  return {
    kind: 'ServiceEntry',
    meta: meta(name, o.namespace),
    hosts,
    ports,
    location: o.external ? 'MESH_EXTERNAL' : 'MESH_INTERNAL',
    resolution: 'STATIC',
    ...(o.selector && { workloadSelector: { labels: o.selector } }),
    endpoints: o.endpoints ?? [],
  };
}

export const dest = (fqdn: string, subset?: string, port?: number) => ({ host: fqdn.split('.')[0]!, fqdn, ...(subset && { subset }), ...(port && { port }) });

export function vs(name: string, fqdns: string[], http: HTTPRoute[], namespace = 'default'): VirtualService {
  return { kind: 'VirtualService', meta: meta(name, namespace), hosts: fqdns, fqdns, http };
}

export function dr(name: string, fqdn: string, o: { trafficPolicy?: TrafficPolicy; subsets?: DestinationRule['subsets']; namespace?: string } = {}): DestinationRule {
  return { kind: 'DestinationRule', meta: meta(name, o.namespace), host: fqdn, fqdn, ...(o.trafficPolicy && { trafficPolicy: o.trafficPolicy }), subsets: o.subsets ?? [] };
}

/** istiod's DefaultPolicy() as the sidecar's decoder reads it (Envoy's 25 ms back-off: istiod writes none). */
export const ISTIO_DEFAULT_RETRY = {
  retryOn: new Set(['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes']),
  numRetries: 2,
  perTryTimeoutMs: 0,
  retriableStatusCodes: [503],
  previousHosts: true,
  previousPrioritiesUpdateFrequency: 0,
  hostSelectionRetryMaxAttempts: 5,
  backOffBaseMs: 25,
  backOffMaxMs: 250,
};

export const policy = (p: Partial<TrafficPolicy>): TrafficPolicy => ({ portLevelSettings: [], ...p });

/** The weighted split of the reviews VirtualService's second route (v1 / v3). */
export function reviewsVs(v1 = 90, v3 = 10): VirtualService {
  return vs('reviews', [REVIEWS], [
    { name: 'jason', match: [{ name: 'user', headers: { 'End-User': { exact: 'jason' } } }, { headers: { 'x-canary': { prefix: 'yes' } } }], route: [{ destination: dest(REVIEWS, 'v2'), weight: 100 }] },
    { name: 'split', match: [], route: [{ destination: dest(REVIEWS, 'v1'), weight: v1 }, { destination: dest(REVIEWS, 'v3'), weight: v3 }], timeoutMs: 5000 },
  ]);
}

/**
 * bookinfo across clouds: frontend (the caller) and reviews v1/v2/v3 in aws-us-east-1, gcp-us-east4 and
 * azure-eastus; ratings without a sidecar (tls DISABLE at port level, app on 8080); details in another namespace;
 * an external API. `over` replaces whole lists.
 */
export function bookinfo(over: Partial<MeshConfig> = {}): MeshConfig {
  const http = (number: number, extra: Partial<ServicePort> = {}): ServicePort => ({ number, protocol: 'HTTP', name: 'http', ...extra });
  return {
    domainSuffix: SUFFIX,
    serviceEntries: [
      se('frontend', [FRONTEND], [http(80, { targetPort: 9080 })], { selector: { app: 'frontend' } }),
      se('reviews', [REVIEWS], [http(9080), { number: 9081, protocol: 'GRPC', name: 'grpc' }], { selector: { app: 'reviews' } }),
      se('ratings', [RATINGS], [http(9080)], { selector: { app: 'ratings' } }),
      se('details', [DETAILS], [http(9080), { number: 9443, protocol: 'TLS', name: 'tls' }], { namespace: 'other', selector: { app: 'details' } }),
      se('external-api', [EXTERNAL], [http(80), { number: 443, protocol: 'HTTPS', name: 'https' }], { external: true, endpoints: [spec('203.0.113.10', { locality: 'internet' })] }),
    ],
    workloadEntries: [
      we('frontend-1', '10.0.0.1', { labels: { app: 'frontend' }, locality: 'aws-us-east-1/aws-us-east-1a', sa: 'bookinfo-frontend' }),
      we('reviews-v1-a', '10.0.1.1', { labels: { app: 'reviews', version: 'v1' }, locality: 'aws-us-east-1/aws-us-east-1a', sa: 'bookinfo-reviews' }),
      we('reviews-v1-b', '10.0.1.2', { labels: { app: 'reviews', version: 'v1' }, locality: 'aws-us-east-1/aws-us-east-1b', sa: 'bookinfo-reviews', weight: 3 }),
      we('reviews-v2', '10.0.2.1', { labels: { app: 'reviews', version: 'v2' }, locality: 'gcp-us-east4/gcp-us-east4-a', sa: 'bookinfo-reviews', weight: 2 }),
      we('reviews-v3', '10.0.3.1', { labels: { app: 'reviews', version: 'v3' }, locality: 'azure-eastus/azure-eastus-1/rack7', sa: 'bookinfo-reviews-v3', ports: { http: 19080 } }),
      we('ratings-v1', '10.0.4.1', { labels: { app: 'ratings', version: 'v1' }, locality: 'aws-us-east-1/aws-us-east-1a', ports: { http: 8080 } }),
      we('details-1', '10.1.0.1', { namespace: 'other', labels: { app: 'details' }, locality: 'gcp-us-east4/gcp-us-east4-b', sa: 'details' }),
      // Same labels as reviews but another namespace: the reviews ServiceEntry must not select it.
      we('impostor', '10.9.9.9', { namespace: 'other', labels: { app: 'reviews', version: 'v1' }, sa: 'impostor' }),
    ],
    virtualServices: [
      reviewsVs(),
      vs('ratings', [RATINGS], [
        { match: [{ uri: { prefix: '/ratings' }, port: 9080, headers: {} }, { uri: { regex: '^/v[0-9]+/ratings$' }, headers: { 'x-version': { regex: 'v[12]' } } }], route: [{ destination: dest(RATINGS), weight: 100 }] },
        { match: [{ uri: { exact: '/health' }, headers: {}, port: 9999 }], route: [{ destination: dest(RATINGS), weight: 100 }] },
      ]),
    ],
    destinationRules: [
      dr('reviews', REVIEWS, {
        trafficPolicy: policy({ loadBalancer: { simple: 'ROUND_ROBIN' } }),
        subsets: [
          { name: 'v1', labels: { version: 'v1' } },
          { name: 'v2', labels: { version: 'v2' } },
          // Subset-level policy wins over the rule's: v3 has no sidecar.
          { name: 'v3', labels: { version: 'v3' }, trafficPolicy: policy({ tls: { mode: 'DISABLE' } }) },
        ],
      }),
      // Port-level settings win over the rule's own: ratings has no sidecar on 9080.
      dr('ratings', RATINGS, { trafficPolicy: policy({ tls: { mode: 'ISTIO_MUTUAL' }, portLevelSettings: [{ port: 9080, tls: { mode: 'DISABLE' } }] }) }),
    ],
    rateLimitPolicies: [],
    peerAuthentications: [],
    ...over,
  };
}

export interface NodeOpts {
  readonly ns?: string;
  readonly sa?: string;
  readonly ip?: string;
  readonly labels?: Record<string, string>;
  readonly ports?: unknown;
  readonly locality?: { region: string; zone: string; subZone: string };
  readonly id?: string;
  readonly proxyless?: boolean;
}

/** A node as istio-agent describes it (metadata in Istio's keys), through proxyNodeFrom. */
export function node(o: NodeOpts = {}): ProxyNode {
  const r = proxyNodeFrom(
    {
      id: o.id ?? `sidecar~${o.ip ?? '10.0.0.1'}~frontend-1.default~default.svc.cluster.local`,
      cluster: 'frontend',
      ...(o.locality && { locality: o.locality }),
      metadata: {
        NAMESPACE: o.ns ?? 'default',
        SERVICE_ACCOUNT: o.sa ?? 'bookinfo-frontend',
        LABELS: o.labels ?? { app: 'frontend' },
        ...(o.proxyless ? { GENERATOR: 'grpc' } : { INSTANCE_IPS: o.ip ?? '10.0.0.1' }),
        POD_PORTS: o.ports ?? JSON.stringify([{ name: 'http', containerPort: 9080, protocol: 'TCP' }]),
      },
    },
    { trustDomain: TD },
  );
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
  return r.value;
}

/** Every resource of a snapshot through our own decoders (decodeResource); throws with every issue otherwise. */
export function decodeAll<U extends ResourceTypeUrl>(s: NodeSnapshot, type: U): Map<string, ResourceModels[U]> {
  const out = new Map<string, ResourceModels[U]>();
  const issues: FieldIssue[] = [];
  for (const [name, bytes] of s.resources.get(type) ?? []) {
    const r = decodeResource(type, bytes, name);
    if (r.ok) out.set(name, r.value);
    else issues.push(...r.errors);
  }
  if (issues.length) throw new Error(issues.map(formatIssue).join('\n'));
  return out;
}
