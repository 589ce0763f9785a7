// The JWT verifier: every bad token the issue lists, each refused with its own code; skew, audiences, kid lookup, cache.
import { KeyObject, createHmac, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import t from 'tap';
import { SignJWT, exportJWK, generateKeyPair, type JWTPayload } from 'jose';

type KeyLike = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
import type { JwtKey, JwtProvider } from '../../src/model/jwt.js';
import { JwtVerifier, MAX_JWT_BYTES, normalizeAudience, unverifiedIssuer } from '../../src/policy/jwt.js';
import { parseJwks } from '../../src/xds/http-filters/jwt-authn.js';

const ISS = 'https://idp.example.com';
const NOW = Date.UTC(2026, 0, 1) / 1000;
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

async function keyPair(alg: string, kid: string) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { jwk, privateKey, publicKey };
}

function keysOf(jwks: object[]): JwtKey[] {
  const r = parseJwks(JSON.stringify({ keys: jwks }));
  if (!r.ok) throw new Error(r.errors.join('; '));
  return r.value;
}

function provider(keys: JwtKey[], over: Partial<JwtProvider> = {}): JwtProvider {
  return {
    name: 'origins-0',
    issuer: ISS,
    audiences: [],
    keys,
    forward: false,
    fromHeaders: [{ name: 'authorization', valuePrefix: 'Bearer ' }],
    fromParams: [],
    fromCookies: [],
    padForwardPayloadHeader: false,
    claimToHeaders: [],
    clockSkewSeconds: 60,
    requireExpiration: false,
    ...over,
  };
}

const rs = await keyPair('RS256', 'rs-1');
const es = await keyPair('ES256', 'es-1');
const ps = await keyPair('PS384', 'ps-1');
const ed = await keyPair('EdDSA', 'ed-1');
const es384 = await keyPair('ES384', 'es384-1');
const keys = keysOf([rs.jwk, es.jwk, ps.jwk, ed.jwk, es384.jwk]);
const verifier = () => new JwtVerifier(provider(keys, { audiences: ['api.example.com'] }));

async function token(pair: { privateKey: KeyLike }, alg: string, claims: JWTPayload = {}, header: Record<string, unknown> = {}) {
  return new SignJWT({ iss: ISS, sub: 'alice', aud: 'api.example.com', iat: NOW, exp: NOW + 3600, ...claims })
    .setProtectedHeader({ alg, kid: (pair as { jwk?: { kid: string } }).jwk?.kid, ...header })
    .sign(pair.privateKey);
}

t.test('good tokens of every allowed algorithm verify, and the payload is returned', async (t) => {
  const v = verifier();
  for (const [pair, alg] of [[rs, 'RS256'], [es, 'ES256'], [ps, 'PS384'], [ed, 'EdDSA'], [es384, 'ES384']] as const) {
    const tok = await token(pair, alg);
    const r = v.verify(tok, NOW * 1000);
    t.ok(r.ok, alg);
    if (r.ok) t.match(r.jwt, { payload: { sub: 'alice', iss: ISS }, payloadB64: tok.split('.')[1] });
  }
});

t.test('a bad signature: one flipped signature byte', async (t) => {
  const tok = await token(rs, 'RS256');
  const [h, p, s] = tok.split('.');
  const sig = Buffer.from(s!, 'base64url');
  sig[10] ^= 1;
  t.match(verifier().verify(`${h}.${p}.${sig.toString('base64url')}`, NOW * 1000), { ok: false, reason: 'jwt_bad_signature' });
});

t.test('a payload changed after signing fails the signature', async (t) => {
  const [h, , s] = (await token(es, 'ES256')).split('.');
  const forged = b64({ iss: ISS, sub: 'admin', aud: 'api.example.com', exp: NOW + 3600 });
  t.match(verifier().verify(`${h}.${forged}.${s}`, NOW * 1000), { ok: false, reason: 'jwt_bad_signature' });
});

t.test('alg: none is never accepted, with or without a signature', async (t) => {
  const body = b64({ iss: ISS, sub: 'alice', aud: 'api.example.com', exp: NOW + 3600 });
  t.match(verifier().verify(`${b64({ alg: 'none' })}.${body}.`, NOW * 1000), { ok: false, reason: 'jwt_malformed' }, 'empty signature part: not a JWS');
  t.match(verifier().verify(`${b64({ alg: 'none', kid: 'rs-1' })}.${body}.AAAA`, NOW * 1000), { ok: false, reason: 'jwt_alg_not_allowed' });
  t.match(verifier().verify(`${b64({ alg: 'NONE' })}.${body}.AAAA`, NOW * 1000), { ok: false, reason: 'jwt_alg_not_allowed' });
});

t.test('HS256 signed with the RS256 public key as the HMAC secret (key confusion) is refused', async (t) => {
  const pem = KeyObject.from(rs.publicKey).export({ type: 'spki', format: 'pem' });
  const head = b64({ alg: 'HS256', typ: 'JWT', kid: 'rs-1' });
  const body = b64({ iss: ISS, sub: 'alice', aud: 'api.example.com', exp: NOW + 3600 });
  const mac = createHmac('sha256', pem).update(`${head}.${body}`).digest('base64url');
  t.match(verifier().verify(`${head}.${body}.${mac}`, NOW * 1000), { ok: false, reason: 'jwt_alg_not_allowed' });
});

t.test('expired: refused past exp + 60 s skew, accepted within the skew', async (t) => {
  const tok = await token(es, 'ES256', { exp: NOW - 30 });
  t.ok(verifier().verify(tok, NOW * 1000).ok, '30 s past exp: inside the 60 s skew');
  t.match(verifier().verify(tok, (NOW + 31) * 1000), { ok: false, reason: 'jwt_expired' }, '61 s past exp');
  const strict = new JwtVerifier(provider(keys, { clockSkewSeconds: 10 }));
  t.match(strict.verify(tok, NOW * 1000), { ok: false, reason: 'jwt_expired' }, "the provider's clock_skew_seconds applies");
});

t.test('not yet valid: nbf beyond the skew is refused, within it accepted', async (t) => {
  const v = verifier();
  t.ok(v.verify(await token(es, 'ES256', { nbf: NOW + 50 }), NOW * 1000).ok);
  t.match(v.verify(await token(es, 'ES256', { nbf: NOW + 61 }), NOW * 1000), { ok: false, reason: 'jwt_not_yet_valid' });
});

t.test('a wrong audience is refused; any one allowed audience suffices, scheme and trailing slash ignored', async (t) => {
  const v = verifier();
  t.match(v.verify(await token(es, 'ES256', { aud: 'other.example.com' }), NOW * 1000), { ok: false, reason: 'jwt_audience_mismatch' });
  t.match(v.verify(await token(es, 'ES256', { aud: undefined }), NOW * 1000), { ok: false, reason: 'jwt_audience_mismatch' }, 'no aud at all');
  t.ok(v.verify(await token(es, 'ES256', { aud: ['x', 'https://api.example.com/'] }), NOW * 1000).ok);
  const tok = await token(es, 'ES256', { aud: 'other.example.com' });
  t.ok(v.verify(tok, NOW * 1000, ['other.example.com']).ok, 'provider_and_audiences overrides the list');
  t.ok(new JwtVerifier(provider(keys)).verify(tok, NOW * 1000).ok, 'no audiences configured: not checked');
  t.equal(normalizeAudience('http://a/'), 'a');
});

t.test('an unknown kid is refused with its own code, and the kid is reported', async (t) => {
  const other = await keyPair('ES256', 'rotated-2');
  t.match(verifier().verify(await token(other, 'ES256'), NOW * 1000), { ok: false, reason: 'jwt_unknown_kid', kid: 'rotated-2' });
});

t.test('a kid whose key does not fit the algorithm, and no kid: the keys that fit are tried', async (t) => {
  t.match(verifier().verify(await token(rs, 'RS256', {}, { kid: 'es-1' }), NOW * 1000), { ok: false, reason: 'jwt_key_mismatch' });
  const noKid = await new SignJWT({ iss: ISS, aud: 'api.example.com', exp: NOW + 60 }).setProtectedHeader({ alg: 'ES256' }).sign(es.privateKey);
  t.ok(verifier().verify(noKid, NOW * 1000).ok, 'no kid: the P-256 key is found by its curve');
  const onlyRsa = new JwtVerifier(provider(keysOf([rs.jwk])));
  t.match(onlyRsa.verify(noKid, NOW * 1000), { ok: false, reason: 'jwt_key_mismatch' }, 'no key of that type at all');
  const wrongKey = await new SignJWT({ iss: ISS, exp: NOW + 60 }).setProtectedHeader({ alg: 'ES256' }).sign((await generateKeyPair('ES256')).privateKey);
  t.match(onlyRsa.verify(wrongKey, NOW * 1000), { ok: false, reason: 'jwt_key_mismatch' });
  t.match(new JwtVerifier(provider(keysOf([es.jwk]))).verify(wrongKey, NOW * 1000), { ok: false, reason: 'jwt_bad_signature' }, 'no kid, the fitting keys all fail');
});

t.test('over 8 KiB is refused before it is parsed', async (t) => {
  const big = `${'a'.repeat(MAX_JWT_BYTES)}.b.c`;
  t.match(verifier().verify(big, NOW * 1000), { ok: false, reason: 'jwt_too_large' });
  const padded = await token(es, 'ES256', { pad: 'x'.repeat(MAX_JWT_BYTES) });
  t.match(verifier().verify(padded, NOW * 1000), { ok: false, reason: 'jwt_too_large' }, 'a genuinely signed token is refused too');
  t.equal(unverifiedIssuer(big), undefined);
});

t.test('malformed base64url, JSON and shape are refused as jwt_malformed', async (t) => {
  const tok = await token(es, 'ES256');
  const [h, p, s] = tok.split('.');
  const v = verifier();
  for (const [what, bad] of [
    ['a character outside base64url in the payload', `${h}.${p!.slice(0, 5)}@${p!.slice(6)}.${s}`],
    ['standard base64 (+ and /)', `${h}.${p}+/.${s}`],
    ['padding', `${h}.${p}==.${s}`],
    ['two parts', `${h}.${p}`],
    ['four parts', `${tok}.x`],
    ['payload not JSON', `${h}.${Buffer.from('not json').toString('base64url')}.${s}`],
    ['payload a JSON array', `${h}.${b64([1])}.${s}`],
    ['header not JSON', `${Buffer.from('{').toString('base64url')}.${p}.${s}`],
    ['empty', ''],
  ] as const) {
    t.match(v.verify(bad, NOW * 1000), { ok: false, reason: 'jwt_malformed' }, what);
  }
  const nonNumeric = await token(es, 'ES256', { nbf: 'later' as unknown as number });
  t.match(v.verify(nonNumeric, NOW * 1000), { ok: false, reason: 'jwt_malformed' }, 'a signed token with a non-numeric nbf');
});

t.test('a wrong issuer is refused before any key is looked up', async (t) => {
  const other = await keyPair('ES256', 'unknown-kid');
  t.match(verifier().verify(await token(other, 'ES256', { iss: 'https://evil.example.com' }), NOW * 1000), { ok: false, reason: 'jwt_issuer_mismatch' }, 'not jwt_unknown_kid: that would trigger a JWKS refetch');
  t.ok(new JwtVerifier(provider(keys, { issuer: '' })).verify(await token(es, 'ES256', { iss: 'anyone' }), NOW * 1000).ok, 'an empty provider issuer accepts any iss');
});

t.test('require_expiration and max_lifetime', async (t) => {
  const noExp = await token(es, 'ES256', { exp: undefined });
  t.ok(verifier().verify(noExp, NOW * 1000).ok, 'exp is optional by default');
  t.match(new JwtVerifier(provider(keys, { requireExpiration: true })).verify(noExp, NOW * 1000), { ok: false, reason: 'jwt_exp_missing' });
  const life = new JwtVerifier(provider(keys, { maxLifetimeSeconds: 600 }));
  t.match(life.verify(noExp, NOW * 1000), { ok: false, reason: 'jwt_exp_missing' });
  t.match(life.verify(await token(es, 'ES256'), NOW * 1000), { ok: false, reason: 'jwt_lifetime_exceeded' }, 'iat..exp is an hour');
  t.ok(life.verify(await token(es, 'ES256', { exp: NOW + 600 }), NOW * 1000).ok);
  t.ok(life.verify(await token(es, 'ES256', { iat: undefined, exp: NOW + 500 }), NOW * 1000).ok, 'without iat: what is left of it counts');
});

t.test('the verified-token cache never extends a token: time and audiences are checked on every hit', async (t) => {
  const v = new JwtVerifier(provider(keys, { audiences: ['api.example.com'] }), 2);
  const tok = await token(es, 'ES256', { exp: NOW + 100 });
  const first = v.verify(tok, NOW * 1000);
  t.ok(first.ok);
  const again = v.verify(tok, NOW * 1000);
  t.ok(again.ok && first.ok && again.jwt === first.jwt, 'the second check is a cache hit (same object)');
  t.match(v.verify(tok, (NOW + 161) * 1000), { ok: false, reason: 'jwt_expired' }, 'expiry still applies to a cached token');
  t.match(v.verify(tok, NOW * 1000, ['elsewhere']), { ok: false, reason: 'jwt_audience_mismatch' });
  // Bounded: two more tokens evict the first one.
  for (const sub of ['b', 'c']) t.ok(v.verify(await token(es, 'ES256', { sub }), NOW * 1000).ok);
  const evicted = v.verify(tok, NOW * 1000);
  t.ok(evicted.ok && first.ok && evicted.jwt !== first.jwt, 'verified anew after eviction');
});

t.test('EdDSA with a garbage signature length and RSA keys of the wrong size fail as bad signatures, never throw', async (t) => {
  const tok = await token(ed, 'EdDSA');
  const [h, p] = tok.split('.');
  t.match(verifier().verify(`${h}.${p}.AAAA`, NOW * 1000), { ok: false, reason: 'jwt_bad_signature' });
  // A raw RS256 signature made with node:crypto verifies the same way as jose's.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'raw', alg: 'RS256' };
  const head = b64({ alg: 'RS256', kid: 'raw' });
  const body = b64({ iss: ISS, exp: NOW + 10 });
  const sig = cryptoSign('sha256', Buffer.from(`${head}.${body}`), privateKey).toString('base64url');
  t.ok(new JwtVerifier(provider(keysOf([jwk]))).verify(`${head}.${body}.${sig}`, NOW * 1000).ok);
});

t.test('unverifiedIssuer reads iss without checking anything', async (t) => {
  t.equal(unverifiedIssuer(await token(es, 'ES256')), ISS);
  t.equal(unverifiedIssuer(`${b64({ alg: 'ES256' })}.${b64({ sub: 'x' })}.AA`), undefined);
  t.equal(unverifiedIssuer('nope'), undefined);
});
