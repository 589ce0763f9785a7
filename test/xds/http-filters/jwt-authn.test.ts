// The jwt_authn decoder: istiod's shape in full, Envoy's defaults, keys imported at decode time, refusals by field path.
import { generateKeyPairSync } from 'node:crypto';
import t from 'tap';
import type { JwtAuthnConfig } from '../../../src/model/jwt.js';
import { parseJwks } from '../../../src/xds/http-filters/jwt-authn.js';
import { LISTENER_TYPE_URL } from '../../../src/xds/protos.js';
import { ROUTER, hcm, listener, problems, viaJson } from '../helpers.js';

const JWT_URL = 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';
const F = 'filter_chains[0].filters[0].typed_config.http_filters[0].typed_config';
const ISS = 'https://idp.example.com';

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
const JWKS = JSON.stringify({ keys: [{ ...ec, kid: 'es-1', alg: 'ES256', use: 'sig' }, { ...rsa, kid: 'rs-1' }] });

const jwt = (cfg: Record<string, unknown>) => ({ name: 'envoy.filters.http.jwt_authn', typed_config: { '@type': JWT_URL, ...cfg } });
const decode = (cfg: Record<string, unknown>) => viaJson(LISTENER_TYPE_URL, listener({ hcm: hcm({ http_filters: [jwt(cfg), ROUTER] }) }));
const configOf = (cfg: Record<string, unknown>): JwtAuthnConfig => {
  const r = decode(cfg);
  if (!r.ok) throw new Error(problems(r).join('\n'));
  return r.value.filterChain.hcm.httpFilters[0]!.config as unknown as JwtAuthnConfig;
};
const provider = (extra: Record<string, unknown> = {}) => ({ issuer: ISS, local_jwks: { inline_string: JWKS }, ...extra });
const requireAny = (...names: string[]) => ({ requires_any: { requirements: [...names.map((provider_name) => ({ provider_name })), { allow_missing: {} }] } });

t.test("istiod's single-provider shape decodes in full", (t) => {
  const c = configOf({
    providers: {
      'origins-0': provider({
        audiences: ['api.example.com'],
        forward: true,
        from_headers: [{ name: 'X-Jwt', value_prefix: 'Token ' }],
        from_params: ['token'],
        from_cookies: ['session'],
        forward_payload_header: 'X-Jwt-Payload',
        pad_forward_payload_header: true,
        payload_in_metadata: ISS,
        claim_to_headers: [{ header_name: 'X-Sub', claim_name: 'sub' }],
        clock_skew_seconds: 30,
        max_lifetime: '3600s',
        require_expiration: true,
        jwt_cache_config: { jwt_cache_size: 10 },
      }),
    },
    rules: [{ match: { prefix: '/' }, requires: requireAny('origins-0') }],
    bypass_cors_preflight: true,
  });
  const p = c.providers[0]!;
  t.match(p, {
    name: 'origins-0',
    issuer: ISS,
    audiences: ['api.example.com'],
    forward: true,
    fromHeaders: [{ name: 'x-jwt', valuePrefix: 'Token ' }],
    fromParams: ['token'],
    fromCookies: ['session'],
    forwardPayloadHeader: 'x-jwt-payload',
    padForwardPayloadHeader: true,
    payloadInMetadata: ISS,
    claimToHeaders: [{ headerName: 'x-sub', claimName: 'sub' }],
    clockSkewSeconds: 30,
    maxLifetimeSeconds: 3600,
    requireExpiration: true,
    cacheSize: 10,
  });
  t.strictSame(
    p.keys.map((k) => ({ kid: k.kid, kty: k.kty, alg: k.alg, crv: k.crv, type: k.key.asymmetricKeyType })),
    [
      { kid: 'es-1', kty: 'EC', alg: 'ES256', crv: 'P-256', type: 'ec' },
      { kid: 'rs-1', kty: 'RSA', alg: undefined, crv: undefined, type: 'rsa' },
    ],
    'keys imported once, at decode time',
  );
  t.ok(Object.isFrozen(p.keys[0]) && !Object.keys(p.keys[0]!).includes('key'), 'the model is frozen; the KeyObject is not enumerable (config_dump, deep freeze)');
  t.strictSame(c.rules[0]!.requires, { kind: 'any', requirements: [{ kind: 'provider', provider: 'origins-0' }, { kind: 'allow_missing' }] });
  t.match(c.rules[0]!.match, { path: { kind: 'prefix', value: '/' } });
  t.equal(c.bypassCorsPreflight, true);
  t.end();
});

t.test("Envoy's defaults: Authorization Bearer and access_token, 60 s skew, no forward", (t) => {
  const c = configOf({ providers: { p: provider() }, rules: [{ match: { path: '/x' } }] });
  t.match(c.providers[0], { fromHeaders: [{ name: 'authorization', valuePrefix: 'Bearer ' }], fromParams: ['access_token'], fromCookies: [], clockSkewSeconds: 60, forward: false, requireExpiration: false, padForwardPayloadHeader: false });
  t.notOk('forwardPayloadHeader' in c.providers[0]! || 'payloadInMetadata' in c.providers[0]! || 'maxLifetimeSeconds' in c.providers[0]! || 'cacheSize' in c.providers[0]!);
  t.strictSame(c.rules[0], { match: { path: { kind: 'path', value: '/x' }, caseSensitive: true, headers: [] } }, 'a rule without requires: no JWT needed there');
  t.strictSame(configOf({}), { providers: [], rules: [], bypassCorsPreflight: false }, 'an empty config: nothing to check');
  t.end();
});

t.test("istiod's multi-provider shape, provider_and_audiences, requires_all, allow_missing_or_failed, requirement_map", (t) => {
  const c = configOf({
    providers: { 'origins-0': provider(), 'origins-1': provider({ issuer: 'other' }) },
    requirement_map: { either: { requires_any: { requirements: [{ provider_name: 'origins-0' }, { allow_missing_or_failed: {} }] } } },
    rules: [
      { match: { safe_regex: { regex: '/admin/.*' } }, requires: { provider_and_audiences: { provider_name: 'origins-1', audiences: ['admin'] } } },
      { match: { prefix: '/named' }, requirement_name: 'either' },
      {
        match: { prefix: '/' },
        requires: { requires_any: { requirements: [{ provider_name: 'origins-0' }, { provider_name: 'origins-1' }, { requires_all: { requirements: [requireAny('origins-0'), requireAny('origins-1')] } }] } },
      },
    ],
  });
  t.strictSame(c.rules[0]!.requires, { kind: 'provider', provider: 'origins-1', audiences: ['admin'] });
  t.strictSame(c.rules[1]!.requires, { kind: 'any', requirements: [{ kind: 'provider', provider: 'origins-0' }, { kind: 'allow_missing_or_failed' }] });
  t.match(c.rules[2]!.requires, { kind: 'any', requirements: [{}, {}, { kind: 'all', requirements: [{ kind: 'any' }, { kind: 'any' }] }] });
  t.end();
});

t.test('refusals, each at its field path', (t) => {
  const P = `${F}.providers["p"]`;
  const cases: [string, Record<string, unknown>, string[]][] = [
    [
      'remote_jwks: sidecars need no IdP egress',
      { providers: { p: { issuer: ISS, remote_jwks: { http_uri: { uri: 'https://idp/jwks', cluster: 'idp', timeout: '1s' } } } } },
      [`${P}.remote_jwks: is not supported: the control server fetches the JWKS and inlines it as local_jwks, so sidecars need no route to the identity provider`],
    ],
    ['no JWKS at all', { providers: { p: { issuer: ISS } } }, [`${P}.local_jwks: is required`]],
    ['a JWKS file', { providers: { p: { issuer: ISS, local_jwks: { filename: '/etc/jwks.json' } } } }, [`${P}.local_jwks.filename: field 'filename' is not supported`]],
    ['unsupported provider fields', { providers: { p: provider({ header_in_metadata: 'h', subjects: { exact: 'x' } }) } }, [`${P}.subjects: field 'subjects' is not supported`, `${P}.header_in_metadata: field 'header_in_metadata' is not supported`]],
    ['an unknown provider in a requirement', { providers: { p: provider() }, rules: [{ match: { prefix: '/' }, requires: { provider_name: 'q' } }] }, [`${F}.rules[0].requires.provider_name: provider "q" is not in providers`]],
    [
      'an unknown provider in provider_and_audiences',
      { providers: { p: provider() }, rules: [{ match: { prefix: '/' }, requires: { provider_and_audiences: { provider_name: 'q' } } }] },
      [`${F}.rules[0].requires.provider_and_audiences.provider_name: provider "q" is not in providers`],
    ],
    ['requires_any with one item', { providers: { p: provider() }, rules: [{ match: { prefix: '/' }, requires: { requires_any: { requirements: [{ allow_missing: {} }] } } }] }, [`${F}.rules[0].requires.requires_any.requirements: needs at least 2 requirements (got 1)`]],
    ['an empty requirement', { providers: { p: provider() }, rules: [{ match: { prefix: '/' }, requires: {} }] }, [`${F}.rules[0].requires: one of provider_name, provider_and_audiences, requires_any, requires_all, allow_missing, allow_missing_or_failed is required`]],
    ['a rule without match', { providers: { p: provider() }, rules: [{ requires: { allow_missing: {} } }] }, [`${F}.rules[0].match: is required`]],
    ['a bad rule match', { providers: { p: provider() }, rules: [{ match: { safe_regex: { regex: '(' } } }] }, [`${F}.rules[0].match.safe_regex.regex: `]],
    ['an unknown requirement_name', { providers: { p: provider() }, rules: [{ match: { prefix: '/' }, requirement_name: 'nope' }] }, [`${F}.rules[0].requirement_name: "nope" is not in requirement_map`]],
    ['filter_state_rules and strip_failure_response', { providers: { p: provider() }, strip_failure_response: true }, [`${F}.strip_failure_response: field 'strip_failure_response' is not supported`]],
    ['an empty claim name and bad header names', { providers: { p: provider({ claim_to_headers: [{ header_name: 'x', claim_name: '' }], from_headers: [{ name: '' }] }) } }, [`${P}.from_headers[0].name: must be a header name`, `${P}.claim_to_headers[0].claim_name: is required`]],
    ['unknown fields of nested messages', { providers: { p: provider({ jwt_cache_config: { jwt_cache_size: 1, jwt_max_token_size: 9 } }) } }, [`${P}.jwt_cache_config.jwt_max_token_size: `]],
  ];
  for (const [what, cfg, want] of cases) {
    const got = problems(decode(cfg));
    t.equal(got.length, want.length, `${what}: ${got.join(' | ')}`);
    for (const w of want) t.ok(got.some((g) => g.startsWith(w)), `${what}: ${w}`);
  }
  t.end();
});

t.test('a malformed JWKS is a NACK naming what is wrong; keys that cannot verify under the allow-list are left out', (t) => {
  const P = `${F}.providers["p"].local_jwks.inline_string`;
  const bad = (jwks: string) => problems(decode({ providers: { p: { issuer: ISS, local_jwks: { inline_string: jwks } } } }));
  t.match(bad('{not json'), [new RegExp(`^${P.replace(/[[\]().]/g, '\\$&')}: is not JSON`)]);
  t.match(bad('{"keys": {}}'), [/is not a JWKS: a JSON object with a "keys" array is expected/]);
  t.match(bad('null'), [/is not a JWKS/]);
  t.match(bad(JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' }] })), [/keys\[0\]: not a valid EC public key/]);
  t.match(bad(JSON.stringify({ keys: [{ kty: 'RSA', n: '', e: '' }, 'x'] })), [/keys\[0\]: an RSA key of 0 bits \(at least 2048 are required\)/, /keys\[1\]: is not a JSON object/]);
  t.match(bad(JSON.stringify({ keys: [{ ...generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' }) }] })), [/keys\[0\]: an RSA key of 1024 bits/]);
  t.match(bad(JSON.stringify({ keys: [{ ...ec, kid: 7 }] })), [/keys\[0\]\.kid: must be a string/]);
  t.match(bad(JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', alg: 'HS256' }] })), [/has no usable public key .*HMAC keys are never accepted/]);
  const r = parseJwks(
    JSON.stringify({
      keys: [
        { kty: 'oct', k: 'c2VjcmV0' },
        { ...rsa, use: 'enc' },
        { ...rsa, alg: 'RSA-OAEP' },
        { kty: 'EC', crv: 'P-521', x: 'AA', y: 'AA' },
        { kty: 'XYZ' },
        { ...ec, kid: 'keep' },
        { ...generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }), kid: 'ed' },
      ],
    }),
  );
  t.ok(r.ok);
  if (r.ok) t.strictSame(r.value.map((k) => k.kid), ['keep', 'ed'], 'only signature keys of allowed algorithms and curves');
  t.end();
});
