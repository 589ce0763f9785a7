// The security-policy version: it follows the inbound listeners' security filters, TLS and chain matches, nothing else.
import t from 'tap';
import { translate } from '../../../src/control/translate/index.js';
import { policyVersionOf } from '../../../src/control/translate/policy-version.js';
import { OPTS, bookinfo, node } from './helpers.js';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
const RBAC = (action: string) => ({ name: 'envoy.filters.http.rbac', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC', rules: { action } } });
const LIMIT = (n: number) => ({ name: 'envoy.filters.http.local_ratelimit', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit', token_bucket: { max_tokens: n } } });
const TLS = { name: 'envoy.transport_sockets.tls', typed_config: { require_client_certificate: true } };

function inbound(httpFilters: object[], o: { tls?: object; extraChains?: object[]; listenerFilters?: object[]; statPrefix?: string; name?: string } = {}) {
  return {
    name: o.name ?? 'virtualInbound',
    json: {
      name: o.name ?? 'virtualInbound',
      traffic_direction: 'INBOUND',
      ...(o.listenerFilters && { listener_filters: o.listenerFilters }),
      filter_chains: [
        { transport_socket: o.tls ?? TLS, filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: { '@type': HCM, stat_prefix: o.statPrefix ?? 'in', http_filters: [...httpFilters, ROUTER] } }] },
        ...(o.extraChains ?? []),
      ],
    },
  };
}
const outbound = (filters: object[]) => ({ name: 'virtualOutbound', json: { name: 'virtualOutbound', traffic_direction: 'OUTBOUND', filter_chains: [{ filters: [{ name: 'hcm', typed_config: { '@type': HCM, http_filters: [...filters, ROUTER] } }] }] } });

t.test('changes with the security filters, TLS, chains and listener filters of inbound listeners', async (t) => {
  const base = policyVersionOf([outbound([]), inbound([RBAC('ALLOW')])]);
  t.match(base, /^[0-9a-f]{12}$/);
  t.equal(policyVersionOf([inbound([RBAC('ALLOW')]), outbound([])]), base, 'listener order does not matter');
  t.not(policyVersionOf([outbound([]), inbound([RBAC('DENY')])]), base, 'an RBAC change');
  t.not(policyVersionOf([outbound([]), inbound([RBAC('DENY'), RBAC('ALLOW')])]), base, 'an added RBAC filter');
  t.not(policyVersionOf([outbound([]), inbound([])]), base, 'RBAC removed');
  const jwt = { name: 'my-jwt', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication', providers: {} } };
  t.not(policyVersionOf([outbound([]), inbound([jwt, RBAC('ALLOW')])]), base, 'jwt_authn, recognised by its type whatever its name');
  t.not(policyVersionOf([outbound([]), inbound([RBAC('ALLOW')], { tls: { name: 'tls', typed_config: {} } })]), base, 'TLS (PeerAuthentication)');
  const plaintext = { filter_chain_match: { transport_protocol: 'raw_buffer' }, filters: [{ name: 'envoy.filters.network.rbac', typed_config: { rules: {} } }] };
  t.not(policyVersionOf([outbound([]), inbound([RBAC('ALLOW')], { extraChains: [plaintext] })]), base, 'a PERMISSIVE plaintext chain');
  t.not(policyVersionOf([outbound([]), inbound([RBAC('ALLOW')], { listenerFilters: [{ name: 'envoy.filters.listener.tls_inspector' }] })]), base, 'TLS sniffing');
  const withDefault = inbound([RBAC('ALLOW')]);
  (withDefault.json as Record<string, unknown>).default_filter_chain = { filters: [] };
  t.not(policyVersionOf([outbound([]), withDefault]), base, 'a default filter chain');
  t.not(policyVersionOf([outbound([]), inbound([RBAC('ALLOW')]), inbound([], { name: 'inbound2' })]), base, 'a second inbound listener');
});

t.test('does not change with what is not security policy', async (t) => {
  const base = policyVersionOf([outbound([]), inbound([RBAC('ALLOW'), LIMIT(3)])]);
  t.equal(policyVersionOf([outbound([RBAC('DENY')]), inbound([RBAC('ALLOW'), LIMIT(3)])]), base, 'outbound listeners');
  t.equal(policyVersionOf([outbound([]), inbound([RBAC('ALLOW'), LIMIT(7)])]), base, 'a rate limit');
  t.equal(policyVersionOf([outbound([]), inbound([RBAC('ALLOW')], { statPrefix: 'other' })]), base, 'HCM settings');
  t.equal(policyVersionOf([{ name: 'bare', json: { name: 'bare', traffic_direction: 'INBOUND' } }]), policyVersionOf([{ name: 'bare', json: { name: 'bare', traffic_direction: 'INBOUND', filter_chains: [] } }]));
  t.equal(policyVersionOf([{ name: 'x', json: { traffic_direction: 'INBOUND', listener_filters: [{}], filter_chains: [{ filters: [{}] }, {}] } }]).length, 12, 'unnamed parts hash too');
  const two = [inbound([], { name: 'b' }), inbound([RBAC('ALLOW')], { name: 'a' })];
  t.equal(policyVersionOf(two), policyVersionOf([...two].reverse()), 'inbound listeners sorted by name');
});

t.test('translate: every sidecar snapshot carries its policy version; proxyless ones none', async (t) => {
  const s = translate(bookinfo(), node(), OPTS);
  t.match(s.policyVersion, /^[0-9a-f]{12}$/);
  t.equal(translate(bookinfo(), node(), OPTS).policyVersion, s.policyVersion, 'the same config, the same version');
  t.equal(translate(bookinfo(), node({ proxyless: true }), OPTS).policyVersion, undefined);
});
