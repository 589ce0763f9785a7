// Errors of the translation from the mesh model to Envoy resources: each one is a translator bug, never a user error.
import { OutriggerError } from '../../core/errors.js';

export type TranslateErrorCode =
  /** A resource we built is not a valid message of its type (encodeResourceJson refused it). */
  | 'TRANSLATE_ENCODE_FAILED'
  /** A snapshot we built references an RDS or EDS name it does not contain (checkConsistent). */
  | 'TRANSLATE_INCONSISTENT';

export class TranslateError extends OutriggerError {
  constructor(code: TranslateErrorCode, message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, opts);
    this.name = 'TranslateError';
  }
}
