// The pure JWT verifier: one provider's keys and claims rules against a compact JWS, on a caller-given clock.
import { constants, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { JWT_ALGORITHMS, type JwtAlgorithm, type JwtKey, type JwtProvider } from '../model/jwt.js';

/**
 * Why a token was refused: stable codes for metrics labels, logs and the 401's message. Bounded: nothing here
 * comes from the request.
 */
export type JwtFailure =
  | 'jwt_missing'
  | 'jwt_too_large'
  | 'jwt_malformed'
  | 'jwt_alg_not_allowed'
  | 'jwt_unknown_kid'
  | 'jwt_key_mismatch'
  | 'jwt_bad_signature'
  | 'jwt_unknown_issuer'
  | 'jwt_issuer_mismatch'
  | 'jwt_audience_mismatch'
  | 'jwt_expired'
  | 'jwt_not_yet_valid'
  | 'jwt_exp_missing'
  | 'jwt_lifetime_exceeded';

/** Envoy's messages for the same failures (jwt_verify_lib status strings), so users recognise them. */
export const JWT_FAILURE_MESSAGES: Readonly<Record<JwtFailure, string>> = {
  jwt_missing: 'Jwt is missing',
  jwt_too_large: 'Jwt is larger than 8192 bytes',
  jwt_malformed: 'Jwt is not in the form of Header.Payload.Signature with base64url-encoded JSON',
  jwt_alg_not_allowed: 'Jwt algorithm is not allowed',
  jwt_unknown_kid: 'Jwks doesn\'t have key to match kid from Jwt',
  jwt_key_mismatch: 'Jwks doesn\'t have key to match alg from Jwt',
  jwt_bad_signature: 'Jwt verification fails',
  jwt_unknown_issuer: 'Jwt issuer is not configured',
  jwt_issuer_mismatch: 'Jwt issuer is not configured for this provider',
  jwt_audience_mismatch: 'Audiences in Jwt are not allowed',
  jwt_expired: 'Jwt is expired',
  jwt_not_yet_valid: 'Jwt not yet valid',
  jwt_exp_missing: 'Jwt doesn\'t have an expiration time',
  jwt_lifetime_exceeded: 'Jwt lifetime exceeds the allowed maximum',
};

/** The bound, checked before anything is decoded: a huge header must not cost a parse. */
export const MAX_JWT_BYTES = 8192;

/** A token whose signature and issuer checked out; times and audiences are checked on every use. */
export interface VerifiedJwt {
  readonly token: string;
  readonly payload: Readonly<Record<string, unknown>>;
  /** The payload segment as sent (base64url): Envoy's forward_payload_header value. */
  readonly payloadB64: string;
  readonly exp: number | undefined;
  readonly nbf: number | undefined;
  readonly iat: number | undefined;
}

export type JwtResult = { readonly ok: true; readonly jwt: VerifiedJwt } | { readonly ok: false; readonly reason: JwtFailure; readonly kid?: string };

const ALLOWED: ReadonlySet<string> = new Set(JWT_ALGORITHMS);
/** RFC 7515 §2: base64url without padding; Buffer's decoder would skip stray characters silently. */
const B64URL = /^[A-Za-z0-9_-]+$/;

/** How each algorithm verifies with node:crypto, and which keys fit it (RFC 7518 §3). */
const SCHEMES: Readonly<Record<JwtAlgorithm, { readonly digest: string | null; readonly kty: JwtKey['kty']; readonly crv?: string; readonly pss?: true }>> = {
  RS256: { digest: 'sha256', kty: 'RSA' },
  RS384: { digest: 'sha384', kty: 'RSA' },
  RS512: { digest: 'sha512', kty: 'RSA' },
  PS256: { digest: 'sha256', kty: 'RSA', pss: true },
  PS384: { digest: 'sha384', kty: 'RSA', pss: true },
  PS512: { digest: 'sha512', kty: 'RSA', pss: true },
  ES256: { digest: 'sha256', kty: 'EC', crv: 'P-256' },
  ES384: { digest: 'sha384', kty: 'EC', crv: 'P-384' },
  EdDSA: { digest: null, kty: 'OKP' },
};

function fits(k: JwtKey, alg: JwtAlgorithm): boolean {
  const s = SCHEMES[alg];
  return k.kty === s.kty && (s.crv === undefined || k.crv === s.crv) && (k.alg === undefined || k.alg === alg);
}

function signatureOk(alg: JwtAlgorithm, key: KeyObject, data: Buffer, sig: Buffer): boolean {
  const s = SCHEMES[alg];
  // JWS ECDSA signatures are r||s (RFC 7518 §3.4), PSS salts are as long as the digest (§3.5).
  const k = s.kty === 'EC' ? { key, dsaEncoding: 'ieee-p1363' as const } : s.pss ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST } : key;
  // A signature of the wrong length is a plain `false` (checked for EC, RSA, PSS and EdDSA); `fits` kept keys
  // of another type away, so nothing here throws for what a client can send.
  return cryptoVerify(s.digest, data, k, sig);
}

const numericClaim = (v: unknown): number | undefined | null => (v === undefined ? undefined : typeof v === 'number' && Number.isFinite(v) ? v : null);

/**
 * jwt_verify_lib's audience comparison: `http://`/`https://` and one trailing slash are ignored, so
 * `https://api.example.com/` and `api.example.com` are the same audience.
 */
export function normalizeAudience(a: string): string {
  const s = a.replace(/^https?:\/\//, '');
  return s.endsWith('/') ? s.slice(0, -1) : s;
}

function audienceOk(aud: unknown, allowed: readonly string[]): boolean {
  if (allowed.length === 0) return true;
  const want = new Set(allowed.map(normalizeAudience));
  const got = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  return got.some((a) => typeof a === 'string' && want.has(normalizeAudience(a)));
}

/** Default bound of the verified-token cache (per provider, per config version). */
export const JWT_CACHE_SIZE = 1024;

/**
 * One provider's verifier, built once per config version (its keys were imported by the decoder).
 *
 * Why node:crypto and not jose's jwtVerify on the request path (bench/jwt.mjs, 2-core box, Node 20, load average
 * ~12): a first-seen token costs ES256 331 µs with a synchronous `crypto.verify` on a KeyObject imported at decode
 * time vs 323 µs through jose 6's jwtVerify (the same OpenSSL P-256 verify underneath: no difference), RS256 151 vs
 * 324 µs (jose goes through async WebCrypto, a thread-pool hop per token). What decides it is that the check is
 * synchronous: the filter chain stays synchronous (no Promise per request), and the decoder can import (and NACK) a
 * JWKS while it decodes, which jose's async importJWK cannot do. jose still parses what the client sent
 * (decodeProtectedHeader, decodeJwt: strict base64url, JSON objects only). Claims are checked here with Envoy's
 * rules (clock skew on exp/nbf, jwt_verify_lib's audience normalisation), which jose's claim checks do not share.
 *
 * Verified tokens are cached by their exact string (clients reuse a token for its whole life): a hit skips the
 * signature, but exp/nbf and the audiences are checked again on every use, so the cache never extends a token.
 * Measured worth it: a hit is ~0.5 µs against 150-330 µs for the signature. Only verified tokens are cached, so a
 * client sending garbage cannot evict the good ones faster than by presenting valid tokens of its own.
 */
export class JwtVerifier {
  private readonly cache = new Map<string, VerifiedJwt>();

  constructor(
    readonly provider: JwtProvider,
    private readonly cacheSize = provider.cacheSize ?? JWT_CACHE_SIZE,
  ) {}

  /** `nowMs`: wall-clock milliseconds (the injected clock). `audiences` overrides the provider's (provider_and_audiences). */
  verify(token: string, nowMs: number, audiences: readonly string[] = this.provider.audiences): JwtResult {
    if (token.length > MAX_JWT_BYTES) return { ok: false, reason: 'jwt_too_large' };
    let jwt = this.cache.get(token);
    if (!jwt) {
      const r = this.checkSignature(token);
      if (!r.ok) return r;
      jwt = r.jwt;
      if (this.cache.size >= this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(token, jwt);
    }
    const reason = this.checkClaims(jwt, nowMs / 1000, audiences);
    return reason ? { ok: false, reason } : { ok: true, jwt };
  }

  /** Shape, algorithm, issuer, key and signature: what does not depend on time or the requirement's audiences. */
  private checkSignature(token: string): JwtResult {
    const parts = token.split('.');
    if (parts.length !== 3 || !parts.every((p) => B64URL.test(p))) return { ok: false, reason: 'jwt_malformed' };
    let header: { alg?: unknown; kid?: unknown };
    let payload: Record<string, unknown>;
    try {
      header = decodeProtectedHeader(token);
      payload = decodeJwt(token);
    } catch {
      return { ok: false, reason: 'jwt_malformed' };
    }
    const alg = header.alg;
    if (typeof alg !== 'string' || !ALLOWED.has(alg)) return { ok: false, reason: 'jwt_alg_not_allowed' };
    // The issuer picks the provider, so it is compared before the keys (as Envoy does): a token of another
    // provider is "not mine", never "unknown kid" (which would ask the control server to refetch our JWKS).
    // Refusing on an unsigned claim is safe; accepting needs the signature below as well.
    const iss = this.provider.issuer;
    if (iss !== '' && payload.iss !== iss) return { ok: false, reason: 'jwt_issuer_mismatch' };
    const a = alg as JwtAlgorithm;
    const kid = typeof header.kid === 'string' ? header.kid : undefined;
    const keys = this.provider.keys;
    let candidates: readonly JwtKey[];
    if (kid !== undefined) {
      const named = keys.filter((k) => k.kid === kid);
      if (named.length === 0) return { ok: false, reason: 'jwt_unknown_kid', kid };
      candidates = named.filter((k) => fits(k, a));
    } else {
      candidates = keys.filter((k) => fits(k, a));
    }
    if (candidates.length === 0) return { ok: false, reason: 'jwt_key_mismatch' };
    const data = Buffer.from(`${parts[0]}.${parts[1]}`);
    const sig = Buffer.from(parts[2]!, 'base64url');
    if (!candidates.some((k) => signatureOk(a, k.key, data, sig))) return { ok: false, reason: 'jwt_bad_signature' };
    const exp = numericClaim(payload.exp);
    const nbf = numericClaim(payload.nbf);
    const iat = numericClaim(payload.iat);
    if (exp === null || nbf === null || iat === null) return { ok: false, reason: 'jwt_malformed' };
    return { ok: true, jwt: Object.freeze({ token, payload: freezeJson(payload), payloadB64: parts[1]!, exp, nbf, iat }) };
  }

  private checkClaims(jwt: VerifiedJwt, now: number, audiences: readonly string[]): JwtFailure | undefined {
    const p = this.provider;
    const skew = p.clockSkewSeconds;
    if (jwt.exp === undefined) {
      if (p.requireExpiration || p.maxLifetimeSeconds !== undefined) return 'jwt_exp_missing';
    } else if (now > jwt.exp + skew) return 'jwt_expired';
    if (jwt.nbf !== undefined && now < jwt.nbf - skew) return 'jwt_not_yet_valid';
    // max_lifetime bounds what the token claims for itself: exp - iat, or what is left of it when iat is absent.
    if (p.maxLifetimeSeconds !== undefined && jwt.exp! - (jwt.iat ?? now) > p.maxLifetimeSeconds) return 'jwt_lifetime_exceeded';
    if (!audienceOk(jwt.payload.aud, audiences)) return 'jwt_audience_mismatch';
    return undefined;
  }
}

/** Freezes a JSON value through and through: a cached token's payload is shared by every request that sends it. */
export function freezeJson<T>(v: T): T {
  if (typeof v === 'object' && v !== null) for (const x of Object.values(Object.freeze(v))) freezeJson(x);
  return v;
}

/** The `iss` of a token without verifying anything: which provider to try it with (allow_missing's lookup by issuer). */
export function unverifiedIssuer(token: string): string | undefined {
  if (token.length > MAX_JWT_BYTES) return undefined;
  try {
    const iss = decodeJwt(token).iss;
    return typeof iss === 'string' ? iss : undefined;
  } catch {
    return undefined;
  }
}
