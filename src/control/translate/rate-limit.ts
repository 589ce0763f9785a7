// RateLimitPolicy -> the inbound listener's local_ratelimit filters and the inbound routes' rate_limits actions.
import type { RateLimitPolicy, RateLimitRule, StringMatch } from '../mesh/types.js';
import { escapeRegex, type NodeCtx } from './common.js';
import { labelsMatch } from './mesh-index.js';

export const LOCAL_RATELIMIT_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const EXPR_DESCRIPTOR_TYPE_URL = 'type.googleapis.com/envoy.extensions.rate_limit_descriptors.expr.v3.Descriptor';
/** Envoy's attribute for the client certificate's URI SAN: the caller's SPIFFE ID on the mTLS inbound listener. */
const PEER_URI_SAN = 'connection.uri_san_peer_certificate';
const MAX_UINT32 = 2 ** 32 - 1;
const HUNDRED = (n: number) => ({ default_value: { numerator: n, denominator: 'HUNDRED' } });

/** Descriptor keys. A rule's id is the value of `rule`, unique across policies: `<ns>/<policy>/<rule name or index>`. */
const RULE_KEY = 'rule';
const KEY_KEY = 'key';
const PRINCIPAL_KEY = 'source_principal';

/** The policies that select this workload: its namespace, and the selector's labels (none = all of the namespace). */
function policiesFor(ctx: NodeCtx): RateLimitPolicy[] {
  const { node } = ctx;
  return ctx.mesh.rateLimitPolicies.filter((p) => p.meta.namespace === node.namespace && (!p.workloadSelector || labelsMatch(p.workloadSelector.labels, node.labels)));
}

const ruleId = (p: RateLimitPolicy, r: RateLimitRule, i: number) => `${p.meta.namespace}/${p.meta.name}/${r.name ?? i}`;

/** Istio StringMatch -> Envoy StringMatcher JSON. */
function stringMatcher(m: StringMatch): object {
  if ('exact' in m) return { exact: m.exact };
  if ('prefix' in m) return { prefix: m.prefix };
  return { safe_regex: { regex: m.regex } };
}

/** The rule's path, method and header conditions as HeaderMatchers (on :path, :method and the headers). */
function headerMatchers(r: RateLimitRule): object[] {
  const m = r.match;
  const out: object[] = [];
  // :path carries the query string; an exact path still matches with one, as a user writing `exact` means.
  if (m.path && 'exact' in m.path) out.push({ name: ':path', string_match: { safe_regex: { regex: `^${escapeRegex(m.path.exact)}(\\?.*)?$` } } });
  if (m.path && 'prefix' in m.path) out.push({ name: ':path', string_match: { prefix: m.path.prefix } });
  if (m.method) out.push({ name: ':method', string_match: { exact: m.method } });
  for (const [name, sm] of Object.entries(m.headers)) out.push({ name, string_match: stringMatcher(sm) });
  return out;
}

const principalAction = () => ({ extension: { name: 'envoy.rate_limit_descriptors.expr', typed_config: { '@type': EXPR_DESCRIPTOR_TYPE_URL, descriptor_key: PRINCIPAL_KEY, text: PEER_URI_SAN } } });

interface Translated {
  /** RouteAction.rate_limits entries: the request's descriptors for this rule. */
  readonly rateLimits: object[];
  /** LocalRateLimit.descriptors: the buckets they find. */
  readonly descriptors: object[];
}

/**
 * One rule: a first action that says the rule matched (`rule=<id>`; header_value_match over its conditions, or a
 * generic_key when it has none), then the source principal when the rule names one, then the per-key entry with
 * an empty (wildcard) descriptor value, which gives each value a bucket of its own. Requests without the per-key
 * header share one bucket of the same size (a second entry), so leaving the header out is no way around the limit.
 */
function translateRule(p: RateLimitPolicy, r: RateLimitRule, i: number): Translated {
  const id = ruleId(p, r, i);
  const matchers = headerMatchers(r);
  const matched = (extra: object[] = []) =>
    matchers.length + extra.length > 0
      ? { header_value_match: { descriptor_key: RULE_KEY, descriptor_value: id, headers: [...matchers, ...extra] } }
      : { generic_key: { descriptor_key: RULE_KEY, descriptor_value: id } };
  const principal = r.match.sourcePrincipal !== undefined ? `spiffe://${r.match.sourcePrincipal}` : undefined;
  const first: object[] = [matched()];
  const entries: { key: string; value: string }[] = [{ key: RULE_KEY, value: id }];
  if (principal) {
    first.push(principalAction());
    entries.push({ key: PRINCIPAL_KEY, value: principal });
  }
  const bucket = { max_tokens: r.tokenBucket.maxTokens, tokens_per_fill: r.tokenBucket.tokensPerFill, fill_interval: `${r.tokenBucket.fillIntervalMs / 1000}s` };
  const per = r.perKey;
  if (!per) return { rateLimits: [{ actions: first }], descriptors: [{ entries, token_bucket: bucket }] };
  if ('sourcePrincipal' in per) {
    return { rateLimits: [{ actions: [...first, principalAction()] }], descriptors: [{ entries: [...entries, { key: PRINCIPAL_KEY, value: '' }], token_bucket: bucket }] };
  }
  const keyless = matched([{ name: per.header, present_match: true, invert_match: true }]);
  return {
    rateLimits: [{ actions: [...first, { request_headers: { header_name: per.header, descriptor_key: KEY_KEY } }] }, { actions: [keyless, ...first.slice(1)] }],
    descriptors: [
      { entries: [...entries, { key: KEY_KEY, value: '' }], token_bucket: bucket },
      { entries, token_bucket: bucket },
    ],
  };
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * One LocalRateLimit filter per policy and mode (its shadow rules first, so they count every request, then its
 * enforced ones). The filter's own bucket never limits: it is charged only by requests no rule matched
 * (always_consume_default_token_bucket false) and holds the most tokens Envoy allows, refilled in full at each
 * tick; its interval is the rules' greatest common divisor, since every descriptor's interval must be a multiple.
 */
function filtersAndActions(ctx: NodeCtx): { filters: object[]; rateLimits: object[] } {
  const filters: object[] = [];
  const rateLimits: object[] = [];
  for (const p of policiesFor(ctx)) {
    for (const shadow of [true, false]) {
      const rules = p.rules.map((r, i) => ({ r, i })).filter(({ r }) => r.shadow === shadow);
      if (rules.length === 0) continue;
      const descriptors: object[] = [];
      for (const { r, i } of rules) {
        const t = translateRule(p, r, i);
        rateLimits.push(...t.rateLimits);
        descriptors.push(...t.descriptors);
      }
      const interval = rules.reduce((g, { r }) => gcd(r.tokenBucket.fillIntervalMs, g), 0);
      filters.push({
        name: 'envoy.filters.http.local_ratelimit',
        typed_config: {
          '@type': LOCAL_RATELIMIT_TYPE_URL,
          stat_prefix: `${p.meta.namespace}.${p.meta.name}${shadow ? '.shadow' : ''}`,
          token_bucket: { max_tokens: MAX_UINT32, tokens_per_fill: MAX_UINT32, fill_interval: `${interval / 1000}s` },
          filter_enabled: HUNDRED(100),
          filter_enforced: HUNDRED(shadow ? 0 : 100),
          descriptors,
          always_consume_default_token_bucket: false,
          rate_limited_as_resource_exhausted: true,
        },
      });
    }
  }
  return { filters, rateLimits };
}

/** The inbound HCM's http_filters before the router (FILTER_ORDER puts local_ratelimit there). */
export function inboundRateLimitFilters(ctx: NodeCtx): object[] {
  return filtersAndActions(ctx).filters;
}

/** What every inbound RouteAction carries so the filters find their descriptors: `{rate_limits}` or nothing. */
export function inboundRateLimits(ctx: NodeCtx): { rate_limits?: object[] } {
  const { rateLimits } = filtersAndActions(ctx);
  return rateLimits.length > 0 ? { rate_limits: rateLimits } : {};
}
