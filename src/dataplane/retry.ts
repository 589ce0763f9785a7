// Envoy's retry decisions (router retry_on semantics), pure: which outcomes of an attempt earn another one,
// and how long to back off first.
import type { Rng } from '../core/rng.js';
import type { RetryPolicy } from '../model/types.js';
import type { UpstreamError } from '../upstream/errors.js';

/** grpc-status codes by the retry_on names Envoy gives them (x-envoy-retry-grpc-on). */
const GRPC_RETRY_ON: Readonly<Record<string, string>> = { '1': 'cancelled', '4': 'deadline-exceeded', '8': 'resource-exhausted', '13': 'internal', '14': 'unavailable' };

/**
 * Should an upstream response with this status (and, for gRPC, the grpc-status of a trailers-only
 * response) be retried? As Envoy: 5xx covers every 5xx; gateway-error 502/503/504; retriable-4xx is 409;
 * retriable-status-codes the listed ones; the gRPC conditions look only at response headers.
 */
export function retriableResponse(p: RetryPolicy, status: number, grpcStatus: string | undefined): boolean {
  const on = p.retryOn;
  if (status >= 500 && on.has('5xx')) return true;
  if ((status === 502 || status === 503 || status === 504) && on.has('gateway-error')) return true;
  if (status === 409 && on.has('retriable-4xx')) return true;
  if (on.has('retriable-status-codes') && p.retriableStatusCodes.includes(status)) return true;
  if (grpcStatus !== undefined) {
    const name = GRPC_RETRY_ON[grpcStatus];
    if (name && on.has(name as never)) return true;
  }
  return false;
}

/**
 * Should a failed attempt (no response: connect failure, reset, refused stream, per-try timeout) be retried?
 * As Envoy: 5xx, gateway-error and reset cover every way of getting no response; connect-failure only
 * the connection failing; refused-stream only an HTTP/2 REFUSED_STREAM; reset-before-request only failures
 * where nothing reached the upstream.
 */
export function retriableFailure(p: RetryPolicy, err: UpstreamError | 'per_try_timeout'): boolean {
  const on = p.retryOn;
  if (on.has('5xx') || on.has('gateway-error') || on.has('reset')) return true;
  if (err === 'per_try_timeout') return false;
  if (on.has('connect-failure') && (err.kind === 'connect_failure' || err.kind === 'connect_timeout')) return true;
  if (on.has('refused-stream') && err.kind === 'refused_stream') return true;
  return on.has('reset-before-request') && err.beforeRequestSent;
}

/**
 * Envoy's back-off: for retry number n (1-based), a uniform draw in [0, (2^n − 1) × base), capped at max
 * ("fully jittered exponential back-off"), so a fleet of callers does not retry in lockstep.
 */
export function backoffMs(p: RetryPolicy, n: number, rng: Rng): number {
  const ceiling = Math.min(p.backOffMaxMs, (2 ** Math.min(n, 30) - 1) * p.backOffBaseMs);
  return rng.next() * ceiling;
}
