// LDS for sidecars: Istio's virtualOutbound (15001, plaintext from the app) and virtualInbound (15006, mTLS and/or plaintext by PeerAuthentication).
import { inboundJwtAuthnFilters } from './jwt-authn.js';
import { inboundRateLimitFilters } from './rate-limit.js';
import { inboundRbacFilters } from './rbac.js';
import { DOWNSTREAM_TLS_TYPE_URL, HCM_FILTER_NAME, INBOUND_PORT, OUTBOUND_PORT, TLS_SOCKET_NAME, rdsHcm, sdsCommonTls, socketAddress, trustDomainPrefix, type Built, type NodeCtx } from './common.js';
import { FAULT_FILTER } from './fault.js';
import type { EffectiveMtls } from '../mesh/peer-authentication.js';
import { INBOUND_ROUTE_NAME, TLS_INSPECTOR, acceptsMtls, acceptsPlaintext, inboundMtls, plaintextRouteName } from './peer-authn.js';

/** istiod's VirtualInboundCatchAllHTTPFilterChainName. */
const CATCHALL_HTTP = 'virtualInbound-catchall-http';

/** WebSocket upgrades pass through (HttpConnectionManager.upgrade_configs), as Istio enables them. */
const UPGRADES = [{ upgrade_type: 'websocket' }];

/**
 * `virtualOutbound` on INSTANCE_IPS[0]:15001: the app talks to it locally in plaintext (HTTP/1.1 or h2c); routes
 * come from RDS `outbound`.
 */
function virtualOutbound(ip: string): Built {
  return {
    name: 'virtualOutbound',
    json: {
      name: 'virtualOutbound',
      address: socketAddress(ip, OUTBOUND_PORT),
      traffic_direction: 'OUTBOUND',
      filter_chains: [{ filters: [{ name: HCM_FILTER_NAME, typed_config: rdsHcm('outbound', { stat_prefix: `outbound_${ip}_${OUTBOUND_PORT}`, upgrade_configs: UPGRADES }, [FAULT_FILTER]) }] }],
    },
  };
}

/**
 * `virtualInbound` on INSTANCE_IPS[0]:15006, shaped by the workload's PeerAuthentication mode (peer-authn.ts):
 * - mTLS chain (STRICT, PERMISSIVE): the client must present an SVID of our trust domain
 *   (DownstreamTlsContext.require_client_certificate, URI SAN prefix spiffe://<td>/); our own certificate and the
 *   roots come from the SDS secrets `default` and `ROOTCA`. The caller's identity reaches the app in
 *   x-forwarded-client-cert (forward_client_cert_details SANITIZE_SET with the URI), as in Istio.
 * - plaintext chain (PERMISSIVE, DISABLE): the same routes (or `inbound-plaintext` when some port is STRICT);
 *   SANITIZE strips any x-forwarded-client-cert a client sends, so plaintext never claims an identity.
 * With both, tls_inspector tells them apart by the first bytes (filter_chain_match.transport_protocol tls /
 * raw_buffer), as istiod builds it; STRICT keeps tls_inspector and the `tls` match, so a plaintext client is
 * refused with a clear error rather than a failed handshake. The HTTP filters are the same on both chains: a
 * plaintext request has no peer identity, so an AuthorizationPolicy naming principals or namespaces never
 * matches it, as in Istio.
 */
function virtualInbound(ctx: NodeCtx, ip: string, trustDomain: string, mtls: EffectiveMtls): Built {
  const filters = inboundHttpFilters(ctx);
  const hcm = (routeName: string, extra: Record<string, unknown>) => ({
    name: HCM_FILTER_NAME,
    typed_config: rdsHcm(routeName, { stat_prefix: `inbound_${ip}_${INBOUND_PORT}`, ...extra, upgrade_configs: UPGRADES }, filters),
  });
  // istiod names both catch-all HTTP chains (mTLS and plaintext) virtualInbound-catchall-http; the match tells them apart.
  const mtlsChain = {
    name: CATCHALL_HTTP,
    filter_chain_match: { transport_protocol: 'tls' },
    transport_socket: {
      name: TLS_SOCKET_NAME,
      typed_config: {
        '@type': DOWNSTREAM_TLS_TYPE_URL,
        require_client_certificate: true,
        common_tls_context: sdsCommonTls([{ prefix: trustDomainPrefix(trustDomain) }], ['h2', 'http/1.1']),
      },
    },
    filters: [hcm(INBOUND_ROUTE_NAME, { forward_client_cert_details: 'SANITIZE_SET', set_current_client_cert_details: { uri: true } })],
  };
  const plainFilters = [hcm(plaintextRouteName(mtls), { forward_client_cert_details: 'SANITIZE' })];
  const tls = acceptsMtls(mtls);
  const plain = acceptsPlaintext(mtls);
  const chains = tls
    ? [mtlsChain, ...(plain ? [{ name: CATCHALL_HTTP, filter_chain_match: { transport_protocol: 'raw_buffer' }, filters: plainFilters }] : [])]
    : [{ name: CATCHALL_HTTP, filters: plainFilters }];
  return {
    name: 'virtualInbound',
    json: {
      name: 'virtualInbound',
      address: socketAddress(ip, INBOUND_PORT),
      traffic_direction: 'INBOUND',
      ...(tls && { listener_filters: [TLS_INSPECTOR] }),
      filter_chains: chains,
    },
  };
}

/**
 * The inbound HTTP filters before the router, on every inbound chain, in the decoder's order: RequestAuthentications'
 * jwt_authn, AuthorizationPolicies' rbac filters (they read jwt_authn's principal), RateLimitPolicies'
 * local_ratelimit (a refused request spends no token).
 */
function inboundHttpFilters(ctx: NodeCtx): object[] {
  return [...inboundJwtAuthnFilters(ctx), ...inboundRbacFilters(ctx), ...inboundRateLimitFilters(ctx)];
}

export function sidecarListeners(ctx: NodeCtx, mtls: EffectiveMtls = inboundMtls(ctx)): Built[] {
  const ip = ctx.node.ips[0]!;
  return [virtualOutbound(ip), virtualInbound(ctx, ip, ctx.trustDomain, mtls)];
}
