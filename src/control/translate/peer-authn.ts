// PeerAuthentication -> the sidecar's virtualInbound filter chains (mTLS, plaintext or both) and the plaintext route table.
import { composePeerAuthentication, type EffectiveMtls } from '../mesh/peer-authentication.js';
import { DEFAULT_ROOT_NAMESPACE, type Built, type NodeCtx } from './common.js';

/** The inbound route table (routes.ts inboundRoutes), which mTLS requests always read. */
export const INBOUND_ROUTE_NAME = 'inbound';
/** The route table of the plaintext chain when some port must refuse plaintext (see plaintextInboundRoutes). */
export const PLAINTEXT_INBOUND_ROUTE_NAME = 'inbound-plaintext';
/** Istio's tls_inspector listener filter, as istiod adds it to virtualInbound. */
export const TLS_INSPECTOR = {
  name: 'envoy.filters.listener.tls_inspector',
  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' },
};

/** The mTLS mode this sidecar's inbound side enforces: istiod's composition of the PeerAuthentications that apply. */
export function inboundMtls(ctx: NodeCtx): EffectiveMtls {
  return composePeerAuthentication(ctx.mesh.peerAuthentications, ctx.node, ctx.rootNamespace ?? DEFAULT_ROOT_NAMESPACE);
}

const modes = (m: EffectiveMtls) => [m.mode, ...m.perPort.values()];
/** Some port takes mTLS: the listener has the mTLS chain. */
export const acceptsMtls = (m: EffectiveMtls) => modes(m).some((x) => x !== 'DISABLE');
/** Some port takes plaintext: the listener has the plaintext chain. */
export const acceptsPlaintext = (m: EffectiveMtls) => modes(m).some((x) => x !== 'STRICT');
/** Whether some port is STRICT while the listener takes plaintext: then the plaintext chain needs its own route table. */
const plaintextNeedsOwnRoutes = (m: EffectiveMtls) => acceptsPlaintext(m) && modes(m).includes('STRICT');

/** The route table the plaintext chain reads: `inbound` itself, unless some port refuses plaintext. */
export const plaintextRouteName = (m: EffectiveMtls) => (plaintextNeedsOwnRoutes(m) ? PLAINTEXT_INBOUND_ROUTE_NAME : INBOUND_ROUTE_NAME);

/** `inbound|<port>||` -> port. */
const INBOUND_CLUSTER = /^inbound\|(\d+)\|\|$/;

interface VirtualHostJson {
  readonly name: string;
  readonly routes: readonly { readonly route?: { readonly cluster?: string } }[];
  readonly [k: string]: unknown;
}

/**
 * portLevelMtls, exact and visible in Envoy terms. Every mesh connection arrives on 15006 and names the service
 * port in its authority, so the mode cannot be chosen per TCP port as istiod does (a filter chain per
 * destination_port). Instead, when some workload port is STRICT and another takes plaintext, the plaintext chain
 * reads `inbound-plaintext`: the `inbound` table in which each virtual host whose workload port is STRICT
 * answers a direct_response 403 naming the port and the policy, and forwards nothing. mTLS requests read
 * `inbound` unchanged.
 */
export function plaintextInboundRoutes(inbound: Built, m: EffectiveMtls): Built[] {
  if (!plaintextNeedsOwnRoutes(m)) return [];
  const json = inbound.json as { readonly virtual_hosts: readonly VirtualHostJson[] };
  const virtualHosts = json.virtual_hosts.map((vh) => {
    const port = Number(INBOUND_CLUSTER.exec(vh.routes[0]?.route?.cluster ?? '')?.[1] ?? NaN);
    const portMode = m.perPort.get(port);
    if ((portMode ?? m.mode) !== 'STRICT') return vh;
    // STRICT is never the default, so a policy set it: the workload's for a listed port, else the one that set the mode.
    const by = portMode ? m.portSource : m.source;
    const message = `mTLS required for port ${port} by PeerAuthentication ${by!}: plaintext is refused`;
    const body = JSON.stringify({ code: 'mtls_required', message });
    return {
      ...vh,
      routes: [
        {
          name: 'mtls-required',
          match: { prefix: '/' },
          direct_response: { status: 403, body: { inline_string: body } },
          response_headers_to_add: [{ header: { key: 'content-type', value: 'application/json' } }],
        },
      ],
    };
  });
  return [{ name: PLAINTEXT_INBOUND_ROUTE_NAME, json: { ...json, name: PLAINTEXT_INBOUND_ROUTE_NAME, virtual_hosts: virtualHosts } }];
}
