// Local rate limiting as decoded from xDS: the LocalRateLimit filter's buckets and the route's rate_limits actions.
import type { HeaderMatcher } from './types.js';

/** envoy.type.v3.TokenBucket: starts full; every fill interval adds tokensPerFill, never above maxTokens. */
export interface TokenBucketSpec {
  readonly maxTokens: number;
  readonly tokensPerFill: number;
  readonly fillIntervalMs: number;
}

/** envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry. An empty value is a wildcard (per-value buckets). */
export interface DescriptorEntry {
  readonly key: string;
  readonly value: string;
}

/** LocalRateLimitDescriptor: the entries a request's descriptor must carry, and their bucket. */
export interface LocalRateLimitDescriptor {
  readonly entries: readonly DescriptorEntry[];
  readonly tokenBucket: TokenBucketSpec;
}

/** The decoded envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit (HttpFilterConfig.config). */
export interface LocalRateLimitConfig {
  readonly statPrefix: string;
  /** HTTP status of a rejection (status.code, default 429). */
  readonly status: number;
  readonly tokenBucket: TokenBucketSpec;
  /** filter_enabled / filter_enforced default_value as a fraction in [0, 1]; unset = 0, as in Envoy. */
  readonly enabled: number;
  readonly enforced: number;
  readonly responseHeadersToAdd: readonly { readonly key: string; readonly value: string }[];
  readonly descriptors: readonly LocalRateLimitDescriptor[];
  /** Route rate_limits entries of this stage produce the descriptors (RateLimit.stage, default 0). */
  readonly stage: number;
  /** Default true: the filter's own bucket is charged even when a descriptor matched. */
  readonly alwaysConsumeDefaultTokenBucket: boolean;
  /** gRPC callers get RESOURCE_EXHAUSTED instead of the HTTP mapping's UNAVAILABLE. */
  readonly rateLimitedAsResourceExhausted: boolean;
}

/**
 * config.route.v3.RateLimit.Action, the subset Outrigger produces descriptors from. `entry` is the descriptor
 * key; an action that cannot produce its entry drops the whole descriptor unless it `skip`s (skip_if_absent,
 * skip_if_error), in which case only its entry is left out, as in Envoy.
 */
export type RateLimitAction =
  | { readonly kind: 'request_headers'; readonly key: string; readonly header: string; readonly skip: boolean }
  | { readonly kind: 'header_value_match'; readonly key: string; readonly value: string; readonly expectMatch: boolean; readonly headers: readonly HeaderMatcher[] }
  | { readonly kind: 'generic_key'; readonly key: string; readonly value: string }
  | { readonly kind: 'remote_address'; readonly key: 'remote_address' }
  /** The expr descriptor extension reading connection.uri_san_peer_certificate: the caller's SPIFFE ID. */
  | { readonly kind: 'source_principal'; readonly key: string; readonly skip: boolean };

/** config.route.v3.RateLimit on a RouteAction: one descriptor, from its actions in order. */
export interface RateLimitEntry {
  readonly stage: number;
  readonly actions: readonly RateLimitAction[];
}
