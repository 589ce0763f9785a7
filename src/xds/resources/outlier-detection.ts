// Decodes envoy.config.cluster.v3.OutlierDetection (Cluster.outlier_detection) with Envoy's defaults filled in.
import { OUTLIER_DEFAULTS, type OutlierDetection } from '../../model/types.js';
import type { ProtoObj } from '../canonical.js';
import { Issues, bool, durationMs, joinPath, onlyFields, u32Value } from './common.js';

type NumberKey = { [K in keyof OutlierDetection]: OutlierDetection[K] extends number ? K : never }[keyof OutlierDetection];

/**
 * Proto field -> model field, and its validate rule: `count` (any UInt32Value), `percent` (lte 100),
 * `positive` (a Duration with gt 0) or `duration` (any non-negative Duration).
 */
const FIELDS: readonly (readonly [string, NumberKey, 'count' | 'percent' | 'positive' | 'duration'])[] = [
  ['consecutive_5xx', 'consecutive5xx', 'count'],
  ['interval', 'intervalMs', 'positive'],
  ['base_ejection_time', 'baseEjectionTimeMs', 'positive'],
  ['max_ejection_percent', 'maxEjectionPercent', 'percent'],
  ['enforcing_consecutive_5xx', 'enforcingConsecutive5xx', 'percent'],
  ['enforcing_success_rate', 'enforcingSuccessRate', 'percent'],
  ['success_rate_minimum_hosts', 'successRateMinimumHosts', 'count'],
  ['success_rate_request_volume', 'successRateRequestVolume', 'count'],
  ['success_rate_stdev_factor', 'successRateStdevFactor', 'count'],
  ['consecutive_gateway_failure', 'consecutiveGatewayFailure', 'count'],
  ['enforcing_consecutive_gateway_failure', 'enforcingConsecutiveGatewayFailure', 'percent'],
  ['consecutive_local_origin_failure', 'consecutiveLocalOriginFailure', 'count'],
  ['enforcing_consecutive_local_origin_failure', 'enforcingConsecutiveLocalOriginFailure', 'percent'],
  ['enforcing_local_origin_success_rate', 'enforcingLocalOriginSuccessRate', 'percent'],
  ['failure_percentage_threshold', 'failurePercentageThreshold', 'percent'],
  ['enforcing_failure_percentage', 'enforcingFailurePercentage', 'percent'],
  ['enforcing_failure_percentage_local_origin', 'enforcingFailurePercentageLocalOrigin', 'percent'],
  ['failure_percentage_minimum_hosts', 'failurePercentageMinimumHosts', 'count'],
  ['failure_percentage_request_volume', 'failurePercentageRequestVolume', 'count'],
  ['max_ejection_time', 'maxEjectionTimeMs', 'positive'],
  ['max_ejection_time_jitter', 'maxEjectionTimeJitterMs', 'duration'],
];

/**
 * Every field of the model; unset ones take Envoy's defaults (OUTLIER_DEFAULTS). Not implemented, so refused
 * by name: successful_active_health_check_uneject_host (there is no active health checking),
 * always_eject_one_host and monitors.
 */
export function decodeOutlierDetection(o: ProtoObj, path: string, issues: Issues): OutlierDetection {
  onlyFields(o, path, [...FIELDS.map(([k]) => k), 'split_external_local_origin_errors'], issues);
  const out: { -readonly [K in keyof OutlierDetection]: OutlierDetection[K] } = { ...OUTLIER_DEFAULTS };
  for (const [k, key, rule] of FIELDS) {
    const v = rule === 'count' || rule === 'percent' ? u32Value(o, k) : durationMs(o, k, path, issues);
    if (v === undefined) continue;
    if (rule === 'percent' && v > 100) issues.add(joinPath(path, k), `${v} is outside [0, 100]`);
    if (rule === 'positive' && v === 0) issues.add(joinPath(path, k), 'must be greater than 0');
    out[key] = v;
  }
  out.splitExternalLocalOriginErrors = bool(o, 'split_external_local_origin_errors');
  // Envoy refuses the detector when the cap is below the base, with the defaults applied to either.
  if (out.maxEjectionTimeMs < out.baseEjectionTimeMs) {
    issues.add(joinPath(path, 'max_ejection_time'), `${out.maxEjectionTimeMs} ms is smaller than base_ejection_time (${out.baseEjectionTimeMs} ms)`);
  }
  return out;
}
