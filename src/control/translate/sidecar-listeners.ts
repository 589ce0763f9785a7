// LDS for sidecars: Istio's virtualOutbound (15001, plaintext from the app) and virtualInbound (15006, mTLS only).
import { inboundRateLimitFilters } from './rate-limit.js';
import { inboundRbacFilters } from './rbac.js';
import { DOWNSTREAM_TLS_TYPE_URL, HCM_FILTER_NAME, INBOUND_PORT, OUTBOUND_PORT, TLS_SOCKET_NAME, rdsHcm, sdsCommonTls, socketAddress, trustDomainPrefix, type Built, type NodeCtx } from './common.js';
import { FAULT_FILTER } from './fault.js';

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
 * `virtualInbound` on INSTANCE_IPS[0]:15006: mesh traffic only, over mTLS. The client must present an SVID of
 * our trust domain (DownstreamTlsContext.require_client_certificate, URI SAN prefix spiffe://<td>/); our own
 * certificate and the roots come from the SDS secrets `default` and `ROOTCA`. The caller's identity reaches the
 * app in x-forwarded-client-cert (forward_client_cert_details SANITIZE_SET with the URI), as in Istio. The
 * RateLimitPolicies selecting the workload add their local_ratelimit filters before the router, after the
 * AuthorizationPolicies' rbac filters (a refused request spends no token).
 */
function virtualInbound(ctx: NodeCtx, ip: string, trustDomain: string): Built {
  return {
    name: 'virtualInbound',
    json: {
      name: 'virtualInbound',
      address: socketAddress(ip, INBOUND_PORT),
      traffic_direction: 'INBOUND',
      filter_chains: [
        {
          transport_socket: {
            name: TLS_SOCKET_NAME,
            typed_config: {
              '@type': DOWNSTREAM_TLS_TYPE_URL,
              require_client_certificate: true,
              common_tls_context: sdsCommonTls([{ prefix: trustDomainPrefix(trustDomain) }], ['h2', 'http/1.1']),
            },
          },
          filters: [
            {
              name: HCM_FILTER_NAME,
              typed_config: rdsHcm('inbound', {
                stat_prefix: `inbound_${ip}_${INBOUND_PORT}`,
                forward_client_cert_details: 'SANITIZE_SET',
                set_current_client_cert_details: { uri: true },
                upgrade_configs: UPGRADES,
              }, [...inboundRbacFilters(ctx), ...inboundRateLimitFilters(ctx)]),
            },
          ],
        },
      ],
    },
  };
}

export function sidecarListeners(ctx: NodeCtx): Built[] {
  const ip = ctx.node.ips[0]!;
  return [virtualOutbound(ip), virtualInbound(ctx, ip, ctx.trustDomain)];
}
