// Envoy's local rate limiter as a pure evaluator: token buckets refilled in whole fill intervals, per-descriptor
// and per-value buckets, on a clock the caller passes in (milliseconds, monotonic).
import type { DescriptorEntry, LocalRateLimitDescriptor, TokenBucketSpec } from '../model/rate-limit.js';

/**
 * Envoy's default for max_dynamic_descriptors (LocalRateLimit, Envoy 1.35): how many per-value buckets one
 * wildcard descriptor keeps. The vendored proto predates the field, so it is fixed here.
 */
export const MAX_DYNAMIC_DESCRIPTORS = 20;

/**
 * One token bucket, as Envoy's timer-based TimerTokenBucket behaves: it starts full, and at each fill tick
 * (epoch + k × fill interval, k ≥ 1: Envoy's one fill timer per limiter, started when the config was built)
 * gains tokensPerFill, capped at maxTokens. Nothing accrues between ticks. Ticks are counted lazily on use
 * rather than run by a timer: the arithmetic is the same, and an idle limiter costs nothing.
 */
export class TokenBucket {
  tokens: number;
  /** Ticks already credited. */
  private ticks: number;
  /** When the bucket was last charged (ms): per-value buckets expire by it. */
  lastUsedMs: number;

  constructor(
    readonly spec: TokenBucketSpec,
    private readonly epochMs: number,
    nowMs: number,
  ) {
    this.tokens = spec.maxTokens;
    this.ticks = this.tickAt(nowMs);
    this.lastUsedMs = nowMs;
  }

  private tickAt(nowMs: number): number {
    return Math.floor((nowMs - this.epochMs) / this.spec.fillIntervalMs);
  }

  private refill(nowMs: number): void {
    const t = this.tickAt(nowMs);
    if (t <= this.ticks) return;
    this.tokens = Math.min(this.spec.maxTokens, this.tokens + (t - this.ticks) * this.spec.tokensPerFill);
    this.ticks = t;
  }

  /** Takes one token if there is one. */
  consume(nowMs: number): boolean {
    this.refill(nowMs);
    this.lastUsedMs = nowMs;
    if (this.tokens === 0) return false;
    this.tokens--;
    return true;
  }

  /** Tokens left now (after the ticks due). */
  remaining(nowMs: number): number {
    this.refill(nowMs);
    return this.tokens;
  }

  /**
   * Whole seconds until the next tick, rounded up: a caller that waits this long finds a token (Envoy's
   * x-ratelimit-reset truncates, which answers 0 for sub-second intervals).
   */
  resetSeconds(nowMs: number): number {
    const next = this.epochMs + (this.tickAt(nowMs) + 1) * this.spec.fillIntervalMs;
    return Math.ceil((next - nowMs) / 1000);
  }

  /** Tokens per ms: Envoy charges the matched descriptors slowest-filling first. */
  get fillRate(): number {
    return this.spec.tokensPerFill / this.spec.fillIntervalMs;
  }

  /** Idle long enough to have refilled completely: a new bucket would be the same, so dropping it changes nothing. */
  idleFor(nowMs: number): boolean {
    const refillMs = Math.ceil(this.spec.maxTokens / this.spec.tokensPerFill) * this.spec.fillIntervalMs;
    return nowMs - this.lastUsedMs >= refillMs;
  }
}

/** A request's descriptors, as the route's rate_limits actions produced them. */
export type RequestDescriptor = readonly DescriptorEntry[];

export interface RateLimitDecision {
  readonly allowed: boolean;
  /** The bucket that refused the request, or the one that admitted it (a descriptor's first): for RateLimit-* headers. */
  readonly bucket: TokenBucket;
}

export interface LimiterSpec {
  readonly tokenBucket: TokenBucketSpec;
  readonly descriptors: readonly LocalRateLimitDescriptor[];
  readonly alwaysConsumeDefaultTokenBucket: boolean;
  /** Per-value buckets kept per wildcard descriptor (default MAX_DYNAMIC_DESCRIPTORS). */
  readonly maxDynamicDescriptors?: number;
}

/**
 * The lookup key of a descriptor: its entries in order. NUL and LF cannot occur in header values (RFC 9110) nor in
 * the keys and values the decoder accepts, so the key is unambiguous; plain concatenation keeps the hot path cheap.
 */
function keyOf(entries: RequestDescriptor): string {
  if (entries.length === 1) return `${entries[0]!.key}\0${entries[0]!.value}`;
  let k = '';
  for (const e of entries) k += `${e.key}\0${e.value}\n`;
  return k;
}

/**
 * A descriptor with one or more empty values (Envoy's wildcard): every distinct set of request values gets a
 * bucket of its own, created full on first use. Live buckets are capped; at the cap, the ones idle long enough to
 * be full again are dropped first (which changes nothing, see TokenBucket.idleFor: so they need not be dropped any
 * sooner, and a hit costs one Map lookup). When the cap is still reached, a new value is charged to one shared
 * overflow bucket of the same size.
 *
 * Why overflow rather than Envoy's LRU eviction or a refusal: evicting a live bucket hands its value a fresh,
 * full bucket on return, so a caller cycling through more values than the cap is never limited at all; refusing
 * new values lets a flood of made-up values lock every new legitimate caller out. The overflow bucket keeps the
 * rate enforced for the values beyond the cap together, leaves the buckets already live alone, and still serves
 * new callers while the flood lasts.
 */
class WildcardDescriptor {
  private readonly buckets = new Map<string, TokenBucket>();
  readonly overflow: TokenBucket;
  /** Where the wildcard entries sit: only their values tell buckets apart (matches() checked the rest). */
  private readonly wild: readonly number[];

  constructor(
    readonly spec: LocalRateLimitDescriptor,
    private readonly epochMs: number,
    private readonly cap: number,
  ) {
    this.overflow = new TokenBucket(spec.tokenBucket, epochMs, epochMs);
    this.wild = spec.entries.flatMap((e, i) => (e.value === '' ? [i] : []));
  }

  /**
   * The bucket key: the one wildcard value as it is (the common case, e.g. the caller's SPIFFE ID: a string the
   * request already holds, so no new string is built and its hash is cached), else the wildcard values joined by
   * LF, which no value can contain.
   */
  private keyOf(d: RequestDescriptor): string {
    const w = this.wild;
    if (w.length === 1) return d[w[0]!]!.value;
    let k = '';
    for (const i of w) k += `${d[i]!.value}\n`;
    return k;
  }

  matches(d: RequestDescriptor): boolean {
    const want = this.spec.entries;
    if (d.length !== want.length) return false;
    for (let i = 0; i < want.length; i++) {
      const w = want[i]!;
      if (w.key !== d[i]!.key || (w.value !== '' && w.value !== d[i]!.value)) return false;
    }
    return true;
  }

  bucketFor(d: RequestDescriptor, nowMs: number): TokenBucket {
    const key = this.keyOf(d);
    let b = this.buckets.get(key);
    if (b) return b;
    if (this.buckets.size >= this.cap) {
      for (const [k, old] of this.buckets) if (old.idleFor(nowMs)) this.buckets.delete(k);
      if (this.buckets.size >= this.cap) return this.overflow;
    }
    b = new TokenBucket(this.spec.tokenBucket, this.epochMs, nowMs);
    this.buckets.set(key, b);
    return b;
  }

  get live(): number {
    return this.buckets.size;
  }
}

/**
 * Envoy's LocalRateLimiterImpl::requestAllowed: the buckets of every descriptor the request matches are charged,
 * slowest-filling first, and the first empty one refuses the request (earlier ones keep their charge, as in
 * Envoy). The filter's own bucket is charged when nothing matched, or always with always_consume_default_token_bucket.
 */
export class LocalRateLimiter {
  private readonly defaultBucket: TokenBucket;
  private readonly exact = new Map<string, TokenBucket>();
  private readonly wildcards: WildcardDescriptor[] = [];

  constructor(
    private readonly spec: LimiterSpec,
    epochMs: number,
  ) {
    this.defaultBucket = new TokenBucket(spec.tokenBucket, epochMs, epochMs);
    const cap = spec.maxDynamicDescriptors ?? MAX_DYNAMIC_DESCRIPTORS;
    for (const d of spec.descriptors) {
      if (d.entries.some((e) => e.value === '')) this.wildcards.push(new WildcardDescriptor(d, epochMs, cap));
      else this.exact.set(keyOf(d.entries), new TokenBucket(d.tokenBucket, epochMs, epochMs));
    }
  }

  check(descriptors: readonly RequestDescriptor[], nowMs: number): RateLimitDecision {
    let first: TokenBucket | undefined;
    let more: TokenBucket[] | undefined;
    if (this.exact.size > 0 || this.wildcards.length > 0) {
      for (const d of descriptors) {
        const b = this.lookup(d, nowMs);
        if (!b) continue;
        if (!first) first = b;
        else (more ??= [first]).push(b);
      }
    }
    if (first) {
      // One match (the common case) needs no list; several are charged slowest-filling first.
      if (more) {
        more.sort((a, b) => a.fillRate - b.fillRate);
        for (const b of more) if (!b.consume(nowMs)) return { allowed: false, bucket: b };
        first = more[0]!;
      } else if (!first.consume(nowMs)) {
        return { allowed: false, bucket: first };
      }
      if (!this.spec.alwaysConsumeDefaultTokenBucket) return { allowed: true, bucket: first };
    }
    if (!this.defaultBucket.consume(nowMs)) return { allowed: false, bucket: this.defaultBucket };
    return { allowed: true, bucket: first ?? this.defaultBucket };
  }

  /** An exact descriptor first; otherwise the first wildcard descriptor of the same keys. */
  private lookup(d: RequestDescriptor, nowMs: number): TokenBucket | undefined {
    if (this.exact.size > 0) {
      const b = this.exact.get(keyOf(d));
      if (b) return b;
    }
    for (const w of this.wildcards) if (w.matches(d)) return w.bucketFor(d, nowMs);
    return undefined;
  }

  /** Live per-value buckets across the wildcard descriptors (for tests and the admin view). */
  get liveBuckets(): number {
    return this.wildcards.reduce((n, w) => n + w.live, 0);
  }
}
