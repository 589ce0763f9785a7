// JWT authentication as decoded from xDS: envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication, keys imported.
import type { KeyObject } from 'node:crypto';
import type { RouteMatch } from './types.js';

/**
 * The signature algorithms a token may use: asymmetric only. `none` and the HMAC family are never accepted — an
 * HS256 token "signed" with an RSA public key as the HMAC secret is the classic key-confusion attack.
 */
/** The filter's typed_config type URL: the one key its decoder, runtime factory and translator share. */
export const JWT_AUTHN_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';

/**
 * The dynamic-metadata namespace a verified token is published under as Istio's istio_authn filter does
 * (request.auth.principal, .audiences, .presenter, .claims, .raw_claims): the jwt_authn filter writes it, and the
 * RBAC metadata matchers istiod (and our translator) write read it.
 */
export const ISTIO_AUTHN_METADATA = 'istio_authn';

export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

/** One public key of a provider's JWKS, imported once when the config arrived (node:crypto KeyObject). */
export interface JwtKey {
  readonly kid?: string;
  /** The JWK's `alg` when it names one: the key then verifies only that algorithm (RFC 7517 §4.4). */
  readonly alg?: JwtAlgorithm;
  readonly kty: 'RSA' | 'EC' | 'OKP';
  /** EC / OKP curve (P-256, P-384, Ed25519). */
  readonly crv?: string;
  /** Not enumerable (the model is deep-frozen and dumped; the key is Node's object). */
  readonly key: KeyObject;
}

/** JwtHeader: the token is the header's value after value_prefix (e.g. `Authorization: Bearer <token>`). */
export interface JwtHeaderLocation {
  /** Lowercased header name. */
  readonly name: string;
  readonly valuePrefix: string;
}

/** JwtClaimToHeader: a claim copied into a request header after verification. */
export interface JwtClaimToHeader {
  readonly headerName: string;
  /** A top-level claim, or a nested one by dots (`a.b`). */
  readonly claimName: string;
}

/** envoy.extensions.filters.http.jwt_authn.v3.JwtProvider (the supported subset; remote_jwks is refused). */
export interface JwtProvider {
  /** The providers map key (istiod: origins-<n>). */
  readonly name: string;
  /** `iss` must equal it; empty accepts any issuer (Envoy). */
  readonly issuer: string;
  /** `aud` must contain one of these; empty skips the check. */
  readonly audiences: readonly string[];
  readonly keys: readonly JwtKey[];
  /** Keep the token in the request forwarded upstream (default: removed). */
  readonly forward: boolean;
  /**
   * Where the token is looked for. With none of the three set, Envoy's defaults apply: `Authorization: Bearer`
   * then the `access_token` query parameter; the decoder fills them in.
   */
  readonly fromHeaders: readonly JwtHeaderLocation[];
  readonly fromParams: readonly string[];
  readonly fromCookies: readonly string[];
  /** The verified payload, base64url, in this (lowercased) request header. */
  readonly forwardPayloadHeader?: string;
  readonly padForwardPayloadHeader: boolean;
  /** The verified payload in dynamic metadata `envoy.filters.http.jwt_authn[<this>]` (istiod: the issuer). */
  readonly payloadInMetadata?: string;
  readonly claimToHeaders: readonly JwtClaimToHeader[];
  /** exp / nbf tolerance (clock_skew_seconds, Envoy default 60). */
  readonly clockSkewSeconds: number;
  /** max_lifetime: a token must carry exp, and live no longer than this (seconds). */
  readonly maxLifetimeSeconds?: number;
  /** require_expiration: a token without exp is refused. */
  readonly requireExpiration: boolean;
  /** jwt_cache_config.jwt_cache_size: verified tokens kept (absent: the verifier's default). */
  readonly cacheSize?: number;
}

/** envoy.extensions.filters.http.jwt_authn.v3.JwtRequirement. */
export type JwtRequirement =
  | { readonly kind: 'provider'; readonly provider: string; readonly audiences?: readonly string[] }
  | { readonly kind: 'any'; readonly requirements: readonly JwtRequirement[] }
  | { readonly kind: 'all'; readonly requirements: readonly JwtRequirement[] }
  | { readonly kind: 'allow_missing' }
  | { readonly kind: 'allow_missing_or_failed' };

/** RequirementRule: the first rule whose match fits the request applies; `requires` absent = no JWT needed. */
export interface JwtRule {
  readonly match: RouteMatch;
  readonly requires?: JwtRequirement;
}

/** The decoded JwtAuthentication (HttpFilterConfig.config for the jwt_authn type URL). */
export interface JwtAuthnConfig {
  readonly providers: readonly JwtProvider[];
  readonly rules: readonly JwtRule[];
  /** CORS preflight requests (OPTIONS with Origin and Access-Control-Request-Method) pass unverified. */
  readonly bypassCorsPreflight: boolean;
}
