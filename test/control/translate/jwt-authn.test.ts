// RequestAuthentication -> xDS: the inbound listener's jwt_authn filter in istiod's shape, read back from the encoded Listener.
import t from 'tap';
import { FAKE_JWKS } from '../../../src/control/jwks.js';
import type { JwtRule, RequestAuthentication } from '../../../src/control/mesh/types.js';
import { translate } from '../../../src/control/translate/index.js';
import { JWT_AUTHN_TYPE_URL, jwtAuthnConfig } from '../../../src/control/translate/jwt-authn.js';
import { LISTENER_TYPE_URL, lookupType } from '../../../src/xds/protos.js';
import { OPTS, bookinfo, node } from './helpers.js';

const rule = (issuer: string, o: Partial<JwtRule> = {}): JwtRule => ({ issuer, audiences: [], fromHeaders: [], fromParams: [], fromCookies: [], outputClaimToHeaders: [], forwardOriginalToken: false, jwksUri: `https://${issuer}/keys`, ...o });
const ra = (name: string, jwtRules: JwtRule[], o: { namespace?: string; labels?: Record<string, string> } = {}): RequestAuthentication => ({
  kind: 'RequestAuthentication',
  meta: { name, namespace: o.namespace ?? 'default', file: 'ra.yaml', line: 1 },
  ...(o.labels && { selector: { matchLabels: o.labels } }),
  jwtRules,
});

type Any = { type_url: string; value: Uint8Array };
const decode = (type: string, bytes: Uint8Array) => {
  const T = lookupType(type)!;
  return T.toObject(T.decode(bytes), { defaults: false }) as Record<string, unknown>;
};

/** The virtualInbound HCM's http_filters as (name, type_url, decoded JSON-ish config), straight from the encoded Listener. */
function inboundFilters(requestAuthentications: RequestAuthentication[], o: { labels?: Record<string, string>; ns?: string; jwks?: (u: string) => string | undefined; rootNamespace?: string } = {}) {
  const s = translate(bookinfo({ requestAuthentications }), node({ ...(o.labels && { labels: o.labels }), ...(o.ns && { ns: o.ns }) }), { ...OPTS, ...(o.jwks && { jwks: o.jwks }) });
  const listener = decode('envoy.config.listener.v3.Listener', s.resources.get(LISTENER_TYPE_URL)!.get('virtualInbound')!) as { filter_chains: { filters: { typed_config: Any }[] }[] };
  const hcm = decode('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', listener.filter_chains[0]!.filters[0]!.typed_config.value) as { http_filters: { name: string; typed_config: Any }[] };
  return hcm.http_filters.map((f) => ({ name: f.name, type: f.typed_config.type_url, config: f.typed_config.type_url === JWT_AUTHN_TYPE_URL ? decode('envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication', f.typed_config.value) : undefined }));
}

t.test('one rule: a provider with every field and {provider OR allow_missing}, first in the chain', (t) => {
  const keys = '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}';
  const filters = inboundFilters(
    [
      ra('jwt', [
        rule('issuer.example.com', {
          audiences: ['reviews'],
          fromHeaders: [{ name: 'x-jwt', prefix: 'Bearer ' }, { name: 'x-raw' }],
          fromParams: ['token'],
          fromCookies: ['session'],
          outputPayloadToHeader: 'x-jwt-payload',
          outputClaimToHeaders: [{ header: 'x-sub', claim: 'sub' }],
          forwardOriginalToken: true,
        }),
      ]),
    ],
    { jwks: (u) => (u === 'https://issuer.example.com/keys' ? keys : undefined) },
  );
  t.strictSame(
    filters.map((f) => f.name),
    ['envoy.filters.http.jwt_authn', 'envoy.filters.http.router'],
  );
  t.strictSame(filters[0]!.config, {
    providers: {
      'origins-0': {
        issuer: 'issuer.example.com',
        audiences: ['reviews'],
        forward: true,
        forward_payload_header: 'x-jwt-payload',
        payload_in_metadata: 'issuer.example.com',
        claim_to_headers: [{ header_name: 'x-sub', claim_name: 'sub' }],
        from_headers: [{ name: 'x-jwt', value_prefix: 'Bearer ' }, { name: 'x-raw' }],
        from_params: ['token'],
        from_cookies: ['session'],
        local_jwks: { inline_string: keys },
      },
    },
    rules: [{ match: { prefix: '/' }, requires: { requires_any: { requirements: [{ provider_name: 'origins-0' }, { allow_missing: {} }] } } }],
    bypass_cors_preflight: true,
  });
  t.end();
});

t.test('several rules across policies: sorted by issuer, P1 OR … OR AND_i{Pi OR allow_missing}', (t) => {
  const cfg = jwtAuthnConfig([ra('b', [rule('zeta'), rule('alpha')]), ra('a', [rule('mid', { jwks: FAKE_JWKS, jwksUri: undefined })])], () => undefined)!;
  const providers = cfg.providers as Record<string, { issuer: string }>;
  t.strictSame(
    Object.entries(providers).map(([n, p]) => [n, p.issuer]),
    [
      ['origins-0', 'alpha'],
      ['origins-1', 'mid'],
      ['origins-2', 'zeta'],
    ],
  );
  const any = (n: number) => ({ requires_any: { requirements: [{ provider_name: `origins-${n}` }, { allow_missing: {} }] } });
  t.strictSame(cfg.rules, [
    {
      match: { prefix: '/' },
      requires: { requires_any: { requirements: [{ provider_name: 'origins-0' }, { provider_name: 'origins-1' }, { provider_name: 'origins-2' }, { requires_all: { requirements: [any(0), any(1), any(2)] } }] } },
    },
  ]);
  t.equal(jwtAuthnConfig([ra('none', [])], undefined), undefined, 'no rules: no filter');
  t.end();
});

t.test('keys not fetched yet are the fail-closed FAKE_JWKS; the inline jwks is used as written', (t) => {
  const inline = '{"keys":[{"kty":"oct","k":"aW5saW5l"}]}';
  const [f] = inboundFilters([ra('jwt', [rule('fetched'), rule('inline', { jwks: inline, jwksUri: undefined })])]);
  const p = f!.config!.providers as Record<string, { issuer: string; local_jwks: { inline_string: string } }>;
  t.equal(p['origins-0']!.issuer, 'fetched');
  t.equal(p['origins-0']!.local_jwks.inline_string, FAKE_JWKS);
  t.equal(p['origins-1']!.local_jwks.inline_string, inline);
  t.end();
});

t.test("Istio's selection: own namespace and the root namespace, selector labels all present; others untouched", (t) => {
  const policies = [
    ra('mesh-wide', [rule('root')], { namespace: 'istio-system' }),
    ra('root-selector', [rule('root-sel')], { namespace: 'istio-system', labels: { app: 'frontend' } }),
    ra('ns', [rule('ns')]),
    ra('mine', [rule('mine')], { labels: { app: 'frontend' } }),
    ra('not-mine', [rule('reviews')], { labels: { app: 'reviews' } }),
    ra('elsewhere', [rule('other')], { namespace: 'other' }),
  ];
  const issuers = (fs: ReturnType<typeof inboundFilters>) => Object.values((fs[0]?.config?.providers ?? {}) as Record<string, { issuer: string }>).map((p) => p.issuer);
  t.strictSame(issuers(inboundFilters(policies)), ['mine', 'ns', 'root', 'root-sel']);
  t.strictSame(issuers(inboundFilters(policies, { labels: { app: 'reviews' } })), ['ns', 'reviews', 'root']);
  t.strictSame(issuers(inboundFilters(policies, { ns: 'third', labels: { app: 'frontend' } })), ['root', 'root-sel']);
  t.strictSame(
    inboundFilters([ra('elsewhere', [rule('other')], { namespace: 'other' })]).map((f) => f.name),
    ['envoy.filters.http.router'],
    'no policy selects the workload: no jwt_authn filter',
  );
  t.end();
});
