// The error base class: every error the project raises carries a stable machine-readable code.
export class OutriggerError extends Error {
  readonly code: string;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'OutriggerError';
    this.code = code;
    this.details = Object.freeze({ ...(opts.details ?? {}) });
  }
}

/** One problem with a config document, located by field path (and by file/line where known). */
export interface FieldIssue {
  path: string;
  message: string;
  file?: string;
  line?: number;
}

export function formatIssue(i: FieldIssue): string {
  const where = i.file ? `${i.file}${i.line ? `:${i.line}` : ''} ` : '';
  return `${where}${i.path}: ${i.message}`;
}

/** A config that failed validation; carries every issue found, not only the first. */
export class ConfigError extends OutriggerError {
  readonly issues: readonly FieldIssue[];

  constructor(issues: FieldIssue[], code = 'CONFIG_INVALID') {
    super(code, issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = Object.freeze(issues.slice());
  }
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
