// CDS: the outbound EDS clusters a proxy's routes reference (one per service port and DestinationRule subset),
// with Istio's names, TLS and protocol choices, and a sidecar's STATIC inbound clusters to its own app.
import type { ServicePort, SimpleLb, Subset, TrafficPolicy } from '../mesh/types.js';
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
} from './common.js';
import { isH2Protocol, type Service } from './mesh-index.js';

/** Istio's default Cluster.connect_timeout (MeshConfig.connectTimeout, 10 s); Envoy's own default is 5 s. */
const CONNECT_TIMEOUT_MS = 10_000;

export type EnvoyLbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM';

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
  readonly lbPolicy: EnvoyLbPolicy;
}

type Policy = Pick<TrafficPolicy, 'tls' | 'loadBalancer'>;

/** Istio's MergeTrafficPolicy: fields set in `over` replace the base; then `over`'s portLevelSettings for this port. */
function merge(base: Policy, over: TrafficPolicy | undefined, port: number): Policy {
  if (!over) return base;
  const apply = (a: Policy, b: Policy): Policy => ({ tls: b.tls ?? a.tls, loadBalancer: b.loadBalancer ?? a.loadBalancer });
  const merged = apply(base, over);
  const pl = over.portLevelSettings.find((p) => p.port === port);
  return pl ? apply(merged, pl) : merged;
}

/**
 * DestinationRule loadBalancer.simple -> Cluster.lb_policy where Envoy has the policy (Istio maps LEAST_CONN to
 * LEAST_REQUEST). PASSTHROUGH (ORIGINAL_DST) means nothing for STATIC endpoints, and PEAK_EWMA comes with the
 * balancer work (issue 5): both are ROUND_ROBIN for now.
 */
function lbPolicyOf(simple: SimpleLb | undefined): EnvoyLbPolicy {
  if (simple === 'LEAST_REQUEST' || simple === 'LEAST_CONN') return 'LEAST_REQUEST';
  if (simple === 'RANDOM') return 'RANDOM';
  return 'ROUND_ROBIN';
}

/**
 * The outbound clusters of every routed service port: `outbound|<port>||<fqdn>` plus one per subset of the
 * DestinationRule the caller sees. TLS without a DestinationRule setting: sidecar callers use ISTIO_MUTUAL to
 * in-mesh services (Istio's auto mTLS) and plaintext to MESH_EXTERNAL ones; proxyless callers default to
 * plaintext, as istiod's gRPC generator does (a gRPC client may not use xDS credentials at all).
 */
export function outboundClusterPlans(ctx: Ctx): ClusterPlan[] {
  const plans: ClusterPlan[] = [];
  for (const svc of ctx.mesh.services) {
    const dr = ctx.mesh.destinationRule(svc.host, ctx.node.namespace, svc.namespace);
    const defaultTls = ctx.node.kind === 'sidecar' && svc.entry.location === 'MESH_INTERNAL' ? 'ISTIO_MUTUAL' : 'DISABLE';
    for (const port of svc.httpPorts) {
      const base = merge({}, dr?.trafficPolicy, port.number);
      const plan = (subset: Subset | undefined): ClusterPlan => {
        const p = subset ? merge(base, subset.trafficPolicy, port.number) : base;
        const name = subset?.name ?? '';
        return {
          name: outboundClusterName(port.number, name, svc.host),
          service: svc,
          port,
          subset: name,
          ...(subset && { subsetLabels: subset.labels }),
          mtls: (p.tls?.mode ?? defaultTls) === 'ISTIO_MUTUAL',
          lbPolicy: lbPolicyOf(p.loadBalancer?.simple),
        };
      };
      plans.push(plan(undefined), ...(dr?.subsets ?? []).map(plan));
    }
  }
  // One cluster per name even if a DestinationRule repeats a subset name: the first one wins.
  const seen = new Set<string>();
  return plans.filter((p) => !seen.has(p.name) && !!seen.add(p.name));
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

/** typed_extension_protocol_options choosing the upstream HTTP version explicitly (HttpProtocolOptions). */
export function httpProtocolOptions(h2: boolean): Record<string, unknown> {
  const key = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
  return { [key]: { '@type': `type.googleapis.com/${key}`, explicit_http_config: h2 ? { http2_protocol_options: {} } : { http_protocol_options: {} } } };
}

/** An EDS cluster: endpoints by ADS, under the cluster's own name as service_name (as Istio writes it). */
function edsCluster(p: ClusterPlan, fields: Record<string, unknown>): Built {
  return { name: p.name, json: { name: p.name, type: 'EDS', eds_cluster_config: { eds_config: ADS_SOURCE, service_name: p.name }, ...fields } };
}

/** The envoy.transport_sockets.tls socket of an mTLS cluster, with Istio's SNI for it. */
function upstreamTls(p: ClusterPlan, common: Record<string, unknown>): Record<string, unknown> {
  return { name: TLS_SOCKET_NAME, typed_config: { '@type': UPSTREAM_TLS_TYPE_URL, sni: outboundSni(p.port.number, p.subset, p.service.host), common_tls_context: common } };
}

/**
 * A sidecar's outbound cluster. Sidecar to sidecar is always HTTP/2 over mTLS (ALPN h2), whatever the app
 * speaks; plaintext to a workload without a sidecar is HTTP/2 only on GRPC/HTTP2 ports.
 */
export function sidecarCluster(ctx: Ctx, p: ClusterPlan): Built {
  const h2 = p.mtls || isH2Protocol(p.port.protocol);
  return edsCluster(p, {
    connect_timeout: duration(CONNECT_TIMEOUT_MS),
    lb_policy: p.lbPolicy,
    ...(h2 && { typed_extension_protocol_options: httpProtocolOptions(true) }),
    ...(p.mtls && { transport_socket: upstreamTls(p, sdsCommonTls(sanMatchers(ctx, p.service), ['h2'])) }),
  });
}

/** CertificateProviderPluginInstance from the gRPC bootstrap's certificate_providers (Istio's instance "default"). */
const certProvider = (certificateName: string) => ({ instance_name: 'default', certificate_name: certificateName });

/**
 * A proxyless gRPC client's cluster (gRFC A27: EDS over ADS, ROUND_ROBIN; grpc-js-xds refuses other lb_policy
 * values, so DestinationRule choices are not applied, as in istiod's gRPC generator). With ISTIO_MUTUAL the
 * TLS context uses certificate providers, the only source gRPC's xDS credentials understand (gRFC A29): the
 * identity from tls_certificate_provider_instance and the roots from validation_context's
 * ca_certificate_provider_instance, certificate names "default" and "ROOTCA" as istiod writes them; the SANs
 * go in match_subject_alt_names, the field grpc-js-xds reads.
 */
export function proxylessCluster(ctx: Ctx, p: ClusterPlan): Built {
  return edsCluster(p, {
    lb_policy: 'ROUND_ROBIN',
    ...(p.mtls && {
      transport_socket: upstreamTls(p, {
        tls_certificate_provider_instance: certProvider('default'),
        validation_context: { ca_certificate_provider_instance: certProvider('ROOTCA'), match_subject_alt_names: sanMatchers(ctx, p.service) },
      }),
    }),
  });
}

/** `inbound|<port>||`: the sidecar's own app on INSTANCE_IPS[0]:<port>, HTTP/2 for GRPC/HTTP2 ports. */
export function inboundCluster(ctx: Ctx, port: number, h2: boolean): Built {
  const name = inboundClusterName(port);
  return {
    name,
    json: {
      name,
      type: 'STATIC',
      connect_timeout: duration(CONNECT_TIMEOUT_MS),
      load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(ctx.node.ips[0]!, port) } }] }] },
      typed_extension_protocol_options: httpProtocolOptions(h2),
    },
  };
}
