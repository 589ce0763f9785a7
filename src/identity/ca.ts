// Certificate authority primitives: ECDSA P-256 roots, intermediates and X509-SVIDs (SPIFFE X509-SVID spec §4, §5).
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from './x509.js';
import type { Clock } from '../core/clock.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const KU = x509.KeyUsageFlags;
/** §4.4 recommends a small backdate; one minute absorbs the ±minutes of skew seen between clouds. */
export const BACKDATE_MS = 60_000;

export interface CaBundle {
  readonly trustDomain: string;
  readonly cert: x509.X509Certificate;
  readonly certPem: string;
  readonly keys: CryptoKeyPair;
  readonly keyPem: string;
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

/** @peculiar/x509 PEM has no trailing newline; chains are concatenations, so every block must end in one. */
function pemOf(cert: x509.X509Certificate): string {
  const pem = cert.toString('pem');
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

async function newKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function pkcs8Pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n`;
}

/** §4.2 asks nothing of serials, RFC 5280 asks for unique positive ones: 128 random bits, top bit clear. */
function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f || 0x01;
  return b.toString('hex');
}

export interface CaOptions {
  trustDomain: string;
  commonName: string;
  clock: Clock;
  ttlMs?: number;
}

export async function createRootCa(o: CaOptions): Promise<CaBundle> {
  const keys = await newKeys();
  const now = o.clock.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${o.commonName}, O=${o.trustDomain}`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + (o.ttlMs ?? 10 * 365 * 86_400_000)),
    signingAlgorithm: ALG,
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
  return { trustDomain: o.trustDomain, cert, certPem: pem, keys, keyPem: await pkcs8Pem(keys.privateKey), chainPems: [], rootPem: pem };
}

export async function createIntermediateCa(parent: CaBundle, o: Omit<CaOptions, 'trustDomain'>): Promise<CaBundle> {
  const keys = await newKeys();
  const now = o.clock.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${o.commonName}, O=${parent.trustDomain}`,
    issuer: parent.cert.subject,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(Math.min(now + (o.ttlMs ?? 365 * 86_400_000), parent.cert.notAfter.getTime())),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: parent.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(KU.keyCertSign | KU.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(parent.keys.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${parent.trustDomain}` }]),
    ],
  });
  const pem = pemOf(cert);
  return { trustDomain: parent.trustDomain, cert, certPem: pem, keys, keyPem: await pkcs8Pem(keys.privateKey), chainPems: [pem, ...parent.chainPems], rootPem: parent.rootPem };
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

/** Issues a leaf X509-SVID: one URI SAN, CA:false, KU digitalSignature (critical), EKU server+client auth. */
export async function issueSvid(ca: CaBundle, o: SvidOptions): Promise<IssuedSvid> {
  const keys = await newKeys();
  const now = o.clock.now();
  const notBefore = o.notBefore ?? now - BACKDATE_MS;
  const notAfter = Math.min(o.notAfter ?? now + (o.ttlMs ?? 3_600_000), ca.cert.notAfter.getTime());
  const sn = serial();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: sn,
    subject: `O=${ca.trustDomain}`,
    issuer: ca.cert.subject,
    notBefore: new Date(notBefore),
    notAfter: new Date(notAfter),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(o.isCa === true, undefined, true),
      new x509.KeyUsagesExtension(o.isCa ? KU.keyCertSign | KU.cRLSign | KU.digitalSignature : KU.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
      new x509.SubjectAlternativeNameExtension([...o.spiffeIds, ...(o.extraUris ?? [])].map((value) => ({ type: 'url' as const, value })), true),
    ],
  });
  const certPem = pemOf(cert);
  return {
    certPem,
    chainPem: [certPem, ...ca.chainPems].join(''),
    keyPem: await pkcs8Pem(keys.privateKey),
    serial: sn,
    notAfter,
  };
}
