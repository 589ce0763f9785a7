// Route.typed_per_filter_config: each HTTP filter's route-level config, decoded by that filter's own decoder.
import type { HttpFilterConfig, Route } from '../../model/types.js';
import { unpackAny, type ProtoObj } from '../canonical.js';
import { perRouteFilterDecoder } from '../http-filters/index.js';
import { Issues, bool, joinPath, msg, onlyFields } from './common.js';

/** envoy.config.route.v3.FilterConfig: the wrapper that can mark a route's filter config optional. */
const FILTER_CONFIG_TYPE_URL = 'type.googleapis.com/envoy.config.route.v3.FilterConfig';

export type PerFilterConfigs = NonNullable<Route['typedPerFilterConfig']>;

/**
 * map<filter name, Any> -> the decoded configs by filter name, or undefined when there are none. The decoder is
 * found by the payload's type URL, as Envoy finds the factory; a type no filter takes per route is an error (a
 * NACK) unless it comes wrapped in a FilterConfig with is_optional, which Envoy then ignores, and so do we.
 * Which filter reads an entry is by name, at request time: an entry for a filter not in the chain is inert.
 */
export function decodeTypedPerFilterConfig(o: ProtoObj, path: string, issues: Issues): PerFilterConfigs | undefined {
  const map = msg(o, 'typed_per_filter_config');
  if (map === undefined) return undefined;
  const out: Record<string, Pick<HttpFilterConfig, 'typeUrl' | 'config'>> = {};
  for (const [name, any] of Object.entries(map)) {
    const p = `${joinPath(path, 'typed_per_filter_config')}[${JSON.stringify(name)}]`;
    const unpacked = issues.take(unpackAny(any as ProtoObj, p));
    if (!unpacked) continue;
    let { typeUrl, value } = unpacked;
    let optional = false;
    let at = p;
    if (typeUrl === FILTER_CONFIG_TYPE_URL) {
      onlyFields(value, p, ['config', 'is_optional'], issues);
      optional = bool(value, 'is_optional');
      at = joinPath(p, 'config');
      const inner = msg(value, 'config');
      const r = inner && issues.take(unpackAny(inner, at));
      if (!r) {
        if (!inner) issues.add(at, 'is required');
        continue;
      }
      ({ typeUrl, value } = r);
    }
    const decode = perRouteFilterDecoder(typeUrl);
    if (!decode) {
      if (!optional) issues.add(at, `no HTTP filter takes ${typeUrl} as per-route config (wrap it in a FilterConfig with is_optional: true to skip it)`);
      continue;
    }
    const config = issues.take(decode(value, at));
    if (config) out[name] = { typeUrl, config };
  }
  return Object.keys(out).length ? out : undefined;
}
