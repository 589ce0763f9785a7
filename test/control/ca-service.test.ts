// The CA over real TLS gRPC: tokens for the first SVID, mTLS for renewals, and every refusal with its status and metric.
import t from 'tap';
import { X509Certificate, webcrypto } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { CaClient, type CaCredential } from '../../src/identity/ca-client.js';
import { createCsr } from '../../src/identity/csr.js';
import { IdentityError } from '../../src/identity/errors.js';
import { checkX509Svid } from '../../src/identity/svid.js';
import { requestSvid } from '../../src/identity/workload-identity.js';
import { systemClock } from '../../src/core/clock.js';
import { TD } from '../helpers/mesh.js';
import { startControl } from '../helpers/mesh-ca.js';
import { makePki } from '../helpers/pki.js';
import { hasCommand } from '../helpers/tools.js';

const run = promisify(execFile);
const REVIEWS = `spiffe://${TD}/ns/default/sa/reviews`;
const RATINGS = `spiffe://${TD}/ns/default/sa/ratings`;

async function keys() {
  return (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

async function refusal(p: Promise<unknown>): Promise<IdentityError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof IdentityError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

async function metric(registry: { getSingleMetricAsString(n: string): Promise<string> }, name: string): Promise<string> {
  return registry.getSingleMetricAsString(name);
}

t.test('first SVID by token, renewal by mTLS, both X509-SVIDs that openssl verifies', async (t) => {
  const ca = await startControl();
  t.teardown(() => ca.close());
  const client = new CaClient({ address: ca.address, roots: () => readFileSync(ca.rootFile, 'utf8'), clock: systemClock, trustDomain: TD });
  const token = readFileSync(await ca.token('default/reviews'), 'utf8');
  const first = await requestSvid(client, { spiffeId: REVIEWS, ttlMs: 3600_000, instance: 'i1', credential: { token } });
  const leaf = new X509Certificate(first.chainPem);
  t.equal(leaf.subjectAltName, `URI:${REVIEWS}`);
  t.ok(checkX509Svid(leaf, { trustDomain: TD }).ok);
  t.equal(first.bundlePem, ca.server.authority.bundlePem, 'the last chain element is the trust bundle');
  const lifetime = Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
  t.ok(Math.abs(lifetime - 3600_000 - 60_000) <= 1000, 'requested 1 h plus the 1 min backdate');

  const renewed = await requestSvid(client, { spiffeId: REVIEWS, ttlMs: 600_000, instance: 'i1', credential: { certChainPem: first.chainPem, keyPem: first.keyPem } });
  t.not(new X509Certificate(renewed.chainPem).serialNumber, leaf.serialNumber);
  t.match(await metric(ca.registry, 'citadel_server_success_cert_issuance_count'), /auth="token"} 1\n[\s\S]*auth="svid"} 1/);
  t.match(ca.logs.join(''), /certificate issued/);

  if (hasCommand('openssl')) {
    const f = (n: string, body: string) => {
      const p = path.join(ca.dir, n);
      writeFileSync(p, body);
      return p;
    };
    const { stdout } = await run('openssl', ['verify', '-CAfile', f('root.pem', first.bundlePem), f('leaf.pem', renewed.chainPem)]);
    t.match(stdout, /OK/);
  }
});

t.test('refusals: replayed token, another identity, too long, no credential, bad CSR, foreign SVID', async (t) => {
  const ca = await startControl({ maxTtlMs: 24 * 3600_000 });
  // Tokens are spent durably: a restart of the CA does not make a spent one usable again.
  const spent = readFileSync(await ca.token('default/reviews'), 'utf8');
  t.teardown(() => ca.close());
  const client = new CaClient({ address: ca.address, roots: () => readFileSync(ca.rootFile, 'utf8'), clock: systemClock, trustDomain: TD });
  const ask = async (spiffeId: string, credential: CaCredential, ttlMs = 3600_000) => requestSvid(client, { spiffeId, ttlMs, instance: 'x', credential });

  // A bad CSR is refused before the token is looked at, so the token stays usable.
  const token = readFileSync(await ca.token('default/reviews'), 'utf8');
  const bad = await refusal(client.createCertificate({ csrPem: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', ttlSeconds: 60, instance: 'x', credential: { token } }));
  t.equal(bad.code, 'CA_REFUSED');
  t.match(bad.message, /INVALID_ARGUMENT/);
  t.ok(await ask(REVIEWS, { token }), 'the token survived the bad CSR');

  const replay = await refusal(ask(REVIEWS, { token }));
  t.match(replay.message, /UNAUTHENTICATED.*(already used|replay)/i);

  const reviewsToken = readFileSync(await ca.token('default/reviews'), 'utf8');
  const other = await refusal(ask(RATINGS, { token: reviewsToken }));
  t.match(other.message, /PERMISSION_DENIED/);
  t.match(other.message, /ratings/);
  t.ok(await ask(REVIEWS, { token: reviewsToken }), 'a refused CSR did not spend the token');

  const long = await refusal(ask(REVIEWS, { token: readFileSync(await ca.token('default/reviews'), 'utf8') }, 25 * 3600_000));
  t.match(long.message, /INVALID_ARGUMENT.*maximum/);

  const none = await refusal(client.createCertificate({ csrPem: await createCsr(await keys(), REVIEWS), ttlSeconds: 60, instance: 'x', credential: { token: '' } }));
  t.match(none.message, /UNAUTHENTICATED/);

  // An SVID from another CA for the same ID proves nothing here: TLS does not verify it, so no identity.
  const foreign = await makePki();
  const f = await foreign.issue(REVIEWS);
  const stranger = await refusal(ask(REVIEWS, { certChainPem: f.chainPem, keyPem: f.keyPem }));
  t.match(stranger.message, /UNAUTHENTICATED/);

  // A valid SVID for reviews cannot get ratings.
  const mine = await ask(REVIEWS, { token: readFileSync(await ca.token('default/reviews'), 'utf8') });
  const steal = await refusal(ask(RATINGS, { certChainPem: mine.chainPem, keyPem: mine.keyPem }));
  t.match(steal.message, /PERMISSION_DENIED/);

  await requestSvid(client, { spiffeId: REVIEWS, ttlMs: 600_000, instance: 'x', credential: { token: spent } });
  const port = ca.server.grpcPort;
  await ca.server.close();
  const again = await startControl({ caDir: ca.caDir, port });
  t.teardown(() => again.close());
  const afterRestart = await refusal(requestSvid(client, { spiffeId: REVIEWS, ttlMs: 600_000, instance: 'x', credential: { token: spent } }));
  t.match(afterRestart.message, /UNAUTHENTICATED.*(already used|replay)/i, 'spent before the restart, refused after it');

  const refusals = await metric(ca.registry, 'outrigger_ca_refusals_total');
  for (const reason of ['malformed', 'token_replayed', 'san_mismatch', 'ttl_too_long', 'no_credential']) t.match(refusals, new RegExp(`reason="${reason}"`), reason);
  t.match(await metric(ca.registry, 'citadel_server_authentication_failure_count'), / [1-9]/);
  t.match(ca.logs.join(''), /certificate refused/);
});

t.test('a CSR asking for more than the proven identity is refused over gRPC: extra SANs, CA:true', async (t) => {
  const ca = await startControl();
  t.teardown(() => ca.close());
  const client = new CaClient({ address: ca.address, roots: () => readFileSync(ca.rootFile, 'utf8'), clock: systemClock, trustDomain: TD });
  const x509 = await import('../../src/identity/x509.js');
  const csrWith = async (extensions: InstanceType<typeof x509.Extension>[]) => {
    const k = await keys();
    const req = await x509.Pkcs10CertificateRequestGenerator.create({ name: `O=${TD}`, keys: k as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, extensions }, webcrypto as never);
    return req.toString('pem');
  };
  const ask = async (csrPem: string) => refusal(client.createCertificate({ csrPem, ttlSeconds: 600, instance: 'x', credential: { token: readFileSync(await ca.token('default/reviews'), 'utf8') } }));
  const extra = await ask(await csrWith([new x509.SubjectAlternativeNameExtension([{ type: 'url', value: REVIEWS }, { type: 'dns', value: 'reviews.example.com' }])]));
  t.match(extra.message, /PERMISSION_DENIED/);
  t.match(extra.message, /reviews\.example\.com/);
  const caReq = await ask(await csrWith([new x509.SubjectAlternativeNameExtension([{ type: 'url', value: REVIEWS }]), new x509.BasicConstraintsExtension(true, undefined, true)]));
  t.match(caReq.message, /PERMISSION_DENIED/);
  t.match(caReq.message, /CA/);
  const refusals = await metric(ca.registry, 'outrigger_ca_refusals_total');
  t.match(refusals, /reason="extra_san"} 1/);
  t.match(refusals, /reason="ca_requested"} 1/);
});

t.test('the trust bundle watch needs an SVID and reports what each sidecar holds', async (t) => {
  const ca = await startControl();
  t.teardown(() => ca.close());
  const client = new CaClient({ address: ca.address, roots: () => readFileSync(ca.rootFile, 'utf8'), clock: systemClock, trustDomain: TD });
  const s = await requestSvid(client, { spiffeId: REVIEWS, ttlMs: 3600_000, instance: 'w1', credential: { token: readFileSync(await ca.token('default/reviews'), 'utf8') } });

  const anonymous = await new Promise<Error | undefined>((resolve) => {
    client.watch({ token: 'x' }, { onUpdate: () => {}, onEnd: resolve });
  });
  t.match(anonymous?.message, /UNAUTHENTICATED|SVID/);

  const updates: string[] = [];
  const w = await new Promise<{ ack(a: object): void; close(): void }>((resolve) => {
    const h = client.watch({ certChainPem: s.chainPem, keyPem: s.keyPem }, { onUpdate: (u) => { updates.push(u.bundle_version); resolve(h as never); }, onEnd: () => {} });
  });
  t.teardown(() => w.close());
  t.same(updates, [ca.server.authority.bundleVersion]);
  w.ack({ instance: 'w1', bundle_version: ca.server.authority.bundleVersion, issuer_fingerprint: ca.server.authority.issuerFingerprint });
  const { waitFor } = await import('../helpers/tools.js');
  await waitFor(() => ca.server.status().sidecars.some((x) => x.instance === 'w1' && x.bundle_current && x.issuer_current), 'ack recorded');
  t.equal(ca.server.status().sidecars[0]!.spiffe_id, REVIEWS);
});
