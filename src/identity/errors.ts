// Identity error catalogue: stable codes for SPIFFE ID, SVID and certificate-material failures.
import { OutriggerError } from '../core/errors.js';

export type IdentityErrorCode =
  | 'SPIFFE_ID_INVALID'
  | 'SVID_INVALID'
  | 'CERT_LOAD_FAILED'
  | 'KEY_MISMATCH'
  | 'CA_INVALID'
  /** A CSR that cannot be signed (details.reason: a bounded CsrRejectReason). */
  | 'CSR_INVALID'
  /** A bootstrap token that does not prove an identity (details.reason: a bounded TokenRejectReason). */
  | 'TOKEN_INVALID'
  /** The CA directory is unusable (details.file names the file at fault). */
  | 'CA_DIR_INVALID'
  /** The CA could not be reached or refused; the caller keeps its current certificate and retries. */
  | 'CA_UNAVAILABLE'
  | 'CA_REFUSED';

export class IdentityError extends OutriggerError {
  declare readonly code: IdentityErrorCode;

  constructor(code: IdentityErrorCode, message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, opts);
    this.name = 'IdentityError';
  }
}
