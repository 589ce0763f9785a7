// PKCS#10 CSRs for the mesh CA (RFC 2986): parsing, proof of possession, key policy, "sign only the proven identity", and the sidecar's own CSR.
import { KeyObject, createPublicKey, verify as verifySignature, webcrypto } from 'node:crypto';
import { isIPv6 } from 'node:net';
import * as asn1js from 'asn1js';
import { AsnConvert, AsnParser } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { ECParameters, id_ecPublicKey, id_ecdsaWithSHA256, id_ecdsaWithSHA384, id_ecdsaWithSHA512, id_secp256r1, id_secp384r1 } from '@peculiar/asn1-ecc';
import { ExtensionRequest, id_pkcs9_at_extensionRequest } from '@peculiar/asn1-pkcs9';
import { id_RSASSA_PSS, id_rsaEncryption, id_sha256WithRSAEncryption, id_sha384WithRSAEncryption, id_sha512WithRSAEncryption } from '@peculiar/asn1-rsa';
import {
  BasicConstraints,
  GeneralName,
  KeyUsage,
  KeyUsageFlags,
  SubjectAlternativeName,
  SubjectPublicKeyInfo,
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_subjectAltName,
} from '@peculiar/asn1-x509';
import * as x509 from './x509.js';
import { decodePem, toPem } from './ca.js';
import { IdentityError } from './errors.js';
import { parseSpiffeId } from './spiffe.js';

/** Bounded: these are metric label values. */
export type CsrRejectReason = 'malformed' | 'bad_signature' | 'weak_key' | 'san_mismatch' | 'extra_san' | 'ca_requested';

export interface ParsedCsr {
  /** The requester's public key (EC or RSA), as OpenSSL decoded and validated it. */
  readonly publicKey: KeyObject;
  /** For logs: 'ECDSA P-256', 'ECDSA P-384', 'RSA 2048', … */
  readonly keyDescription: string;
  /** URI SANs requested through the extensionRequest attribute (RFC 2985 §5.4.2). */
  readonly uris: readonly string[];
  /** Every other requested SAN: 'dns:…', 'ip:…', 'email:…', or the kind ('otherName', 'dirName', 'registeredID', …). */
  readonly otherSans: readonly string[];
  /** basicConstraints cA=true, or keyUsage keyCertSign/cRLSign, was requested. */
  readonly caRequested: boolean;
  /** The same key as decoded SubjectPublicKeyInfo: what signCsr puts into the certificate. */
  readonly spki: SubjectPublicKeyInfo;
}

type Crypto = Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[1];
const crypto = webcrypto as unknown as Crypto;

/** A CSR from a sidecar is well under 1 KiB; anything this large is not one (and costs parsing time). */
const MAX_PEM_BYTES = 64 * 1024;
const MAX_RSA_BITS = 8192;

/** Signature algorithms accepted as proof of possession: SHA-2 only (RFC 5758 §3.2, RFC 4055 §5). */
const SIG_ALGS: Readonly<Record<string, { key: 'ec' | 'rsa'; hash: string }>> = {
  [id_ecdsaWithSHA256]: { key: 'ec', hash: 'sha256' },
  [id_ecdsaWithSHA384]: { key: 'ec', hash: 'sha384' },
  [id_ecdsaWithSHA512]: { key: 'ec', hash: 'sha512' },
  [id_sha256WithRSAEncryption]: { key: 'rsa', hash: 'sha256' },
  [id_sha384WithRSAEncryption]: { key: 'rsa', hash: 'sha384' },
  [id_sha512WithRSAEncryption]: { key: 'rsa', hash: 'sha512' },
};

/** Names for keys that are refused, so the message says what was sent. */
const KEY_NAMES: Readonly<Record<string, string>> = {
  '1.3.101.112': 'Ed25519',
  '1.3.101.113': 'Ed448',
  '1.2.840.10040.4.1': 'DSA',
  [id_RSASSA_PSS]: 'RSA-PSS',
};

function refuse(reason: CsrRejectReason, message: string, cause?: unknown): never {
  throw new IdentityError('CSR_INVALID', message, { details: { reason }, ...(cause === undefined ? {} : { cause }) });
}

/**
 * IPv6 SANs are reported in full (eight four-digit groups), as this CA always has; the library hands
 * them over compressed (RFC 5952).
 */
function ipText(ip: string): string {
  if (!isIPv6(ip)) return ip;
  const [head, tail] = ip.split('::').map((half) => (half ? half.split(':') : []));
  const groups = tail ? [...head!, ...Array<string>(8 - head!.length - tail.length).fill('0'), ...tail] : head!;
  return groups.map((g) => g.padStart(4, '0')).join(':');
}

/** GeneralName (RFC 5280 §4.2.1.6) as a URI, or 'dns:…', 'ip:…', 'email:…' or its kind. */
function describeName(n: GeneralName): { uri?: string; other?: string } {
  if (n.uniformResourceIdentifier !== undefined) return { uri: n.uniformResourceIdentifier };
  if (n.dNSName !== undefined) return { other: `dns:${n.dNSName}` };
  if (n.rfc822Name !== undefined) return { other: `email:${n.rfc822Name}` };
  if (n.iPAddress !== undefined) return { other: `ip:${ipText(n.iPAddress)}` };
  if (n.otherName) return { other: 'otherName' };
  if (n.directoryName) return { other: 'dirName' };
  if (n.registeredID !== undefined) return { other: 'registeredID' };
  return { other: n.x400Address ? 'x400Address' : 'ediPartyName' };
}

interface RawCsr {
  readonly tbs: Uint8Array;
  readonly spki: SubjectPublicKeyInfo;
  /** subjectPKInfo in DER, for OpenSSL. */
  readonly spkiDer: Uint8Array;
  readonly keyAlg: string;
  readonly curve: string | undefined;
  readonly sigAlg: string;
  readonly signature: Uint8Array;
  readonly uris: string[];
  readonly otherSans: string[];
  readonly caRequested: boolean;
}

/**
 * RFC 2986 §4 structure, decoded with the @peculiar/asn1-csr schema. A parsing quirk here cannot widen
 * what gets signed: only the public key is taken from a CSR (and OpenSSL validates it on import); the
 * SANs read here can only cause a refusal.
 */
function readCsr(der: Uint8Array): RawCsr {
  const ber = asn1js.fromBER(der);
  if (ber.offset === -1) throw new Error(ber.result.error);
  if (ber.offset !== der.byteLength) throw new Error('trailing bytes after the request');
  const req = AsnParser.fromASN<CertificationRequest>(ber.result, CertificationRequest);
  // The schema match ignores elements past the ones it names and the signature's unused-bit count; DER
  // allows neither here (RFC 2986 §4.2), so both are checked on asn1js's tree.
  const fields = (ber.result as asn1js.Sequence).valueBlock.value;
  if (fields.length !== 3) throw new Error('CertificationRequest has more than three fields');
  if (req.signature.byteLength === 0 || (fields[2] as asn1js.BitString).valueBlock.unusedBits !== 0) throw new Error('signature BIT STRING is empty or not byte-aligned');
  const info = req.certificationRequestInfo;
  if (info.version !== 0) throw new Error('version is not v1 (0)');
  const keyAlg = info.subjectPKInfo.algorithm.algorithm;
  const keyParams = info.subjectPKInfo.algorithm.parameters;
  const curve = keyAlg === id_ecPublicKey && keyParams ? AsnParser.parse(keyParams, ECParameters).namedCurve : undefined;

  const uris: string[] = [];
  const otherSans: string[] = [];
  let caRequested = false;
  // RFC 2986 requires the attributes field; some encoders omit it when empty, which is harmless.
  for (const attr of info.attributes) {
    // Every extensionRequest value (RFC 2985 §5.4.2), not only the first: a second one must not slip a SAN past the check.
    if (attr.type !== id_pkcs9_at_extensionRequest) continue;
    for (const value of attr.values) {
      for (const ext of AsnParser.parse(value, ExtensionRequest)) {
        if (ext.extnID === id_ce_subjectAltName) {
          for (const n of AsnParser.parse(ext.extnValue, SubjectAlternativeName)) {
            const d = describeName(n);
            if (d.uri !== undefined) uris.push(d.uri);
            else otherSans.push(d.other!);
          }
        } else if (ext.extnID === id_ce_basicConstraints) {
          if (AsnParser.parse(ext.extnValue, BasicConstraints).cA) caRequested = true;
        } else if (ext.extnID === id_ce_keyUsage) {
          if (AsnParser.parse(ext.extnValue, KeyUsage).toNumber() & (KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign)) caRequested = true;
        }
      }
    }
  }
  return {
    // The exact bytes sent, as the signature covers them.
    tbs: new Uint8Array(req.certificationRequestInfoRaw!),
    spki: info.subjectPKInfo,
    spkiDer: new Uint8Array(AsnConvert.serialize(info.subjectPKInfo)),
    keyAlg,
    curve,
    sigAlg: req.signatureAlgorithm.algorithm,
    signature: new Uint8Array(req.signature),
    uris,
    otherSans,
    caRequested,
  };
}

/**
 * The issue's key policy: ECDSA on P-256 or P-384, or RSA of at least 2048 bits (NIST SP 800-57 Pt 1
 * §5.6.1: 112-bit security). Everything else (other curves, Ed25519, DSA, RSA-PSS-only keys) is refused.
 */
function keyKind(raw: RawCsr): { kind: 'ec' | 'rsa'; description: string } {
  if (raw.keyAlg === id_ecPublicKey) {
    if (raw.curve === id_secp256r1) return { kind: 'ec', description: 'ECDSA P-256' };
    if (raw.curve === id_secp384r1) return { kind: 'ec', description: 'ECDSA P-384' };
    refuse('weak_key', `CSR key is ECDSA on curve ${raw.curve ?? '(explicit parameters)'}: only P-256 and P-384 are accepted`);
  }
  if (raw.keyAlg === id_rsaEncryption) return { kind: 'rsa', description: 'RSA' };
  refuse('weak_key', `CSR key is ${KEY_NAMES[raw.keyAlg] ?? `of algorithm ${raw.keyAlg}`}: only ECDSA P-256/P-384 and RSA ≥ 2048 are accepted`);
}

/**
 * Parses a PEM PKCS#10 request and checks what can be checked without knowing who sent it: structure,
 * key policy and the self-signature (RFC 2986 §3: it proves possession of the private key). Requested
 * extensions come from the extensionRequest attribute and are only reported: nothing from the CSR but
 * its public key ever reaches a certificate (ca.ts signCsr).
 */
export async function parseCsr(pem: string): Promise<ParsedCsr> {
  if (typeof pem !== 'string' || pem.length === 0) refuse('malformed', 'CSR is empty');
  if (pem.length > MAX_PEM_BYTES) refuse('malformed', `CSR is ${pem.length} bytes, more than the ${MAX_PEM_BYTES} a certificate request can need`);
  let raw: RawCsr;
  try {
    const blocks = decodePem(pem);
    // RFC 7468 §7: "CERTIFICATE REQUEST"; "NEW CERTIFICATE REQUEST" is the legacy label some tools still write.
    const csrs = blocks.filter((b) => b.label === 'CERTIFICATE REQUEST' || b.label === 'NEW CERTIFICATE REQUEST');
    if (csrs.length !== 1) {
      throw new Error(csrs.length === 0 ? `no CERTIFICATE REQUEST PEM block${blocks.length ? ` (found ${blocks.map((b) => b.label).join(', ')})` : ''}` : `${csrs.length} CERTIFICATE REQUEST blocks, expected one`);
    }
    raw = readCsr(csrs[0]!.der);
  } catch (e) {
    refuse('malformed', `CSR is corrupt or truncated: ${(e as Error).message}`, e);
  }

  const { kind, description } = keyKind(raw);
  // OpenSSL decodes and validates the key (an EC point must lie on its curve); node:crypto's KeyObject
  // costs half of webcrypto's importKey, which wraps the same call.
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(raw.spkiDer), format: 'der', type: 'spki' });
  } catch (e) {
    refuse('malformed', `CSR public key is corrupt: ${(e as Error).message}`, e);
  }
  let keyDescription = description;
  if (kind === 'rsa') {
    const { modulusLength: bits = 0, publicExponent: e = 0n } = publicKey.asymmetricKeyDetails ?? {};
    if (bits < 2048) refuse('weak_key', `CSR key is RSA ${bits}: at least 2048 bits are required`);
    // CA/Browser Forum BR §6.1.6: an odd public exponent of at least 65537 (e = 3 invites forgeries).
    if (e < 65537n || e % 2n === 0n) refuse('weak_key', `CSR key is RSA with public exponent ${e}: an odd exponent of at least 65537 is required`);
    if (bits > MAX_RSA_BITS) refuse('weak_key', `CSR key is RSA ${bits}: more than ${MAX_RSA_BITS} bits is not accepted`);
    keyDescription = `RSA ${bits}`;
  }

  // The signature algorithm must fit the key and use SHA-2; SHA-1 proofs are refused outright.
  const sig = SIG_ALGS[raw.sigAlg];
  if (!sig || sig.key !== kind) {
    refuse('bad_signature', `CSR signature algorithm ${raw.sigAlg} does not fit a ${keyDescription} key: use ECDSA or RSA PKCS#1 v1.5 with SHA-256/384/512`);
  }
  // Synchronous OpenSSL verify over the exact bytes sent; a malformed signature value verifies false
  // rather than throwing.
  const ok = verifySignature(sig.hash, raw.tbs, { key: publicKey, dsaEncoding: 'der' }, raw.signature);
  if (!ok) refuse('bad_signature', 'CSR signature does not verify with its own public key (no proof of possession, RFC 2986 §3)');

  return Object.freeze({
    publicKey,
    keyDescription,
    uris: Object.freeze(raw.uris),
    otherSans: Object.freeze(raw.otherSans),
    caRequested: raw.caRequested,
    spki: raw.spki,
  });
}

/**
 * The CA signs only the identity the credential proves. The CSR must ask for exactly that SPIFFE ID as
 * its one URI SAN (X509-SVID §2). A CSR with the proven ID plus further URIs is 'extra_san' (it asks for
 * more than it proved); URIs that do not include the proven ID at all are 'san_mismatch'.
 */
export function checkCsrFor(csr: ParsedCsr, spiffeId: string): void {
  if (!csr.uris.includes(spiffeId)) {
    const asked = csr.uris.length === 0 ? 'no URI SAN' : csr.uris.join(', ');
    refuse('san_mismatch', `CSR asks for ${asked} but the credential proves ${spiffeId}`);
  }
  if (csr.uris.length > 1) {
    refuse('extra_san', `CSR asks for ${csr.uris.length} URI SANs (${csr.uris.join(', ')}): an X509-SVID has exactly one, ${spiffeId}`);
  }
  if (csr.otherSans.length > 0) {
    refuse('extra_san', `CSR asks for SANs beyond ${spiffeId}: ${csr.otherSans.join(', ')}; the mesh CA signs only the proven SPIFFE ID`);
  }
  if (csr.caRequested) refuse('ca_requested', `CSR for ${spiffeId} asks for a CA certificate (basicConstraints cA or keyCertSign/cRLSign); workload certificates are leaves (X509-SVID §4.1)`);
}

function csrSigningAlgorithm(key: webcrypto.CryptoKey): { name: string; hash: string } {
  const a = key.algorithm as { name: string; namedCurve?: string };
  if (a.name === 'ECDSA') return { name: 'ECDSA', hash: a.namedCurve === 'P-384' ? 'SHA-384' : 'SHA-256' };
  return { name: a.name, hash: 'SHA-256' };
}

/**
 * What a sidecar sends: subject O=<trust domain>, one URI SAN with its SPIFFE ID, signed with its key
 * (ECDSA P-256/SHA-256 by default; other key types sign with their matching algorithm).
 */
export async function createCsr(keys: webcrypto.CryptoKeyPair, spiffeId: string): Promise<string> {
  const id = parseSpiffeId(spiffeId);
  const req = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      name: `O=${id.trustDomain}`,
      keys: keys as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
      signingAlgorithm: csrSigningAlgorithm(keys.privateKey),
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id.uri }])],
    },
    crypto,
  );
  return toPem(req.rawData, 'CERTIFICATE REQUEST');
}
