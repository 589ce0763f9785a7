// VirtualService fault -> Envoy's fault filter: the (empty) filter on the sidecar's outbound HCM, the fault per route.
import { FAULT_FILTER_NAME, FAULT_TYPE_URL } from '../../model/fault.js';
import type { HTTPFaultInjection } from '../mesh/fault.js';
import { duration } from './common.js';

/**
 * istiod puts the fault filter, with an empty config, on every outbound HCM (xdsfilters.Fault) and each route's
 * fault in its typed_per_filter_config. Always there, so adding or removing a fault is an RDS change only: the
 * listener, and the connections it holds, stay as they are.
 */
export const FAULT_FILTER = { name: FAULT_FILTER_NAME, typed_config: { '@type': FAULT_TYPE_URL } };

/** Istio's 0..100 percentage as istiod writes it (translatePercentToFractionalPercent): per million. Unset stays unset (0 %). */
function fraction(pct: number | undefined): Record<string, unknown> {
  return pct === undefined ? {} : { percentage: { numerator: Math.round(pct * 10_000), denominator: 'MILLION' } };
}

/** HTTPFaultInjection -> the route's `typed_per_filter_config` entry (istiod's TranslateFault), or nothing. */
export function routeFault(f: HTTPFaultInjection | undefined): Record<string, unknown> {
  if (!f) return {};
  const { delay, abort } = f;
  const status = abort && (abort.grpcStatus !== undefined ? { grpc_status: abort.grpcStatus } : { http_status: abort.httpStatus });
  const config = {
    '@type': FAULT_TYPE_URL,
    ...(delay && { delay: { fixed_delay: duration(delay.fixedDelayMs), ...fraction(delay.percentage) } }),
    ...(abort && { abort: { ...status, ...fraction(abort.percentage) } }),
  };
  return { typed_per_filter_config: { [FAULT_FILTER_NAME]: config } };
}
