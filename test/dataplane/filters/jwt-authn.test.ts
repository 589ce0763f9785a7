// The jwt_authn filter on a fake clock, from decoded xDS config: istiod's shapes, 401s, metadata, headers, stripping, metrics.
import t from 'tap';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { SignJWT, exportJWK, generateKeyPair, type JWTPayload } from 'jose';
import { FakeClock } from '../../../src/core/clock.js';
import { seededRng } from '../../../src/core/rng.js';
import { RequestRecord } from '../../../src/dataplane/exchange.js';
import { buildFilterChain } from '../../../src/dataplane/filters/index.js';
import { ISTIO_AUTHN_METADATA, JWT_AUTHN_METADATA, JWT_AUTHN_TYPE_URL, istioAuthnMetadata } from '../../../src/dataplane/filters/jwt-authn.js';
import { GRPC, renderLocalReply, type LocalReply } from '../../../src/dataplane/local-reply.js';
import { createMetrics } from '../../../src/telemetry/metrics.js';
import { jwtAuthn } from '../../../src/xds/http-filters/jwt-authn.js';

const ISS = 'https://idp.example.com';
const ISS2 = 'https://other.example.com';
const NOW = Date.UTC(2026, 0, 1);

async function idp(alg: string, kid: string, iss: string) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }] });
  const sign = (claims: JWTPayload = {}, header: Record<string, unknown> = {}) =>
    new SignJWT({ iss, sub: 'alice', aud: 'api', iat: NOW / 1000, exp: NOW / 1000 + 3600, ...claims }).setProtectedHeader({ alg, kid, ...header }).sign(privateKey);
  return { jwks, sign };
}
const one = await idp('ES256', 'k1', ISS);
const two = await idp('RS256', 'k2', ISS2);

const anyOrMissing = (...names: string[]) => ({ requires_any: { requirements: [...names.map((provider_name) => ({ provider_name })), { allow_missing: {} }] } });
const prov = (i: { jwks: string }, iss: string, extra: Record<string, unknown> = {}) => ({ issuer: iss, local_jwks: { inline_string: i.jwks }, payload_in_metadata: iss, ...extra });
/** istiod's single-provider shape, with its RequestAuthentication outputs. */
const ISTIOD_ONE = {
  providers: { 'origins-0': prov(one, ISS, { audiences: ['api'], forward_payload_header: 'x-jwt-payload', claim_to_headers: [{ header_name: 'x-jwt-sub', claim_name: 'sub' }, { header_name: 'x-jwt-org', claim_name: 'org.name' }] }) },
  rules: [{ match: { prefix: '/' }, requires: anyOrMissing('origins-0') }],
  bypass_cors_preflight: true,
};
/** istiod's multi-provider shape: {P1, P2, all{any{P1, missing}, any{P2, missing}}}. */
const ISTIOD_TWO = {
  providers: { 'origins-0': prov(one, ISS), 'origins-1': prov(two, ISS2) },
  rules: [
    {
      match: { prefix: '/' },
      requires: { requires_any: { requirements: [{ provider_name: 'origins-0' }, { provider_name: 'origins-1' }, { requires_all: { requirements: [anyOrMissing('origins-0'), anyOrMissing('origins-1')] } }] } },
    },
  ],
};

function setup(cfg: Record<string, unknown>) {
  const decoded = jwtAuthn.decode(cfg, 'jwt');
  if (!decoded.ok) throw new Error(JSON.stringify(decoded.errors));
  const clock = new FakeClock(NOW);
  const registry = new Registry();
  const logs: Record<string, unknown>[] = [];
  const unknownKids: [string, string][] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => logs.push(JSON.parse(s)) });
  const chain = buildFilterChain([{ name: 'envoy.filters.http.jwt_authn', typeUrl: JWT_AUTHN_TYPE_URL, optional: false, config: decoded.value }], {
    listenerName: 'virtualInbound',
    clock,
    rng: seededRng(1),
    metrics: createMetrics(registry),
    logger,
    onUnknownJwksKey: (iss, kid) => unknownKids.push([iss, kid]),
  });
  const run = (o: { path?: string; headers?: Record<string, string>; method?: string; tls?: boolean } = {}) => {
    const rec = new RequestRecord(0, 0, 'rid', o.method ?? 'GET', 'svc.local', o.path ?? '/api?x=1', 'HTTP/2', { ...o.headers }, false, { remoteIp: '10.0.0.1', remotePort: 1, tls: o.tls ?? false });
    return { rec, reply: chain.run({ rec, route: undefined }) as LocalReply | undefined };
  };
  const counts = async () =>
    Object.fromEntries((await registry.getSingleMetric('outrigger_jwt_authn_total')!.get()).values.filter((v) => v.value > 0).map((v) => [`${v.labels.outcome}/${v.labels.reason}`, v.value]));
  return { clock, run, counts, logs, unknownKids };
}

const bearer = (tok: string) => ({ authorization: `Bearer ${tok}` });
const SPOOFED = { 'x-jwt-payload': 'eyJzdWIiOiJhZG1pbiJ9', 'x-jwt-sub': 'admin', 'x-jwt-org': 'evil' };

t.test("istiod's shape, a valid token: both metadata layouts, payload and claim headers, the token removed", async (t) => {
  const { run, counts } = setup(ISTIOD_ONE);
  const tok = await one.sign({ org: { name: 'acme', tier: 3 }, azp: 'web', groups: ['a', 'b'] });
  const { rec, reply } = run({ headers: { ...bearer(tok), ...SPOOFED } });
  t.equal(reply, undefined);
  const payload = JSON.parse(Buffer.from(tok.split('.')[1]!, 'base64url').toString());
  t.strictSame(rec.dynamicMetadata![JWT_AUTHN_METADATA], { [ISS]: payload }, "Envoy's payload_in_metadata, keyed by the issuer as istiod sets it");
  t.strictSame(rec.dynamicMetadata![ISTIO_AUTHN_METADATA], {
    'request.auth.principal': `${ISS}/alice`,
    'request.auth.audiences': 'api',
    'request.auth.presenter': 'web',
    'request.auth.claims': { iss: [ISS], sub: ['alice'], aud: ['api'], iat: [String(NOW / 1000)], exp: [String(NOW / 1000 + 3600)], org: { name: ['acme'], tier: ['3'] }, azp: ['web'], groups: ['a', 'b'] },
    'request.auth.raw_claims': JSON.stringify(payload),
  });
  t.equal(rec.headers['x-jwt-payload'], tok.split('.')[1], 'forward_payload_header: the base64url payload, not the spoofed one');
  t.equal(rec.headers['x-jwt-sub'], 'alice');
  t.equal(rec.headers['x-jwt-org'], 'acme', 'a nested claim by its dotted name, not the spoofed value');
  t.equal(rec.headers.authorization, undefined, 'forward unset: the token is not sent upstream');
  t.strictSame(await counts(), { 'allowed/none': 1 });
  const again = run({ headers: bearer(tok) });
  t.equal(again.rec.dynamicMetadata![ISTIO_AUTHN_METADATA], rec.dynamicMetadata![ISTIO_AUTHN_METADATA], 'a reused token shares its istio_authn, built once');
  const shared = again.rec.dynamicMetadata![ISTIO_AUTHN_METADATA] as Record<string, Record<string, unknown>>;
  t.ok(Object.isFrozen(shared) && Object.isFrozen(shared['request.auth.claims']!.org), 'and frozen all the way down: no request can change it for the next');
  t.ok(Object.isFrozen((again.rec.dynamicMetadata![JWT_AUTHN_METADATA]![ISS] as Record<string, unknown>).org), 'the shared payload too');
});

t.test('a missing token passes, with the spoofable headers stripped and no metadata', async (t) => {
  const { run, counts } = setup(ISTIOD_ONE);
  const { rec, reply } = run({ headers: SPOOFED });
  t.equal(reply, undefined);
  t.equal(rec.dynamicMetadata, undefined);
  for (const h of Object.keys(SPOOFED)) t.equal(rec.headers[h], undefined, `${h} stripped`);
  const other = run({ headers: { authorization: 'Basic dXNlcjpwYXNz' } });
  t.equal(other.reply, undefined, 'another scheme in Authorization is not a bearer token');
  t.equal(other.rec.headers.authorization, 'Basic dXNlcjpwYXNz');
  t.strictSame(await counts(), { 'missing/none': 2 });
});

t.test('an invalid token: 401 with WWW-Authenticate as Envoy sends it, JSON reply, gRPC UNAUTHENTICATED, a log line, a metric', async (t) => {
  const { run, counts, logs, clock } = setup(ISTIOD_ONE);
  const tok = await one.sign({ exp: NOW / 1000 + 10 });
  clock.advance(71_000);
  const { rec, reply } = run({ headers: { ...bearer(tok), ...SPOOFED }, tls: true });
  t.match(reply, { status: 401, code: 'jwt_invalid', message: 'Jwt is expired (jwt_expired)', details: 'jwt_authn_access_denied{jwt_expired}', headers: { 'www-authenticate': 'Bearer realm="https://svc.local/api", error="invalid_token"' } });
  t.equal(rec.headers['x-jwt-sub'], undefined, 'stripped even on a denial');
  const http = renderLocalReply(reply!, 'rid', false);
  t.strictSame(JSON.parse(http.body), { code: 'jwt_invalid', message: 'Jwt is expired (jwt_expired)', request_id: 'rid' });
  t.equal(http.headers['www-authenticate'], 'Bearer realm="https://svc.local/api", error="invalid_token"');
  t.equal(renderLocalReply(reply!, 'rid', true).headers['grpc-status'], String(GRPC.UNAUTHENTICATED));
  t.strictSame(await counts(), { 'denied/jwt_expired': 1 });
  t.match(logs, [{ level: 40, msg: 'JWT refused', reason: 'jwt_expired', issuer: ISS, path: '/api', request_id: 'rid' }]);
  t.notOk(JSON.stringify(logs).includes(tok.split('.')[2]!), 'the token is never logged');
  const xfp = run({ headers: { ...bearer('garbage'), 'x-forwarded-proto': 'http' } });
  t.match(xfp.reply, { status: 401, message: /jwt_malformed/, headers: { 'www-authenticate': 'Bearer realm="http://svc.local/api", error="invalid_token"' } });
});

t.test('a wrong audience is 403 (Envoy: the token is good, not for this service)', async (t) => {
  const { run } = setup(ISTIOD_ONE);
  const { reply } = run({ headers: bearer(await one.sign({ aud: 'elsewhere' })) });
  t.match(reply, { status: 403, code: 'jwt_invalid', message: /jwt_audience_mismatch/ });
  t.equal(renderLocalReply(reply!, 'r', true).headers['grpc-status'], String(GRPC.PERMISSION_DENIED));
});

t.test('an unknown kid: the refresh hook is called, and the request is refused at once', async (t) => {
  const { run, unknownKids, counts } = setup(ISTIOD_ONE);
  const rotated = await idp('ES256', 'k-new', ISS);
  const { reply } = run({ headers: bearer(await rotated.sign()) });
  t.match(reply, { status: 401, message: /jwt_unknown_kid/ });
  t.strictSame(unknownKids, [[ISS, 'k-new']]);
  t.strictSame(await counts(), { 'denied/jwt_unknown_kid': 1 });
  const foreign = await idp('ES256', 'k-x', 'https://stranger');
  run({ headers: bearer(await foreign.sign()) });
  t.equal(unknownKids.length, 1, "another issuer's kid asks for no refresh");
});

t.test('a provider requirement alone: a missing token is 401 without error="invalid_token"', async (t) => {
  const { run, counts } = setup({ providers: { p: prov(one, ISS) }, rules: [{ match: { prefix: '/' }, requires: { provider_name: 'p' } }] });
  const { reply } = run({ path: '/x' });
  t.match(reply, { status: 401, message: 'Jwt is missing (jwt_missing)', headers: { 'www-authenticate': 'Bearer realm="http://svc.local/x"' } });
  t.equal(run({ headers: bearer(await one.sign()) }).reply, undefined);
  t.strictSame(await counts(), { 'denied/jwt_missing': 1, 'allowed/none': 1 });
});

t.test("istiod's multi-provider shape: either issuer's token passes, an unknown issuer or a bad second token does not", async (t) => {
  const { run } = setup(ISTIOD_TWO);
  const a = run({ headers: bearer(await one.sign()) });
  t.equal(a.reply, undefined);
  t.same(Object.keys(a.rec.dynamicMetadata![JWT_AUTHN_METADATA]!), [ISS]);
  const b = run({ headers: bearer(await two.sign()) });
  t.equal(b.reply, undefined);
  t.match(b.rec.dynamicMetadata![ISTIO_AUTHN_METADATA], { 'request.auth.principal': `${ISS2}/alice` });
  t.equal(run().reply, undefined, 'no token');
  const stranger = await idp('ES256', 'k1', 'https://stranger');
  t.match(run({ headers: bearer(await stranger.sign()) }).reply, { status: 401, message: /jwt_issuer_mismatch/ });
  const expired = await two.sign({ exp: NOW / 1000 - 3600 });
  t.match(run({ headers: bearer(expired) }).reply, { status: 401, message: /jwt_expired/ }, "the token's own error, not the other provider's issuer mismatch");
  // A good token in the header and a bad one in ?access_token=: every token found must verify.
  t.match(run({ path: `/p?access_token=${await one.sign({ exp: 1 })}`, headers: bearer(await one.sign()) }).reply, { status: 401, message: /jwt_expired/ });
});

t.test('allow_missing looks a token up by issuer among the providers that read its location', async (t) => {
  const cfg = {
    providers: { a: prov(one, ISS, { from_headers: [{ name: 'x-a' }] }), b: prov(two, ISS2, { from_headers: [{ name: 'x-b' }] }) },
    rules: [{ match: { prefix: '/' }, requires: { allow_missing: {} } }],
  };
  const { run } = setup(cfg);
  t.equal(run({ headers: { 'x-a': await one.sign() } }).reply, undefined);
  t.match(run({ headers: { 'x-b': await one.sign() } }).reply, { status: 401, message: /jwt_unknown_issuer/ }, "issuer a's token where only b looks");
  t.match(run({ headers: { 'x-a': 'not-a-jwt' } }).reply, { status: 401, message: /jwt_malformed/ }, 'no issuer to go by: the finder says why');
  t.match(run({ headers: { 'x-a': await one.sign({ exp: 1 }) } }).reply, { status: 401, message: /jwt_expired/ });
  t.equal(run().reply, undefined);
});

t.test('allow_missing_or_failed lets a bad token through unverified; requires_all needs both', async (t) => {
  const lenient = setup({ providers: { a: prov(one, ISS) }, rules: [{ match: { prefix: '/' }, requires: { allow_missing_or_failed: {} } }] });
  const bad = lenient.run({ headers: bearer('x.y.z') });
  t.equal(bad.reply, undefined);
  t.equal(bad.rec.dynamicMetadata, undefined);
  t.equal(lenient.run({ headers: bearer(await one.sign()) }).rec.dynamicMetadata![ISTIO_AUTHN_METADATA]!['request.auth.principal'], `${ISS}/alice`);
  t.strictSame(await lenient.counts(), { 'missing/none': 1, 'allowed/none': 1 });
  const both = setup({
    providers: { a: prov(one, ISS, { from_headers: [{ name: 'x-a' }] }), b: prov(two, ISS2, { from_headers: [{ name: 'x-b' }] }) },
    rules: [{ match: { prefix: '/' }, requires: { requires_all: { requirements: [{ provider_name: 'a' }, { provider_name: 'b' }] } } }],
  });
  t.match(both.run({ headers: { 'x-a': await one.sign() } }).reply, { status: 401, message: /jwt_missing/ });
  t.equal(both.run({ headers: { 'x-a': await one.sign(), 'x-b': await two.sign() } }).reply, undefined);
});

t.test('locations: a custom header prefix, query parameters and cookies; forward keeps the token; pad_forward_payload_header', async (t) => {
  const { run } = setup({
    providers: {
      p: prov(one, ISS, { forward: true, from_headers: [{ name: 'x-token', value_prefix: 'Token ' }], from_params: ['jwt'], from_cookies: ['session'], forward_payload_header: 'x-payload', pad_forward_payload_header: true }),
    },
    rules: [{ match: { prefix: '/' }, requires: { provider_name: 'p' } }],
  });
  const tok = await one.sign({ sub: 'bob' });
  const h = run({ headers: { 'x-token': `Token ${tok}` } });
  t.equal(h.reply, undefined);
  t.equal(h.rec.headers['x-token'], `Token ${tok}`, 'forward: true keeps it');
  t.equal((h.rec.headers['x-payload'] as string).length % 4, 0, 'padded to a multiple of 4');
  t.ok((h.rec.headers['x-payload'] as string).startsWith(tok.split('.')[1]!));
  t.match(run({ headers: { 'x-token': tok } }).reply, { status: 401, message: /jwt_missing/ }, 'without the prefix it is not there');
  t.equal(run({ path: `/q?a=1&jwt=${tok}` }).reply, undefined);
  t.equal(run({ headers: { cookie: `a=1; session=${tok}; b=2` } }).reply, undefined);
  t.match(run({ headers: { cookie: 'a=1; other=x' } }).reply, { status: 401 });
});

t.test('rules: the first match decides, a rule without requires needs nothing, no match needs nothing; CORS preflight bypass', async (t) => {
  const { run } = setup({
    providers: { p: prov(one, ISS, { forward_payload_header: 'x-jwt-payload' }) },
    rules: [
      { match: { prefix: '/public' } },
      { match: { prefix: '/api', headers: [{ name: 'x-strict', present_match: true }] }, requires: { provider_name: 'p' } },
      { match: { path: '/q', query_parameters: [{ name: 'strict', present_match: true }] }, requires: { provider_name: 'p' } },
    ],
    bypass_cors_preflight: true,
  });
  const pub = run({ path: '/public/x', headers: { 'x-jwt-payload': 'spoofed' } });
  t.equal(pub.reply, undefined);
  t.equal(pub.rec.headers['x-jwt-payload'], undefined, 'stripped on a path that needs no token');
  t.equal(run({ path: '/api' }).reply, undefined, 'the header matcher does not match');
  t.match(run({ path: '/api', headers: { 'x-strict': '1' } }).reply, { status: 401 });
  t.match(run({ path: '/q?strict' }).reply, { status: 401 });
  t.equal(run({ path: '/q' }).reply, undefined);
  t.equal(run({ path: '/other' }).reply, undefined);
  t.equal(run({ path: '/api', method: 'OPTIONS', headers: { 'x-strict': '1', origin: 'https://web', 'access-control-request-method': 'GET' } }).reply, undefined, 'preflight');
  t.match(run({ path: '/api', method: 'OPTIONS', headers: { 'x-strict': '1' } }).reply, { status: 401 }, 'a plain OPTIONS is not a preflight');
});

t.test('claim_to_headers: scalars and lists of scalars; istio_authn with a list aud and no sub', async (t) => {
  const { run } = setup({
    providers: { p: prov(one, ISS, { claim_to_headers: [{ header_name: 'x-n', claim_name: 'n' }, { header_name: 'x-l', claim_name: 'l' }, { header_name: 'x-m', claim_name: 'm' }, { header_name: 'x-deep', claim_name: 'a.b.c' }] }) },
    rules: [{ match: { prefix: '/' }, requires: { provider_name: 'p' } }],
  });
  const { rec } = run({ headers: bearer(await one.sign({ n: 5, l: ['x', true], m: [{}], a: { b: { c: 'd' } } })) });
  t.match(rec.headers, { 'x-n': '5', 'x-l': 'x,true', 'x-deep': 'd' });
  t.equal(rec.headers['x-m'], undefined);
  const md = istioAuthnMetadata({ iss: ISS, aud: ['first', 'second'], nothing: null, list: [1, 'a', null, {}] });
  t.strictSame(md, { 'request.auth.audiences': 'first', 'request.auth.claims': { iss: [ISS], aud: ['first', 'second'], nothing: [], list: ['1', 'a'] }, 'request.auth.raw_claims': JSON.stringify({ iss: ISS, aud: ['first', 'second'], nothing: null, list: [1, 'a', null, {}] }) });
});

t.test('edge cases: no rules, repeated headers, pseudo-header rule matches, provider_and_audiences, one token in two places', async (t) => {
  const none = setup({ providers: { p: prov(one, ISS, { forward_payload_header: 'x-jwt-payload' }) } });
  const n = none.run({ headers: { ...bearer('garbage'), 'x-jwt-payload': 'spoofed' } });
  t.equal(n.reply, undefined, 'no rules: nothing is required');
  t.equal(n.rec.headers['x-jwt-payload'], undefined, 'but the output header is still stripped');

  const tok = await one.sign({ l: ['a'], n: null });
  const { run } = setup({
    providers: { p: prov(one, ISS, { from_headers: [{ name: 'x-a' }, { name: 'x-b' }], from_params: ['t'], claim_to_headers: [{ header_name: 'x-l', claim_name: 'l.x' }, { header_name: 'x-n', claim_name: 'n.x' }] }), q: prov(one, ISS, { from_headers: [{ name: 'x-a' }] }) },
    rules: [
      { match: { prefix: '/', headers: [{ name: ':method', exact_match: 'PUT' }, { name: ':authority', exact_match: 'svc.local' }, { name: ':path', prefix_match: '/aud' }, { name: 'x-multi', exact_match: '1,2' }] }, requires: { provider_and_audiences: { provider_name: 'p', audiences: ['other'] } } },
      { match: { prefix: '/any' }, requires: { allow_missing: {} } },
      { match: { prefix: '/' }, requires: { provider_name: 'p' } },
    ],
  });
  const multi = { 'x-multi': ['1', '2'] } as unknown as Record<string, string>;
  t.match(run({ method: 'PUT', path: '/aud', headers: { ...multi, 'x-a': tok } }).reply, { status: 403, message: /jwt_audience_mismatch/ }, 'pseudo-headers and a repeated header matched; the audiences override applied');
  t.equal(run({ method: 'PUT', path: '/aud', headers: { ...multi, 'x-a': await one.sign({ aud: 'other' }) } }).reply, undefined);
  const twice = run({ path: `/x?t=${tok}`, headers: { 'x-a': tok, 'x-b': [tok, 'ignored'] as unknown as string } });
  t.equal(twice.reply, undefined, 'the same token in a header, a repeated header and a parameter: verified once');
  t.equal(twice.rec.headers['x-l'], undefined, 'a dotted name through a list is no claim');
  t.equal(twice.rec.headers['x-n'], undefined, 'nor through null');
  t.equal(twice.rec.headers['x-a'], undefined, 'each header it came from is removed');
  t.equal(twice.rec.headers['x-b'], undefined, 'the repeated one too');
  t.equal(run({ path: '/any', headers: { 'x-a': tok } }).reply, undefined, 'allow_missing: a token two providers read is checked once');
});
