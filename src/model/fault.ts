// The fault filter's config (envoy.extensions.filters.http.fault.v3.HTTPFault) as the decoder builds it and the filter reads it.
import type { HeaderMatcher } from './types.js';

export const FAULT_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
/** The http_filters name Istio gives the filter (wellknown.Fault); routes key their typed_per_filter_config by it. */
export const FAULT_FILTER_NAME = 'envoy.filters.http.fault';

/** FaultDelay with a fixed_delay: hold the request this long, then let it go on. */
export interface FaultDelay {
  readonly fixedDelayMs: number;
  /** FractionalPercent as a probability in [0, 1]; an unset percentage is 0 (Envoy's default FractionalPercent). */
  readonly probability: number;
}

/**
 * FaultAbort: answer locally instead of routing. With http_status the reply has that status (a gRPC caller gets
 * it mapped to a grpc-status); with grpc_status the reply is HTTP 200 carrying that grpc-status, as Envoy sends it.
 */
export interface FaultAbort {
  readonly httpStatus: number;
  readonly grpcStatus?: number;
  readonly probability: number;
}

/** A type alias, not an interface: it is the Record<string, unknown> an HttpFilterConfig carries. */
export type FaultConfig = {
  readonly delay?: FaultDelay;
  readonly abort?: FaultAbort;
  /** HTTPFault.headers: the fault applies only to requests matching all of them. */
  readonly headers: readonly HeaderMatcher[];
  /** HTTPFault.downstream_nodes: when non-empty, only callers whose x-envoy-downstream-service-node is listed. */
  readonly downstreamNodes: readonly string[];
  /** HTTPFault.max_active_faults: faults in progress at once; undefined = unlimited (Envoy's default). */
  readonly maxActiveFaults?: number;
};
