// Upstream error catalogue: why a request could not reach, or lost, its upstream.
import { OutriggerError } from '../core/errors.js';

export type UpstreamErrorKind = 'connect_failure' | 'connect_timeout' | 'reset' | 'refused_stream' | 'overflow' | 'cancelled';

export class UpstreamError extends OutriggerError {
  readonly kind: UpstreamErrorKind;
  /** Bounded reason for metrics and the access log's upstream_transport_failure_reason. */
  readonly reason: string;

  constructor(kind: UpstreamErrorKind, reason: string, message: string, cause?: unknown) {
    super(`UPSTREAM_${kind.toUpperCase()}`, message, { cause });
    this.name = 'UpstreamError';
    this.kind = kind;
    this.reason = reason;
  }

  /** Connect-phase failures are safe to retry elsewhere: nothing reached the upstream application. */
  get beforeRequestSent(): boolean {
    return this.kind === 'connect_failure' || this.kind === 'connect_timeout' || this.kind === 'refused_stream' || this.kind === 'cancelled';
  }
}

/** The downstream caller went away before the request was sent: nothing to report upstream. */
export const cancelledError = () => new UpstreamError('cancelled', 'downstream_cancelled', 'the downstream request was cancelled before it was sent upstream');

/** The pool was closed (its cluster version retired) before the request got a connection. */
export const poolClosedError = () => new UpstreamError('connect_failure', 'pool_closed', 'connection pool is closed');

/** Maps socket/TLS error codes onto a small, bounded set of reasons. */
export function connectReason(e: unknown): string {
  const code = (e as { code?: string }).code ?? '';
  if (code === 'ECONNREFUSED') return 'connection_refused';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'connection_reset';
  if (code === 'ETIMEDOUT') return 'timeout';
  if (code === 'ERR_SPIFFE_ID_MISMATCH' || code === 'ERR_SVID_INVALID') return 'peer_identity';
  if (code.startsWith('CERT_') || code.includes('CERT') || code.includes('SELF_SIGNED') || code.startsWith('UNABLE_TO')) return 'tls_verify';
  if (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS')) return 'tls_handshake';
  return code ? 'other' : 'unknown';
}
