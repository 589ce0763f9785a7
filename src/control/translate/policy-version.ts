// A sidecar's security-policy version: a short content hash of what in its inbound listeners enforces security policy.
import { createHash } from 'node:crypto';
import { JWT_AUTHN_TYPE_URL } from '../../model/jwt.js';
import { RBAC_TYPE_URL } from '../../model/rbac.js';
import type { Built } from './common.js';
import { JWT_AUTHN_FILTER_NAME } from './jwt-authn.js';
import { RBAC_FILTER_NAME } from './rbac.js';

/**
 * The filters that carry security policy, by name or by typed_config type (Envoy picks the implementation by
 * the type; the name is free-form, so either one marks a filter): RBAC (AuthorizationPolicy) and jwt_authn
 * (RequestAuthentication) in the HCM, network RBAC (TCP AuthorizationPolicy) beside it.
 */
const SECURITY_FILTERS: ReadonlySet<string> = new Set([
  RBAC_FILTER_NAME,
  JWT_AUTHN_FILTER_NAME,
  'envoy.filters.network.rbac',
  RBAC_TYPE_URL,
  JWT_AUTHN_TYPE_URL,
  'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC',
]);

interface FilterJson {
  readonly name?: string;
  readonly typed_config?: { readonly '@type'?: string; readonly http_filters?: readonly FilterJson[] };
}
interface ChainJson {
  readonly filter_chain_match?: unknown;
  readonly transport_socket?: unknown;
  readonly filters?: readonly FilterJson[];
}
interface ListenerJson {
  readonly name?: string;
  readonly traffic_direction?: string;
  readonly listener_filters?: readonly FilterJson[];
  readonly filter_chains?: readonly ChainJson[];
  readonly default_filter_chain?: ChainJson;
}

const isSecurity = (f: FilterJson): boolean => SECURITY_FILTERS.has(f.name ?? '') || SECURITY_FILTERS.has(f.typed_config?.['@type'] ?? '');

/** Per chain: which connections it takes, its TLS (PeerAuthentication's mTLS mode) and its security filters in order. */
function chainPolicy(c: ChainJson): unknown {
  const filters = (c.filters ?? []).flatMap((f) => [...(isSecurity(f) ? [f] : []), ...(f.typed_config?.http_filters ?? []).filter(isSecurity)]);
  return [c.filter_chain_match ?? null, c.transport_socket ?? null, filters];
}

/**
 * The security-policy version of a sidecar: sha256 over its INBOUND listeners' listener filters (PERMISSIVE's
 * TLS sniffing), filter chain matches, transport sockets and security filters, first 12 hex digits. It
 * changes exactly when the security policy the sidecar enforces does (AuthorizationPolicy, RequestAuthentication,
 * PeerAuthentication), not with routes, rate limits or endpoints; the same policy gives the same version
 * across reconnects and control-server restarts. The translator builds JSON in a fixed key order, so
 * JSON.stringify is a canonical form here.
 */
export function policyVersionOf(listeners: readonly Built[]): string {
  const inbound = listeners
    .map((b) => b.json as ListenerJson)
    .filter((l) => l.traffic_direction === 'INBOUND')
    .map((l) => [l.name ?? '', (l.listener_filters ?? []).map((f) => f.name ?? ''), (l.filter_chains ?? []).map(chainPolicy), l.default_filter_chain ? chainPolicy(l.default_filter_chain) : null])
    .sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
  return createHash('sha256').update(JSON.stringify(inbound)).digest('hex').slice(0, 12);
}
