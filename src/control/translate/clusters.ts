// CDS: the outbound EDS clusters a proxy's routes reference (one per service port and DestinationRule subset),
// with Istio's names, TLS and protocol choices, and a sidecar's STATIC inbound clusters to its own app.
import type { ConnectionPoolSettings, ConsistentHashLb, LoadBalancerSettings, LocalityLbSetting, OutlierDetection, ServicePort, Subset, TrafficPolicy } from '../mesh/types.js';
import { TYPE_URL_PEAK_EWMA, type LbPolicy } from '../../model/types.js';
import {
  ADS_SOURCE,
  TLS_SOCKET_NAME,
  UPSTREAM_TLS_TYPE_URL,
  duration,
  inboundClusterName,
  outboundClusterName,
  outboundSni,
  sdsCommonTls,
  socketAddress,
  trustDomainPrefix,
  type Built,
  type Ctx,
  type NodeCtx,
} from './common.js';
import { isH2Protocol, type MeshIndex, type Service } from './mesh-index.js';

/** Istio's default Cluster.connect_timeout (MeshConfig.connectTimeout, 10 s); Envoy's own default is 5 s. */
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * The picker when a DestinationRule names none (simple UNSPECIFIED or no loadBalancer). istiod's
 * defaultLBAlgorithm() is LEAST_REQUEST; Outrigger's is PEAK_EWMA, because it won the tail-latency benchmark
 * (bench/RESULTS.md, "Load balancing": one endpoint of eleven 20x slower, PEAK_EWMA's p99 2.07x lower than
 * LEAST_REQUEST's at concurrency 4 and 1.08x at 16, the lowest p99 in 39 of 40 and 28 of 40 cycles). It is
 * written as load_balancing_policy with LEAST_REQUEST as the fallback, so an Envoy fed by this control server
 * gets istiod's default.
 */
export const DEFAULT_LB_POLICY: LbPolicy = 'PEAK_EWMA';

/**
 * Istio's mesh-wide LocalityLoadBalancerSetting default (MeshConfig.localityLbSetting = {enabled: true}): with
 * no setting in the DestinationRule, locality failover by region/zone/subzone applies whenever the cluster
 * has outlier detection. Outrigger has no MeshConfig, so this default is fixed.
 */
const MESH_LOCALITY_LB: LocalityLbSetting = Object.freeze({ distribute: [], failover: [], failoverPriority: [] });

/** The picker of one cluster with the settings it takes from the DestinationRule. */
export interface LbChoice {
  readonly policy: LbPolicy;
  /** RING_HASH: ring_hash_lb_config.minimum_ring_size, when istiod writes one. */
  readonly minimumRingSize?: number;
  /** MAGLEV: maglev_lb_config.table_size. */
  readonly maglevTableSize?: number;
}

/** One outbound cluster: which service port and subset, and the policy resolved for the caller. */
export interface ClusterPlan {
  readonly name: string;
  readonly service: Service;
  readonly port: ServicePort;
  /** DestinationRule subset name, "" for the service-wide cluster. */
  readonly subset: string;
  /** The subset's labels: its endpoints are the service's endpoints carrying all of them. */
  readonly subsetLabels?: Readonly<Record<string, string>>;
  /** ISTIO_MUTUAL: mTLS with SVIDs to the workload's sidecar; DISABLE: plaintext to the workload itself. */
  readonly mtls: boolean;
  readonly lb: LbChoice;
  /** consistentHash's hash key: becomes the hash_policy of every route to this cluster (as istiod does). */
  readonly hash?: ConsistentHashLb;
  readonly outlierDetection?: OutlierDetection;
  /** The locality setting in force (the DestinationRule's, else the mesh default); undefined = enabled: false. */
  readonly localityLb?: LocalityLbSetting;
  /** connectionPool: circuit breaker limits, connect and idle timeouts, requests per connection. */
  readonly connectionPool?: ConnectionPoolSettings;
}

type Policy = Pick<TrafficPolicy, 'tls' | 'loadBalancer' | 'outlierDetection' | 'connectionPool'>;

/**
 * Istio's MergeTrafficPolicy (networking/core/cluster_builder.go): each field set in `over` replaces the base's;
 * then, when `over` has portLevelSettings for this port, those replace all of them, unset ones included ("port
 * level policies do not inherit and instead use defaults if not provided").
 */
function merge(base: Policy, over: TrafficPolicy | undefined, port: number): Policy {
  if (!over) return base;
  const pl = over.portLevelSettings.find((p) => p.port === port);
  if (pl) return { tls: pl.tls, loadBalancer: pl.loadBalancer, outlierDetection: pl.outlierDetection, connectionPool: pl.connectionPool };
  return {
    tls: over.tls ?? base.tls,
    loadBalancer: over.loadBalancer ?? base.loadBalancer,
    outlierDetection: over.outlierDetection ?? base.outlierDetection,
    connectionPool: over.connectionPool ?? base.connectionPool,
  };
}

/**
 * DestinationRule loadBalancer -> the cluster's picker, as istiod's applyLoadBalancer: LEAST_CONN is
 * LEAST_REQUEST, UNSPECIFIED (or nothing) the default, and consistentHash wins over simple
 * (ApplyRingHashLoadBalancer runs last): maglev -> MAGLEV, ringHash -> RING_HASH (a ring size only when
 * non-zero), neither -> RING_HASH with the deprecated minimumRingSize or 1024. PASSTHROUGH is refused by
 * validation (no original destination to pass through to behind an explicit 15001 listener).
 */
export function lbChoiceOf(lb: LoadBalancerSettings | undefined): LbChoice {
  const ch = lb?.consistentHash;
  if (ch?.maglev) return { policy: 'MAGLEV', ...(ch.maglev.tableSize && { maglevTableSize: ch.maglev.tableSize }) };
  if (ch) return { policy: 'RING_HASH', ...(ch.ringHash?.minimumRingSize ? { minimumRingSize: ch.ringHash.minimumRingSize } : { minimumRingSize: 1024 }) };
  const simple = lb?.simple;
  if (simple === 'LEAST_REQUEST' || simple === 'LEAST_CONN') return { policy: 'LEAST_REQUEST' };
  if (simple === 'RANDOM' || simple === 'ROUND_ROBIN' || simple === 'PEAK_EWMA') return { policy: simple };
  return { policy: DEFAULT_LB_POLICY };
}

/** Istio's GetLocalityLbSetting: the DestinationRule's unless it says enabled: false; else the mesh default. */
function localityLbOf(lb: LoadBalancerSettings | undefined): LocalityLbSetting | undefined {
  const s = lb?.localityLbSetting;
  if (!s) return MESH_LOCALITY_LB;
  return s.enabled === false ? undefined : s;
}

/**
 * The outbound clusters of every routed service port: `outbound|<port>||<fqdn>` plus one per subset of the
 * DestinationRule the caller sees. TLS without a DestinationRule setting: sidecar callers use ISTIO_MUTUAL to
 * in-mesh services (Istio's auto mTLS) and plaintext to MESH_EXTERNAL ones; proxyless callers default to
 * plaintext, as istiod's gRPC generator does (a gRPC client may not use xDS credentials at all).
 */
export function outboundClusterPlans(ctx: Ctx): ClusterPlan[] {
  return [...planIndex(ctx).values()];
}

function buildPlans(ctx: Ctx): ClusterPlan[] {
  const plans: ClusterPlan[] = [];
  for (const svc of ctx.mesh.services) {
    const dr = ctx.mesh.destinationRule(svc.host, ctx.caller.namespace, svc.namespace);
    const defaultTls = ctx.caller.kind === 'sidecar' && svc.entry.location === 'MESH_INTERNAL' ? 'ISTIO_MUTUAL' : 'DISABLE';
    for (const port of svc.httpPorts) {
      const base = merge({}, dr?.trafficPolicy, port.number);
      const plan = (subset: Subset | undefined): ClusterPlan => {
        const p = subset ? merge(base, subset.trafficPolicy, port.number) : base;
        const name = subset?.name ?? '';
        const localityLb = localityLbOf(p.loadBalancer);
        return {
          name: outboundClusterName(port.number, name, svc.host),
          service: svc,
          port,
          subset: name,
          ...(subset && { subsetLabels: subset.labels }),
          mtls: (p.tls?.mode ?? defaultTls) === 'ISTIO_MUTUAL',
          lb: lbChoiceOf(p.loadBalancer),
          ...(p.loadBalancer?.consistentHash && { hash: p.loadBalancer.consistentHash }),
          ...(p.outlierDetection && { outlierDetection: p.outlierDetection }),
          ...(localityLb && { localityLb }),
          ...(p.connectionPool && { connectionPool: p.connectionPool }),
        };
      };
      plans.push(plan(undefined), ...(dr?.subsets ?? []).map(plan));
    }
  }
  return plans;
}

/**
 * The plans by cluster name for one (config version, caller kind, namespace), built once: CDS, EDS and the
 * routes' hash policies all read them. One cluster per name even if a DestinationRule repeats a subset
 * name: the first one wins.
 */
const planCache = new WeakMap<MeshIndex, Map<string, ReadonlyMap<string, ClusterPlan>>>();
function planIndex(ctx: Ctx): ReadonlyMap<string, ClusterPlan> {
  let perMesh = planCache.get(ctx.mesh);
  if (!perMesh) {
    perMesh = new Map();
    planCache.set(ctx.mesh, perMesh);
  }
  const key = `${ctx.caller.kind}\0${ctx.caller.namespace}`;
  let plans = perMesh.get(key);
  if (!plans) {
    const m = new Map<string, ClusterPlan>();
    for (const p of buildPlans(ctx)) if (!m.has(p.name)) m.set(p.name, p);
    plans = m;
    perMesh.set(key, plans);
  }
  return plans;
}

/** The plan of one outbound cluster name, as the caller sees it (undefined for a name no service has). */
export function clusterPlan(ctx: Ctx, name: string): ClusterPlan | undefined {
  return planIndex(ctx).get(name);
}

/**
 * Who the caller may accept at the other end: the SPIFFE IDs of the service's workloads' service accounts (Istio's
 * subjectAltNames for a service), or, when no workload names one, any workload of the trust domain.
 */
export function sanMatchers(ctx: Ctx, svc: Service): { exact: string }[] | { prefix: string }[] {
  const ids = new Set<string>();
  for (const e of svc.endpoints) if (e.spec.serviceAccount) ids.add(`spiffe://${ctx.trustDomain}/ns/${e.namespace}/sa/${e.spec.serviceAccount}`);
  return ids.size ? [...ids].sort().map((exact) => ({ exact })) : [{ prefix: trustDomainPrefix(ctx.trustDomain) }];
}

/**
 * typed_extension_protocol_options choosing the upstream HTTP version explicitly (HttpProtocolOptions), with
 * common_http_protocol_options (idle_timeout, max_requests_per_connection) when `common` has any.
 */
export function httpProtocolOptions(h2: boolean, common: Record<string, unknown> = {}): Record<string, unknown> {
  const key = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
  return {
    [key]: {
      '@type': `type.googleapis.com/${key}`,
      ...(Object.keys(common).length > 0 && { common_http_protocol_options: common }),
      explicit_http_config: h2 ? { http2_protocol_options: {} } : { http_protocol_options: {} },
    },
  };
}

/** uint32 max: istiod's "no limit" for every circuit breaker it does not set. */
const NO_LIMIT = 4294967295;

/**
 * connectionPool -> Cluster.circuit_breakers, as istiod's applyConnectionPool: one DEFAULT-priority Thresholds
 * with every limit at uint32 max (getDefaultCircuitBreakerThresholds, which also replaces Envoy's max_retries 3,
 * too low during pod churn) and track_remaining on; each of tcp.maxConnections, http.http1MaxPendingRequests,
 * http.http2MaxRequests and http.maxRetries replaces its limit when above 0 (0 reads as unset, as in istiod).
 * Every outbound cluster carries these thresholds, with or without a DestinationRule.
 */
export function circuitBreakersJson(cp: ConnectionPoolSettings | undefined): Record<string, unknown> {
  const limit = (v: number | undefined) => (v !== undefined && v > 0 ? v : NO_LIMIT);
  return {
    thresholds: [
      {
        max_connections: limit(cp?.tcp?.maxConnections),
        max_pending_requests: limit(cp?.http?.http1MaxPendingRequests),
        max_requests: limit(cp?.http?.http2MaxRequests),
        max_retries: limit(cp?.http?.maxRetries),
        track_remaining: true,
      },
    ],
  };
}

/**
 * connectionPool -> common_http_protocol_options, as istiod: idle_timeout from http.idleTimeout, else
 * tcp.idleTimeout (0s disables it); max_requests_per_connection when above 0.
 */
function commonHttpOptions(cp: ConnectionPoolSettings | undefined): Record<string, unknown> {
  const idle = cp?.http?.idleTimeoutMs ?? cp?.tcp?.idleTimeoutMs;
  const perConnection = cp?.http?.maxRequestsPerConnection ?? 0;
  return { ...(idle !== undefined && { idle_timeout: duration(idle) }), ...(perConnection > 0 && { max_requests_per_connection: perConnection }) };
}

/** An EDS cluster: endpoints by ADS, under the cluster's own name as service_name (as Istio writes it). */
function edsCluster(p: ClusterPlan, fields: Record<string, unknown>): Built {
  return { name: p.name, json: { name: p.name, type: 'EDS', eds_cluster_config: { eds_config: ADS_SOURCE, service_name: p.name }, ...fields } };
}

/** The envoy.transport_sockets.tls socket of an mTLS cluster, with Istio's SNI for it. */
function upstreamTls(p: ClusterPlan, common: Record<string, unknown>): Record<string, unknown> {
  return { name: TLS_SOCKET_NAME, typed_config: { '@type': UPSTREAM_TLS_TYPE_URL, sni: outboundSni(p.port.number, p.subset, p.service.host), common_tls_context: common } };
}

/** xds.type.v3.TypedStruct: how a policy Envoy and gRPC may not know travels in a typed_extension_config. */
const TYPED_STRUCT_TYPE_URL = 'type.googleapis.com/xds.type.v3.TypedStruct';
const LEAST_REQUEST_POLICY_TYPE_URL = 'type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest';

/**
 * The picker's Cluster fields for a sidecar. Envoy's five go in lb_policy with their config (ring_hash_lb_config,
 * maglev_lb_config, as istiod writes them). PEAK_EWMA, Outrigger's extension, goes in load_balancing_policy
 * (which takes precedence over lb_policy): first the TypedStruct naming it, then Envoy's least_request, which an
 * Envoy or a client that does not know PEAK_EWMA takes instead (a policy list is tried in order, unknown
 * entries skipped).
 */
function sidecarLbFields(lb: LbChoice): Record<string, unknown> {
  if (lb.policy === 'PEAK_EWMA') {
    return {
      load_balancing_policy: {
        policies: [
          { typed_extension_config: { name: 'outrigger.peak_ewma', typed_config: { '@type': TYPED_STRUCT_TYPE_URL, type_url: TYPE_URL_PEAK_EWMA, value: {} } } },
          { typed_extension_config: { name: 'envoy.load_balancing_policies.least_request', typed_config: { '@type': LEAST_REQUEST_POLICY_TYPE_URL } } },
        ],
      },
    };
  }
  return {
    lb_policy: lb.policy,
    ...(lb.minimumRingSize !== undefined && { ring_hash_lb_config: { minimum_ring_size: String(lb.minimumRingSize) } }),
    ...(lb.maglevTableSize !== undefined && { maglev_lb_config: { table_size: String(lb.maglevTableSize) } }),
  };
}

/**
 * DestinationRule outlierDetection -> Cluster.outlier_detection exactly as istiod's applyOutlierDetection
 * (cluster_traffic_policy.go): success-rate ejection off (enforcing_success_rate 0); consecutive_5xx and
 * consecutive_gateway_failure only when the field is written, enforced 100 % when non-zero and 0 % when 0;
 * max_ejection_percent only when > 0; local-origin failures only with splitExternalLocalOriginErrors (then
 * enforced 100 %, with local-origin success rate off). Every other field keeps Envoy's default.
 */
function outlierJson(o: OutlierDetection): Record<string, unknown> {
  const enforce = (v: number) => (v > 0 ? 100 : 0);
  return {
    enforcing_success_rate: 0,
    ...(o.consecutive5xxErrors !== undefined && { consecutive_5xx: o.consecutive5xxErrors, enforcing_consecutive_5xx: enforce(o.consecutive5xxErrors) }),
    ...(o.consecutiveGatewayErrors !== undefined && {
      consecutive_gateway_failure: o.consecutiveGatewayErrors,
      enforcing_consecutive_gateway_failure: enforce(o.consecutiveGatewayErrors),
    }),
    ...(o.intervalMs !== undefined && { interval: duration(o.intervalMs) }),
    ...(o.baseEjectionTimeMs !== undefined && { base_ejection_time: duration(o.baseEjectionTimeMs) }),
    ...(o.maxEjectionPercent !== undefined && o.maxEjectionPercent > 0 && { max_ejection_percent: o.maxEjectionPercent }),
    ...(o.splitExternalLocalOriginErrors && {
      split_external_local_origin_errors: true,
      ...(o.consecutiveLocalOriginFailures !== undefined && o.consecutiveLocalOriginFailures > 0 && { consecutive_local_origin_failure: o.consecutiveLocalOriginFailures, enforcing_consecutive_local_origin_failure: 100 }),
      enforcing_local_origin_success_rate: 0,
    }),
  };
}

/**
 * Cluster.common_lb_config, as istiod writes it. With outlier detection, healthy_panic_threshold is
 * minHealthPercent, and 0 (panic mode off) when it is not written: Istio's choice for Kubernetes services with
 * few pods. locality_weighted_lb_config when the locality weights mean something (applyLocalityLoadBalancer):
 * `distribute` rewrote them, or failover / failoverPriority applies (outlier detection present).
 */
function commonLbConfig(p: ClusterPlan): Record<string, unknown> | undefined {
  const l = p.localityLb;
  const weighted = !!l && (l.distribute.length > 0 || (!!p.outlierDetection && (l.failover.length > 0 || l.failoverPriority.length > 0)));
  if (!p.outlierDetection && !weighted) return undefined;
  return {
    ...(p.outlierDetection && { healthy_panic_threshold: { value: p.outlierDetection.minHealthPercent ?? 0 } }),
    ...(weighted && { locality_weighted_lb_config: {} }),
  };
}

/**
 * A sidecar's outbound cluster. Sidecar to sidecar is always HTTP/2 over mTLS (ALPN h2), whatever the app
 * speaks; plaintext to a workload without a sidecar is HTTP/2 only on GRPC/HTTP2 ports.
 */
export function sidecarCluster(ctx: Ctx, p: ClusterPlan): Built {
  const h2 = p.mtls || isH2Protocol(p.port.protocol);
  const common = commonLbConfig(p);
  const http = commonHttpOptions(p.connectionPool);
  return edsCluster(p, {
    // tcp.connectTimeout replaces the mesh default (istiod's applyDefaultConnectionPool, then the setting).
    connect_timeout: duration(p.connectionPool?.tcp?.connectTimeoutMs ?? CONNECT_TIMEOUT_MS),
    circuit_breakers: circuitBreakersJson(p.connectionPool),
    ...sidecarLbFields(p.lb),
    ...(p.outlierDetection && { outlier_detection: outlierJson(p.outlierDetection) }),
    ...(common && { common_lb_config: common }),
    ...((h2 || Object.keys(http).length > 0) && { typed_extension_protocol_options: httpProtocolOptions(h2, http) }),
    ...(p.mtls && { transport_socket: upstreamTls(p, sdsCommonTls(sanMatchers(ctx, p.service), ['h2'])) }),
  });
}

/** CertificateProviderPluginInstance from the gRPC bootstrap's certificate_providers (Istio's instance "default"). */
const certProvider = (certificateName: string) => ({ instance_name: 'default', certificate_name: certificateName });

/**
 * The picker for a proxyless client: what grpc-js-xds 1.14 accepts in lb_policy, ROUND_ROBIN and RING_HASH
 * (gRFC A42, XX_HASH only, ring sizes up to 8M); it has no least_request (A48) and NACKs any other value. As
 * istiod's gRPC generator (grpcgen/cds.go applyLoadBalancing): simple policies other than ROUND_ROBIN are not
 * applied, and consistentHash gives RING_HASH; Maglev, which gRPC lacks, stays ROUND_ROBIN.
 */
function proxylessLbFields(lb: LbChoice): Record<string, unknown> {
  if (lb.policy !== 'RING_HASH') return { lb_policy: 'ROUND_ROBIN' };
  return { lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: String(lb.minimumRingSize ?? 1024) } };
}

/**
 * A proxyless gRPC client's cluster (gRFC A27: EDS over ADS). No outlier_detection, as istiod's gRPC generator
 * writes none; a gRPC client still fails over between EDS priorities by connectivity (gRFC A27 priority
 * policy). With ISTIO_MUTUAL the TLS context uses certificate providers, the only source gRPC's xDS
 * credentials understand (gRFC A29): the identity from tls_certificate_provider_instance and the roots from
 * validation_context's ca_certificate_provider_instance, certificate names "default" and "ROOTCA" as istiod
 * writes them; the SANs go in match_subject_alt_names, the field grpc-js-xds reads.
 */
export function proxylessCluster(ctx: Ctx, p: ClusterPlan): Built {
  return edsCluster(p, {
    ...proxylessLbFields(p.lb),
    ...(p.mtls && {
      transport_socket: upstreamTls(p, {
        tls_certificate_provider_instance: certProvider('default'),
        validation_context: { ca_certificate_provider_instance: certProvider('ROOTCA'), match_subject_alt_names: sanMatchers(ctx, p.service) },
      }),
    }),
  });
}

/**
 * `inbound|<port>||`: the sidecar's own app on INSTANCE_IPS[0]:<port>, HTTP/2 for GRPC/HTTP2 ports. istiod gives
 * inbound clusters its no-limit default thresholds too: without them Envoy's 1024 would cap the app's concurrency.
 */
export function inboundCluster(ctx: NodeCtx, port: number, h2: boolean): Built {
  const name = inboundClusterName(port);
  return {
    name,
    json: {
      name,
      type: 'STATIC',
      connect_timeout: duration(CONNECT_TIMEOUT_MS),
      load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(ctx.node.ips[0]!, port) } }] }] },
      circuit_breakers: circuitBreakersJson(undefined),
      typed_extension_protocol_options: httpProtocolOptions(h2),
    },
  };
}
