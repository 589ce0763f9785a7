// Bootstrap tokens: round trip, each refusal reason, single use (also across restarts), ±5 min clock skew, bounded replay cache, the key and spent-token files.
import t from 'tap';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SignJWT, decodeJwt, decodeProtectedHeader, importPKCS8 } from 'jose';
import { FakeClock } from '../../src/core/clock.js';
import { IdentityError } from '../../src/identity/errors.js';
import { DEFAULT_MAX_SKEW_MS, TokenVerifier, loadOrCreateTokenKey, mintBootstrapToken, type TokenRejectReason } from '../../src/identity/token.js';
import { tempDir } from '../helpers/mesh.js';

const ID = 'spiffe://cluster.local/ns/default/sa/frontend';
const MIN = 60_000;

async function setup(t: { teardown(fn: () => void): void }) {
  const tmp = tempDir('outrigger-token-');
  t.teardown(tmp.cleanup);
  const caDir = path.join(tmp.dir, 'ca');
  const key = await loadOrCreateTokenKey(caDir);
  const clock = new FakeClock();
  return { tmp, caDir, key, clock, verifier: new TokenVerifier(key, { clock }) };
}

/** Resolves to the refusal's reason (and message) or fails the test if the token was accepted. */
async function refusal(p: Promise<unknown>): Promise<{ reason: TokenRejectReason; message: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof IdentityError && e.code === 'TOKEN_INVALID') return { reason: e.details.reason as TokenRejectReason, message: e.message };
    throw e;
  }
  throw new Error('token was accepted');
}

t.test('round trip: the claims the CA relies on', async (t) => {
  const { key, clock, verifier } = await setup(t);
  const token = await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock });
  const claims = decodeJwt(token);
  t.match(claims, { iss: 'outrigger-ca', aud: 'outrigger-ca', sub: ID });
  t.equal(claims.iat, clock.now() / 1000);
  t.equal(claims.nbf, claims.iat);
  t.equal(claims.exp, claims.iat! + 600);
  t.match(claims.jti, /^[A-Za-z0-9_-]{22}$/, '128 random bits, base64url');
  t.match(decodeProtectedHeader(token), { alg: 'ES256', typ: 'outrigger-bootstrap+jwt', kid: key.kid });
  const ok = await verifier.verify(token);
  t.same(ok, { spiffeId: ID, jti: claims.jti, expiresAt: clock.now() + 10 * MIN });
  const other = await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock });
  t.not(decodeJwt(other).jti, claims.jti, 'every token has its own jti');
});

t.test('minting refuses bad identities and lifetimes', async (t) => {
  const { key, clock } = await setup(t);
  await t.rejects(mintBootstrapToken(key, { spiffeId: 'spiffe://cluster.local/ns/default/sa/a b', ttlMs: MIN, clock }), { code: 'SPIFFE_ID_INVALID', message: /path segment "a b"/ });
  await t.rejects(mintBootstrapToken(key, { spiffeId: 'spiffe://cluster.local', ttlMs: MIN, clock }), { code: 'SPIFFE_ID_INVALID', message: /needs a path/ });
  await t.rejects(mintBootstrapToken(key, { spiffeId: 'https://cluster.local/ns/a/sa/b', ttlMs: MIN, clock }), { code: 'SPIFFE_ID_INVALID' });
  for (const ttlMs of [0, -1, NaN, 24 * 60 * MIN + 1]) {
    await t.rejects(mintBootstrapToken(key, { spiffeId: ID, ttlMs, clock }), { code: 'TOKEN_INVALID', message: /at most 24h/ }, `ttl ${ttlMs}`);
  }
  const day = decodeJwt(await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 24 * 60 * MIN, clock }));
  t.equal(day.exp! - day.iat!, 86_400, '24 h exactly is allowed');
  const tiny = decodeJwt(await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 1, clock }));
  t.equal(tiny.exp! - tiny.iat!, 1, 'a sub-second lifetime rounds up to one second, not zero');
});

t.test('single use: the second presentation is refused as replayed', async (t) => {
  const { key, clock, verifier } = await setup(t);
  const token = await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock });
  await verifier.verify(token);
  const r = await refusal(verifier.verify(token));
  t.equal(r.reason, 'replayed');
  t.match(r.message, /already used/);
  t.match(r.message, ID);
  // Concurrent presentations: exactly one wins.
  const fresh = await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock });
  const results = await Promise.allSettled([verifier.verify(fresh), verifier.verify(fresh), verifier.verify(fresh)]);
  t.equal(results.filter((x) => x.status === 'fulfilled').length, 1, 'one of three concurrent uses succeeds');
});

t.test('expired, not yet valid, wrong audience, another key, garbage', async (t) => {
  const { tmp, key, clock, verifier } = await setup(t);
  const token = await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock });
  clock.advance(10 * MIN + DEFAULT_MAX_SKEW_MS);
  const exp = await refusal(verifier.verify(token));
  t.equal(exp.reason, 'expired');
  t.match(exp.message, /expired at 2026-01-01T00:10:00\.000Z/);

  const ahead = new FakeClock(clock.now() + DEFAULT_MAX_SKEW_MS + MIN);
  const early = await refusal(verifier.verify(await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock: ahead })));
  t.equal(early.reason, 'not_yet_valid');
  t.match(early.message, /not valid before .* more than 5m ahead/);

  // Signed with the right key but for another audience or issuer (a hand-made token: mint never does this).
  const keyPem = readFileSync(key.file, 'utf8');
  const signer = await importPKCS8(keyPem, 'ES256');
  const now = clock.now() / 1000;
  const forge = (claims: Record<string, unknown>, header: Record<string, unknown> = {}) =>
    new SignJWT({ iss: 'outrigger-ca', aud: 'outrigger-ca', sub: ID, iat: now, nbf: now, exp: now + 600, jti: 'AAAAAAAAAAAAAAAAAAAAAA', ...claims })
      .setProtectedHeader({ alg: 'ES256', typ: 'outrigger-bootstrap+jwt', ...header })
      .sign(signer);
  const aud = await refusal(verifier.verify(await forge({ aud: 'istio-ca' })));
  t.equal(aud.reason, 'wrong_audience');
  t.match(aud.message, /"istio-ca"/);
  t.equal((await refusal(verifier.verify(await forge({ iss: 'someone' })))).reason, 'malformed');
  t.match((await refusal(verifier.verify(await forge({}, { typ: 'JWT' })))).message, /not a bootstrap token/);
  t.equal((await refusal(verifier.verify(await forge({ jti: undefined })))).reason, 'malformed', 'no jti: no replay check possible');
  t.equal((await refusal(verifier.verify(await forge({ jti: 'x' })))).reason, 'malformed');
  t.match((await refusal(verifier.verify(await forge({ sub: 'spiffe://cluster.local' })))).message, /not a workload SPIFFE ID/);
  t.match((await refusal(verifier.verify(await forge({ sub: 'spiffe://cluster.local/ns/../sa/x' })))).message, /not a workload SPIFFE ID/);
  const long = await refusal(verifier.verify(await forge({ exp: now + 86_401 })));
  t.equal(long.reason, 'malformed');
  t.match(long.message, /at most 24h/);
  t.equal((await refusal(verifier.verify(await forge({ iat: now - 86_400 - 400, nbf: now - 86_400 - 400, exp: now + 100 })))).reason, 'expired', 'issued more than 24 h ago');

  const otherKey = await loadOrCreateTokenKey(path.join(tmp.dir, 'other-ca'));
  const foreign = await refusal(verifier.verify(await mintBootstrapToken(otherKey, { spiffeId: ID, ttlMs: 10 * MIN, clock })));
  t.equal(foreign.reason, 'bad_signature');
  t.match(foreign.message, `the token names key ${otherKey.kid}`);
  const good = await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock });
  const [h, p, s] = good.split('.');
  const alteredPayload = Buffer.from(JSON.stringify({ ...decodeJwt(good), sub: 'spiffe://cluster.local/ns/kube-system/sa/admin' })).toString('base64url');
  t.equal((await refusal(verifier.verify(`${h}.${alteredPayload}.${s}`))).reason, 'bad_signature', 'an edited identity breaks the signature');
  const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'outrigger-bootstrap+jwt' })).toString('base64url')}.${p}.`;
  t.equal((await refusal(verifier.verify(none))).reason, 'bad_signature', 'alg "none" is refused');

  for (const garbage of ['', 'not a jwt', 'a.b.c', `${h}.${p}`, 'x'.repeat(5000)]) {
    t.equal((await refusal(verifier.verify(garbage))).reason, 'malformed', `garbage ${JSON.stringify(garbage.slice(0, 12))}`);
  }
  t.equal(verifier.replayCacheSize, 0, 'nothing refused is remembered');
});

t.test('clock skew of ±5 minutes between the minting machine and the CA', async (t) => {
  // Behaviour: the verifier allows DEFAULT_MAX_SKEW_MS (5 min) either way on nbf/iat and exp, so a token from
  // a machine up to 5 min ahead is usable at once, and one from a machine 5 min behind keeps its full lifetime.
  t.equal(DEFAULT_MAX_SKEW_MS, 5 * MIN);
  const { key, clock, verifier } = await setup(t);

  const ahead = new FakeClock(clock.now() + 5 * MIN);
  const fromAhead = await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock: ahead });
  t.equal((await verifier.verify(fromAhead)).spiffeId, ID, '+5 min: usable immediately');

  const behind = new FakeClock(clock.now() - 5 * MIN);
  const fromBehind = await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock: behind });
  const late = await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock: behind });
  t.equal((await verifier.verify(fromBehind)).spiffeId, ID, '-5 min: usable immediately');
  clock.advance(10 * MIN - 1000);
  t.equal((await verifier.verify(late)).spiffeId, ID, '-5 min: still usable just before its full 10 min lifetime ends here');
  // Within the extended window the replay cache still remembers both tokens.
  t.equal((await refusal(verifier.verify(fromBehind))).reason, 'replayed');
  t.equal((await refusal(verifier.verify(fromAhead))).reason, 'replayed');

  const strict = new TokenVerifier(key, { clock, maxSkewMs: 0 });
  const tight = await refusal(strict.verify(await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock: new FakeClock(clock.now() + 5 * MIN) })));
  t.equal(tight.reason, 'not_yet_valid', 'with maxSkewMs 0 the same +5 min token is refused');
  t.match(tight.message, /more than 0s ahead/);
  const skewed = await refusal(strict.verify(await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 2 * MIN, clock: new FakeClock(clock.now() - 5 * MIN) })));
  t.equal(skewed.reason, 'expired', 'and a -5 min token shorter than the skew is born expired');
  t.throws(() => new TokenVerifier(key, { clock, maxSkewMs: -1 }), RangeError);
});

t.test('the replay cache forgets tokens once they could no longer pass, and stays bounded', async (t) => {
  const { key, clock, verifier } = await setup(t);
  const used: string[] = [];
  for (let i = 0; i < 50; i++) {
    const tok = await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock });
    await verifier.verify(tok);
    used.push(tok);
    clock.advance(1000);
  }
  t.equal(verifier.replayCacheSize, 50);
  // Past every exp + skew allowance (+ the extra step-back margin): the next verify prunes them all.
  clock.advance(10 * MIN + 2 * DEFAULT_MAX_SKEW_MS);
  await verifier.verify(await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock }));
  t.equal(verifier.replayCacheSize, 1, 'only the live token is held');
  const again = await refusal(verifier.verify(used[0]!));
  t.equal(again.reason, 'expired', 'a replay after expiry is still refused, as expired');
  t.equal(verifier.replayCacheSize, 1);
  // Steady state: a token a minute with 10 min lifetimes holds about 10 + the allowance, not every token ever seen.
  for (let i = 0; i < 200; i++) {
    await verifier.verify(await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock }));
    clock.advance(MIN);
  }
  t.ok(verifier.replayCacheSize <= 21, `bounded: ${verifier.replayCacheSize} entries after 200 tokens`);
});

t.test('the key file: created 0600 on first use, atomically, and reused', async (t) => {
  const { tmp, caDir, key, clock } = await setup(t);
  t.equal(key.created, true);
  t.equal(key.file, path.join(caDir, 'token-key.pem'));
  t.equal(statSync(key.file).mode & 0o777, 0o600, 'owner-only');
  t.equal(statSync(caDir).mode & 0o077, 0, 'the new CA directory is owner-only too');
  t.match(readFileSync(key.file, 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8 PEM');
  t.same(readdirSync(caDir), ['token-key.pem'], 'no temp file left behind');
  const again = await loadOrCreateTokenKey(caDir);
  t.equal(again.created, false);
  t.equal(again.kid, key.kid, 'same key on the next start');
  // A token minted by one process (certs token) verifies in another (the control server) from the same dir.
  const verifier = new TokenVerifier(again, { clock });
  t.equal((await verifier.verify(await mintBootstrapToken(key, { spiffeId: ID, ttlMs: MIN, clock }))).spiffeId, ID);

  // Two first starts racing on one directory agree on one key.
  const raceDir = path.join(tmp.dir, 'race');
  const keys = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateTokenKey(raceDir)));
  t.equal(new Set(keys.map((k) => k.kid)).size, 1, 'every racer holds the key on disk');
  t.equal(keys.filter((k) => k.created).length, 1);
  t.same(readdirSync(raceDir), ['token-key.pem']);

  const bad = path.join(tmp.dir, 'bad');
  await loadOrCreateTokenKey(bad);
  writeFileSync(path.join(bad, 'token-key.pem'), '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
  await t.rejects(loadOrCreateTokenKey(bad), { code: 'CA_DIR_INVALID', message: /token-key\.pem: not a PKCS#8 EC P-256 private key/, details: { file: 'token-key.pem' } });
  const unreadable = path.join(tmp.dir, 'dir-as-file');
  await loadOrCreateTokenKey(unreadable);
  const f = path.join(unreadable, 'token-key.pem');
  rmSync(f);
  mkdirSync(f);
  await t.rejects(loadOrCreateTokenKey(unreadable), { code: 'CA_DIR_INVALID', message: /cannot read: EISDIR/ });
  t.ok(existsSync(caDir));
});

t.test('filesystems without hard links: the key is still written atomically (rename)', async (t) => {
  const fsp = await import('node:fs/promises');
  const { loadOrCreateTokenKey: load } = await t.mockImport<typeof import('../../src/identity/token.js')>('../../src/identity/token.js', {
    'node:fs/promises': { ...fsp, link: async () => Promise.reject(Object.assign(new Error('operation not permitted'), { code: 'EPERM' })) },
  });
  const tmp = tempDir('outrigger-token-');
  t.teardown(tmp.cleanup);
  const key = await load(path.join(tmp.dir, 'ca'));
  t.equal(key.created, true);
  t.equal(statSync(key.file).mode & 0o777, 0o600);
  t.same(readdirSync(path.join(tmp.dir, 'ca')), ['token-key.pem']);
  t.equal((await loadOrCreateTokenKey(path.join(tmp.dir, 'ca'))).kid, key.kid);
});

t.test('check then consume: checking does not spend; of two concurrent uses exactly one wins', async (t) => {
  const { key, clock, verifier } = await setup(t);
  const token = await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock });
  const checked = await verifier.check(token);
  t.same(await verifier.check(token), checked, 'a refused CSR leaves the token usable');
  t.equal(verifier.replayCacheSize, 0);
  const results = await Promise.allSettled([0, 1].map(async () => verifier.consume(await verifier.check(token))));
  t.equal(results.filter((x) => x.status === 'fulfilled').length, 1, 'one of two concurrent check+consume succeeds');
  const lost = results.find((x) => x.status === 'rejected') as PromiseRejectedResult;
  t.match(lost.reason, { code: 'TOKEN_INVALID', details: { reason: 'replayed' }, message: ID });
  t.equal((await refusal(verifier.check(token))).reason, 'replayed', 'once spent, check refuses it');
  t.throws(() => verifier.consume({ jti: 'bad jti\nAAAAAAAAAAAAAAAA', expiresAt: 1 }), { code: 'TOKEN_INVALID', details: { reason: 'malformed' } });
});

t.test('spent tokens survive a restart: tokens-used in the CA directory', async (t) => {
  const { caDir, key, clock } = await setup(t);
  const file = path.join(caDir, 'tokens-used');
  const first = new TokenVerifier(key, { clock, caDir });
  t.equal(statSync(file).mode & 0o777, 0o600, 'created owner-only on start');
  const token = await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock });
  const { jti, expiresAt } = await first.verify(token);
  t.equal(readFileSync(file, 'utf8'), `${jti} ${expiresAt}\n`, 'on disk before verify returned');
  const second = new TokenVerifier(key, { clock, caDir });
  t.equal(second.replayCacheSize, 1);
  t.equal((await refusal(second.verify(token))).reason, 'replayed', 'the restarted CA refuses the spent token');
  t.throws(() => second.consume({ jti, expiresAt }), { code: 'TOKEN_INVALID', details: { reason: 'replayed' } });
  t.equal((await second.verify(await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock }))).spiffeId, ID, 'fresh tokens still work');
  t.equal(readFileSync(file, 'utf8').split('\n').length, 3, 'appended, not rewritten');
  t.same(readdirSync(caDir).sort(), ['token-key.pem', 'tokens-used'], 'no temp file left behind');
});

t.test('tokens-used: expired and corrupt lines are dropped on load and the file compacted', async (t) => {
  const { caDir, key, clock } = await setup(t);
  const file = path.join(caDir, 'tokens-used');
  const v = new TokenVerifier(key, { clock, caDir });
  const short = await v.verify(await mintBootstrapToken(key, { spiffeId: ID, ttlMs: MIN, clock }));
  const long = await v.verify(await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 60 * MIN, clock }));
  appendFileSync(file, 'garbage line\nAAAAAAAAAAAAAAAAAAAAAA notanumber\n');
  t.equal(new TokenVerifier(key, { clock, caDir }).replayCacheSize, 2, 'corrupt lines skipped, no crash');
  t.equal(readFileSync(file, 'utf8'), `${short.jti} ${short.expiresAt}\n${long.jti} ${long.expiresAt}\n`, 'and compacted away');
  // Still within exp + 2 × skew of the short token: kept.
  clock.advance(MIN + 2 * DEFAULT_MAX_SKEW_MS - 1000);
  t.equal(new TokenVerifier(key, { clock, caDir }).replayCacheSize, 2);
  clock.advance(1000);
  const after = new TokenVerifier(key, { clock, caDir });
  t.equal(after.replayCacheSize, 1, 'the expired entry is dropped');
  t.equal(readFileSync(file, 'utf8'), `${long.jti} ${long.expiresAt}\n`, 'the file holds only live entries');
  t.equal(statSync(file).mode & 0o777, 0o600);
  t.same(readdirSync(caDir).sort(), ['token-key.pem', 'tokens-used']);
  // A torn last append (crash before fsync returned) is dropped and cannot glue onto the next line.
  appendFileSync(file, 'BBBBBBBBBBBBBBBB 17');
  const torn = new TokenVerifier(key, { clock, caDir });
  t.equal(torn.replayCacheSize, 1);
  t.equal(readFileSync(file, 'utf8'), `${long.jti} ${long.expiresAt}\n`);
});

t.test('tokens-used unreadable or unwritable: CA_DIR_INVALID naming the file', async (t) => {
  const { caDir, key, clock } = await setup(t);
  const file = path.join(caDir, 'tokens-used');
  mkdirSync(file);
  t.throws(() => new TokenVerifier(key, { clock, caDir }), { code: 'CA_DIR_INVALID', message: /tokens-used: cannot read the spent-token list: EISDIR/, details: { file: 'tokens-used' } });
  rmSync(file, { recursive: true });
  t.throws(() => new TokenVerifier(key, { clock, caDir: path.join(caDir, 'missing') }), { code: 'CA_DIR_INVALID', message: /cannot write the spent-token list: ENOENT/, details: { file: 'tokens-used' } });

  // Spending that cannot be made durable is refused, and the token stays unspent.
  const v = new TokenVerifier(key, { clock, caDir });
  rmSync(file);
  mkdirSync(file);
  const token = await mintBootstrapToken(key, { spiffeId: ID, ttlMs: 10 * MIN, clock });
  await t.rejects(v.verify(token), { code: 'CA_DIR_INVALID', message: /cannot record a spent bootstrap token: EISDIR/, details: { file: 'tokens-used' } });
  rmSync(file, { recursive: true });
  const { jti, expiresAt } = await v.verify(token);
  t.equal(readFileSync(file, 'utf8'), `\n${jti} ${expiresAt}\n`, 'after a failed append the next line starts fresh');
  t.equal(new TokenVerifier(key, { clock, caDir }).replayCacheSize, 1);
});
