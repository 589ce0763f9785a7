// Certificate authority primitives: roots, intermediates, X509-SVIDs and CSR signing (SPIFFE X509-SVID spec §4, §5; RFC 5280).
import { KeyObject, createHash, randomFillSync, sign, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as asn1js from 'asn1js';
import { AsnConvert, AsnParser, AsnSerializer, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  Extension,
  Extensions,
  GeneralName,
  KeyUsage,
  KeyUsageFlags,
  Name,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_kp_clientAuth,
  id_kp_serverAuth,
} from '@peculiar/asn1-x509';
import { id_ecdsaWithSHA256, id_ecdsaWithSHA384 } from '@peculiar/asn1-ecc';
import { id_sha256WithRSAEncryption } from '@peculiar/asn1-rsa';
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

/**
 * RFC 7468 §2 textual encoding: base64 in 64-character lines between BEGIN/END labels, ending in a newline
 * (chains are concatenations, so every block must end in one; @peculiar/x509's PEM does not).
 */
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
function serialBytes(): ArrayBuffer {
  const b = new Uint8Array(16);
  randomFillSync(b);
  b[0] = b[0]! & 0x7f || 0x01;
  return b.buffer;
}

function serial(): string {
  return Buffer.from(serialBytes()).toString('hex');
}

// ---- Leaf signing (RFC 5280 §4.1) -------------------------------------------------------------------
// Leaves are built on the @peculiar/asn1-x509 schemas directly, not on @peculiar/x509's certificate
// generator: that layer (webcrypto signing, tsyringe lookups, re-parsing what it just built) cost ~5 ms
// per certificate and capped issuance near 150/s on one core (bench/ca-issuance.mjs, node --cpu-prof).
// asn1js, under the schemas, costs several µs per node encoded, so what every leaf shares is
// converted once per CA (prebuilt) and the TBSCertificate is encoded once (encodedOnce): with both, a
// CSR is parsed, verified and signed at 600–870/s on one core, against 400–500/s without them (the
// target is 500/s). The CA certificates themselves, made a few times a year, use the generator.

/**
 * AlgorithmIdentifiers: RFC 5758 §3.2 (ECDSA: parameters absent), RFC 4055 §5 (RSA: parameters NULL).
 * Built from the OIDs: @peculiar/asn1-rsa 2.11's ready-made sha256WithRSAEncryption carries the
 * sha512-256 OID (1.2.840.113549.1.1.16).
 */
const SIG_ALGS: Readonly<Record<string, AlgorithmIdentifier>> = {
  'ECDSA/SHA-256': new AlgorithmIdentifier({ algorithm: id_ecdsaWithSHA256 }),
  'ECDSA/SHA-384': new AlgorithmIdentifier({ algorithm: id_ecdsaWithSHA384 }),
  'RSASSA-PKCS1-v1_5/SHA-256': new AlgorithmIdentifier({ algorithm: id_sha256WithRSAEncryption, parameters: null }),
};

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING contents. */
function keyIdOf(spki: SubjectPublicKeyInfo): Buffer {
  return createHash('sha1').update(new Uint8Array(spki.subjectPublicKey)).digest();
}

function extension(extnID: string, critical: boolean, value: object): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

/**
 * A constant part of every leaf, converted to its ASN.1 tree once per CA instead of once per leaf:
 * AsnSerializer takes any value with toASN()/fromASN() (IAsnConvertible) as already converted.
 */
function prebuilt<T extends object>(value: T): T {
  const asn = AsnSerializer.toASN(value);
  const encodeOnly = {
    toASN: () => asn,
    fromASN: () => {
      throw new Error('a prebuilt ASN.1 value is encode-only');
    },
  };
  return encodeOnly as unknown as T;
}

/**
 * A SEQUENCE whose contents are encoded now and then only copied: asn1js writes a primitive node's
 * contents as given, under the identifier it is told (here universal 16, constructed: X.690 §8.9.1).
 * Encoding the tree itself costs as much as the rest of a leaf; this node costs a copy.
 */
function encodedOnce(tree: asn1js.Sequence): asn1js.Primitive {
  const node = new asn1js.Primitive({ idBlock: { tagClass: 1, tagNumber: 16 }, valueHex: tree.valueBlock.toBER() });
  node.idBlock.isConstructed = true; // the Primitive constructor clears it
  return node;
}

/** A SubjectAltName entry of a leaf (RFC 5280 §4.2.1.6). */
type LeafSan = { readonly type: 'url' | 'dns' | 'ip'; readonly value: string };

function generalName(n: LeafSan): GeneralName {
  switch (n.type) {
    case 'url':
      return new GeneralName({ uniformResourceIdentifier: n.value });
    case 'dns':
      return new GeneralName({ dNSName: n.value });
    default:
      return new GeneralName({ iPAddress: n.value });
  }
}

/**
 * What every leaf a CA signs shares, computed once per CA (a leaf only adds serial, validity, key, SKI,
 * SAN and the signature): algorithm, signing KeyObject, issuer and subject names, AKI, the constant
 * extensions and the chain suffix.
 */
interface CaPrep {
  readonly sigAlg: AlgorithmIdentifier;
  readonly hash: string;
  readonly signingKey: KeyObject;
  readonly issuer: Name;
  readonly subject: Name;
  readonly notAfter: number;
  readonly chainTail: string;
  readonly aki: Extension;
  readonly leafBasic: Extension;
  readonly kuEc: Extension;
  readonly kuRsa: Extension;
  readonly eku: Extension;
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
  const sigAlg = SIG_ALGS[`${ca.signingAlgorithm.name}/${ca.signingAlgorithm.hash}`];
  if (!sigAlg) throw new IdentityError('CA_INVALID', `signing algorithm ${ca.signingAlgorithm.name}/${ca.signingAlgorithm.hash} is not supported`);
  const p: CaPrep = {
    sigAlg: prebuilt(sigAlg),
    hash: ca.signingAlgorithm.hash === 'SHA-384' ? 'sha384' : 'sha256',
    // A KeyObject signs synchronously in OpenSSL, without webcrypto's job hop and P1363→DER conversion.
    signingKey: KeyObject.from(ca.keys.privateKey),
    // A leaf's issuer is the CA certificate's subject (RFC 5280 §4.1.2.4): the decoded Name keeps each
    // attribute's string type and order, so it encodes back to the same bytes (§7.1 name chaining).
    issuer: prebuilt(AsnParser.parse(ca.cert.rawData, Certificate).tbsCertificate.subject),
    // X509-SVID §2: the identity is the URI SAN; the subject only names the trust domain, as Istio's do.
    subject: prebuilt(AsnParser.parse(new x509.Name(`O=${ca.trustDomain}`).toArrayBuffer(), Name)),
    notAfter: ca.cert.notAfter.getTime(),
    chainTail: ca.chainPems.join(''),
    aki: prebuilt(AsnParser.parse((await akiFor(ca)).rawData, Extension)),
    // X509-SVID §4.1: a leaf sets cA false; critical so no relying party skips it (RFC 5280 §4.2.1.9).
    leafBasic: prebuilt(extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: false }))),
    // X509-SVID §4.3: digitalSignature, critical. keyEncipherment only for RSA keys (TLS 1.2 RSA key
    // transport, as Istio sets it); RFC 5480 §3 does not list it for id-ecPublicKey keys.
    kuEc: prebuilt(extension(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.digitalSignature))),
    kuRsa: prebuilt(extension(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment))),
    // X509-SVID §4.5: an SVID is used on both ends of mTLS.
    eku: prebuilt(extension(id_ce_extKeyUsage, false, new ExtendedKeyUsage([id_kp_serverAuth, id_kp_clientAuth]))),
  };
  preps.set(ca, p);
  return p;
}

interface LeafSpec {
  readonly spki: SubjectPublicKeyInfo;
  readonly rsaSubject: boolean;
  readonly sans: readonly LeafSan[];
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
  const serialNumber = serialBytes();
  const tbsCertificate = new TBSCertificate({
    version: Version.v3,
    serialNumber,
    signature: p.sigAlg,
    issuer: p.issuer,
    // Time picks UTCTime through 2049 and GeneralizedTime from 2050 (RFC 5280 §4.1.2.5).
    validity: new Validity({ notBefore: new Date(notBefore), notAfter: new Date(notAfter) }),
    subject: p.subject,
    subjectPublicKeyInfo: s.spki,
    extensions: new Extensions([
      s.isCa ? extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: true })) : p.leafBasic,
      s.isCa ? extension(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature)) : s.rsaSubject ? p.kuRsa : p.kuEc,
      p.eku,
      extension(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(keyIdOf(s.spki))),
      p.aki,
      // X509-SVID §2: exactly one URI SAN (issueSvid's test options pass zero or two to build bad SVIDs).
      // Critical: RFC 5280 §4.2.1.6 asks for it only with an empty subject; SPIRE and this CA always set it.
      extension(id_ce_subjectAltName, true, new SubjectAlternativeName(s.sans.map(generalName))),
    ]),
  });
  // The TBSCertificate is encoded once: those bytes are signed and are also the Certificate's first
  // field (RFC 5280 §4.1.1), so the Certificate is assembled around them with asn1js instead of being
  // serialized through the schema again (which would encode the TBSCertificate a second time).
  const tbs = encodedOnce(AsnSerializer.toASN(tbsCertificate) as asn1js.Sequence);
  const signature = sign(p.hash, new Uint8Array(tbs.toBER()), { key: p.signingKey, dsaEncoding: 'der' });
  const cert = new asn1js.Sequence({ value: [tbs, AsnSerializer.toASN(p.sigAlg), new asn1js.BitString({ valueHex: signature })] });
  const certPem = toPem(cert.toBER(), 'CERTIFICATE');
  return { certPem, chainPem: certPem + p.chainTail, serial: Buffer.from(serialNumber).toString('hex'), notBefore, notAfter };
}

async function spkiOf(key: CryptoKey): Promise<SubjectPublicKeyInfo> {
  return AsnParser.parse(await webcrypto.subtle.exportKey('spki', key), SubjectPublicKeyInfo);
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
    certPem: toPem(cert.rawData, 'CERTIFICATE'),
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
  const pem = toPem(cert.rawData, 'CERTIFICATE');
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
  const pem = toPem(cert.rawData, 'CERTIFICATE');
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
    // The key as parseCsr decoded it (and OpenSSL validated); exporting it again would cost an encode.
    spki: csr.spki,
    rsaSubject: csr.publicKey.asymmetricKeyType === 'rsa',
    sans: [{ type: 'url', value: o.spiffeId }],
    notBefore: now - BACKDATE_MS,
    notAfter: now + o.ttlMs,
  });
}
