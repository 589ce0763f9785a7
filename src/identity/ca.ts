// Certificate authority primitives: roots, intermediates, X509-SVIDs and CSR signing (SPIFFE X509-SVID spec §4, §5; RFC 5280).
import { KeyObject, createHash, randomBytes, sign, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from './x509.js';
import type { Clock } from '../core/clock.js';
import { IdentityError } from './errors.js';
import type { ParsedCsr } from './csr.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const KU = x509.KeyUsageFlags;
/** §4.4 recommends a small backdate; one minute absorbs the ±minutes of skew seen between clouds. */
export const BACKDATE_MS = 60_000;

/** Key types the CA generates; plugged-in CA keys may be any of the curves/sizes signingAlgorithmFor accepts. */
export type KeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';

/**
 * How a CA signs, chosen from its key: ECDSA with the hash matching the curve's strength (RFC 5758 §3.2:
 * P-256/SHA-256, P-384/SHA-384), RSA with sha256WithRSAEncryption (RFC 4055 §5).
 */
export interface SigningAlgorithm {
  readonly name: 'ECDSA' | 'RSASSA-PKCS1-v1_5';
  readonly hash: 'SHA-256' | 'SHA-384';
}

export interface CaBundle {
  readonly trustDomain: string;
  readonly cert: x509.X509Certificate;
  readonly certPem: string;
  readonly keys: CryptoKeyPair;
  readonly keyPem: string;
  /** Derived from the CA key; every certificate this CA signs uses it. */
  readonly signingAlgorithm: SigningAlgorithm;
  /** Intermediates from this CA up to (excluding) the root, this CA first; empty for a root. */
  readonly chainPems: readonly string[];
  readonly rootPem: string;
}

export interface IssuedSvid {
  readonly certPem: string;
  /** Leaf followed by the issuing intermediates; the root is not included (it is in the trust bundle). */
  readonly chainPem: string;
  readonly keyPem: string;
  readonly serial: string;
  readonly notAfter: number;
}

/** A certificate signed for a key the CA never sees (CSR flow). */
export interface IssuedCert {
  readonly certPem: string;
  /** Leaf followed by the issuing intermediates; the root is not included (it is in the trust bundle). */
  readonly chainPem: string;
  readonly serial: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

/** @peculiar/x509 PEM has no trailing newline; chains are concatenations, so every block must end in one. */
function pemOf(cert: x509.X509Certificate): string {
  const pem = cert.toString('pem');
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

/** RFC 7468 §2 textual encoding: base64 in 64-character lines between BEGIN/END labels, ending in a newline. */
export function toPem(der: Uint8Array | ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

/** One PEM block: its label and DER bytes. */
export interface PemBlock {
  readonly label: string;
  readonly der: Buffer;
}

/**
 * Strict RFC 7468 decoding: every BEGIN needs its matching END and the body must be base64, so a
 * truncated or spliced file is an error, not a silently shorter bundle. Messages say what is wrong;
 * callers add the file name.
 */
export function decodePem(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  const begin = /-----BEGIN ([A-Z0-9 ]+)-----/g;
  for (let m = begin.exec(text); m; m = begin.exec(text)) {
    const label = m[1]!;
    const endMarker = `-----END ${label}-----`;
    const end = text.indexOf(endMarker, begin.lastIndex);
    if (end < 0) throw new Error(`"${label}" block has no END line`);
    const body = text.slice(begin.lastIndex, end);
    // RFC 1421 headers only appear on legacy OpenSSL-encrypted keys.
    if (/Proc-Type:\s*4,ENCRYPTED/.test(body)) throw new Error(`"${label}" block is encrypted`);
    const b64 = body.replace(/\s+/g, '');
    if (b64.length === 0 || b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw new Error(`"${label}" block is not valid base64 (cut short or another block inside it?)`);
    out.push({ label, der: Buffer.from(b64, 'base64') });
    begin.lastIndex = end + endMarker.length;
  }
  return out;
}

function keyParams(type: KeyType): webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams {
  switch (type) {
    case 'ec-p256':
      return { name: 'ECDSA', namedCurve: 'P-256' };
    case 'ec-p384':
      return { name: 'ECDSA', namedCurve: 'P-384' };
    default:
      return { name: 'RSASSA-PKCS1-v1_5', modulusLength: Number(type.slice(4)), publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
  }
}

async function newKeys(type: KeyType = 'ec-p256'): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(keyParams(type), true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function pkcs8Pem(key: CryptoKey): Promise<string> {
  return toPem(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** The signing algorithm a CA key implies; refuses keys the mesh does not sign with. */
export function signingAlgorithmFor(key: CryptoKey): SigningAlgorithm {
  const a = key.algorithm as { name: string; namedCurve?: string; modulusLength?: number };
  if (a.name === 'ECDSA' && a.namedCurve === 'P-256') return { name: 'ECDSA', hash: 'SHA-256' };
  if (a.name === 'ECDSA' && a.namedCurve === 'P-384') return { name: 'ECDSA', hash: 'SHA-384' };
  if (a.name === 'RSASSA-PKCS1-v1_5' && (a.modulusLength ?? 0) >= 2048) return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  throw new IdentityError('CA_INVALID', `CA key ${a.name}${a.namedCurve ? ` ${a.namedCurve}` : ''}${a.modulusLength ? ` ${a.modulusLength}` : ''} is not supported: use ECDSA P-256/P-384 or RSA ≥ 2048`);
}

/** RFC 5280 §4.1.2.2: unique positive serials; 128 random bits, top bit clear (CA/B BR ask ≥ 64 bits of entropy). */
function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f || 0x01;
  return b.toString('hex');
}

// ---- DER (ITU-T X.690 §8, §10) -------------------------------------------------------------------
// The leaf path builds TBSCertificate bytes directly from a per-CA template: @peculiar/x509's ASN.1
// object layer costs ~5 ms per certificate, which alone capped issuance near 150/s on one core
// (bench/ca-issuance.mjs, node --cpu-prof). The CA certificates themselves still go through the library.

/** One DER element: its tag, where its header and contents start, and where it ends (exclusive). */
export interface DerElement {
  readonly tag: number;
  readonly headerStart: number;
  readonly start: number;
  readonly end: number;
}

/**
 * Reads one tag-length header at `off`, bounds-checked against `limit`. Only what DER allows: low tag
 * numbers and definite lengths of at most 4 length bytes (X.690 §8.1.2, §10.1).
 */
export function derRead(buf: Uint8Array, off: number, limit = buf.length): DerElement {
  if (off + 2 > limit) throw new Error('DER element truncated');
  const tag = buf[off]!;
  if ((tag & 0x1f) === 0x1f) throw new Error('DER high tag numbers are not expected here');
  let len = buf[off + 1]!;
  let start = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new Error('indefinite length is not DER');
    if (n > 4 || start + n > limit) throw new Error('DER length invalid');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new Error('DER element truncated');
  return { tag, headerStart: off, start, end };
}

/** The elements inside a constructed element's contents. */
export function derChildren(buf: Uint8Array, el: DerElement): DerElement[] {
  const out: DerElement[] = [];
  for (let off = el.start; off < el.end; ) {
    const c = derRead(buf, off, el.end);
    out.push(c);
    off = c.end;
  }
  return out;
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function der(tag: number, ...parts: Uint8Array[]): Buffer {
  let len = 0;
  for (const p of parts) len += p.length;
  return Buffer.concat([Buffer.from([tag]), derLength(len), ...parts]);
}

const SEQ = 0x30;
const OCTETS = 0x04;
/** [0] EXPLICIT Version v3 (RFC 5280 §4.1.2.1: extensions present). */
const V3 = Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]);
const CRITICAL = Buffer.from([0x01, 0x01, 0xff]);
const OID_SKI = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x0e]);
const OID_SAN = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x11]);
/** AlgorithmIdentifiers: RFC 5758 §3.2 (ECDSA: parameters absent), RFC 4055 §5 (RSA: parameters NULL). */
const SIG_ALG_DER: Readonly<Record<string, Buffer>> = {
  'ECDSA/SHA-256': Buffer.from('300a06082a8648ce3d040302', 'hex'),
  'ECDSA/SHA-384': Buffer.from('300a06082a8648ce3d040303', 'hex'),
  'RSASSA-PKCS1-v1_5/SHA-256': Buffer.from('300d06092a864886f70d01010b0500', 'hex'),
};

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, Zulu. */
function derTime(ms: number): Buffer {
  const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  return Number(iso.slice(0, 4)) < 2050 ? der(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii')) : der(0x18, Buffer.from(`${digits}Z`, 'ascii'));
}

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING contents of a DER SubjectPublicKeyInfo. */
function keyIdOf(spki: Uint8Array): Buffer {
  // SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
  const bits = derChildren(spki, derRead(spki, 0))[1];
  if (!bits || bits.tag !== 0x03) throw new Error('SubjectPublicKeyInfo has no BIT STRING');
  return createHash('sha1').update(spki.subarray(bits.start + 1, bits.end)).digest();
}

/** The CA certificate's subject Name exactly as encoded in it: a leaf's issuer must match it (RFC 5280 §4.1.2.4, §7.1). */
function subjectDerOf(certDer: Uint8Array): Buffer {
  const tbs = derChildren(certDer, derRead(certDer, 0))[0]!;
  const f = derChildren(certDer, tbs);
  const subject = f[f[0]!.tag === 0xa0 ? 5 : 4]!;
  return Buffer.from(certDer.subarray(subject.headerStart, subject.end));
}

/** SubjectAltName: URIs and DNS names encoded directly (the hot path); other name types through the library. */
function sanExtension(sans: x509.JsonGeneralNames): Buffer {
  const names: Buffer[] = [];
  for (const n of sans) {
    // GeneralName [6] uniformResourceIdentifier / [2] dNSName, both IA5String (RFC 5280 §4.2.1.6).
    if ((n.type !== 'url' && n.type !== 'dns') || !/^[\x20-\x7e]*$/.test(n.value)) return Buffer.from(new x509.SubjectAlternativeNameExtension(sans, true).rawData);
    names.push(der(n.type === 'url' ? 0x86 : 0x82, Buffer.from(n.value, 'ascii')));
  }
  // Critical: RFC 5280 §4.2.1.6 asks for it only with an empty subject; SPIRE and this CA always set it.
  return der(SEQ, OID_SAN, CRITICAL, der(OCTETS, der(SEQ, ...names)));
}

/**
 * What every leaf a CA signs shares, computed once per CA (a leaf only adds serial, validity, key, SKI,
 * SAN and the signature): algorithm, signing KeyObject, issuer and subject names, AKI, the constant
 * extensions and the chain suffix.
 */
interface CaPrep {
  readonly sigAlg: Buffer;
  readonly hash: string;
  readonly signingKey: KeyObject;
  readonly issuer: Buffer;
  readonly subject: Buffer;
  readonly notAfter: number;
  readonly chainTail: string;
  readonly aki: Buffer;
  readonly leafBasic: Buffer;
  readonly kuEc: Buffer;
  readonly kuRsa: Buffer;
  readonly eku: Buffer;
}

const preps = new WeakMap<CaBundle, CaPrep>();

/**
 * RFC 5280 §4.2.1.1: the AKI key identifier is the issuer's SKI. A plugged-in enterprise CA may have
 * derived its SKI differently from method (1), so it is copied when present rather than recomputed.
 */
async function akiFor(ca: CaBundle): Promise<x509.Extension> {
  const ski = ca.cert.getExtension(x509.SubjectKeyIdentifierExtension);
  return ski ? new x509.AuthorityKeyIdentifierExtension(ski.keyId) : x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey);
}

async function prep(ca: CaBundle): Promise<CaPrep> {
  const hit = preps.get(ca);
  if (hit) return hit;
  const sigAlg = SIG_ALG_DER[`${ca.signingAlgorithm.name}/${ca.signingAlgorithm.hash}`];
  if (!sigAlg) throw new IdentityError('CA_INVALID', `signing algorithm ${ca.signingAlgorithm.name}/${ca.signingAlgorithm.hash} is not supported`);
  const raw = (e: x509.Extension) => Buffer.from(e.rawData);
  const p: CaPrep = {
    sigAlg,
    hash: ca.signingAlgorithm.hash === 'SHA-384' ? 'sha384' : 'sha256',
    // A KeyObject signs synchronously in OpenSSL, without webcrypto's job hop and P1363→DER conversion.
    signingKey: KeyObject.from(ca.keys.privateKey),
    issuer: subjectDerOf(new Uint8Array(ca.cert.rawData)),
    // X509-SVID §2: the identity is the URI SAN; the subject only names the trust domain, as Istio's do.
    subject: Buffer.from(new x509.Name(`O=${ca.trustDomain}`).toArrayBuffer()),
    notAfter: ca.cert.notAfter.getTime(),
    chainTail: ca.chainPems.join(''),
    aki: raw(await akiFor(ca)),
    // X509-SVID §4.1: a leaf sets cA false; critical so no relying party skips it (RFC 5280 §4.2.1.9).
    leafBasic: raw(new x509.BasicConstraintsExtension(false, undefined, true)),
    // X509-SVID §4.3: digitalSignature, critical. keyEncipherment only for RSA keys (TLS 1.2 RSA key
    // transport, as Istio sets it); RFC 5480 §3 does not list it for id-ecPublicKey keys.
    kuEc: raw(new x509.KeyUsagesExtension(KU.digitalSignature, true)),
    kuRsa: raw(new x509.KeyUsagesExtension(KU.digitalSignature | KU.keyEncipherment, true)),
    // X509-SVID §4.5: an SVID is used on both ends of mTLS.
    eku: raw(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth])),
  };
  preps.set(ca, p);
  return p;
}

interface LeafSpec {
  /** DER SubjectPublicKeyInfo of the subject key. */
  readonly spki: Uint8Array;
  readonly rsaSubject: boolean;
  readonly sans: x509.JsonGeneralNames;
  readonly notBefore: number;
  /** Capped at the CA's own notAfter: a leaf never outlives its issuer (RFC 5280 §6.1.3 (a)(2)). */
  readonly notAfter: number;
  readonly isCa?: boolean;
}

/** The one place leaves are built: issueSvid, issueServingCert and signCsr differ only in key and SANs. */
async function signLeaf(ca: CaBundle, s: LeafSpec): Promise<IssuedCert> {
  const p = await prep(ca);
  // Certificate times have whole seconds; report what the certificate says.
  const notBefore = Math.floor(s.notBefore / 1000) * 1000;
  const notAfter = Math.floor(Math.min(s.notAfter, p.notAfter) / 1000) * 1000;
  const sn = serial();
  const extensions = [
    s.isCa ? Buffer.from(new x509.BasicConstraintsExtension(true, undefined, true).rawData) : p.leafBasic,
    s.isCa ? Buffer.from(new x509.KeyUsagesExtension(KU.keyCertSign | KU.cRLSign | KU.digitalSignature, true).rawData) : s.rsaSubject ? p.kuRsa : p.kuEc,
    p.eku,
    der(SEQ, OID_SKI, der(OCTETS, der(OCTETS, keyIdOf(s.spki)))),
    p.aki,
    // X509-SVID §2: exactly one URI SAN (issueSvid's test options pass zero or two to build bad SVIDs).
    sanExtension(s.sans),
  ];
  // RFC 5280 §4.1: TBSCertificate.
  const tbs = der(
    SEQ,
    V3,
    der(0x02, Buffer.from(sn, 'hex')),
    p.sigAlg,
    p.issuer,
    der(SEQ, derTime(notBefore), derTime(notAfter)),
    p.subject,
    s.spki,
    der(0xa3, der(SEQ, ...extensions)),
  );
  const signature = sign(p.hash, tbs, { key: p.signingKey, dsaEncoding: 'der' });
  const certPem = toPem(der(SEQ, tbs, p.sigAlg, der(0x03, Buffer.from([0]), signature)), 'CERTIFICATE');
  return { certPem, chainPem: certPem + p.chainTail, serial: sn, notBefore, notAfter };
}

async function spkiOf(key: CryptoKey): Promise<Uint8Array> {
  return Buffer.from(await webcrypto.subtle.exportKey('spki', key));
}

export interface CaOptions {
  trustDomain: string;
  commonName: string;
  clock: Clock;
  ttlMs?: number;
  /** The CA's key type (default ECDSA P-256, as the issue asks). */
  keyType?: KeyType;
}

/** Builds a CaBundle around existing key material, e.g. a plugged-in CA read from disk (ca-dir.ts). */
export async function caBundleFrom(o: {
  trustDomain: string;
  certPem: string;
  /** PKCS#8 PEM. */
  keyPem: string;
  chainPems: readonly string[];
  rootPem: string;
}): Promise<CaBundle> {
  const cert = new x509.X509Certificate(o.certPem);
  const spki = Buffer.from(cert.publicKey.rawData);
  const pub = cert.publicKey.algorithm as { name: string; namedCurve?: string };
  const importAlg = pub.name === 'ECDSA' ? { name: 'ECDSA', namedCurve: pub.namedCurve } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const pkcs8 = decodePem(o.keyPem).find((b) => b.label === 'PRIVATE KEY');
  if (!pkcs8) throw new IdentityError('CA_INVALID', 'CA key must be a PKCS#8 "PRIVATE KEY" PEM');
  const keys: CryptoKeyPair = {
    privateKey: await webcrypto.subtle.importKey('pkcs8', pkcs8.der, importAlg, true, ['sign']),
    publicKey: await webcrypto.subtle.importKey('spki', spki, importAlg, true, ['verify']),
  };
  return {
    trustDomain: o.trustDomain,
    cert,
    certPem: pemOf(cert),
    keys,
    keyPem: o.keyPem,
    signingAlgorithm: signingAlgorithmFor(keys.privateKey),
    chainPems: o.chainPems,
    rootPem: o.rootPem,
  };
}

export async function createRootCa(o: CaOptions): Promise<CaBundle> {
  const keys = await newKeys(o.keyType);
  const signingAlgorithm = signingAlgorithmFor(keys.privateKey);
  const now = o.clock.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${o.commonName}, O=${o.trustDomain}`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + (o.ttlMs ?? 10 * 365 * 86_400_000)),
    signingAlgorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(KU.keyCertSign | KU.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      // §5.1: a signing certificate may carry the trust domain's own SPIFFE ID.
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${o.trustDomain}` }]),
    ],
  });
  const pem = pemOf(cert);
  return { trustDomain: o.trustDomain, cert, certPem: pem, keys, keyPem: await pkcs8Pem(keys.privateKey), signingAlgorithm, chainPems: [], rootPem: pem };
}

export async function createIntermediateCa(parent: CaBundle, o: Omit<CaOptions, 'trustDomain'>): Promise<CaBundle> {
  const keys = await newKeys(o.keyType);
  const now = o.clock.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${o.commonName}, O=${parent.trustDomain}`,
    issuer: parent.cert.subjectName,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(Math.min(now + (o.ttlMs ?? 365 * 86_400_000), parent.cert.notAfter.getTime())),
    signingAlgorithm: parent.signingAlgorithm,
    publicKey: keys.publicKey,
    signingKey: parent.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(KU.keyCertSign | KU.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await akiFor(parent),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${parent.trustDomain}` }]),
    ],
  });
  const pem = pemOf(cert);
  return {
    trustDomain: parent.trustDomain,
    cert,
    certPem: pem,
    keys,
    keyPem: await pkcs8Pem(keys.privateKey),
    signingAlgorithm: signingAlgorithmFor(keys.privateKey),
    chainPems: [pem, ...parent.chainPems],
    rootPem: parent.rootPem,
  };
}

export interface SvidOptions {
  /** Normally exactly one; tests pass zero or two to build invalid SVIDs through the same code. */
  spiffeIds: string[];
  clock: Clock;
  ttlMs?: number;
  /** Absolute validity, overriding ttlMs and the backdate (tests: expired, not yet valid). */
  notBefore?: number;
  notAfter?: number;
  /** A CA certificate instead of a leaf (tests only: such an SVID must be refused). */
  isCa?: boolean;
  /** Extra non-SPIFFE URI SANs, e.g. https://… (tests only). */
  extraUris?: string[];
}

/** Issues a leaf X509-SVID with a fresh P-256 key: one URI SAN, CA:false, KU digitalSignature (critical), EKU server+client auth. */
export async function issueSvid(ca: CaBundle, o: SvidOptions): Promise<IssuedSvid> {
  const keys = await newKeys();
  const now = o.clock.now();
  const s = await signLeaf(ca, {
    spki: await spkiOf(keys.publicKey),
    rsaSubject: false,
    sans: [...o.spiffeIds, ...(o.extraUris ?? [])].map((value) => ({ type: 'url' as const, value })),
    notBefore: o.notBefore ?? now - BACKDATE_MS,
    notAfter: o.notAfter ?? now + (o.ttlMs ?? 3_600_000),
    isCa: o.isCa === true,
  });
  return { certPem: s.certPem, chainPem: s.chainPem, keyPem: await pkcs8Pem(keys.privateKey), serial: s.serial, notAfter: s.notAfter };
}

/**
 * The control server's own serving certificate: an X509-SVID (one URI SAN) that also carries the DNS
 * names and IPs clients dial. X509-SVID §2 allows other SAN types next to the single URI SAN.
 */
export async function issueServingCert(ca: CaBundle, o: { spiffeId: string; names: readonly string[]; ttlMs: number; clock: Clock }): Promise<IssuedSvid> {
  const keys = await newKeys();
  const now = o.clock.now();
  const s = await signLeaf(ca, {
    spki: await spkiOf(keys.publicKey),
    rsaSubject: false,
    sans: [{ type: 'url', value: o.spiffeId }, ...o.names.map((n) => ({ type: isIP(n) ? ('ip' as const) : ('dns' as const), value: n }))],
    notBefore: now - BACKDATE_MS,
    notAfter: now + o.ttlMs,
  });
  return { certPem: s.certPem, chainPem: s.chainPem, keyPem: await pkcs8Pem(keys.privateKey), serial: s.serial, notAfter: s.notAfter };
}

/**
 * Signs a parsed, verified CSR for the identity the caller proved (csr.ts checkCsrFor runs first). Only
 * the CSR's public key is used: subject, SANs and extensions all come from the CA, never from the request.
 */
export async function signCsr(ca: CaBundle, csr: ParsedCsr, o: { spiffeId: string; ttlMs: number; clock: Clock }): Promise<IssuedCert> {
  const now = o.clock.now();
  return signLeaf(ca, {
    // The SPKI bytes as the CSR carried them (and importKey validated); exporting costs an OpenSSL encode.
    spki: csr.spki ?? (await spkiOf(csr.publicKey)),
    rsaSubject: csr.publicKey.algorithm.name.startsWith('RSA'),
    sans: [{ type: 'url', value: o.spiffeId }],
    notBefore: now - BACKDATE_MS,
    notAfter: now + o.ttlMs,
  });
}
