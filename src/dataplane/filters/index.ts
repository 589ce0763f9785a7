// The filter chain: the HCM's http_filters, built once per config version from the factory registry, run in order.
import type { HttpFilterConfig } from '../../model/types.js';
import type { Logger } from '../../telemetry/logger.js';
import { Replies } from '../local-reply.js';
import { faultFilter } from './fault.js';
import type { FilterDeps, FilterRequest, FilterVerdict, HttpFilter, HttpFilterFactory } from './filter.js';
import { localRateLimitFactory } from './local-ratelimit.js';
import { rbacFactory } from './rbac.js';

/** Registry by type URL. The router (terminal, the HCM itself) has no entry: the chain ends where it sits. */
const FACTORIES: ReadonlyMap<string, HttpFilterFactory> = new Map(([localRateLimitFactory, faultFilter, rbacFactory] as HttpFilterFactory[]).map((f) => [f.typeUrl, f]));

/** The fixed order (model/filter-order.ts), re-exported where the chain is built. */
export { FILTER_ORDER } from '../../model/filter-order.js';

export class FilterChain {
  /** No filters before the router: the HCM skips the chain entirely (the common case costs nothing). */
  readonly empty: boolean;

  constructor(
    private readonly filters: readonly HttpFilter[],
    private readonly logger: Logger,
  ) {
    this.empty = filters.length === 0;
  }

  /**
   * Runs the filters in order until one answers. Synchronous while every filter is; a Promise otherwise,
   * which never rejects: a filter that throws is a bug, answered 500 (never a request let through unchecked).
   */
  run(req: FilterRequest, from = 0): FilterVerdict | Promise<FilterVerdict> {
    for (let i = from; i < this.filters.length; i++) {
      const f = this.filters[i]!;
      let v: FilterVerdict | Promise<FilterVerdict>;
      try {
        v = f.decodeHeaders(req);
      } catch (err) {
        return this.failed(f, err);
      }
      if (v instanceof Promise) return v.then((r) => (r !== undefined ? r : this.run(req, i + 1)), (err: unknown) => this.failed(f, err));
      if (v !== undefined) return v;
    }
    return undefined;
  }

  private failed(f: HttpFilter, err: unknown): FilterVerdict {
    this.logger.error({ err, filter: f.name }, 'HTTP filter failed');
    return Replies.filterFailed(f.name);
  }
}

/**
 * The chain for one HCM config version. The decoder (xds/http-filters) already refused unknown required
 * filters (a NACK) and dropped unknown optional ones, so every config here has a decoder; one without a
 * runtime factory yet is a programming error caught by the registry test, not a request-time surprise.
 */
export function buildFilterChain(configs: readonly HttpFilterConfig[], deps: FilterDeps, factories: ReadonlyMap<string, HttpFilterFactory> = FACTORIES): FilterChain {
  const filters: HttpFilter[] = [];
  for (const c of configs) {
    const f = factories.get(c.typeUrl);
    if (f) filters.push(f.create(c, deps));
  }
  return new FilterChain(filters, deps.logger);
}
