// envoy.filters.http.jwt_authn (envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication): providers, keys, rules.
import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { errorMessage } from '../../core/errors.js';
import { fail, ok, type Result } from '../../core/result.js';
import { JWT_ALGORITHMS, JWT_AUTHN_TYPE_URL, type JwtAlgorithm, type JwtAuthnConfig, type JwtKey, type JwtProvider, type JwtRequirement, type JwtRule } from '../../model/jwt.js';
import type { ProtoObj } from '../canonical.js';
import { Issues, bool, durationMs, joinPath, list, msg, num, onlyFields, requireOne, str, strings } from '../resources/common.js';
import { decodeRouteMatch } from '../resources/matchers.js';
import type { HttpFilterDecoder } from './index.js';

export { JWT_AUTHN_TYPE_URL };

/** JwtProvider.clock_skew_seconds: "If not specified, defaults to 60 seconds" (0 is unset in proto3). */
export const DEFAULT_CLOCK_SKEW_SECONDS = 60;

/** Envoy's non-strict HTTP_HEADER_NAME rule: no NUL, CR or LF (and, for us, not empty). */
const BAD_HEADER = /[\0\r\n]|^$/;
const ALGS: ReadonlySet<string> = new Set(JWT_ALGORITHMS);
const MIN_RSA_BITS = 2048;
const CURVES: Readonly<Record<string, readonly string[]>> = { EC: ['P-256', 'P-384'], OKP: ['Ed25519', 'Ed448'] };

/**
 * A JWKS document (RFC 7517 §5) -> the public keys it holds, imported now, once per config version. Keys that
 * cannot verify a token under the algorithm allow-list are left out: `use` other than `sig`, an `alg` outside the
 * list, symmetric (`oct`) keys, other curves. A document that is not JSON, a key that does not import, or a set
 * with no usable key is an error (a NACK: a provider that can verify nothing would refuse every token).
 * Exported for the control server, which checks a JWKS it fetched before inlining it.
 */
export function parseJwks(json: string): Result<JwtKey[], string> {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (e) {
    return fail([`is not JSON: ${errorMessage(e)}`]);
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (typeof doc !== 'object' || !Array.isArray(keys)) return fail(['is not a JWKS: a JSON object with a "keys" array is expected']);
  const out: JwtKey[] = [];
  const errors: string[] = [];
  keys.forEach((k: unknown, i) => {
    if (typeof k !== 'object' || k === null) return errors.push(`keys[${i}]: is not a JSON object`);
    const jwk = k as Record<string, unknown>;
    const { kty, alg, use, kid, crv } = jwk;
    if ((use !== undefined && use !== 'sig') || (alg !== undefined && !ALGS.has(alg as string))) return;
    if (kty !== 'RSA' && kty !== 'EC' && kty !== 'OKP') return;
    if (kty !== 'RSA' && !CURVES[kty]!.includes(crv as string)) return;
    if (kid !== undefined && typeof kid !== 'string') return errors.push(`keys[${i}].kid: must be a string`);
    try {
      // node:crypto's importer checks the key material (RSA modulus, a point on the curve); a private JWK yields its public half.
      const key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
      // RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used"; OpenSSL would even import an empty modulus.
      const bits = key.asymmetricKeyDetails?.modulusLength;
      if (bits !== undefined && bits < MIN_RSA_BITS) return errors.push(`keys[${i}]: an RSA key of ${bits} bits (at least ${MIN_RSA_BITS} are required)`);
      const entry = { kty, ...(kid !== undefined && { kid }), ...(alg !== undefined && { alg: alg as JwtAlgorithm }), ...(kty !== 'RSA' && { crv: crv as string }) };
      // Not enumerable: the decoder deep-freezes its model, and a KeyObject is Node's to mutate (it caches details).
      out.push(Object.defineProperty(entry, 'key', { value: key, enumerable: false }) as JwtKey);
    } catch (e) {
      errors.push(`keys[${i}]: not a valid ${kty} public key: ${errorMessage(e)}`);
    }
  });
  if (errors.length === 0 && out.length === 0) errors.push(`has no usable public key (algorithms allowed: ${JWT_ALGORITHMS.join(', ')}; HMAC keys are never accepted)`);
  return errors.length > 0 ? fail(errors) : ok(out);
}

const PROVIDER_FIELDS = [
  'issuer',
  'audiences',
  'local_jwks',
  'forward',
  'from_headers',
  'from_params',
  'from_cookies',
  'forward_payload_header',
  'pad_forward_payload_header',
  'payload_in_metadata',
  'clock_skew_seconds',
  'claim_to_headers',
  'max_lifetime',
  'require_expiration',
  'jwt_cache_config',
];

function headerName(o: ProtoObj, k: string, path: string, issues: Issues): string {
  const v = str(o, k);
  if (BAD_HEADER.test(v)) issues.add(joinPath(path, k), 'must be a header name (not empty, no NUL, CR or LF)');
  return v.toLowerCase();
}

function decodeProvider(name: string, o: ProtoObj, path: string, issues: Issues): JwtProvider {
  const clean = onlyFields(o, path, [...PROVIDER_FIELDS, 'remote_jwks'], issues);
  const remote = o.remote_jwks !== undefined;
  if (remote) issues.add(joinPath(path, 'remote_jwks'), 'is not supported: the control server fetches the JWKS and inlines it as local_jwks, so sidecars need no route to the identity provider');
  requireOne(o, path, ['local_jwks'], clean && !remote, issues);
  let keys: JwtKey[] = [];
  const lj = msg(o, 'local_jwks');
  if (lj) {
    const ljPath = joinPath(path, 'local_jwks');
    if (onlyFields(lj, ljPath, ['inline_string'], issues)) {
      const parsed = parseJwks(str(lj, 'inline_string'));
      if (parsed.ok) keys = parsed.value;
      else for (const e of parsed.errors) issues.add(joinPath(ljPath, 'inline_string'), e);
    }
  }
  const fromHeaders = list(o, 'from_headers').map((h, i) => {
    const p = joinPath(path, `from_headers[${i}]`);
    onlyFields(h, p, ['name', 'value_prefix'], issues);
    return { name: headerName(h, 'name', p, issues), valuePrefix: str(h, 'value_prefix') };
  });
  const fromParams = strings(o, 'from_params');
  const fromCookies = strings(o, 'from_cookies');
  const defaults = fromHeaders.length === 0 && fromParams.length === 0 && fromCookies.length === 0;
  const claimToHeaders = list(o, 'claim_to_headers').map((c, i) => {
    const p = joinPath(path, `claim_to_headers[${i}]`);
    onlyFields(c, p, ['header_name', 'claim_name'], issues);
    if (str(c, 'claim_name') === '') issues.add(joinPath(p, 'claim_name'), 'is required');
    return { headerName: headerName(c, 'header_name', p, issues), claimName: str(c, 'claim_name') };
  });
  const fph = o.forward_payload_header !== undefined ? headerName(o, 'forward_payload_header', path, issues) : undefined;
  const maxLifetimeMs = durationMs(o, 'max_lifetime', path, issues);
  const cache = msg(o, 'jwt_cache_config');
  if (cache) onlyFields(cache, joinPath(path, 'jwt_cache_config'), ['jwt_cache_size'], issues);
  return {
    name,
    issuer: str(o, 'issuer'),
    audiences: strings(o, 'audiences'),
    keys,
    forward: bool(o, 'forward'),
    // Envoy's default locations when none is configured: Authorization: Bearer, then ?access_token=.
    fromHeaders: defaults ? [{ name: 'authorization', valuePrefix: 'Bearer ' }] : fromHeaders,
    fromParams: defaults ? ['access_token'] : fromParams,
    fromCookies,
    ...(fph !== undefined && { forwardPayloadHeader: fph }),
    padForwardPayloadHeader: bool(o, 'pad_forward_payload_header'),
    ...(o.payload_in_metadata !== undefined && { payloadInMetadata: str(o, 'payload_in_metadata') }),
    claimToHeaders,
    clockSkewSeconds: num(o, 'clock_skew_seconds') || DEFAULT_CLOCK_SKEW_SECONDS,
    ...(maxLifetimeMs !== undefined && { maxLifetimeSeconds: maxLifetimeMs / 1000 }),
    requireExpiration: bool(o, 'require_expiration'),
    ...(cache && num(cache, 'jwt_cache_size') > 0 && { cacheSize: num(cache, 'jwt_cache_size') }),
  };
}

const REQUIREMENT_KINDS = ['provider_name', 'provider_and_audiences', 'requires_any', 'requires_all', 'allow_missing', 'allow_missing_or_failed'];

function decodeRequirement(o: ProtoObj, path: string, providers: ReadonlySet<string>, issues: Issues): JwtRequirement {
  requireOne(o, path, REQUIREMENT_KINDS, onlyFields(o, path, REQUIREMENT_KINDS, issues), issues);
  const known = (name: string, p: string) => {
    if (!providers.has(name)) issues.add(p, `provider ${JSON.stringify(name)} is not in providers`);
    return name;
  };
  if (typeof o.provider_name === 'string') return { kind: 'provider', provider: known(o.provider_name, joinPath(path, 'provider_name')) };
  const pa = msg(o, 'provider_and_audiences');
  if (pa) {
    const p = joinPath(path, 'provider_and_audiences');
    onlyFields(pa, p, ['provider_name', 'audiences'], issues);
    return { kind: 'provider', provider: known(str(pa, 'provider_name'), joinPath(p, 'provider_name')), audiences: strings(pa, 'audiences') };
  }
  for (const [field, kind] of [['requires_any', 'any'], ['requires_all', 'all']] as const) {
    const l = msg(o, field);
    if (!l) continue;
    const p = joinPath(path, field);
    onlyFields(l, p, ['requirements'], issues);
    const items = list(l, 'requirements');
    // JwtRequirementOrList / AndList: requirements {min_items: 2}.
    if (items.length < 2) issues.add(joinPath(p, 'requirements'), `needs at least 2 requirements (got ${items.length})`);
    return { kind, requirements: items.map((r, i) => decodeRequirement(r, joinPath(p, `requirements[${i}]`), providers, issues)) };
  }
  return { kind: o.allow_missing_or_failed !== undefined ? 'allow_missing_or_failed' : 'allow_missing' };
}

/**
 * The filter config. Supported: providers with inline (local) JWKS, rules with a RouteMatch and either `requires`
 * or a `requirement_name` into `requirement_map`, bypass_cors_preflight — everything istiod's
 * convertToEnvoyJwtConfig emits. Not supported (refused by field path): remote_jwks (see above), filter_state_rules,
 * strip_failure_response, header_in_metadata, failed_status_in_metadata, normalize_payload_in_metadata,
 * subjects, clear_route_cache, per-route config.
 */
export const jwtAuthn: HttpFilterDecoder = {
  typeUrl: JWT_AUTHN_TYPE_URL,
  decode(o, path) {
    const issues = new Issues();
    onlyFields(o, path, ['providers', 'rules', 'bypass_cors_preflight', 'requirement_map'], issues);
    const pmap = (msg(o, 'providers') ?? {}) as Readonly<Record<string, ProtoObj>>;
    const providers = Object.entries(pmap).map(([name, p]) => decodeProvider(name, p, joinPath(path, `providers[${JSON.stringify(name)}]`), issues));
    const names = new Set(Object.keys(pmap));
    const rmap = (msg(o, 'requirement_map') ?? {}) as Readonly<Record<string, ProtoObj>>;
    const requirementMap = new Map(Object.entries(rmap).map(([name, r]) => [name, decodeRequirement(r, joinPath(path, `requirement_map[${JSON.stringify(name)}]`), names, issues)]));
    const rules = list(o, 'rules').map((r, i): JwtRule => {
      const p = joinPath(path, `rules[${i}]`);
      onlyFields(r, p, ['match', 'requires', 'requirement_name'], issues);
      const m = msg(r, 'match');
      if (!m) issues.add(joinPath(p, 'match'), 'is required');
      const match = m && issues.take(decodeRouteMatch(m, joinPath(p, 'match')));
      const req = msg(r, 'requires');
      let requires = req && decodeRequirement(req, joinPath(p, 'requires'), names, issues);
      if (typeof r.requirement_name === 'string') {
        requires = requirementMap.get(r.requirement_name);
        if (!requires) issues.add(joinPath(p, 'requirement_name'), `${JSON.stringify(r.requirement_name)} is not in requirement_map`);
      }
      return { match: match!, ...(requires && { requires }) };
    });
    const value: JwtAuthnConfig = { providers, rules, bypassCorsPreflight: bool(o, 'bypass_cors_preflight') };
    return issues.result(() => ({ ...value }));
  },
};
