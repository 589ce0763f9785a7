import t, { type Test } from 'tap';
import { X509Certificate, createPrivateKey, webcrypto } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { FakeClock } from '../../src/core/clock.js';
import { createIntermediateCa, createRootCa, issueSvid, signCsr, type CaBundle } from '../../src/identity/ca.js';
import { loadCaDir, writeCaFiles, MODE_FILE, type CaDir } from '../../src/identity/ca-dir.js';
import { createCsr, parseCsr } from '../../src/identity/csr.js';
import { IdentityError } from '../../src/identity/errors.js';
import { checkX509Svid } from '../../src/identity/svid.js';
import * as x509 from '../../src/identity/x509.js';
import { tempDir } from '../helpers/mesh.js';
import { hasCommand } from '../helpers/tools.js';

const run = promisify(execFile);
const TD = 'cluster.local';
const ID = `spiffe://${TD}/ns/default/sa/reviews`;
const noOpenssl = !hasCommand('openssl') && 'openssl is not installed';

/** Whole seconds at the real time: openssl verify checks validity against the wall clock. */
function nowClock(): FakeClock {
  return new FakeClock(Math.floor(Date.now() / 1000) * 1000);
}

function dirFor(t: { teardown(fn: () => void): void }, name = 'ca'): string {
  const tmp = tempDir('outrigger-ca-dir-');
  t.teardown(tmp.cleanup);
  return path.join(tmp.dir, name);
}

/** Istio's layout for a signing CA: cert-chain.pem is ca-cert followed by its issuers up to and including the root. */
function plug(dir: string, ca: CaBundle, o: { roots?: string[]; keyPem?: string } = {}): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'ca-cert.pem'), ca.certPem);
  writeFileSync(path.join(dir, 'ca-key.pem'), o.keyPem ?? ca.keyPem, { mode: 0o600 });
  writeFileSync(path.join(dir, 'root-cert.pem'), (o.roots ?? [ca.rootPem]).join(''));
  writeFileSync(path.join(dir, 'cert-chain.pem'), (ca.chainPems.length ? ca.chainPems : [ca.certPem]).join('') + (ca.chainPems.length ? ca.rootPem : ''));
}

async function refusal(p: Promise<unknown>): Promise<{ code?: string; file?: unknown; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as IdentityError;
    return { code: err.code, file: err.details?.file, message: err.message };
  }
  return { message: 'loaded' };
}

async function issueFrom(ca: CaDir, clock: FakeClock, id = ID) {
  const csr = await parseCsr(await createCsr((await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair, id));
  return signCsr(ca.signer, csr, { spiffeId: id, ttlMs: 600_000, clock });
}

async function opensslVerify(t: Test, dir: string, chainPem: string): Promise<void> {
  if (noOpenssl) return;
  const leaf = path.join(dir, '..', 'leaf.pem');
  const chain = path.join(dir, '..', 'chain.pem');
  writeFileSync(leaf, chainPem.slice(0, chainPem.indexOf('-----END CERTIFICATE-----') + 26));
  writeFileSync(chain, chainPem);
  const { stdout } = await run('openssl', ['verify', '-CAfile', path.join(dir, 'root-cert.pem'), '-untrusted', chain, '-purpose', 'sslclient', leaf]);
  t.match(stdout, /: OK/, 'openssl verify -CAfile root-cert.pem -untrusted <chain>');
}

t.test('an empty directory gets a self-signed root on first start, reused on the next', async (t) => {
  const dir = dirFor(t);
  const clock = nowClock();
  const logs: string[] = [];
  const first = await loadCaDir(dir, { trustDomain: TD, clock, logger: { info: (_o, m) => logs.push(m ?? '') } });
  t.equal(first.mode, 'self-signed');
  t.same(logs, ['generated a self-signed root CA', 'CA directory loaded']);
  for (const f of ['ca-cert.pem', 'ca-key.pem', 'root-cert.pem', 'cert-chain.pem', MODE_FILE]) t.ok(existsSync(path.join(dir, f)), `${f} written`);
  t.equal(statSync(path.join(dir, 'ca-key.pem')).mode & 0o777, 0o600, 'key readable by its owner only');
  t.same(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary files left');
  const root = new X509Certificate(readFileSync(path.join(dir, 'ca-cert.pem')));
  t.equal(readFileSync(path.join(dir, 'root-cert.pem'), 'utf8'), readFileSync(path.join(dir, 'ca-cert.pem'), 'utf8'));
  t.equal(Date.parse(root.validTo) - clock.now(), 10 * 365 * 86_400_000, 'ten years');
  t.equal(first.roots.length, 1);
  t.equal(first.bundlePem, root.toString().endsWith('\n') ? root.toString() : `${root.toString()}\n`);
  t.same(first.signer.chainPems, [], 'a root signs with no intermediates');

  const second = await loadCaDir(dir, { trustDomain: TD, clock });
  t.equal(second.mode, 'self-signed', 'still self-signed on the second start');
  t.equal(second.roots[0]!.fingerprint256, first.roots[0]!.fingerprint256, 'the same root, not a new one');
  t.equal(new X509Certificate(second.signer.certPem).fingerprint256, root.fingerprint256);

  const issued = await issueFrom(second, clock);
  t.equal(issued.chainPem, issued.certPem);
  t.ok(new X509Certificate(issued.certPem).verify(root.publicKey));
  await opensslVerify(t, dir, issued.chainPem);
});

t.test('a plugged-in intermediate from an enterprise root signs chains that verify', async (t) => {
  const dir = dirFor(t);
  const clock = nowClock();
  const enterprise = await createRootCa({ trustDomain: TD, commonName: 'ACME enterprise root', clock });
  const mesh = await createIntermediateCa(enterprise, { commonName: 'mesh intermediate', clock });
  plug(dir, mesh);
  const ca = await loadCaDir(dir, { trustDomain: TD, clock });
  t.equal(ca.mode, 'plugged');
  t.same(ca.signer.chainPems, [mesh.certPem], 'chain = ca-cert, the root is left out');
  t.equal(ca.signer.rootPem, enterprise.certPem);
  t.same(ca.signer.signingAlgorithm, { name: 'ECDSA', hash: 'SHA-256' });
  const issued = await issueFrom(ca, clock);
  t.equal(issued.chainPem, issued.certPem + mesh.certPem, 'leaf + intermediate, no root');
  t.equal(checkX509Svid(new X509Certificate(issued.certPem), { trustDomain: TD }).ok, true);
  await opensslVerify(t, dir, issued.chainPem);
});

t.test('a plugged chain with two intermediates, and cert-chain.pem with or without the root', async (t) => {
  const dir = dirFor(t);
  const clock = nowClock();
  const root = await createRootCa({ trustDomain: TD, commonName: 'enterprise root', clock, keyType: 'ec-p384' });
  // An issuing CA under a policy CA, built with the library directly (createIntermediateCa sets pathLen 0).
  const policyKeys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const mk = async (subject: string, issuer: x509.X509Certificate, signingKey: webcrypto.CryptoKey, keys: webcrypto.CryptoKeyPair, hash: string) =>
    x509.X509CertificateGenerator.create({
      serialNumber: '01' + Math.floor(clock.now() / 1000).toString(16),
      subject,
      issuer: issuer.subjectName,
      notBefore: new Date(clock.now() - 60_000),
      notAfter: new Date(clock.now() + 86_400_000),
      signingAlgorithm: { name: 'ECDSA', hash } as never,
      publicKey: keys.publicKey as never,
      signingKey: signingKey as never,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as never),
      ],
    });
  const policyCert = await mk(`CN=policy CA, O=${TD}`, root.cert, root.keys.privateKey, policyKeys, 'SHA-384');
  const issuingKeys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const issuingCert = await mk(`CN=issuing CA, O=${TD}`, policyCert, policyKeys.privateKey, issuingKeys, 'SHA-256');
  const pem = (c: x509.X509Certificate) => `${c.toString('pem')}\n`;
  const keyPem = createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', issuingKeys.privateKey)), format: 'der', type: 'pkcs8' }).export({ type: 'sec1', format: 'pem' }) as string;
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'ca-cert.pem'), pem(issuingCert));
  writeFileSync(path.join(dir, 'ca-key.pem'), keyPem, 'utf8');
  writeFileSync(path.join(dir, 'root-cert.pem'), root.certPem);
  for (const withRoot of [true, false]) {
    writeFileSync(path.join(dir, 'cert-chain.pem'), pem(issuingCert) + pem(policyCert) + (withRoot ? root.certPem : ''));
    const ca = await loadCaDir(dir, { trustDomain: TD, clock });
    t.same(ca.signer.chainPems, [pem(issuingCert), pem(policyCert)], `ca-cert + intermediates (root in cert-chain.pem: ${withRoot})`);
    const issued = await issueFrom(ca, clock);
    t.equal(issued.chainPem, issued.certPem + pem(issuingCert) + pem(policyCert));
    await opensslVerify(t, dir, issued.chainPem);
  }
  t.pass('SEC1 "EC PRIVATE KEY" accepted');

  // Intermediates missing from cert-chain.pem: the chain cannot reach the bundle.
  writeFileSync(path.join(dir, 'cert-chain.pem'), pem(issuingCert));
  t.match(await refusal(loadCaDir(dir, { trustDomain: TD, clock })), { code: 'CA_DIR_INVALID', file: 'root-cert.pem', message: /does not chain to any root/ });
  // Out of order.
  writeFileSync(path.join(dir, 'cert-chain.pem'), pem(policyCert) + pem(issuingCert));
  t.match(await refusal(loadCaDir(dir, { trustDomain: TD, clock })), { file: 'cert-chain.pem', message: /must start with the certificate in ca-cert\.pem/ });
  // A wrong issuer in the middle.
  writeFileSync(path.join(dir, 'cert-chain.pem'), pem(issuingCert) + root.certPem);
  t.match(await refusal(loadCaDir(dir, { trustDomain: TD, clock })), { file: 'cert-chain.pem', message: /did not issue/ });
});

t.test('several roots in root-cert.pem all reach the bundle', async (t) => {
  const dir = dirFor(t);
  const clock = nowClock();
  const current = await createRootCa({ trustDomain: TD, commonName: 'current root', clock });
  const incoming = await createRootCa({ trustDomain: TD, commonName: 'incoming root', clock });
  plug(dir, current, { roots: [current.certPem, incoming.certPem, current.certPem] });
  const ca = await loadCaDir(dir, { trustDomain: TD, clock });
  t.same(ca.roots.map((r) => r.subject), [`CN=current root\nO=${TD}`, `CN=incoming root\nO=${TD}`], 'both roots, duplicates dropped');
  t.equal(ca.bundlePem, current.certPem + incoming.certPem, 'PEM, each ending in a newline');
  t.equal(ca.mode, 'plugged', 'a root brought by the user is plugged, not self-signed');
  // Signing by a root that is second in the bundle works the same.
  plug(dir, incoming, { roots: [current.certPem, incoming.certPem] });
  t.equal(new X509Certificate((await issueFrom(await loadCaDir(dir, { trustDomain: TD, clock }), clock)).certPem).verify(new X509Certificate(incoming.certPem).publicKey), true);
});

t.test('an RSA plugged-in CA signs P-256 CSRs; PKCS#1 keys are read', async (t) => {
  const dir = dirFor(t);
  const clock = nowClock();
  const root = await createRootCa({ trustDomain: TD, commonName: 'rsa root', clock, keyType: 'rsa-2048' });
  const inter = await createIntermediateCa(root, { commonName: 'rsa intermediate', clock, keyType: 'rsa-2048' });
  const pkcs1 = createPrivateKey(inter.keyPem).export({ type: 'pkcs1', format: 'pem' }) as string;
  t.match(pkcs1, /BEGIN RSA PRIVATE KEY/);
  plug(dir, inter, { keyPem: pkcs1 });
  const ca = await loadCaDir(dir, { trustDomain: TD, clock });
  t.same(ca.signer.signingAlgorithm, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, 'algorithm chosen from the key');
  const issued = await issueFrom(ca, clock);
  const leaf = new x509.X509Certificate(issued.certPem);
  t.match(leaf.signatureAlgorithm, { name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' } }, 'sha256WithRSAEncryption');
  t.equal((leaf.publicKey.algorithm as { namedCurve?: string }).namedCurve, 'P-256', 'the leaf keeps its P-256 key');
  t.equal(checkX509Svid(new X509Certificate(issued.certPem), { trustDomain: TD }).ok, true);
  await opensslVerify(t, dir, issued.chainPem);

  const p384 = await createRootCa({ trustDomain: TD, commonName: 'p384 root', clock, keyType: 'ec-p384' });
  plug(dir, p384);
  const ca384 = await loadCaDir(dir, { trustDomain: TD, clock });
  t.same(ca384.signer.signingAlgorithm, { name: 'ECDSA', hash: 'SHA-384' });
  t.match(new x509.X509Certificate((await issueFrom(ca384, clock)).certPem).signatureAlgorithm, { name: 'ECDSA', hash: { name: 'SHA-384' } });
});

t.test('a broken CA directory is refused, naming the file', async (t) => {
  const dir = dirFor(t);
  const clock = nowClock();
  const root = await createRootCa({ trustDomain: TD, commonName: 'root', clock });
  const other = await createRootCa({ trustDomain: TD, commonName: 'other root', clock });
  const load = (o: { trustDomain?: string; clock?: FakeClock } = {}) => refusal(loadCaDir(dir, { trustDomain: o.trustDomain ?? TD, clock: o.clock ?? clock }));
  const f = (name: string) => path.join(dir, name);

  plug(dir, root, { keyPem: other.keyPem });
  t.match(await load(), { code: 'CA_DIR_INVALID', file: 'ca-key.pem', message: /ca-key\.pem: does not match ca-cert\.pem/ });

  plug(dir, root);
  const pem = root.certPem;
  writeFileSync(f('ca-cert.pem'), pem.slice(0, pem.length / 2));
  const truncated = await load();
  t.match(truncated, { file: 'ca-cert.pem', message: /ca-cert\.pem: corrupt or truncated/ });
  t.ok(truncated.message.includes(f('ca-cert.pem')), 'the message has the full path');
  // Cut inside the DER but with intact PEM armour.
  const der = Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
  writeFileSync(f('ca-cert.pem'), `-----BEGIN CERTIFICATE-----\n${der.subarray(0, der.length - 40).toString('base64')}\n-----END CERTIFICATE-----\n`);
  t.match(await load(), { file: 'ca-cert.pem', message: /corrupt or truncated: certificate #1 does not parse/ });

  plug(dir, root);
  writeFileSync(f('ca-key.pem'), root.keyPem.slice(0, 100));
  t.match(await load(), { file: 'ca-key.pem', message: /corrupt or truncated/ });
  writeFileSync(f('ca-key.pem'), `-----BEGIN PRIVATE KEY-----\n${Buffer.from(root.keyPem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64').subarray(0, 60).toString('base64')}\n-----END PRIVATE KEY-----\n`);
  t.match(await load(), { file: 'ca-key.pem', message: /corrupt or truncated: the key does not parse/ });
  writeFileSync(f('ca-key.pem'), '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n');
  t.match(await load(), { file: 'ca-key.pem', message: /encrypted/ });
  writeFileSync(f('ca-key.pem'), createPrivateKey(root.keyPem).export({ type: 'sec1', format: 'pem', cipher: 'aes-128-cbc', passphrase: 'secret' }));
  t.match(await load(), { file: 'ca-key.pem', message: /encrypted/ }, 'legacy Proc-Type encryption too');

  plug(dir, root);
  writeFileSync(f('root-cert.pem'), root.certPem + root.certPem.slice(0, 200));
  t.match(await load(), { file: 'root-cert.pem', message: /corrupt or truncated/ });

  plug(dir, root, { roots: [other.certPem] });
  t.match(await load(), { file: 'root-cert.pem', message: /does not chain to any root in root-cert\.pem/ });

  // Not a CA: a leaf SVID (and its key) put where the signing certificate belongs.
  const leaf = await issueSvid(root, { spiffeIds: [ID], clock });
  plug(dir, root);
  writeFileSync(f('ca-cert.pem'), leaf.certPem);
  writeFileSync(f('ca-key.pem'), leaf.keyPem);
  writeFileSync(f('cert-chain.pem'), leaf.certPem + root.certPem);
  t.match(await load(), { file: 'ca-cert.pem', message: /is not a CA certificate/ });

  // A CA certificate without keyCertSign.
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const noCertSign = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=no certsign',
    notBefore: new Date(clock.now() - 60_000),
    notAfter: new Date(clock.now() + 86_400_000),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as never,
    keys: keys as never,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
  });
  writeFileSync(f('ca-cert.pem'), noCertSign.toString('pem'));
  t.match(await load(), { file: 'ca-cert.pem', message: /lacks the keyCertSign key usage/ });

  // Expired signing certificate.
  plug(dir, root);
  const later = new FakeClock(root.cert.notAfter.getTime() + 1000);
  t.match(await load({ clock: later }), { file: 'ca-cert.pem', message: /expired on/ });

  // A CA key type the mesh does not sign with.
  const edKeys = (await webcrypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const edCa = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '02',
    name: 'CN=ed25519 root',
    notBefore: new Date(clock.now() - 60_000),
    notAfter: new Date(clock.now() + 86_400_000),
    signingAlgorithm: { name: 'Ed25519' } as never,
    keys: edKeys as never,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  plug(dir, root);
  writeFileSync(f('ca-cert.pem'), edCa.toString('pem'));
  writeFileSync(f('ca-key.pem'), createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', edKeys.privateKey)), format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }));
  t.match(await load(), { file: 'ca-key.pem', message: /ed25519 keys are not supported for a CA/ });

  // Unreadable.
  plug(dir, root);
  rmSync(f('root-cert.pem'));
  mkdirSync(f('root-cert.pem'));
  t.match(await load(), { file: 'root-cert.pem', message: /cannot be read: EISDIR/ });
  rmSync(f('root-cert.pem'), { recursive: true });

  // Half a plugged-in CA.
  plug(dir, root);
  rmSync(f('ca-key.pem'));
  t.match(await load(), { file: 'ca-key.pem', message: /ca-key\.pem: missing/ });
  plug(dir, root);
  rmSync(f('ca-cert.pem'));
  t.match(await load(), { file: 'ca-cert.pem', message: /ca-cert\.pem: missing/ });
  rmSync(f('ca-key.pem'));
  t.match(await load(), { file: 'ca-cert.pem', message: /root-cert\.pem is present/ }, 'leftover bundle files are not silently overwritten');

  // Another trust domain's CA.
  const foreign = await createRootCa({ trustDomain: 'other.example', commonName: 'foreign root', clock });
  plug(dir, foreign);
  const td = await load();
  t.match(td, { file: 'ca-cert.pem', message: /spiffe:\/\/other\.example/ });
  t.ok(td.message.includes('"other.example"') && td.message.includes(`"${TD}"`), 'names both trust domains');
});

t.test('writeCaFiles replaces files atomically, keys 0600', async (t) => {
  const dir = dirFor(t);
  await writeCaFiles(dir, { 'root-cert.pem': 'a\n', 'ca-key.pem': 'k\n' });
  t.equal(readFileSync(path.join(dir, 'root-cert.pem'), 'utf8'), 'a\n');
  t.equal(statSync(path.join(dir, 'ca-key.pem')).mode & 0o777, 0o600);
  t.equal(statSync(path.join(dir, 'root-cert.pem')).mode & 0o777, 0o644);
  await writeCaFiles(dir, { 'root-cert.pem': 'b\n' });
  t.equal(readFileSync(path.join(dir, 'root-cert.pem'), 'utf8'), 'b\n');
  t.equal(readFileSync(path.join(dir, 'ca-key.pem'), 'utf8'), 'k\n', 'files not named are left alone');
  t.same(readdirSync(dir).sort(), ['ca-key.pem', 'root-cert.pem'], 'no temporary files left');
  // A rename that fails (the target is a directory) leaves neither a half-written file nor a temp file.
  mkdirSync(path.join(dir, 'cert-chain.pem', 'x'), { recursive: true });
  await t.rejects(writeCaFiles(dir, { 'ca-cert.pem': 'c\n', 'cert-chain.pem': 'chain\n' }));
  t.same(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'temporary files removed on failure');
});
