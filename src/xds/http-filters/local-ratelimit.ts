// envoy.filters.http.local_ratelimit (envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit): token buckets.
import type { LocalRateLimitConfig, LocalRateLimitDescriptor, TokenBucketSpec } from '../../model/rate-limit.js';
import type { ProtoObj } from '../canonical.js';
import { Issues, bool, boolValue, durationMs, enumOf, joinPath, list, msg, num, onlyFields, required, str, u32Value } from '../resources/common.js';
import type { HttpFilterDecoder } from './index.js';

export const LOCAL_RATELIMIT_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

/** Envoy: "local rate limit token bucket fill timer must be >= 50ms". */
export const MIN_FILL_INTERVAL_MS = 50;

const DENOMINATORS: Readonly<Record<string, number>> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };

/**
 * The listener-level filter. Per-route configuration (typed_per_filter_config) is not supported, so the filter
 * needs its own token_bucket (Envoy makes it optional only because a route may bring one); its fill interval is
 * the one fill timer of the limiter, and every descriptor's interval must be a multiple of it, as in Envoy.
 * Not supported: status (always 429), request_headers_to_add_when_not_enforced, local_rate_limit_per_downstream_connection,
 * local_cluster_rate_limit, enable_x_ratelimit_headers (RateLimit-* headers come with every rejection instead),
 * vh_rate_limits (virtual hosts carry no rate_limits here).
 */
export const localRateLimit: HttpFilterDecoder = {
  typeUrl: LOCAL_RATELIMIT_TYPE_URL,
  decode(o, path) {
    const issues = new Issues();
    const handled = ['stat_prefix', 'token_bucket', 'filter_enabled', 'filter_enforced', 'response_headers_to_add', 'descriptors', 'stage'];
    onlyFields(o, path, [...handled, 'always_consume_default_token_bucket', 'rate_limited_as_resource_exhausted'], issues);
    const statPrefix = required(o, 'stat_prefix', path, issues);
    const tb = msg(o, 'token_bucket');
    const tbPath = joinPath(path, 'token_bucket');
    if (!tb) issues.add(tbPath, 'is required (per-route local rate limit config is not supported, so the filter needs its own bucket)');
    const tokenBucket = tb && tokenBucketOf(tb, tbPath, issues);
    const stage = num(o, 'stage');
    if (stage > 10) issues.add(joinPath(path, 'stage'), `${stage} is above 10`);
    const descriptors = decodeDescriptors(list(o, 'descriptors'), joinPath(path, 'descriptors'), tokenBucket, issues);
    const value: LocalRateLimitConfig = {
      statPrefix,
      status: 429,
      tokenBucket: tokenBucket!,
      enabled: fraction(msg(o, 'filter_enabled'), joinPath(path, 'filter_enabled'), issues),
      enforced: fraction(msg(o, 'filter_enforced'), joinPath(path, 'filter_enforced'), issues),
      responseHeadersToAdd: headersToAdd(list(o, 'response_headers_to_add'), joinPath(path, 'response_headers_to_add'), issues),
      descriptors,
      stage,
      alwaysConsumeDefaultTokenBucket: boolValue(o, 'always_consume_default_token_bucket') ?? true,
      rateLimitedAsResourceExhausted: bool(o, 'rate_limited_as_resource_exhausted'),
    };
    return issues.result(() => ({ ...value }));
  },
};

/** envoy.type.v3.TokenBucket: max_tokens > 0, tokens_per_fill > 0 (default 1), fill_interval required and >= 50 ms. */
function tokenBucketOf(o: ProtoObj, path: string, issues: Issues, minMs = MIN_FILL_INTERVAL_MS): TokenBucketSpec {
  onlyFields(o, path, ['max_tokens', 'tokens_per_fill', 'fill_interval'], issues);
  const maxTokens = num(o, 'max_tokens');
  if (maxTokens < 1) issues.add(joinPath(path, 'max_tokens'), 'must be greater than 0');
  const tokensPerFill = u32Value(o, 'tokens_per_fill') ?? 1;
  if (tokensPerFill < 1) issues.add(joinPath(path, 'tokens_per_fill'), 'must be greater than 0');
  const fillIntervalMs = durationMs(o, 'fill_interval', path, issues);
  if (fillIntervalMs === undefined) issues.add(joinPath(path, 'fill_interval'), 'is required');
  else if (fillIntervalMs < minMs) issues.add(joinPath(path, 'fill_interval'), `must be at least ${minMs}ms (Envoy's fill timer granularity)`);
  return { maxTokens, tokensPerFill, fillIntervalMs: fillIntervalMs ?? 0 };
}

function decodeDescriptors(items: readonly ProtoObj[], path: string, filterBucket: TokenBucketSpec | undefined, issues: Issues): LocalRateLimitDescriptor[] {
  const seen = new Map<string, number>();
  return items.map((d, i) => {
    const p = `${path}[${i}]`;
    onlyFields(d, p, ['entries', 'token_bucket'], issues);
    const entries = list(d, 'entries').map((e, j) => {
      const ep = joinPath(p, `entries[${j}]`);
      onlyFields(e, ep, ['key', 'value'], issues);
      // An empty value is Envoy's wildcard (a bucket per distinct request value), so only the key is required.
      return { key: required(e, 'key', ep, issues), value: str(e, 'value') };
    });
    if (entries.length === 0) issues.add(joinPath(p, 'entries'), 'at least one entry is required');
    const key = JSON.stringify(entries);
    const first = seen.get(key);
    if (first !== undefined) issues.add(joinPath(p, 'entries'), `duplicate descriptor (also descriptors[${first}])`);
    else seen.set(key, i);
    const tb = msg(d, 'token_bucket');
    const tbPath = joinPath(p, 'token_bucket');
    if (!tb) issues.add(tbPath, 'is required');
    const tokenBucket = tb ? tokenBucketOf(tb, tbPath, issues, 0) : { maxTokens: 0, tokensPerFill: 0, fillIntervalMs: 0 };
    const base = filterBucket?.fillIntervalMs;
    if (tb && base && tokenBucket.fillIntervalMs % base !== 0) {
      issues.add(joinPath(tbPath, 'fill_interval'), `must be a multiple of the filter's token_bucket.fill_interval (${base}ms): one fill timer drives every bucket`);
    }
    return { entries, tokenBucket };
  });
}

/** RuntimeFractionalPercent: its default_value as a fraction (no runtime here, so the key never overrides it). Unset = 0. */
function fraction(o: ProtoObj | undefined, path: string, issues: Issues): number {
  if (!o) return 0;
  onlyFields(o, path, ['default_value', 'runtime_key'], issues);
  const d = msg(o, 'default_value');
  if (!d) return 0;
  const dp = joinPath(path, 'default_value');
  onlyFields(d, dp, ['numerator', 'denominator'], issues);
  const denominator = DENOMINATORS[enumOf(d, 'denominator', dp, Object.keys(DENOMINATORS), 'HUNDRED', issues)]!;
  // Envoy treats a numerator above the denominator as 100 %.
  return Math.min(1, num(d, 'numerator') / denominator);
}

/** HeaderValueOption entries: key and value, set on the 429 (a local reply has nothing of the same name to append to). */
function headersToAdd(items: readonly ProtoObj[], path: string, issues: Issues): { key: string; value: string }[] {
  if (items.length > 10) issues.add(path, `at most 10 entries (got ${items.length})`);
  return items.map((h, i) => {
    const p = `${path}[${i}]`;
    onlyFields(h, p, ['header', 'append', 'append_action'], issues);
    const hv = msg(h, 'header') ?? {};
    const hp = joinPath(p, 'header');
    onlyFields(hv, hp, ['key', 'value'], issues);
    return { key: required(hv, 'key', hp, issues).toLowerCase(), value: str(hv, 'value') };
  });
}
