// A request's deadline: the route timeout, or for gRPC the caller's grpc-timeout under max_grpc_timeout.
import type { RouteAction } from '../model/types.js';

/** grpc-timeout units (gRPC over HTTP/2: TimeoutValue is 1-8 digits, then H M S m u n) in ms. */
const UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
const GRPC_TIMEOUT = /^([0-9]{1,8})([HMSmun])$/;

/**
 * The grpc-timeout header in ms, rounded up to at least 1 (a sub-millisecond deadline is still a deadline,
 * never "none"); undefined when absent or malformed (Envoy ignores a malformed one).
 */
export function parseGrpcTimeout(v: string | string[] | undefined): number | undefined {
  const m = typeof v === 'string' ? GRPC_TIMEOUT.exec(v) : null;
  if (!m) return undefined;
  return Math.max(1, Math.ceil(Number(m[1]) * UNIT_MS[m[2]!]!));
}

/**
 * The request's overall timeout in ms (0 = none). As Envoy's router: a gRPC request on a route with
 * max_grpc_timeout takes its grpc-timeout header (no header = no deadline) instead of `timeout`, capped at
 * max_grpc_timeout unless that is 0. istiod writes max_grpc_timeout = the route timeout, so the smaller of
 * grpc-timeout and the VirtualService timeout wins (and with no VirtualService timeout, grpc-timeout alone).
 */
export function requestTimeoutMs(ra: RouteAction, grpc: boolean, grpcTimeout: string | string[] | undefined): number {
  const max = ra.maxGrpcTimeoutMs;
  if (!grpc || max === undefined) return ra.timeoutMs;
  const header = parseGrpcTimeout(grpcTimeout);
  if (max === 0) return header ?? 0;
  return header === undefined ? max : Math.min(header, max);
}

/**
 * The grpc-timeout the upstream should see: Envoy rewrites it to what this hop will wait, the per-try timeout
 * when it is shorter, so the server gives up when the proxy does. Only when max_grpc_timeout is configured.
 */
export function upstreamGrpcTimeout(ra: RouteAction, grpc: boolean, timeoutMs: number): string | undefined {
  if (!grpc || ra.maxGrpcTimeoutMs === undefined) return undefined;
  const perTry = ra.retryPolicy?.perTryTimeoutMs ?? 0;
  const expected = perTry > 0 && (timeoutMs === 0 || perTry < timeoutMs) ? perTry : timeoutMs;
  return expected > 0 ? `${Math.ceil(expected)}m` : undefined;
}
