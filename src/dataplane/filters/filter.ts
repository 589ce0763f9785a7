// The HTTP filter interface: what every filter in an HCM's chain implements, built once per config version.
import type { Clock } from '../../core/clock.js';
import type { Rng } from '../../core/rng.js';
import type { HttpFilterConfig } from '../../model/types.js';
import type { Logger } from '../../telemetry/logger.js';
import type { MeshMetrics } from '../../telemetry/metrics.js';
import type { RequestRecord } from '../exchange.js';
import type { LocalReply } from '../local-reply.js';
import type { CompiledRoute } from '../router.js';

/**
 * One request as the filters see it, before the router. `route` is the route the router will take (Envoy
 * resolves it before the filters too, so per-route config — typed_per_filter_config — can apply); undefined
 * when nothing matched, in which case the router answers 404 NR after the filters let the request through.
 */
export interface FilterRequest {
  readonly rec: RequestRecord;
  readonly route: CompiledRoute | undefined;
  /**
   * Registers a callback for the caller going away before the response is done. A filter that waits (a fault
   * delay) cancels its timer here; the HCM has then already completed the request (flag DC).
   */
  readonly onAbort?: (fn: () => void) => void;
}

/**
 * A filter's answer: undefined lets the request go on to the next filter; a LocalReply stops the chain and is
 * sent as it is (its `headers`, e.g. RateLimit-*, included). A Promise is allowed (a fault delay, a JWKS-bound
 * verification); synchronous filters keep the chain synchronous.
 */
export type FilterVerdict = LocalReply | undefined;

export interface HttpFilter {
  /** The http_filters entry's name (Envoy's filter name, e.g. envoy.filters.http.local_ratelimit). */
  readonly name: string;
  decodeHeaders(req: FilterRequest): FilterVerdict | Promise<FilterVerdict>;
}

/** What a filter may use; injected, never global (house style 5). */
export interface FilterDeps {
  readonly listenerName: string;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  /**
   * jwt_authn met a token whose `kid` no key of its provider has: the IdP may have rotated. Wired to the control
   * server, which refetches the JWKS (with its own cooldown); the request in hand is refused at once, never held.
   */
  readonly onUnknownJwksKey?: (issuer: string, kid: string) => void;
}

/**
 * Builds one filter from its decoded http_filters entry. Every filter has one file under dataplane/filters
 * exporting one factory; adding a filter is adding a file and a registry line (house style 4).
 */
export interface HttpFilterFactory {
  /** The type URL of the typed_config it builds from; the same key as the decoder in xds/http-filters. */
  readonly typeUrl: string;
  create(config: HttpFilterConfig, deps: FilterDeps): HttpFilter;
}
