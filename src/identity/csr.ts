// PKCS#10 CSRs for the mesh CA (RFC 2986): parsing, proof of possession, key policy, "sign only the proven identity", and the sidecar's own CSR.
import { KeyObject, verify as verifySignature, webcrypto } from 'node:crypto';
import * as x509 from './x509.js';
import { decodePem, derChildren, derRead, type DerElement } from './ca.js';
import { IdentityError } from './errors.js';
import { parseSpiffeId } from './spiffe.js';

/** Bounded: these are metric label values. */
export type CsrRejectReason = 'malformed' | 'bad_signature' | 'weak_key' | 'san_mismatch' | 'extra_san' | 'ca_requested';

export interface ParsedCsr {
  /** The requester's public key, importable for signing the certificate (ECDSA or RSASSA-PKCS1-v1_5). */
  readonly publicKey: webcrypto.CryptoKey;
  /** For logs: 'ECDSA P-256', 'ECDSA P-384', 'RSA 2048', … */
  readonly keyDescription: string;
  /** URI SANs requested through the extensionRequest attribute (RFC 2985 §5.4.2). */
  readonly uris: readonly string[];
  /** Every other requested SAN: 'dns:…', 'ip:…', 'email:…', or the kind ('otherName', 'dirName', 'registeredID', …). */
  readonly otherSans: readonly string[];
  /** basicConstraints cA=true, or keyUsage keyCertSign/cRLSign, was requested. */
  readonly caRequested: boolean;
  /** The DER SubjectPublicKeyInfo as sent; parseCsr sets it so signCsr need not re-export publicKey (an OpenSSL encode). */
  readonly spki?: Uint8Array;
}

type Crypto = Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[1];
const crypto = webcrypto as unknown as Crypto;

/** A CSR from a sidecar is well under 1 KiB; anything this large is not one (and costs parsing time). */
const MAX_PEM_BYTES = 64 * 1024;
const MAX_RSA_BITS = 8192;

const OID = {
  extensionRequest: '1.2.840.113549.1.9.14', // RFC 2985 §5.4.2
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  ecPublicKey: '1.2.840.10045.2.1', // RFC 5480 §2.1.1
  p256: '1.2.840.10045.3.1.7',
  p384: '1.3.132.0.34',
  rsaEncryption: '1.2.840.113549.1.1.1', // RFC 3279 §2.3.1
} as const;

/** Signature algorithms accepted as proof of possession: SHA-2 only (RFC 5758 §3.2, RFC 4055 §5). */
const SIG_ALGS: Readonly<Record<string, { key: 'ec' | 'rsa'; hash: string }>> = {
  '1.2.840.10045.4.3.2': { key: 'ec', hash: 'sha256' },
  '1.2.840.10045.4.3.3': { key: 'ec', hash: 'sha384' },
  '1.2.840.10045.4.3.4': { key: 'ec', hash: 'sha512' },
  '1.2.840.113549.1.1.11': { key: 'rsa', hash: 'sha256' },
  '1.2.840.113549.1.1.12': { key: 'rsa', hash: 'sha384' },
  '1.2.840.113549.1.1.13': { key: 'rsa', hash: 'sha512' },
};

/** Names for keys that are refused, so the message says what was sent. */
const KEY_NAMES: Readonly<Record<string, string>> = {
  '1.3.101.112': 'Ed25519',
  '1.3.101.113': 'Ed448',
  '1.2.840.10040.4.1': 'DSA',
  '1.2.840.113549.1.1.10': 'RSA-PSS',
};

function refuse(reason: CsrRejectReason, message: string, cause?: unknown): never {
  throw new IdentityError('CSR_INVALID', message, { details: { reason }, ...(cause === undefined ? {} : { cause }) });
}

/** X.690 §8.19: an OBJECT IDENTIFIER's contents as dotted decimal. */
function oidOf(buf: Uint8Array, el: DerElement | undefined): string {
  if (!el || el.tag !== 0x06 || el.end === el.start) throw new Error('expected an OBJECT IDENTIFIER');
  const arcs: number[] = [];
  let v = 0;
  for (let i = el.start; i < el.end; i++) {
    v = v * 128 + (buf[i]! & 0x7f);
    if (!(buf[i]! & 0x80)) {
      if (arcs.length === 0) arcs.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else arcs.push(v);
      v = 0;
    }
  }
  return arcs.join('.');
}

function expect(el: DerElement | undefined, tag: number, what: string): DerElement {
  if (!el || el.tag !== tag) throw new Error(`${what} missing or of the wrong type`);
  return el;
}

/** GeneralName (RFC 5280 §4.2.1.6) as 'uri:…', 'dns:…', 'ip:…', 'email:…' or its kind. */
function generalName(buf: Uint8Array, el: DerElement): { uri?: string; other?: string } {
  const text = () => Buffer.from(buf.subarray(el.start, el.end)).toString('latin1');
  switch (el.tag) {
    case 0x86:
      return { uri: text() };
    case 0x82:
      return { other: `dns:${text()}` };
    case 0x81:
      return { other: `email:${text()}` };
    case 0x87: {
      const b = Buffer.from(buf.subarray(el.start, el.end));
      const ip = b.length === 4 ? [...b].join('.') : b.length === 16 ? (b.toString('hex').match(/.{4}/g) ?? []).join(':') : b.toString('hex');
      return { other: `ip:${ip}` };
    }
    case 0xa0:
      return { other: 'otherName' };
    case 0xa4:
      return { other: 'dirName' };
    case 0x88:
      return { other: 'registeredID' };
    default:
      return { other: `generalName[${el.tag & 0x1f}]` };
  }
}

interface RawCsr {
  readonly tbs: Uint8Array;
  readonly spki: Uint8Array;
  readonly keyAlg: string;
  readonly curve: string | undefined;
  readonly sigAlg: string;
  readonly signature: Uint8Array;
  readonly uris: string[];
  readonly otherSans: string[];
  readonly caRequested: boolean;
}

/**
 * RFC 2986 §4 structure, read directly from DER (the hot path of issuance; @peculiar/x509's object layer
 * costs ~0.8 ms per request). A parsing quirk here cannot widen what gets signed: only the public key is
 * taken from a CSR (and OpenSSL validates it on import); the SANs read here can only cause a refusal.
 */
function readCsr(buf: Uint8Array): RawCsr {
  const outer = expect(derRead(buf, 0), 0x30, 'CertificationRequest');
  if (outer.end !== buf.length) throw new Error('trailing bytes after the request');
  const [info, sigAlgId, sigBits, extra] = derChildren(buf, outer);
  if (extra) throw new Error('CertificationRequest has more than three fields');
  expect(info, 0x30, 'certificationRequestInfo');
  expect(sigAlgId, 0x30, 'signatureAlgorithm');
  expect(sigBits, 0x03, 'signature');
  // certificationRequestInfo ::= SEQUENCE { version INTEGER (v1 = 0), subject Name, subjectPKInfo, attributes [0] }
  const [version, subject, spkiEl, attrs] = derChildren(buf, info!);
  const v = expect(version, 0x02, 'version');
  if (v.end - v.start !== 1 || buf[v.start] !== 0) throw new Error('version is not v1 (0)');
  expect(subject, 0x30, 'subject');
  const [keyAlgId, keyBits] = derChildren(buf, expect(spkiEl, 0x30, 'subjectPKInfo'));
  expect(keyBits, 0x03, 'subjectPublicKey');
  const [keyAlgOid, keyParams] = derChildren(buf, expect(keyAlgId, 0x30, 'subjectPKInfo algorithm'));
  const keyAlg = oidOf(buf, keyAlgOid);
  const curve = keyAlg === OID.ecPublicKey && keyParams?.tag === 0x06 ? oidOf(buf, keyParams) : undefined;

  const uris: string[] = [];
  const otherSans: string[] = [];
  let caRequested = false;
  // RFC 2986 requires the attributes field; some encoders omit it when empty, which is harmless.
  if (attrs) {
    for (const attr of derChildren(buf, expect(attrs, 0xa0, 'attributes'))) {
      const [type, values] = derChildren(buf, expect(attr, 0x30, 'Attribute'));
      // Every extensionRequest value, not only the first: a second one must not slip a SAN past the check.
      if (oidOf(buf, type) !== OID.extensionRequest) continue;
      for (const exts of derChildren(buf, expect(values, 0x31, 'extensionRequest values'))) {
        for (const ext of derChildren(buf, expect(exts, 0x30, 'Extensions'))) {
          // Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
          const f = derChildren(buf, expect(ext, 0x30, 'Extension'));
          const id = oidOf(buf, f[0]);
          const value = expect(f[f.length - 1], 0x04, 'extnValue');
          if (id === OID.subjectAltName) {
            for (const n of derChildren(buf, expect(derRead(buf, value.start, value.end), 0x30, 'GeneralNames'))) {
              const g = generalName(buf, n);
              if (g.uri !== undefined) uris.push(g.uri);
              else otherSans.push(g.other!);
            }
          } else if (id === OID.basicConstraints) {
            // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }
            const [ca] = derChildren(buf, expect(derRead(buf, value.start, value.end), 0x30, 'BasicConstraints'));
            if (ca?.tag === 0x01 && buf[ca.start] !== 0) caRequested = true;
          } else if (id === OID.keyUsage) {
            // KeyUsage BIT STRING: keyCertSign is bit 5 (0x04), cRLSign bit 6 (0x02) of the first byte (RFC 5280 §4.2.1.3).
            const ku = expect(derRead(buf, value.start, value.end), 0x03, 'KeyUsage');
            if (ku.end - ku.start > 1 && (buf[ku.start + 1]! & 0x06) !== 0) caRequested = true;
          }
        }
      }
    }
  }
  const sigBitsEl = sigBits!;
  if (sigBitsEl.end - sigBitsEl.start < 2 || buf[sigBitsEl.start] !== 0) throw new Error('signature BIT STRING is empty or not byte-aligned');
  return {
    tbs: buf.subarray(info!.headerStart, info!.end),
    spki: buf.subarray(spkiEl!.headerStart, spkiEl!.end),
    keyAlg,
    curve,
    sigAlg: oidOf(buf, derChildren(buf, sigAlgId!)[0]),
    signature: buf.subarray(sigBitsEl.start + 1, sigBitsEl.end),
    uris,
    otherSans,
    caRequested,
  };
}

/**
 * The issue's key policy: ECDSA on P-256 or P-384, or RSA of at least 2048 bits (NIST SP 800-57 Pt 1
 * §5.6.1: 112-bit security). Everything else (other curves, Ed25519, DSA, RSA-PSS-only keys) is refused.
 */
function importParams(raw: RawCsr): { alg: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams; description: string } {
  if (raw.keyAlg === OID.ecPublicKey) {
    if (raw.curve === OID.p256) return { alg: { name: 'ECDSA', namedCurve: 'P-256' }, description: 'ECDSA P-256' };
    if (raw.curve === OID.p384) return { alg: { name: 'ECDSA', namedCurve: 'P-384' }, description: 'ECDSA P-384' };
    refuse('weak_key', `CSR key is ECDSA on curve ${raw.curve ?? '(explicit parameters)'}: only P-256 and P-384 are accepted`);
  }
  if (raw.keyAlg === OID.rsaEncryption) return { alg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, description: 'RSA' };
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

  const { alg, description } = importParams(raw);
  let publicKey: webcrypto.CryptoKey;
  try {
    publicKey = await webcrypto.subtle.importKey('spki', raw.spki, alg, true, ['verify']);
  } catch (e) {
    refuse('malformed', `CSR public key is corrupt: ${(e as Error).message}`, e);
  }
  let keyDescription = description;
  if (alg.name !== 'ECDSA') {
    const { modulusLength: bits, publicExponent } = publicKey.algorithm as webcrypto.RsaHashedKeyAlgorithm;
    if (bits < 2048) refuse('weak_key', `CSR key is RSA ${bits}: at least 2048 bits are required`);
    // CA/Browser Forum BR §6.1.6: an odd public exponent of at least 65537 (e = 3 invites forgeries).
    const e = publicExponent.reduce((v, b) => v * 256 + b, 0);
    if (e < 65537 || e % 2 === 0) refuse('weak_key', `CSR key is RSA with public exponent ${e}: an odd exponent of at least 65537 is required`);
    if (bits > MAX_RSA_BITS) refuse('weak_key', `CSR key is RSA ${bits}: more than ${MAX_RSA_BITS} bits is not accepted`);
    keyDescription = `RSA ${bits}`;
  }

  // The signature algorithm must fit the key and use SHA-2; SHA-1 proofs are refused outright.
  const sig = SIG_ALGS[raw.sigAlg];
  if (!sig || sig.key !== (alg.name === 'ECDSA' ? 'ec' : 'rsa')) {
    refuse('bad_signature', `CSR signature algorithm ${raw.sigAlg} does not fit a ${keyDescription} key: use ECDSA or RSA PKCS#1 v1.5 with SHA-256/384/512`);
  }
  // Synchronous OpenSSL verify over the exact bytes sent (the KeyObject shares the imported key); a
  // malformed signature value verifies false rather than throwing.
  const ok = verifySignature(sig.hash, raw.tbs, { key: KeyObject.from(publicKey), dsaEncoding: 'der' }, raw.signature);
  if (!ok) refuse('bad_signature', 'CSR signature does not verify with its own public key (no proof of possession, RFC 2986 §3)');

  return Object.freeze({
    publicKey,
    keyDescription,
    uris: Object.freeze(raw.uris),
    otherSans: Object.freeze(raw.otherSans),
    caRequested: raw.caRequested,
    spki: Buffer.from(raw.spki),
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
  const pem = req.toString('pem');
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}
