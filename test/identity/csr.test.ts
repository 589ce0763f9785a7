import t from 'tap';
import { X509Certificate, createPublicKey, webcrypto } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { FakeClock } from '../../src/core/clock.js';
import { BACKDATE_MS, createIntermediateCa, createRootCa, issueServingCert, signCsr, toPem, type CaBundle } from '../../src/identity/ca.js';
import { checkCsrFor, createCsr, parseCsr, type CsrRejectReason, type ParsedCsr } from '../../src/identity/csr.js';
import { IdentityError } from '../../src/identity/errors.js';
import { checkX509Svid } from '../../src/identity/svid.js';
import * as x509 from '../../src/identity/x509.js';
import { tempDir } from '../helpers/mesh.js';
import { hasCommand } from '../helpers/tools.js';

const run = promisify(execFile);
const TD = 'cluster.local';
const ID = `spiffe://${TD}/ns/default/sa/reviews`;
const OTHER = `spiffe://${TD}/ns/default/sa/ratings`;
const EKU_BOTH = ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'];
const noOpenssl = !hasCommand('openssl') && 'openssl is not installed';

type Keys = webcrypto.CryptoKeyPair;
type GenParams = Parameters<typeof webcrypto.subtle.generateKey>[0];
const EC = (namedCurve: string) => ({ name: 'ECDSA', namedCurve });
const RSA = (modulusLength: number) => ({ name: 'RSASSA-PKCS1-v1_5', modulusLength, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' });

async function keysOf(alg: object): Promise<Keys> {
  return (await webcrypto.subtle.generateKey(alg as GenParams, true, ['sign', 'verify'])) as Keys;
}

/** A whole-second clock at the real time, so openssl (which checks validity against the wall clock) agrees. */
function nowClock(): FakeClock {
  return new FakeClock(Math.floor(Date.now() / 1000) * 1000);
}

/** Builds CSRs a well-behaved sidecar would never send, through the library's generator. */
async function customCsr(o: { keys?: Keys; sans?: x509.JsonGeneralNames; extensions?: x509.Extension[]; hash?: string } = {}): Promise<string> {
  const keys = o.keys ?? (await keysOf(EC('P-256')));
  const extensions = [...(o.sans ? [new x509.SubjectAlternativeNameExtension(o.sans)] : []), ...(o.extensions ?? [])];
  const req = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: `O=${TD}`, keys: keys as never, signingAlgorithm: { name: (keys.privateKey.algorithm as { name: string }).name, hash: o.hash ?? 'SHA-256' } as never, extensions },
    webcrypto as never,
  );
  return req.toString('pem');
}

function derOf(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
}

async function rejection(p: Promise<unknown> | (() => unknown)): Promise<{ reason?: CsrRejectReason; message: string; code?: string }> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    const err = e as IdentityError;
    return { reason: err.details?.reason as CsrRejectReason, message: err.message, code: err.code };
  }
  return { message: 'accepted' };
}

function keyUsageOf(pem: string): { usages: number; critical: boolean } {
  const ku = new x509.X509Certificate(pem).getExtension(x509.KeyUsagesExtension)!;
  return { usages: ku.usages, critical: ku.critical };
}

t.test('a sidecar CSR is parsed, checked and signed into an X509-SVID per the spec', async (t) => {
  const clock = nowClock();
  const ca = await createRootCa({ trustDomain: TD, commonName: 'root', clock });
  const keys = await keysOf(EC('P-256'));
  const pem = await createCsr(keys, ID);
  t.match(pem, /^-----BEGIN CERTIFICATE REQUEST-----\n[\s\S]+-----END CERTIFICATE REQUEST-----\n$/);
  const csr = await parseCsr(pem);
  t.same({ keyDescription: csr.keyDescription, uris: csr.uris, otherSans: csr.otherSans, caRequested: csr.caRequested }, { keyDescription: 'ECDSA P-256', uris: [ID], otherSans: [], caRequested: false });
  t.doesNotThrow(() => checkCsrFor(csr, ID));

  const issued = await signCsr(ca, csr, { spiffeId: ID, ttlMs: 3600_000, clock });
  const c = new X509Certificate(issued.certPem);
  // An independent reading of the certificate, by OpenSSL through node:crypto.
  t.equal(c.subjectAltName, `URI:${ID}`, 'exactly one URI SAN');
  t.equal(c.ca, false, 'CA:false');
  t.equal(Date.parse(c.validFrom), clock.now() - BACKDATE_MS, 'notBefore backdated 60 s');
  t.equal(Date.parse(c.validTo), clock.now() + 3600_000);
  t.equal(issued.notBefore, clock.now() - BACKDATE_MS);
  t.equal(issued.notAfter, clock.now() + 3600_000);
  t.same([...(c.keyUsage ?? [])].sort(), EKU_BOTH, 'EKU serverAuth + clientAuth');
  t.ok(c.checkIssued(new X509Certificate(ca.certPem)) && c.verify(new X509Certificate(ca.certPem).publicKey), 'signed by the CA');
  t.ok(c.publicKey.equals(createPublicKey({ key: Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey)), format: 'der', type: 'spki' })), "the CSR's key, not a new one");
  t.equal(c.serialNumber.toLowerCase(), issued.serial.toLowerCase());
  t.ok(/^[0-7]/.test(issued.serial) && issued.serial.length === 32, 'positive 128-bit serial');
  t.same(keyUsageOf(issued.certPem), { usages: x509.KeyUsageFlags.digitalSignature, critical: true }, 'KU digitalSignature only, critical');
  const lib = new x509.X509Certificate(issued.certPem);
  t.equal(lib.getExtension(x509.BasicConstraintsExtension)?.critical, true, 'basic constraints critical');
  t.equal(lib.getExtension(x509.SubjectAlternativeNameExtension)?.names.items.length, 1);
  t.equal(lib.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, ca.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId, 'AKI = the CA SKI');
  t.equal(lib.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId, await (await x509.PublicKey.create(keys.publicKey as never)).getKeyIdentifier().then((b) => Buffer.from(b).toString('hex')), 'SKI = SHA-1 of the key');
  t.equal(issued.chainPem, issued.certPem, 'a root CA adds no intermediates');
  t.equal(checkX509Svid(c, { trustDomain: TD }).ok, true, 'passes the X509-SVID check');

  const again = await signCsr(ca, csr, { spiffeId: ID, ttlMs: 3600_000, clock });
  t.not(again.serial, issued.serial, 'random serials');
  const capped = await signCsr(ca, csr, { spiffeId: ID, ttlMs: 20 * 365 * 86_400_000, clock });
  t.equal(capped.notAfter, ca.cert.notAfter.getTime(), "notAfter capped at the CA's");
});

t.test('signed chains verify with openssl, with and without an intermediate', { skip: noOpenssl }, async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const clock = nowClock();
  const root = await createRootCa({ trustDomain: TD, commonName: 'root', clock });
  for (const ca of [root, await createIntermediateCa(root, { commonName: 'intermediate', clock })]) {
    const csr = await parseCsr(await createCsr(await keysOf(EC('P-256')), ID));
    const issued = await signCsr(ca, csr, { spiffeId: ID, ttlMs: 600_000, clock });
    t.equal(issued.chainPem, issued.certPem + ca.chainPems.join(''), 'leaf + intermediates, no root');
    const f = (n: string, s: string) => (writeFileSync(path.join(tmp.dir, n), s), path.join(tmp.dir, n));
    const { stdout } = await run('openssl', ['verify', '-CAfile', f('root.pem', root.certPem), '-untrusted', f('chain.pem', issued.chainPem), '-purpose', 'sslclient', f('leaf.pem', issued.certPem)]);
    t.match(stdout, /: OK/, `openssl verify (intermediate: ${ca !== root})`);
    const server = await run('openssl', ['verify', '-CAfile', path.join(tmp.dir, 'root.pem'), '-untrusted', path.join(tmp.dir, 'chain.pem'), '-purpose', 'sslserver', path.join(tmp.dir, 'leaf.pem')]);
    t.match(server.stdout, /: OK/, 'also good as a server certificate');
  }
});

t.test('key policy: P-256, P-384 and RSA ≥ 2048 are accepted; weak or other keys are refused', async (t) => {
  const clock = nowClock();
  const ca = await createRootCa({ trustDomain: TD, commonName: 'root', clock });
  for (const [alg, desc] of [
    [EC('P-384'), 'ECDSA P-384'],
    [RSA(2048), 'RSA 2048'],
  ] as const) {
    const csr = await parseCsr(await createCsr(await keysOf(alg), ID));
    t.equal(csr.keyDescription, desc);
    checkCsrFor(csr, ID);
    const issued = await signCsr(ca, csr, { spiffeId: ID, ttlMs: 600_000, clock });
    t.equal(checkX509Svid(new X509Certificate(issued.certPem), { trustDomain: TD }).ok, true, `${desc} SVID`);
    const ku = desc.startsWith('RSA') ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment : x509.KeyUsageFlags.digitalSignature;
    t.same(keyUsageOf(issued.certPem), { usages: ku, critical: true }, `${desc}: key usage`);
  }
  const rsa1024 = await rejection(parseCsr(await createCsr(await keysOf(RSA(1024)), ID)));
  t.match(rsa1024, { code: 'CSR_INVALID', reason: 'weak_key', message: /RSA 1024.*at least 2048/ });
  const e3 = await keysOf({ ...RSA(2048), publicExponent: new Uint8Array([3]) });
  t.match(await rejection(parseCsr(await createCsr(e3, ID))), { reason: 'weak_key', message: /public exponent 3/ });
  t.match(await rejection(parseCsr(await customCsr({ keys: await keysOf(EC('P-521')), sans: [{ type: 'url', value: ID }], hash: 'SHA-512' }))), { reason: 'weak_key', message: /P-256 and P-384/ });
  const ed = await rejection(async () => parseCsr(await customCsr({ keys: (await webcrypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])) as Keys, sans: [{ type: 'url', value: ID }] })));
  t.match(ed, { reason: 'weak_key', message: /Ed25519/ });
});

t.test('signature, encoding and truncation problems', async (t) => {
  const pem = await createCsr(await keysOf(EC('P-256')), ID);
  const der = derOf(pem);
  const flipped = Buffer.from(der);
  flipped[flipped.length - 1]! ^= 0x01;
  t.match(await rejection(parseCsr(toPem(flipped, 'CERTIFICATE REQUEST'))), { reason: 'bad_signature', message: /does not verify/ });
  // A changed byte in the signed part (the SAN's last character): the signature no longer covers it.
  const tampered = Buffer.from(der.toString('latin1').replace('sa/reviews', 'sa/reviewz'), 'latin1');
  t.match(await rejection(parseCsr(toPem(tampered, 'CERTIFICATE REQUEST'))), { reason: 'bad_signature' });
  t.match(await rejection(parseCsr(pem.slice(0, pem.length / 2))), { reason: 'malformed', message: /corrupt or truncated/ });
  t.match(await rejection(parseCsr(toPem(der.subarray(0, der.length - 10), 'CERTIFICATE REQUEST'))), { reason: 'malformed' });
  t.match(await rejection(parseCsr('')), { reason: 'malformed', message: /empty/ });
  t.match(await rejection(parseCsr('hello')), { reason: 'malformed', message: /no CERTIFICATE REQUEST/ });
  t.match(await rejection(parseCsr('-----BEGIN CERTIFICATE REQUEST-----\n%%%%\n-----END CERTIFICATE REQUEST-----\n')), { reason: 'malformed', message: /base64/ });
  t.match(await rejection(parseCsr(pem + pem)), { reason: 'malformed', message: /2 CERTIFICATE REQUEST blocks/ });
  t.match(await rejection(parseCsr('x'.repeat(70_000))), { reason: 'malformed' });
  t.match(await rejection(parseCsr(pem.replace(/CERTIFICATE REQUEST/g, 'CERTIFICATE'))), { reason: 'malformed', message: /found CERTIFICATE/ });
  t.same((await parseCsr(pem.replace(/CERTIFICATE REQUEST/g, 'NEW CERTIFICATE REQUEST'))).uris, [ID], 'the legacy PEM label is accepted');
  const sha1 = await rejection(async () => parseCsr(await customCsr({ sans: [{ type: 'url', value: ID }], hash: 'SHA-1' })));
  t.match(sha1, { reason: 'bad_signature', message: /signature algorithm 1\.2\.840\.10045\.4\.1/ });

  // Every truncation and every single-byte change is refused with a bounded reason, never another error.
  const reasons = new Set<string>();
  for (let n = 0; n < der.length; n++) {
    const r = await rejection(parseCsr(toPem(der.subarray(0, n), 'CERTIFICATE REQUEST')));
    if (r.code !== 'CSR_INVALID') t.fail(`truncated at ${n}: ${r.message}`);
    reasons.add(r.reason!);
  }
  for (let i = 0; i < der.length; i++) {
    const b = Buffer.from(der);
    b[i]! ^= 0x20;
    const r = await rejection(parseCsr(toPem(b, 'CERTIFICATE REQUEST')));
    if (r.code !== 'CSR_INVALID') t.fail(`byte ${i} changed: ${r.message}`);
    reasons.add(r.reason!);
  }
  t.ok([...reasons].every((r) => ['malformed', 'bad_signature', 'weak_key'].includes(r)), `bounded reasons: ${[...reasons].join(', ')}`);
});

t.test('the CA signs only the proven identity', async (t) => {
  const check = async (pem: string, id = ID) => rejection(async () => checkCsrFor(await parseCsr(pem), id));
  const wrong = await check(await createCsr(await keysOf(EC('P-256')), OTHER));
  t.match(wrong, { code: 'CSR_INVALID', reason: 'san_mismatch' });
  t.ok(wrong.message.includes(OTHER) && wrong.message.includes(ID), 'names what was asked and what is proven');
  t.match(await check(await customCsr({})), { reason: 'san_mismatch', message: /no URI SAN/ });
  const dns = await check(await customCsr({ sans: [{ type: 'url', value: ID }, { type: 'dns', value: 'reviews.default.svc' }] }));
  t.match(dns, { reason: 'extra_san', message: /dns:reviews\.default\.svc/ });
  t.match(await check(await customCsr({ sans: [{ type: 'url', value: ID }, { type: 'ip', value: '10.0.0.1' }] })), { reason: 'extra_san', message: /ip:10\.0\.0\.1/ });
  t.match(await check(await customCsr({ sans: [{ type: 'url', value: ID }, { type: 'email', value: 'a@b.c' }] })), { reason: 'extra_san', message: /email:a@b\.c/ });
  const exotic = await parseCsr(await customCsr({ sans: [{ type: 'url', value: ID }, { type: 'dn', value: 'CN=x' }, { type: 'id', value: '1.2.3.4' }, { type: 'upn', value: 'a@b' }] }));
  t.same(exotic.otherSans, ['dirName', 'registeredID', 'otherName'], 'other GeneralName kinds are named');
  // A second URI next to the proven one asks for more than was proven: extra_san. URIs without the proven
  // one are a request for another identity: san_mismatch.
  t.match(await check(await customCsr({ sans: [{ type: 'url', value: ID }, { type: 'url', value: OTHER }] })), { reason: 'extra_san', message: /2 URI SANs/ });
  t.match(await check(await customCsr({ sans: [{ type: 'url', value: OTHER }, { type: 'url', value: `${OTHER}2` }] })), { reason: 'san_mismatch' });

  const caTrue = await customCsr({ sans: [{ type: 'url', value: ID }], extensions: [new x509.BasicConstraintsExtension(true, undefined, true)] });
  const parsed = await parseCsr(caTrue);
  t.equal(parsed.caRequested, true, 'parsing reports it; the policy check refuses it');
  t.match(await check(caTrue), { reason: 'ca_requested', message: /CA certificate/ });
  const certSign = await customCsr({ sans: [{ type: 'url', value: ID }], extensions: [new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature, true)] });
  t.match(await check(certSign), { reason: 'ca_requested' });
  const leafOk = await customCsr({ sans: [{ type: 'url', value: ID }], extensions: [new x509.BasicConstraintsExtension(false), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)] });
  t.equal(await check(leafOk).then((r) => r.message), 'accepted', 'CA:false and digitalSignature are fine');
});

t.test('CSRs written by openssl req are read the same way', { skip: noOpenssl }, async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const req = async (name: string, newkey: string[], exts: string[]) => {
    const out = path.join(tmp.dir, `${name}.csr`);
    await run('openssl', ['req', '-new', ...newkey, '-nodes', '-keyout', path.join(tmp.dir, `${name}.key`), '-subj', `/O=${TD}`, ...exts.flatMap((e) => ['-addext', e]), '-out', out]);
    return readFileSync(out, 'utf8');
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  const good = await parseCsr(await req('good', ec, [`subjectAltName=URI:${ID}`]));
  t.same({ d: good.keyDescription, uris: good.uris, other: good.otherSans, ca: good.caRequested }, { d: 'ECDSA P-256', uris: [ID], other: [], ca: false });
  const rsa = await parseCsr(await req('rsa', ['-newkey', 'rsa:3072'], [`subjectAltName=URI:${ID}`]));
  t.equal(rsa.keyDescription, 'RSA 3072');
  const many = await parseCsr(await req('many', ec, [`subjectAltName=URI:${ID},DNS:a.example,IP:10.1.2.3,IP:::1,email:x@y.z`, 'basicConstraints=critical,CA:TRUE']));
  t.same(many.otherSans, ['dns:a.example', 'ip:10.1.2.3', 'ip:0000:0000:0000:0000:0000:0000:0000:0001', 'email:x@y.z']);
  t.equal(many.caRequested, true);
  t.match(await rejection(async () => parseCsr(await req('weak', ['-newkey', 'rsa:1024'], [`subjectAltName=URI:${ID}`]))), { reason: 'weak_key' });
  t.match(await rejection(async () => parseCsr(await req('k1', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1'], [`subjectAltName=URI:${ID}`]))), { reason: 'weak_key', message: /1\.3\.132\.0\.10/ });
});

t.test('CSRs of every accepted key type are signed by CAs of every supported key type', async (t) => {
  const clock = nowClock();
  const csrs: ParsedCsr[] = [];
  for (const alg of [EC('P-256'), EC('P-384'), RSA(2048)]) csrs.push(await parseCsr(await createCsr(await keysOf(alg), ID)));
  for (const keyType of ['ec-p256', 'ec-p384', 'rsa-2048'] as const) {
    const root: CaBundle = await createRootCa({ trustDomain: TD, commonName: `root ${keyType}`, clock, keyType });
    const rootX = new X509Certificate(root.certPem);
    for (const csr of csrs) {
      const c = new X509Certificate((await signCsr(root, csr, { spiffeId: ID, ttlMs: 60_000, clock })).certPem);
      t.ok(c.verify(rootX.publicKey) && checkX509Svid(c).ok, `${keyType} CA signs a ${csr.keyDescription} CSR`);
    }
  }
});

t.test("the control server's serving certificate is an SVID with the names clients dial", async (t) => {
  const clock = nowClock();
  const root = await createRootCa({ trustDomain: TD, commonName: 'root', clock });
  const ca = await createIntermediateCa(root, { commonName: 'intermediate', clock });
  const control = `spiffe://${TD}/ns/outrigger-system/sa/outrigger-control`;
  const s = await issueServingCert(ca, { spiffeId: control, names: ['outrigger-control.outrigger-system.svc', '127.0.0.1', '::1'], ttlMs: 86_400_000, clock });
  const c = new X509Certificate(s.certPem);
  t.equal(c.subjectAltName, `URI:${control}, DNS:outrigger-control.outrigger-system.svc, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1`);
  t.equal(c.checkHost('outrigger-control.outrigger-system.svc'), 'outrigger-control.outrigger-system.svc');
  t.equal(c.checkIP('127.0.0.1'), '127.0.0.1');
  t.equal(checkX509Svid(c, { trustDomain: TD }).ok, true, 'X509-SVID §2 allows other SAN types next to the one URI');
  t.equal(s.chainPem, s.certPem + ca.certPem);
  t.ok(c.checkPrivateKey((await import('node:crypto')).createPrivateKey(s.keyPem)), 'with its key');
});
