// Dev certificates: root → intermediate → SVIDs in Istio's layouts, reuse of the CA on re-runs, bad workloads refused.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { FakeClock, systemClock } from '../../src/core/clock.js';
import { writeDevCerts } from '../../src/identity/dev-certs.js';
import { checkX509Svid } from '../../src/identity/svid.js';
import { tempDir } from '../helpers/mesh.js';

function certs(file: string): X509Certificate[] {
  return (readFileSync(file, 'utf8').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n/g) ?? []).map((p) => new X509Certificate(p));
}

t.test('writes a root, an intermediate in the plugged-in CA layout, and one SVID per workload', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.cleanup());
  const r = await writeDevCerts({ dir: tmp.dir, trustDomain: 'dev.example', workloads: ['default/frontend', 'shop/reviews'], ttlMs: 3600_000, clock: systemClock });
  t.equal(r.ca, 'created');
  t.notOk(r.caReplacedBecause);
  const [root] = certs(r.rootCert);
  const [inter] = certs(r.intermediateCert);
  t.ok(root!.verify(root!.publicKey), 'root is self-signed');
  t.ok(inter!.verify(root!.publicKey), 'intermediate is signed by the root');
  t.ok(inter!.ca, 'intermediate is a CA');
  t.match(inter!.subjectAltName, 'URI:spiffe://dev.example');
  t.equal(statSync(r.rootKey).mode & 0o777, 0o600);
  // Istio's plugged-in CA files: ca-cert, ca-key, root-cert, cert-chain (= ca-cert + root).
  t.same(readdirSync(r.caDir).sort(), ['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem']);
  t.equal(statSync(path.join(r.caDir, 'ca-key.pem')).mode & 0o777, 0o600);
  t.same(certs(path.join(r.caDir, 'cert-chain.pem')).map((c) => c.fingerprint256), [inter!.fingerprint256, root!.fingerprint256]);
  t.equal(readFileSync(path.join(r.caDir, 'root-cert.pem'), 'utf8'), readFileSync(r.rootCert, 'utf8'));
  t.ok(r.intermediateNotAfter <= r.rootNotAfter);
  t.same(r.workloads.map((w) => w.spiffeId), ['spiffe://dev.example/ns/default/sa/frontend', 'spiffe://dev.example/ns/shop/sa/reviews']);
  for (const w of r.workloads) {
    const chain = certs(path.join(w.dir, 'cert-chain.pem'));
    t.equal(chain.length, 2, 'leaf + intermediate');
    t.equal(chain[1]!.fingerprint256, inter!.fingerprint256);
    t.ok(chain[0]!.verify(inter!.publicKey), `${w.spiffeId} is signed by the intermediate`);
    t.match(checkX509Svid(chain[0]!, { trustDomain: 'dev.example' }), { ok: true, id: { uri: w.spiffeId } });
    t.equal(statSync(path.join(w.dir, 'key.pem')).mode & 0o777, 0o600, 'key readable by its owner only');
    t.equal(readFileSync(path.join(w.dir, 'root-cert.pem'), 'utf8'), readFileSync(r.rootCert, 'utf8'));
    t.equal(w.notAfter, Date.parse(chain[0]!.validTo));
  }
  t.notOk(readdirSync(tmp.dir).some((f) => f.includes('.tmp-')), 'no temp files left');
});

t.test('a re-run renews the leaves under the same CA; a new CA when asked, or when the old one is unfit', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.cleanup());
  const clock = new FakeClock(Date.now());
  const o = { dir: tmp.dir, trustDomain: 'cluster.local', workloads: ['default/a'], ttlMs: 3600_000, clock };
  const first = await writeDevCerts(o);
  const rootFp = () => certs(first.rootCert)[0]!.fingerprint256;
  const leafSerial = () => certs(path.join(first.workloads[0]!.dir, 'cert-chain.pem'))[0]!.serialNumber;
  const fp1 = rootFp();
  const serial1 = leafSerial();
  const again = await writeDevCerts(o);
  t.equal(again.ca, 'reused');
  t.equal(rootFp(), fp1, 'same root: running sidecars keep trusting each other');
  t.not(leafSerial(), serial1, 'new leaf');
  t.ok(certs(path.join(first.workloads[0]!.dir, 'cert-chain.pem'))[0]!.verify(certs(first.intermediateCert)[0]!.publicKey));

  const forced = await writeDevCerts({ ...o, newCa: true });
  t.equal(forced.ca, 'created');
  t.notOk(forced.caReplacedBecause);
  t.not(rootFp(), fp1, '--new-ca makes a new root');

  const otherTd = await writeDevCerts({ ...o, trustDomain: 'other.example' });
  t.equal(otherTd.ca, 'created');
  t.match(otherTd.caReplacedBecause, /not for trust domain other\.example/);

  const tooLong = await writeDevCerts({ ...o, trustDomain: 'other.example', ttlMs: 200 * 86_400_000 });
  t.match(tooLong.caReplacedBecause, /expires in \d+h, before SVIDs of this lifetime would/);
  clock.advance(201 * 86_400_000);
  const expired = await writeDevCerts({ ...o, trustDomain: 'other.example' });
  t.match(expired.caReplacedBecause, /has expired/);

  writeFileSync(path.join(first.caDir, 'ca-key.pem'), readFileSync(first.rootKey));
  t.match((await writeDevCerts({ ...o, trustDomain: 'other.example' })).caReplacedBecause, /ca-key\.pem does not belong to .*ca-cert\.pem/);
  const elsewhere = await writeDevCerts({ ...o, dir: path.join(tmp.dir, 'elsewhere'), workloads: [] });
  writeFileSync(first.rootCert, readFileSync(elsewhere.rootCert));
  t.match((await writeDevCerts({ ...o, trustDomain: 'other.example' })).caReplacedBecause, /is not signed by/);
  writeFileSync(first.intermediateCert, 'garbage');
  t.match((await writeDevCerts({ ...o, trustDomain: 'other.example' })).caReplacedBecause, /cannot be used/);
});

t.test('refuses a workload that is not namespace/serviceaccount, an invalid SPIFFE segment or trust domain, before writing', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.cleanup());
  await t.rejects(writeDevCerts({ dir: path.join(tmp.dir, 'x'), trustDomain: 'td', workloads: ['frontend'], ttlMs: 1000, clock: systemClock }), /expected namespace\/serviceaccount/);
  await t.rejects(writeDevCerts({ dir: path.join(tmp.dir, 'y'), trustDomain: 'td', workloads: ['default/a b'], ttlMs: 1000, clock: systemClock }), { code: 'SPIFFE_ID_INVALID', message: /path segment "a b"/ });
  await t.rejects(writeDevCerts({ dir: path.join(tmp.dir, 'z'), trustDomain: 'Bad_TD!', workloads: [], ttlMs: 1000, clock: systemClock }), { code: 'SPIFFE_ID_INVALID', message: /trust domain/ });
  await t.rejects(writeDevCerts({ dir: path.join(tmp.dir, 'w'), trustDomain: 'td', workloads: [], ttlMs: 0, clock: systemClock }), /lifetime must be positive/);
  for (const d of ['x', 'y', 'z', 'w']) t.notOk(existsSync(path.join(tmp.dir, d)));
});
