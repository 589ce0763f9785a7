// envoy.filters.http.local_ratelimit at run time: the route's rate_limits give descriptors, the limiter decides, 429 + RateLimit-*.
import { compileHeaderMatcher, requestHeaderGetter, type HeaderGetter } from '../../model/matchers.js';
import type { DescriptorEntry, LocalRateLimitConfig, RateLimitAction, RateLimitEntry } from '../../model/rate-limit.js';
import { LocalRateLimiter, type RequestDescriptor } from '../../policy/rate-limit.js';
import type { RequestRecord } from '../exchange.js';
import { GRPC, type LocalReply } from '../local-reply.js';
import type { CompiledRoute } from '../router.js';
import type { FilterDeps, FilterRequest, HttpFilter, HttpFilterFactory } from './filter.js';

export const LOCAL_RATELIMIT_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

/** One action ready to run: it adds its entry, leaves it out (`null`: skip_if_absent / skip_if_error), or drops the descriptor (undefined). */
type Producer = (rec: RequestRecord, get: HeaderGetter) => DescriptorEntry | null | undefined;

function producer(a: RateLimitAction): Producer {
  switch (a.kind) {
    case 'request_headers':
      return (_rec, get) => {
        const v = get(a.header);
        return v !== undefined ? { key: a.key, value: v } : a.skip ? null : undefined;
      };
    case 'header_value_match': {
      const matchers = a.headers.map(compileHeaderMatcher);
      const entry = { key: a.key, value: a.value };
      // Envoy: the entry is produced when all headers match, or (expect_match false) when they do not all match.
      return (_rec, get) => (matchers.every((m) => m(get)) === a.expectMatch ? entry : undefined);
    }
    case 'generic_key': {
      const entry = { key: a.key, value: a.value };
      return () => entry;
    }
    case 'remote_address':
      return (rec) => ({ key: 'remote_address', value: rec.conn.remoteIp });
    case 'source_principal':
      // connection.uri_san_peer_certificate: absent without a client certificate, which is an expression error.
      return (rec) => {
        const uri = rec.conn.peer?.uri;
        return uri !== undefined ? { key: a.key, value: uri } : a.skip ? null : undefined;
      };
  }
}

interface CompiledEntry {
  readonly stage: number;
  readonly producers: readonly Producer[];
}

/** Compiled once per route config version: the model arrays are frozen and live as long as their route table. */
const compiled = new WeakMap<readonly RateLimitEntry[], readonly CompiledEntry[]>();

function compile(entries: readonly RateLimitEntry[]): readonly CompiledEntry[] {
  let c = compiled.get(entries);
  if (!c) {
    c = entries.map((e) => ({ stage: e.stage, producers: e.actions.map(producer) }));
    compiled.set(entries, c);
  }
  return c;
}

/**
 * The route's descriptors for this filter's stage (Envoy: RouteEntry rateLimitPolicy().getApplicableRateLimit(stage),
 * each entry's actions in order; one action failing drops that entry's descriptor, an empty one is not sent).
 */
export function requestDescriptors(route: CompiledRoute | undefined, rec: RequestRecord, stage: number): RequestDescriptor[] {
  const action = route?.route.action;
  const entries = action?.kind === 'route' ? action.action.rateLimits : undefined;
  if (!entries || entries.length === 0) return [];
  const out: RequestDescriptor[] = [];
  // Request headers as the rate_limits actions read them: pseudo-headers included, repeats joined by ','.
  const get = requestHeaderGetter(rec);
  outer: for (const e of compile(entries)) {
    if (e.stage !== stage) continue;
    const d: DescriptorEntry[] = [];
    for (const p of e.producers) {
      const entry = p(rec, get);
      if (entry === undefined) continue outer;
      if (entry !== null) d.push(entry);
    }
    if (d.length > 0) out.push(d);
  }
  return out;
}

class LocalRateLimitFilter implements HttpFilter {
  private readonly limiter: LocalRateLimiter;
  private readonly counted;

  constructor(
    readonly name: string,
    private readonly cfg: LocalRateLimitConfig,
    private readonly deps: FilterDeps,
  ) {
    // The limiter's epoch is the config version's start, as Envoy's fill timer starts with the filter config.
    this.limiter = new LocalRateLimiter(cfg, deps.clock.monotonic());
    const c = deps.metrics.localRateLimit;
    const labels = (result: string) => c.tally({ listener: deps.listenerName, policy: cfg.statPrefix, result });
    this.counted = { allowed: labels('allowed'), limited: labels('rate_limited'), shadow: labels('shadow_limited') };
  }

  /** A FractionalPercent draw: 0 and 1 are decided without the rng. */
  private chance(p: number): boolean {
    return p >= 1 || (p > 0 && this.deps.rng.next() < p);
  }

  decodeHeaders(req: FilterRequest): LocalReply | undefined {
    const cfg = this.cfg;
    // Envoy: filter_enabled unset means the filter does nothing (and counts nothing).
    if (!this.chance(cfg.enabled)) return undefined;
    const descriptors = cfg.descriptors.length > 0 ? requestDescriptors(req.route, req.rec, cfg.stage) : [];
    const now = this.deps.clock.monotonic();
    const d = this.limiter.check(descriptors, now);
    if (d.allowed) {
      this.counted.allowed.n++;
      return undefined;
    }
    // Shadow mode (filter_enforced below 100 %): the token was asked for and counted, the request goes on.
    if (!this.chance(cfg.enforced)) {
      this.counted.shadow.n++;
      return undefined;
    }
    this.counted.limited.n++;
    const headers: Record<string, string> = {
      // IETF draft-ietf-httpapi-ratelimit-headers: the refusing bucket's size, what is left, seconds to the next fill.
      'ratelimit-limit': String(d.bucket.spec.maxTokens),
      'ratelimit-remaining': String(d.bucket.remaining(now)),
      'ratelimit-reset': String(d.bucket.resetSeconds(now)),
    };
    for (const h of cfg.responseHeadersToAdd) headers[h.key] = h.value;
    return {
      status: cfg.status,
      code: 'rate_limited',
      message: 'local rate limit exceeded',
      flag: 'RL',
      details: 'local_rate_limited',
      // rate_limited_as_resource_exhausted; otherwise Envoy's HTTP mapping applies (429 → UNAVAILABLE).
      ...(cfg.rateLimitedAsResourceExhausted && { grpcStatus: GRPC.RESOURCE_EXHAUSTED }),
      headers,
    };
  }
}

export const localRateLimitFactory: HttpFilterFactory = {
  typeUrl: LOCAL_RATELIMIT_TYPE_URL,
  create: (config, deps) => new LocalRateLimitFilter(config.name, config.config as unknown as LocalRateLimitConfig, deps),
};
