// The JWKS resolver against a real HTTP server on 127.0.0.1: first fetch, 20-minute refresh, unknown-kid refresh with cooldown, failures.
import { generateKeyPairSync } from 'node:crypto';
import { Registry } from 'prom-client';
import t, { type Test } from 'tap';
import { FakeClock } from '../../src/core/clock.js';
import { FAKE_JWKS, JwksResolver, parseJwks, type JwksResolverOptions } from '../../src/control/jwks.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { createJwksMetrics, type JwksMetrics } from '../../src/telemetry/metrics.js';
import { deadPort, serveHttp } from '../helpers/http-app.js';

const MIN = 60_000;
const ISSUER = 'https://idp.example.com';

function jwks(...kids: string[]): string {
  return JSON.stringify({ keys: kids.map((kid) => ({ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }), kid, alg: 'ES256' })) });
}

/** What the IdP answers next: a body (200), a status with a body, a hang, or a body sent in chunks without a length. */
type Answer = { body: string; status?: number } | { hang: true } | { chunks: string[] };

async function idp(t: Test) {
  let answer: Answer = { body: jwks('k1') };
  let requests = 0;
  const port = await serveHttp(t, (_req, res) => {
    requests++;
    const a = answer;
    if ('hang' in a) return;
    if ('chunks' in a) {
      res.writeHead(200, { 'content-type': 'application/json' });
      for (const c of a.chunks) res.write(c);
      return void res.end();
    }
    res.writeHead(a.status ?? 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(a.body) });
    res.end(a.body);
  });
  const uri = `http://127.0.0.1:${port}/keys`;
  return {
    uri,
    set: (a: Answer) => void (answer = a),
    get requests() {
      return requests;
    },
  };
}

async function counts(m: JwksMetrics): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await m.fetches.get()).values) out[String(v.labels.result)] = v.value;
  for (const v of (await m.refreshRequests.get()).values) out[`refresh:${String(v.labels.result)}`] = v.value;
  return out;
}

function resolver(t: Test, extra: Partial<JwksResolverOptions> = {}) {
  const clock = new FakeClock();
  const metrics = createJwksMetrics(new Registry());
  let changes = 0;
  const r = new JwksResolver({ clock, logger: silentLogger(), metrics, onKeysChanged: () => changes++, ...extra });
  t.teardown(() => r.close());
  return {
    r,
    clock,
    metrics,
    get changes() {
      return changes;
    },
  };
}

/** An IdP and a resolver that has synced its one issuer and finished the first fetch. */
async function fetchedOnce(t: Test) {
  const s = await idp(t);
  const x = resolver(t);
  x.r.sync([{ issuer: ISSUER, jwksUri: s.uri }]);
  await x.r.settled();
  return { s, x };
}

t.test('parseJwks accepts what jose and the sidecar can use, and says what is wrong with the rest', (t) => {
  const fake = parseJwks(FAKE_JWKS);
  t.ok(fake.ok);
  t.strictSame(fake.ok && fake.kids, ['outrigger-keys-not-fetched-yet']);
  // The sidecar decoder's own parser: what it would NACK is refused here, before it is ever inlined.
  const none = 'has no usable public key (algorithms allowed: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA; HMAC keys are never accepted)';
  t.strictSame(parseJwks(JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] })), { ok: false, message: none }, 'HMAC keys only: a sidecar could verify nothing');
  t.strictSame(parseJwks(JSON.stringify({ keys: [{ kty: 'DSA', kid: 'd' }] })), { ok: false, message: none });
  t.strictSame(parseJwks(JSON.stringify({ keys: ['x'] })), { ok: false, message: 'keys[0]: is not a JSON object' });
  t.strictSame(parseJwks('{"keys": 1}'), { ok: false, message: 'is not a JWKS: a JSON object with a "keys" array is expected' });
  t.end();
});

t.test('the first fetch runs in the background; until it lands the translator sees no keys (and inlines FAKE_JWKS)', async (t) => {
  const s = await idp(t);
  const x = resolver(t);
  x.r.sync([{ issuer: ISSUER, jwksUri: s.uri }, { issuer: 'inline' }]);
  t.equal(x.r.lookup(s.uri), undefined);
  t.match(x.r.status(), [{ uri: s.uri, issuers: [ISSUER], state: 'pending', keys: 0 }]);
  await x.r.settled();
  const keys = x.r.lookup(s.uri)!;
  t.strictSame(JSON.parse(keys).keys.map((k: { kid: string }) => k.kid), ['k1']);
  t.equal(x.changes, 1, 'the first keys are a change: proxies get them');
  t.match(x.r.status(), [{ uri: s.uri, state: 'ok', keys: 1, kids: ['k1'], last_success: '2026-01-01T00:00:00.000Z', next_refresh: '2026-01-01T00:20:00.000Z' }]);
  t.strictSame(await counts(x.metrics), { ok: 1 });
  // A second issuer on the same URI joins the entry: no second fetch.
  x.r.sync([
    { issuer: ISSUER, jwksUri: s.uri },
    { issuer: 'other', jwksUri: s.uri },
  ]);
  await x.r.settled();
  t.equal(s.requests, 1);
  t.strictSame(x.r.status()[0]!.issuers, [ISSUER, 'other']);
});

t.test('keys refresh every 20 minutes on the injected clock; an unchanged set pushes nothing', async (t) => {
  const { s, x } = await fetchedOnce(t);
  const first = x.r.lookup(s.uri);
  x.clock.advance(20 * MIN - 1);
  await x.r.settled();
  t.equal(s.requests, 1, 'not before 20 minutes');
  x.clock.advance(1);
  await x.r.settled();
  t.equal(s.requests, 2);
  t.equal(x.r.lookup(s.uri), first);
  t.equal(x.changes, 1);
  s.set({ body: jwks('k2') });
  x.clock.advance(20 * MIN);
  await x.r.settled();
  t.strictSame(JSON.parse(x.r.lookup(s.uri)!).keys.map((k: { kid: string }) => k.kid), ['k2']);
  t.equal(x.changes, 2, 'rotated keys are pushed');
  t.strictSame(await counts(x.metrics), { ok: 2, unchanged: 1 });
});

t.test('an unknown kid refreshes at once, then at most once per cooldown per URI; a known kid or issuer fetches nothing', async (t) => {
  const { s, x } = await fetchedOnce(t);
  t.strictSame(x.r.requestRefresh(ISSUER, 'k1'), [{ uri: s.uri, outcome: 'known_kid' }], 'the sidecar is only behind on config');
  t.strictSame(x.r.requestRefresh('https://stranger', 'k9'), []);
  s.set({ body: jwks('k1', 'k2') });
  t.strictSame(x.r.requestRefresh(ISSUER, 'k2'), [{ uri: s.uri, outcome: 'fetching' }]);
  t.strictSame(x.r.requestRefresh(ISSUER, 'k2'), [{ uri: s.uri, outcome: 'cooldown' }], 'joined while it runs');
  await x.r.settled();
  t.equal(s.requests, 2);
  t.equal(x.changes, 2);
  t.strictSame(x.r.requestRefresh(ISSUER, 'k2'), [{ uri: s.uri, outcome: 'known_kid' }]);
  // Made-up kids: one fetch per cooldown, however many tokens.
  for (let i = 0; i < 50; i++) x.r.requestRefresh(ISSUER, `bogus-${i}`);
  await x.r.settled();
  t.equal(s.requests, 2, 'within 60 s of the last unknown-kid fetch');
  x.clock.advance(MIN);
  t.strictSame(x.r.requestRefresh(ISSUER, 'bogus'), [{ uri: s.uri, outcome: 'fetching' }]);
  await x.r.settled();
  t.equal(s.requests, 3);
  t.equal(x.changes, 2, 'same keys: nothing pushed');
  x.r.refused();
  t.match(await counts(x.metrics), { 'refresh:known_kid': 2, 'refresh:unknown_issuer': 1, 'refresh:fetching': 2, 'refresh:cooldown': 51, 'refresh:refused': 1 });
  // The refresh after a forced one is 20 minutes from it.
  t.equal(x.r.status()[0]!.next_refresh, new Date(x.clock.now() + 20 * MIN).toISOString());
});

t.test('a failed fetch keeps the last good keys, is reported in status, and is retried after a minute', async (t) => {
  const { s, x } = await fetchedOnce(t);
  const good = x.r.lookup(s.uri);
  s.set({ body: 'upstream broke', status: 503 });
  x.clock.advance(20 * MIN);
  await x.r.settled();
  t.equal(x.r.lookup(s.uri), good);
  t.match(x.r.status(), [{ state: 'stale', keys: 1, last_error: { at: '2026-01-01T00:20:00.000Z', message: `${s.uri} answered HTTP 503` }, next_refresh: '2026-01-01T00:21:00.000Z' }]);
  s.set({ body: '{"keys": "nope"}' });
  x.clock.advance(MIN);
  await x.r.settled();
  t.equal(x.r.lookup(s.uri), good);
  t.match(x.r.status(), [{ state: 'stale', last_error: { message: /^not a valid JWKS: / } }]);
  s.set({ body: jwks('k3') });
  x.clock.advance(MIN);
  await x.r.settled();
  t.match(x.r.status(), [{ state: 'ok', kids: ['k3'] }]);
  t.equal(x.changes, 2);
  t.strictSame(await counts(x.metrics), { ok: 2, http_error: 1, invalid: 1 });
});

t.test('a body over the size cap is refused, with or without a content-length', async (t) => {
  const s = await idp(t);
  const x = resolver(t, { maxBytes: 2000 });
  const big = JSON.stringify({ keys: [], pad: 'x'.repeat(3000) });
  s.set({ body: big });
  x.r.sync([{ issuer: ISSUER, jwksUri: s.uri }]);
  await x.r.settled();
  t.match(x.r.status(), [{ state: 'failing', keys: 0, last_error: { message: `${s.uri} sent ${Buffer.byteLength(big)} bytes, more than the 2000 allowed` } }]);
  s.set({ chunks: [big.slice(0, 1500), big.slice(1500)] });
  x.clock.advance(MIN);
  await x.r.settled();
  t.match(x.r.status(), [{ state: 'failing', last_error: { message: `${s.uri} sent more than the 2000 bytes allowed` } }]);
  t.equal(x.r.lookup(s.uri), undefined, 'still fail-closed');
  // A chunked body under the cap is read whole.
  const ok = jwks('k1');
  s.set({ chunks: [ok.slice(0, 10), ok.slice(10)] });
  x.clock.advance(MIN);
  await x.r.settled();
  t.equal(x.r.lookup(s.uri), ok);
  t.strictSame(await counts(x.metrics), { too_large: 2, ok: 1 });
});

t.test('a fetch that does not answer in time fails as a timeout on the injected clock; an unreachable IdP as a network error', async (t) => {
  const s = await idp(t);
  const x = resolver(t, { timeoutMs: 5000 });
  s.set({ hang: true });
  x.r.sync([{ issuer: ISSUER, jwksUri: s.uri }]);
  // The request reaches the server before the deadline passes.
  while (s.requests === 0) await new Promise((r) => setImmediate(r));
  x.clock.advance(5000);
  await x.r.settled();
  t.match(x.r.status(), [{ state: 'failing', last_error: { message: `${s.uri} did not answer within 5000 ms` } }]);
  const dead = `http://127.0.0.1:${await deadPort()}/keys`;
  x.r.sync([{ issuer: 'gone', jwksUri: dead }]);
  await x.r.settled();
  t.match(x.r.status(), [{ uri: dead, state: 'failing', last_error: { message: `cannot fetch ${dead}: ECONNREFUSED` } }], 'the URI no policy names any more is dropped');
  t.equal(x.r.lookup(s.uri), undefined);
  t.strictSame(await counts(x.metrics), { timeout: 1, network_error: 1 });
});

t.test('a URI dropped while its fetch runs, or a resolver closed meanwhile, takes no keys', async (t) => {
  const s = await idp(t);
  const x = resolver(t);
  x.r.sync([{ issuer: ISSUER, jwksUri: s.uri }]);
  x.r.sync([]);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(x.r.lookup(s.uri), undefined);
  t.strictSame(x.r.status(), []);
  const y = resolver(t);
  y.r.sync([{ issuer: ISSUER, jwksUri: s.uri }]);
  y.r.close();
  await y.r.settled();
  t.equal(y.r.lookup(s.uri), undefined);
  t.equal(x.changes + y.changes, 0);
  t.equal(y.clock.pending(), 0, 'nothing rescheduled after close');
});
