// The HTTP filter registry: one file per filter, keyed by its typed_config type URL. Adding one = a file + a line.
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import type { ProtoObj } from '../canonical.js';
import { fault } from './fault.js';
import { localRateLimit } from './local-ratelimit.js';
import { rbac } from './rbac.js';
import { router } from './router.js';

export interface HttpFilterDecoder {
  /** The type URL of the filter's typed_config, e.g. type.googleapis.com/envoy.extensions.filters.http.router.v3.Router */
  readonly typeUrl: string;
  /** The unpacked typed_config (canonical shape) -> the filter's frozen config, or every issue at its path. */
  decode(config: ProtoObj, path: string): Result<Readonly<Record<string, unknown>>, FieldIssue>;
  /**
   * The route-level config the filter takes in typed_per_filter_config, by its type URL (HTTPFault: the same
   * message; RBAC: RBACPerRoute), decoded by `decode` unless it has its own. Absent: the filter has none, and a
   * route configuring it is refused, as Envoy refuses it.
   */
  readonly perRoute?: { readonly typeUrl: string; decode?(config: ProtoObj, path: string): Result<Readonly<Record<string, unknown>>, FieldIssue> };
}

const REGISTRY: ReadonlyMap<string, HttpFilterDecoder> = new Map([localRateLimit, fault, rbac, router].map((f) => [f.typeUrl, f]));
const PER_ROUTE: ReadonlyMap<string, HttpFilterDecoder['decode']> = new Map(
  [...REGISTRY.values()].flatMap((f) => (f.perRoute ? [[f.perRoute.typeUrl, f.perRoute.decode ?? f.decode] as const] : [])),
);

export function httpFilterDecoder(typeUrl: string): HttpFilterDecoder | undefined {
  return REGISTRY.get(typeUrl);
}

/** The decoder of a typed_per_filter_config payload, by its type URL; undefined when no filter takes that type per route. */
export function perRouteFilterDecoder(typeUrl: string): HttpFilterDecoder['decode'] | undefined {
  return PER_ROUTE.get(typeUrl);
}
