// Shared pieces of the translators: Istio's resource names and host forms, proto3 JSON snippets, and encoding.
import { formatIssue } from '../../core/errors.js';
import { encodeResourceJson, type ResourceTypeUrl } from '../../xds/resources/index.js';
import type { JwksLookup } from '../jwks.js';
import type { ProxyNode, ServedType } from '../snapshot.js';
import { TranslateError } from './errors.js';
import type { Meta } from '../mesh/types.js';
import { labelsMatch } from '../mesh/selector.js';
import type { MeshIndex } from './mesh-index.js';

export { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL } from '../../xds/protos.js';

/** Istio's sidecar ports (ARCHITECTURE "Contracts"): outbound capture and the mTLS inbound listener. */
export const OUTBOUND_PORT = 15001;
export const INBOUND_PORT = 15006;

export const HCM_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const HCM_FILTER_NAME = 'envoy.filters.network.http_connection_manager';
export const ROUTER_FILTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
export const TLS_SOCKET_NAME = 'envoy.transport_sockets.tls';
export const UPSTREAM_TLS_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
export const DOWNSTREAM_TLS_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';

/** ConfigSource `ads: {}` (V3): the resource comes on the same ADS stream, as Istio's sidecars and gRPC use it. */
export const ADS_SOURCE = { ads: {}, resource_api_version: 'V3' };

/**
 * What the outbound side of a translation reads: the indexed mesh, the caller's kind and namespace (nothing
 * else of the node, so that every proxy of one kind in one namespace shares these resources), and the server's
 * identity settings.
 */
export interface Ctx {
  readonly mesh: MeshIndex;
  readonly caller: Pick<ProxyNode, 'kind' | 'namespace'>;
  readonly trustDomain: string;
  readonly domainSuffix: string;
  /**
   * Istio's root namespace (meshConfig.rootNamespace, `istio-system` by default): security policies written there
   * (PeerAuthentication, AuthorizationPolicy) apply mesh-wide.
   */
  readonly rootNamespace?: string;
  /** The control server's fetched keys by jwksUri (JwksResolver.lookup); absent or unknown = the fail-closed FAKE_JWKS. */
  readonly jwks?: JwksLookup;
}

/** meshConfig.rootNamespace's default in Istio. */
export const DEFAULT_ROOT_NAMESPACE = 'istio-system';

/**
 * The security policies (AuthorizationPolicy, RequestAuthentication) that apply to this workload, as istiod's
 * getConfigsForWorkload selects them: those of its own namespace and of the root namespace (mesh-wide), each only
 * if its selector's labels are all on the workload (no selector = every workload there). A root-namespace policy
 * with a selector thus picks workloads in every namespace.
 */
export function policiesSelecting<P extends { readonly meta: Meta; readonly selector?: { readonly matchLabels: Readonly<Record<string, string>> } }>(ctx: NodeCtx, policies: readonly P[]): P[] {
  const root = ctx.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  const { namespace, labels } = ctx.node;
  return policies.filter((p) => (p.meta.namespace === namespace || p.meta.namespace === root) && (!p.selector || labelsMatch(p.selector.matchLabels, labels)));
}

/** A literal for a RE2 pattern: every metacharacter escaped. */
export const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The sidecar's own side (listeners, inbound routes and clusters), which names its addresses, labels and ports. */
export interface NodeCtx extends Ctx {
  readonly node: ProxyNode;
}

/** Istio's cluster names: `outbound|<port>|<subset>|<fqdn>` and `inbound|<port>||`. */
export const outboundClusterName = (port: number, subset: string, host: string) => `outbound|${port}|${subset}|${host}`;
export const inboundClusterName = (port: number) => `inbound|${port}||`;
/** Istio's SNI for mTLS to a cluster: `outbound_.<port>_.<subset>_.<fqdn>`. */
export const outboundSni = (port: number, subset: string, host: string) => `outbound_.${port}_.${subset}_.${host}`;

export const socketAddress = (address: string, port: number) => ({ socket_address: { address, port_value: port } });

/** google.protobuf.Duration in proto3 JSON ("1.5s"). */
export const duration = (ms: number) => `${ms / 1000}s`;

/** The SPIFFE ID prefix of every workload of the trust domain: the SAN check when no service account is known. */
export const trustDomainPrefix = (td: string) => `spiffe://${td}/`;

/**
 * The names one service host answers to, as Istio generates virtual host domains: the FQDN, and for a
 * Kubernetes-style `<name>.<ns>.svc.<suffix>` host also `<name>.<ns>`, plus the bare `<name>` only for a caller
 * in the same namespace (elsewhere that short name means another namespace's service). `callerNs` undefined =
 * the workload's own inbound side, where a short name can only have come from its own namespace.
 */
export function hostForms(host: string, domainSuffix: string, callerNs: string | undefined): string[] {
  const tail = `.svc.${domainSuffix}`;
  if (!host.endsWith(tail)) return [host];
  const parts = host.slice(0, -tail.length).split('.');
  if (parts.length !== 2) return [host];
  const [name, ns] = parts as [string, string];
  return callerNs === undefined || callerNs === ns ? [host, `${name}.${ns}`, name] : [host, `${name}.${ns}`];
}

/** Domains of one (host, port) virtual host: every form with `:<port>`, and without a port on the default port. */
export function domainsFor(forms: readonly string[], port: number, isDefaultPort: boolean): string[] {
  return forms.flatMap((f) => (isDefaultPort ? [f, `${f}:${port}`] : [`${f}:${port}`]));
}

/** An HttpConnectionManager typed_config that takes its routes from RDS `routeConfigName` over ADS; `filters` run before the router. */
export function rdsHcm(routeConfigName: string, extra: Record<string, unknown> = {}, filters: readonly object[] = []): Record<string, unknown> {
  return {
    '@type': HCM_TYPE_URL,
    ...extra,
    rds: { config_source: ADS_SOURCE, route_config_name: routeConfigName },
    http_filters: [...filters, ROUTER_FILTER],
  };
}

/** One resource of a snapshot being built, as proto3 JSON. */
export interface Built {
  readonly name: string;
  readonly json: unknown;
}

/** Encodes a resource we built; a refusal means the translator produced an invalid message, which is our bug. */
export function encode(typeUrl: ServedType & ResourceTypeUrl, r: Built): Uint8Array {
  const res = encodeResourceJson(typeUrl, r.json, r.name);
  if (res.ok) return res.value;
  throw new TranslateError('TRANSLATE_ENCODE_FAILED', `resource ${JSON.stringify(r.name)} of ${typeUrl} is not a valid message:\n${res.errors.map(formatIssue).join('\n')}`, {
    details: { typeUrl, name: r.name },
  });
}

/**
 * A CommonTlsContext whose certificate and trust bundle come from the sidecar's SDS secrets `default` and
 * `ROOTCA` (Istio's names), with the peer's URI SAN checked by `sanMatchers` (StringMatcher JSON), exactly as
 * Istio writes it for sidecars (combined_validation_context = static SAN matchers + the SDS bundle).
 */
export function sdsCommonTls(sanMatchers: readonly object[], alpn: readonly string[]): Record<string, unknown> {
  return {
    alpn_protocols: alpn,
    tls_certificate_sds_secret_configs: [{ name: 'default' }],
    combined_validation_context: {
      default_validation_context: { match_typed_subject_alt_names: sanMatchers.map((matcher) => ({ san_type: 'URI', matcher })) },
      validation_context_sds_secret_config: { name: 'ROOTCA' },
    },
  };
}
