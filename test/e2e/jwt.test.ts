// RequestAuthentication end to end: caller → sidecar A (outbound) ═ mTLS ═► sidecar B (inbound, jwt_authn as istiod
// writes it, in a hand-written static bootstrap) → the app. Valid, invalid, missing and spoofed tokens; a gRPC caller.
import t from 'tap';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { startEchoApp } from '../helpers/apps.js';
import { FRONTEND_ID, REVIEWS_ID, inboundBootstrap, outboundBootstrap, runSidecar, tempDir, writeCertFiles } from '../helpers/mesh.js';
import { makePki } from '../helpers/pki.js';
import { h2request, metricValue, request } from '../helpers/two-hop.js';

const ISS = 'https://accounts.example.com';
const JWT_URL = 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';

const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'key-1', alg: 'ES256', use: 'sig' }] });
const nowS = () => Math.floor(Date.now() / 1000);
const sign = (claims: Record<string, unknown> = {}, kid = 'key-1', key = privateKey) =>
  new SignJWT({ iss: ISS, sub: 'alice', aud: 'reviews', iat: nowS(), exp: nowS() + 3600, ...claims }).setProtectedHeader({ alg: 'ES256', kid }).sign(key);

/**
 * The http_filters entry istiod's convertToEnvoyJwtConfig writes for one jwtRule with outputPayloadToHeader and
 * outputClaimToHeaders: provider origins-0 with the JWKS inlined, one rule {prefix: /} requiring the provider or
 * nothing (a token, if sent, must be valid), CORS preflight bypassed.
 */
const JWT_FILTER = {
  name: 'envoy.filters.http.jwt_authn',
  typed_config: {
    '@type': JWT_URL,
    providers: {
      'origins-0': {
        issuer: ISS,
        audiences: ['reviews'],
        local_jwks: { inline_string: jwks },
        payload_in_metadata: ISS,
        forward_payload_header: 'x-jwt-payload',
        claim_to_headers: [{ header_name: 'x-jwt-sub', claim_name: 'sub' }],
      },
    },
    rules: [{ match: { prefix: '/' }, requires: { requires_any: { requirements: [{ provider_name: 'origins-0' }, { allow_missing: {} }] } } }],
    bypass_cors_preflight: true,
  },
};

interface Hcm {
  http_filters: object[];
}

t.test('jwt_authn on the inbound sidecar, from a static bootstrap, behind real mTLS', async (t) => {
  const pki = await makePki();
  const tmp = tempDir('outrigger-jwt-e2e-');
  t.teardown(() => tmp.cleanup());
  const fe = await pki.issue(FRONTEND_ID);
  const rv = await pki.issue(REVIEWS_ID);
  const app = await startEchoApp('reviews-app', { h2c: true });
  t.teardown(() => app.close());
  const inbound = inboundBootstrap({ appPort: app.port, appProtocol: 'HTTP2', files: writeCertFiles(tmp.dir, 'reviews', { chainPem: rv.chainPem, keyPem: rv.keyPem, rootPem: pki.rootPem }) });
  const hcm = inbound.static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config as unknown as Hcm;
  hcm.http_filters = [JWT_FILTER, ...hcm.http_filters];
  const b = await runSidecar(inbound);
  t.teardown(() => b.shutdown());
  const a = await runSidecar(outboundBootstrap({ peerPort: b.port('inbound'), files: writeCertFiles(tmp.dir, 'frontend', { chainPem: fe.chainPem, keyPem: fe.keyPem, rootPem: pki.rootPem }) }));
  t.teardown(() => a.shutdown());
  const out = a.port('outbound');
  const spoofed = { 'x-jwt-payload': Buffer.from('{"sub":"admin"}').toString('base64url'), 'x-jwt-sub': 'admin' };

  await t.test('a valid token passes: the app sees the payload header, the claim header, no token, never the spoofed values', async (t) => {
    const tok = await sign();
    const r = await request(out, { path: '/echo', headers: { authorization: `Bearer ${tok}`, ...spoofed } });
    t.equal(r.status, 200);
    const seen = app.seen.at(-1)!.headers;
    t.equal(seen['x-jwt-payload'], tok.split('.')[1]);
    t.equal(JSON.parse(Buffer.from(String(seen['x-jwt-payload']), 'base64url').toString()).sub, 'alice');
    t.equal(seen['x-jwt-sub'], 'alice');
    t.equal(seen.authorization, undefined, 'forward unset: the token stops at the sidecar');
    t.match(String(seen['x-forwarded-client-cert']), /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/frontend/, 'the caller identity is the mTLS peer (SANITIZE_SET), whatever the client sent');
  });

  await t.test('no token passes (authorization policy decides later), and spoofed output headers are stripped', async (t) => {
    const before = app.seen.length;
    const r = await request(out, { path: '/echo', headers: { ...spoofed, 'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/default/sa/admin' } });
    t.equal(r.status, 200);
    t.equal(app.seen.length, before + 1);
    const seen = app.seen.at(-1)!.headers;
    t.equal(seen['x-jwt-payload'], undefined);
    t.equal(seen['x-jwt-sub'], undefined);
    t.notMatch(String(seen['x-forwarded-client-cert']), /sa\/admin/, 'a spoofed XFCC never reaches the app');
  });

  await t.test('invalid tokens get 401 with WWW-Authenticate and never reach the app', async (t) => {
    const before = app.seen.length;
    const other = await generateKeyPair('ES256');
    for (const [what, tok, reason] of [
      ['expired', await sign({ exp: nowS() - 120 }), 'jwt_expired'],
      ['signed by another key', await sign({}, 'key-1', other.privateKey), 'jwt_bad_signature'],
      ['unknown kid', await sign({}, 'key-2', other.privateKey), 'jwt_unknown_kid'],
      ['garbage', 'not.a.jwt', 'jwt_malformed'],
    ] as const) {
      const r = await request(out, { path: '/echo?q=1', headers: { authorization: `Bearer ${tok}` } });
      t.equal(r.status, 401, what);
      t.equal(r.headers['www-authenticate'], 'Bearer realm="http://reviews/echo", error="invalid_token"', what);
      t.match(JSON.parse(r.body), { code: 'jwt_invalid', message: new RegExp(reason) }, what);
    }
    const aud = await request(out, { headers: { authorization: `Bearer ${await sign({ aud: 'ratings' })}` } });
    t.equal(aud.status, 403, 'a token for another audience: 403, as Envoy answers it');
    t.equal(app.seen.length, before, 'the app saw none of them');
    t.equal(await metricValue(b, 'outrigger_jwt_authn_total', { outcome: 'denied', reason: 'jwt_expired' }), 1);
    t.equal(await metricValue(b, 'outrigger_jwt_authn_total', { outcome: 'allowed' }), 1);
    t.equal(await metricValue(b, 'outrigger_jwt_authn_total', { outcome: 'missing' }), 1);
  });

  await t.test('a gRPC caller with a bad token gets UNAUTHENTICATED; with a good one it gets through', async (t) => {
    const grpc = { ':method': 'POST', ':path': '/reviews.Reviews/Get', 'content-type': 'application/grpc', te: 'trailers' };
    const bad = await h2request(out, { ...grpc, authorization: 'Bearer x.y.z' }, '');
    t.equal(bad.status, 200);
    t.equal(bad.headers['grpc-status'], '16');
    t.match(decodeURIComponent(String(bad.headers['grpc-message'])), /jwt_malformed/);
    const good = await h2request(out, { ...grpc, authorization: `Bearer ${await sign()}` }, '');
    t.equal(good.headers['grpc-status'] ?? good.trailers['grpc-status'], undefined, 'no local reply');
    t.equal(app.seen.at(-1)!.headers['x-jwt-sub'], 'alice');
  });
});
