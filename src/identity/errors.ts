// Identity error catalogue: stable codes for SPIFFE ID, SVID and certificate-material failures.
import { OutriggerError } from '../core/errors.js';

export type IdentityErrorCode = 'SPIFFE_ID_INVALID' | 'SVID_INVALID' | 'CERT_LOAD_FAILED' | 'KEY_MISMATCH' | 'CA_INVALID';

export class IdentityError extends OutriggerError {
  declare readonly code: IdentityErrorCode;

  constructor(code: IdentityErrorCode, message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, opts);
    this.name = 'IdentityError';
  }
}
