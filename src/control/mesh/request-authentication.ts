// Decodes a security.istio.io/v1 (or v1beta1) RequestAuthentication spec: the JWT issuers a workload accepts.
import { joinPath } from '../../xds/json.js';
import { parseJwks } from '../jwks.js';
import { Reader, defined, type Shape } from './schema.js';
import type { JwtRule, RequestAuthentication } from './types.js';

/** Istio serves the security kinds under security.istio.io at v1 and v1beta1 with the same schema. */

/** targetRef(s) attach policy to Gateway API objects, which Outrigger does not have: refused, never ignored. */
const SPEC: Shape = { fields: ['selector', 'jwtRules'], notYet: ['targetRef', 'targetRefs'] };
const SELECTOR: Shape = { fields: ['matchLabels'] };
const RULE: Shape = {
  fields: ['issuer', 'audiences', 'jwksUri', 'jwks', 'fromHeaders', 'fromParams', 'fromCookies', 'outputPayloadToHeader', 'outputClaimToHeaders', 'forwardOriginalToken'],
  notYet: ['timeout', 'spaceDelimitedClaims'],
};
const FROM_HEADER: Shape = { fields: ['name', 'prefix'] };
const CLAIM_TO_HEADER: Shape = { fields: ['header', 'claim'] };

/** RFC 9110 §5.1 field-name = token (tchar): what Envoy accepts as a header name. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A claim name, or a nested one written with dots (Envoy's claim_name "a.b"): letters, digits, _ - . : / */
const CLAIM = /^[A-Za-z0-9_.:/-]+$/;

export type RequestAuthenticationSpec = Omit<RequestAuthentication, 'kind' | 'meta'>;

const headerProblem = (s: string) => (TOKEN.test(s) ? undefined : `${JSON.stringify(s)} is not a valid header name (an RFC 9110 token)`);
const nonEmpty = (what: string) => (s: string) => (s === '' ? `${what} must not be empty` : undefined);

export function decodeRequestAuthentication(r: Reader, v: unknown, path: string): RequestAuthenticationSpec | undefined {
  const o = r.object(v, path, SPEC);
  if (!o) return undefined;
  const s = r.optionalObject(o, 'selector', path, SELECTOR);
  const selector = s && { matchLabels: r.labels(s.obj, 'matchLabels', s.path) ?? {} };
  const jwtRules = r.list(o, 'jwtRules', path, (rv, p) => jwtRule(r, rv, p));
  return defined({ selector, jwtRules });
}

function jwtRule(r: Reader, v: unknown, path: string): JwtRule | undefined {
  const o = r.object(v, path, RULE);
  if (!o) return undefined;
  r.need(o, 'issuer', path);
  const issuer = r.string(o, 'issuer', path, nonEmpty('issuer'));
  const jwksUri = r.string(o, 'jwksUri', path, jwksUriProblem);
  const jwks = r.string(o, 'jwks', path, (s) => {
    const parsed = parseJwks(s);
    return parsed.ok ? undefined : `not a valid JWKS: ${parsed.message}`;
  });
  const hasUri = o.jwksUri !== undefined && o.jwksUri !== null;
  const hasJwks = o.jwks !== undefined && o.jwks !== null;
  if (hasUri && hasJwks) r.issue(joinPath(path, 'jwks'), 'set only one of jwks and jwksUri');
  // istiod would find the keys by OpenID discovery (<issuer>/.well-known/openid-configuration); we ask for them.
  if (!hasUri && !hasJwks) r.issue(path, 'one of jwksUri, jwks is required (OpenID discovery of the issuer\'s keys is not supported)');
  const fromHeaders = r.list(o, 'fromHeaders', path, (hv, hp) => {
    const h = r.object(hv, hp, FROM_HEADER);
    if (!h) return undefined;
    r.need(h, 'name', hp);
    const name = r.string(h, 'name', hp, headerProblem);
    const prefix = r.string(h, 'prefix', hp);
    return name === undefined ? undefined : defined({ name: name.toLowerCase(), prefix: prefix || undefined });
  });
  const outputClaimToHeaders = r.list(o, 'outputClaimToHeaders', path, (cv, cp) => {
    const c = r.object(cv, cp, CLAIM_TO_HEADER);
    if (!c) return undefined;
    r.need(c, 'header', cp);
    r.need(c, 'claim', cp);
    const header = r.string(c, 'header', cp, headerProblem);
    const claim = r.string(c, 'claim', cp, (s) => (CLAIM.test(s) ? undefined : `${JSON.stringify(s)} is not a claim name`));
    return header === undefined || claim === undefined ? undefined : { header: header.toLowerCase(), claim };
  });
  const rule: JwtRule = defined({
    issuer: issuer ?? '',
    audiences: r.strings(o, 'audiences', path, nonEmpty('an audience')),
    jwksUri,
    jwks,
    fromHeaders,
    fromParams: r.strings(o, 'fromParams', path, nonEmpty('a query parameter name')),
    fromCookies: r.strings(o, 'fromCookies', path, (s) => (TOKEN.test(s) ? undefined : `${JSON.stringify(s)} is not a valid cookie name`)),
    outputPayloadToHeader: r.string(o, 'outputPayloadToHeader', path, headerProblem)?.toLowerCase(),
    outputClaimToHeaders,
    forwardOriginalToken: r.bool(o, 'forwardOriginalToken', path) ?? false,
  });
  return issuer === undefined ? undefined : rule;
}

/** Istio's ParseJwksURI: an absolute http or https URL with a host. */
function jwksUriProblem(s: string): string | undefined {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return `${JSON.stringify(s)} is not a URL`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `${JSON.stringify(s)}: only http and https are supported`;
  return u.hostname ? undefined : `${JSON.stringify(s)} has no host`;
}
