// RequestAuthentication -> the inbound listener's envoy.filters.http.jwt_authn filter, as istiod's convertToEnvoyJwtConfig builds it.
import { FAKE_JWKS, type JwksLookup } from '../jwks.js';
import { JWT_AUTHN_TYPE_URL } from '../../model/jwt.js';
import type { JwtRule, RequestAuthentication } from '../mesh/types.js';
import { policiesSelecting, type NodeCtx } from './common.js';

export { JWT_AUTHN_TYPE_URL };
export const JWT_AUTHN_FILTER_NAME = 'envoy.filters.http.jwt_authn';

/** The RequestAuthentications that apply to this workload (istiod's selection, policiesSelecting). */
export function requestAuthenticationsFor(ctx: NodeCtx): RequestAuthentication[] {
  return policiesSelecting(ctx, ctx.mesh.requestAuthentications);
}

/** One JwtProvider. Keys: the inline jwks, else what the control server fetched from jwksUri, else fail-closed ones. */
function provider(rule: JwtRule, jwks: JwksLookup | undefined): Record<string, unknown> {
  const keys = rule.jwks ?? jwks?.(rule.jwksUri!) ?? FAKE_JWKS;
  return {
    issuer: rule.issuer,
    ...(rule.audiences.length > 0 && { audiences: rule.audiences }),
    ...(rule.forwardOriginalToken && { forward: true }),
    ...(rule.outputPayloadToHeader && { forward_payload_header: rule.outputPayloadToHeader }),
    // The verified payload under the issuer in the filter's dynamic metadata (istio_authn is derived from it).
    payload_in_metadata: rule.issuer,
    ...(rule.outputClaimToHeaders.length > 0 && { claim_to_headers: rule.outputClaimToHeaders.map((c) => ({ header_name: c.header, claim_name: c.claim })) }),
    ...(rule.fromHeaders.length > 0 && { from_headers: rule.fromHeaders.map((h) => ({ name: h.name, ...(h.prefix && { value_prefix: h.prefix }) })) }),
    ...(rule.fromParams.length > 0 && { from_params: rule.fromParams }),
    ...(rule.fromCookies.length > 0 && { from_cookies: rule.fromCookies }),
    local_jwks: { inline_string: keys },
  };
}

const byName = (name: string) => ({ provider_name: name });
const orMissing = (name: string) => ({ requires_any: { requirements: [byName(name), { allow_missing: {} }] } });

/**
 * JwtAuthentication for the workload's rules, or undefined when none apply. Rules are merged across policies
 * and sorted by issuer (a stable sort, so equal issuers keep policy order), named `origins-<i>`. The requirement
 * lets a request through without a token and refuses any token that is present but invalid: with one provider
 * `{provider OR allow_missing}`; with several, `provider_1 OR … OR provider_n OR AND_i{provider_i OR
 * allow_missing}`, where the AND makes every provider's token valid if present and the leading ORs serve
 * providers that read the same location (the AND alone would always fail for them).
 */
export function jwtAuthnConfig(policies: readonly RequestAuthentication[], jwks: JwksLookup | undefined): Record<string, unknown> | undefined {
  const rules = policies.flatMap((p) => p.jwtRules).sort((a, b) => (a.issuer < b.issuer ? -1 : a.issuer > b.issuer ? 1 : 0));
  if (rules.length === 0) return undefined;
  const names = rules.map((_, i) => `origins-${i}`);
  const requires = names.length === 1 ? orMissing(names[0]!) : { requires_any: { requirements: [...names.map(byName), { requires_all: { requirements: names.map(orMissing) } }] } };
  return {
    '@type': JWT_AUTHN_TYPE_URL,
    providers: Object.fromEntries(rules.map((r, i) => [names[i]!, provider(r, jwks)])),
    rules: [{ match: { prefix: '/' }, requires }],
    bypass_cors_preflight: true,
  };
}

/** The inbound HCM's jwt_authn filter (first in FILTER_ORDER), or nothing when no RequestAuthentication selects the workload. */
export function inboundJwtAuthnFilters(ctx: NodeCtx): object[] {
  const typed = jwtAuthnConfig(requestAuthenticationsFor(ctx), ctx.jwks);
  return typed ? [{ name: JWT_AUTHN_FILTER_NAME, typed_config: typed }] : [];
}
