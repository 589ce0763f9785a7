// envoy.filters.http.fault (envoy.extensions.filters.http.fault.v3.HTTPFault): delay and abort injection, also per route.
import type { FaultAbort, FaultConfig, FaultDelay } from '../../model/fault.js';
import { FAULT_TYPE_URL } from '../../model/fault.js';
import type { HeaderMatcher } from '../../model/types.js';
import type { ProtoObj } from '../canonical.js';
import { decodeHeaderMatcher } from '../resources/matchers.js';
import { Issues, durationMs, joinPath, list, msg, num, onlyFields, requireOne, strings, u32Value } from '../resources/common.js';
import type { HttpFilterDecoder } from './index.js';

/** envoy.type.v3.FractionalPercent.DenominatorType: numerator / denominator is the fraction. */
const DENOMINATORS: Readonly<Record<string, number>> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };

/**
 * FractionalPercent -> a probability in [0, 1]. Unset is 0: Envoy reads a default FractionalPercent (numerator 0),
 * so a fault without a percentage never fires, which is also Istio's documented "if not specified, no request".
 * A numerator above the denominator is always (Envoy's `random % denominator < numerator`).
 */
export function fractionalPercent(o: ProtoObj | undefined, path: string, issues: Issues): number {
  if (o === undefined) return 0;
  onlyFields(o, path, ['numerator', 'denominator'], issues);
  const d = o.denominator ?? 'HUNDRED';
  const denominator = typeof d === 'string' ? DENOMINATORS[d] : undefined;
  if (denominator === undefined) {
    issues.add(joinPath(path, 'denominator'), `${String(d)} is not one of HUNDRED, TEN_THOUSAND, MILLION`);
    return 0;
  }
  return Math.min(1, num(o, 'numerator') / denominator);
}

/** FaultDelay: fixed_delay (> 0, Envoy's validate rule) and its percentage; header_delay is not implemented. */
function delayOf(o: ProtoObj, path: string, issues: Issues): FaultDelay {
  const clean = onlyFields(o, path, ['fixed_delay', 'percentage'], issues);
  if (o.header_delay !== undefined) issues.add(joinPath(path, 'header_delay'), 'is not supported (delays requested by the x-envoy-fault-delay-request header); use fixed_delay');
  requireOne(o, path, ['fixed_delay'], clean, issues);
  const ms = durationMs(o, 'fixed_delay', path, issues);
  if (ms === 0) issues.add(joinPath(path, 'fixed_delay'), 'must be greater than 0');
  return { fixedDelayMs: ms ?? 0, probability: fractionalPercent(msg(o, 'percentage'), joinPath(path, 'percentage'), issues) };
}

/**
 * FaultAbort: exactly one of http_status (200..599, Envoy's validate rule) or grpc_status (the reply is then
 * HTTP 200 with that grpc-status, as Envoy's abortStatus answers); header_abort is not implemented.
 */
function abortOf(o: ProtoObj, path: string, issues: Issues): FaultAbort {
  const clean = onlyFields(o, path, ['http_status', 'grpc_status', 'percentage'], issues);
  if (o.header_abort !== undefined) issues.add(joinPath(path, 'header_abort'), 'is not supported (aborts requested by the x-envoy-fault-abort-request header); use http_status or grpc_status');
  requireOne(o, path, ['http_status', 'grpc_status'], clean, issues);
  const probability = fractionalPercent(msg(o, 'percentage'), joinPath(path, 'percentage'), issues);
  if (o.grpc_status !== undefined) return { httpStatus: 200, grpcStatus: num(o, 'grpc_status'), probability };
  const status = num(o, 'http_status');
  if (o.http_status !== undefined && (status < 200 || status > 599)) issues.add(joinPath(path, 'http_status'), `${status} is not an HTTP status in [200, 600)`);
  return { httpStatus: status, probability };
}

export const fault: HttpFilterDecoder = {
  typeUrl: FAULT_TYPE_URL,
  decode(o, path) {
    const issues = new Issues();
    // The *_runtime keys name runtime overrides; with no runtime layer they would be dead letters, so they are refused.
    onlyFields(o, path, ['delay', 'abort', 'headers', 'downstream_nodes', 'max_active_faults', 'disable_downstream_cluster_stats'], issues);
    const d = msg(o, 'delay');
    const a = msg(o, 'abort');
    const delay = d && delayOf(d, joinPath(path, 'delay'), issues);
    const abort = a && abortOf(a, joinPath(path, 'abort'), issues);
    const headers = list(o, 'headers').map((h, i) => issues.take(decodeHeaderMatcher(h, joinPath(path, `headers[${i}]`))));
    const maxActiveFaults = u32Value(o, 'max_active_faults');
    return issues.result(
      (): FaultConfig => ({
        ...(delay && { delay }),
        ...(abort && { abort }),
        headers: headers as HeaderMatcher[],
        downstreamNodes: [...strings(o, 'downstream_nodes')],
        ...(maxActiveFaults !== undefined && { maxActiveFaults }),
      }),
    );
  },
  // The same message per route (Envoy's fault filter reads an HTTPFault from typed_per_filter_config too).
  perRoute: { typeUrl: FAULT_TYPE_URL },
};
