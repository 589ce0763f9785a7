// The one order of the HTTP filters Outrigger knows, shared by the decoder (which enforces it) and the chain.

/**
 * jwt_authn → rbac → local_ratelimit → fault → router. Authentication must run before authorization reads its
 * principal, and a request refused by policy must not spend a rate-limit token nor wait out a fault delay. The
 * chain runs filters in config order, as Envoy does; the decoder refuses a config listing them in another order,
 * and the control server emits this one. Several instances of one filter may sit side by side.
 */
export const FILTER_ORDER: readonly string[] = [
  'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication',
  'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC',
  'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
  'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault',
  'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
];

/** `jwt_authn` for its type URL: the short name used in messages. */
export function filterShortName(typeUrl: string): string {
  const pkg = typeUrl.split('.');
  return pkg[pkg.length - 3] ?? typeUrl;
}
