// Small helpers shared by the CLI commands: usage errors (exit 2) and duration flags.
import { OutriggerError } from '../core/errors.js';
import { parseDurationMs } from '../core/duration.js';

export class UsageError extends OutriggerError {
  constructor(message: string) {
    super('USAGE', message);
    this.name = 'UsageError';
  }
}

export function durationFlag(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const ms = parseDurationMs(/^\d+(\.\d+)?$/.test(v) ? `${v}s` : v);
  if (ms === undefined) throw new UsageError(`--${name}: invalid duration ${JSON.stringify(v)} (e.g. 5s, 500ms)`);
  return ms;
}

export function numberFlag(name: string, v: string | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${name}: must be a number in [${min}, ${max}], got ${JSON.stringify(v)}`);
  return n;
}
