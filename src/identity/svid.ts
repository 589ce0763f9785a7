// X509-SVID leaf checks (https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md), which Node's TLS does not do.
import { X509Certificate } from 'node:crypto';
// The ASN.1 layer of @peculiar/x509, not the library itself: its dependency-injection stack costs a
// sidecar ~10 MB of resident memory for three extensions read once per certificate.
import { AsnParser } from '@peculiar/asn1-schema';
import { BasicConstraints, Certificate, KeyUsage, KeyUsageFlags, SubjectAlternativeName, id_ce_basicConstraints, id_ce_keyUsage, id_ce_subjectAltName } from '@peculiar/asn1-x509';
import { parseSpiffeId, type SpiffeId } from './spiffe.js';

/** Bounded reasons: they are metric label values. */
export type SvidRejectReason =
  | 'no_certificate'
  | 'untrusted_chain'
  | 'expired'
  | 'not_yet_valid'
  | 'svid_uri_san_count'
  | 'svid_not_spiffe'
  | 'svid_is_ca'
  | 'svid_key_usage'
  | 'trust_domain_mismatch'
  | 'san_mismatch'
  | 'handshake';

export type SvidCheck = { readonly ok: true; readonly id: SpiffeId } | { readonly ok: false; readonly reason: SvidRejectReason; readonly message: string };

interface Parsed {
  uris: string[];
  isCa: boolean;
  keyUsage: number | undefined;
}

// Parsing the extensions costs more than the handshake's signature check; most peers reconnect with
// the same certificate, so results are kept per fingerprint in a small LRU.
const CACHE_MAX = 1024;
const cache = new Map<string, Parsed>();

function parse(cert: X509Certificate): Parsed {
  const key = cert.fingerprint256;
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const p: Parsed = { uris: [], isCa: false, keyUsage: undefined };
  for (const ext of AsnParser.parse(cert.raw, Certificate).tbsCertificate.extensions ?? []) {
    if (ext.extnID === id_ce_subjectAltName) {
      for (const n of AsnParser.parse(ext.extnValue, SubjectAlternativeName)) if (n.uniformResourceIdentifier !== undefined) p.uris.push(n.uniformResourceIdentifier);
    } else if (ext.extnID === id_ce_basicConstraints) {
      p.isCa = AsnParser.parse(ext.extnValue, BasicConstraints).cA;
    } else if (ext.extnID === id_ce_keyUsage) {
      p.keyUsage = AsnParser.parse(ext.extnValue, KeyUsage).toNumber();
    }
  }
  cache.set(key, p);
  if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value!);
  return p;
}

/**
 * Checks a leaf against the X509-SVID spec: exactly one URI SAN holding a valid SPIFFE ID with a path
 * (§2, §3), not a CA (§4.1), key usage with digitalSignature and without keyCertSign/cRLSign (§4.3), and,
 * when given, membership of the expected trust domain. Chain and validity are OpenSSL's job.
 */
export function checkX509Svid(cert: X509Certificate, opts: { trustDomain?: string } = {}): SvidCheck {
  const p = parse(cert);
  if (p.uris.length !== 1) return { ok: false, reason: 'svid_uri_san_count', message: `an X509-SVID has exactly one URI SAN, this certificate has ${p.uris.length}` };
  let id: SpiffeId;
  try {
    id = parseSpiffeId(p.uris[0]!);
  } catch (e) {
    return { ok: false, reason: 'svid_not_spiffe', message: (e as Error).message };
  }
  if (id.path === '') return { ok: false, reason: 'svid_not_spiffe', message: `${id.uri} names a trust domain, not a workload` };
  if (p.isCa) return { ok: false, reason: 'svid_is_ca', message: `${id.uri}: a leaf X509-SVID must not be a CA certificate` };
  if (p.keyUsage !== undefined) {
    const KU = KeyUsageFlags;
    if (!(p.keyUsage & KU.digitalSignature)) return { ok: false, reason: 'svid_key_usage', message: `${id.uri}: key usage lacks digitalSignature` };
    if (p.keyUsage & (KU.keyCertSign | KU.cRLSign)) return { ok: false, reason: 'svid_key_usage', message: `${id.uri}: a leaf must not carry keyCertSign or cRLSign` };
  }
  if (opts.trustDomain !== undefined && id.trustDomain !== opts.trustDomain) {
    return { ok: false, reason: 'trust_domain_mismatch', message: `${id.uri} is not in trust domain ${opts.trustDomain}` };
  }
  return { ok: true, id };
}

/** Maps OpenSSL verify results and TLS error codes onto the bounded reasons. */
export function reasonFromTlsError(code: string): SvidRejectReason {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return 'expired';
    case 'CERT_NOT_YET_VALID':
      return 'not_yet_valid';
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
    case 'CERT_UNTRUSTED':
    case 'INVALID_CA':
      return 'untrusted_chain';
    case 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE':
      return 'no_certificate';
    default:
      return 'handshake';
  }
}
