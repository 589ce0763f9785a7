// Decodes an HTTP route's mirroring: `mirror` with `mirrorPercentage` (or the deprecated `mirrorPercent`), or
// the list form `mirrors` (Istio's HTTPMirrorPolicy), into one list of shadow targets.
import { joinPath } from '../../xds/json.js';
import type { Obj, Reader, Shape } from './schema.js';
import type { Destination, HTTPMirror } from './types.js';

/** The HTTPRoute fields this file reads. */
export const MIRROR_FIELDS = ['mirror', 'mirrors', 'mirrorPercentage', 'mirrorPercent'] as const;
const MIRROR_POLICY: Shape = { fields: ['destination', 'percentage'] };
const PERCENT: Shape = { fields: ['value'] };

type DestinationReader = (v: unknown, path: string) => Destination | undefined;

/**
 * As Istio's validateHTTPRoute: `mirror` and `mirrors` not both; percentages in 0..100. A percentage without a
 * `mirror` would be a dead letter, and is refused like retries' dead letters are. No percentage means 100.
 */
export function httpMirrors(r: Reader, o: Obj, path: string, destination: DestinationReader): HTTPMirror[] | undefined {
  const has = (k: string) => o[k] !== undefined && o[k] !== null;
  if (has('mirror') && has('mirrors')) r.issue(joinPath(path, 'mirrors'), 'cannot be set together with mirror; list every target under mirrors');
  for (const k of ['mirrorPercentage', 'mirrorPercent']) if (has(k) && !has('mirror')) r.issue(joinPath(path, k), 'is set without mirror, so nothing would be mirrored');
  if (has('mirror')) {
    const d = destination(o.mirror, joinPath(path, 'mirror'));
    const pct = has('mirrorPercentage') ? percentage(r, o.mirrorPercentage, joinPath(path, 'mirrorPercentage')) : r.int(o, 'mirrorPercent', path, 0, 100);
    return d && [{ destination: d, percent: pct ?? 100, at: 'mirror' }];
  }
  if (!has('mirrors')) return undefined;
  return r.list(o, 'mirrors', path, (v, p, i) => {
    const m = r.object(v, p, MIRROR_POLICY);
    if (!m || !r.need(m, 'destination', p)) return undefined;
    const d = destination(m.destination, joinPath(p, 'destination'));
    const pct = m.percentage === undefined || m.percentage === null ? 100 : percentage(r, m.percentage, joinPath(p, 'percentage'));
    return d && pct !== undefined ? { destination: d, percent: pct, at: `mirrors[${i}].destination` } : undefined;
  });
}

/** Istio's Percent {value: double}, in 0..100 (validatePercentage). */
function percentage(r: Reader, v: unknown, path: string): number | undefined {
  const o = r.object(v, path, PERCENT);
  if (!o) return undefined;
  const value = o.value ?? 0;
  if (typeof value !== 'number' || !Number.isFinite(value)) return r.issue(joinPath(path, 'value'), `expected a number, got ${JSON.stringify(value)}`);
  if (value < 0 || value > 100) return r.issue(joinPath(path, 'value'), `${value} is not a percentage in 0..100`);
  return value;
}
