// Small helpers shared by the CLI commands: usage errors (exit 2), duration, number and identity flags.
import { OutriggerError, errorMessage } from '../core/errors.js';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseDurationMs } from '../core/duration.js';
import { workloadId } from '../identity/spiffe.js';

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

/** `ns/sa` → its SPIFFE ID; a bad segment is a usage error that names the SPIFFE rule broken. */
export function identityFlag(flag: string, v: string, trustDomain: string): string {
  const [ns, sa, ...rest] = v.split('/');
  if (!ns || !sa || rest.length) throw new UsageError(`${flag}: expected NS/SA (namespace/serviceaccount), not ${JSON.stringify(v)}`);
  try {
    return workloadId(trustDomain, ns, sa).uri;
  } catch (e) {
    throw new UsageError(`${flag} ${v}: ${errorMessage(e)}`);
  }
}

export function trustDomainFlag(v: string | undefined): string {
  const td = v ?? 'cluster.local';
  try {
    workloadId(td, 'ns', 'sa');
  } catch (e) {
    throw new UsageError(`--trust-domain: ${errorMessage(e)}`);
  }
  return td;
}

type FlagOptions = NonNullable<ParseArgsConfig['options']>;
const HELP_FLAG = { help: { type: 'boolean', short: 'h' } } as const;

/**
 * Every command's flag handling: strict parsing (an unknown flag or a stray argument is a usage error, exit 2)
 * plus -h/--help, which prints `help` and yields undefined (the command then exits 0).
 */
export function commandFlags<const O extends FlagOptions>(argv: string[], options: O, help: string) {
  const parsed = commandArgs(argv, options, help);
  if (parsed && parsed.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  return parsed?.values;
}

/** commandFlags for commands that also take operands (`outrigger validate DIR`): flags and operands in any order. */
export function commandArgs<const O extends FlagOptions>(argv: string[], options: O, help: string) {
  const { values, positionals } = parseArgs<{ args: string[]; options: O & typeof HELP_FLAG; strict: true; allowPositionals: true }>({
    args: argv,
    options: { ...options, ...HELP_FLAG },
    strict: true,
    allowPositionals: true,
  });
  if ((values as { help?: boolean }).help) {
    process.stdout.write(help);
    return undefined;
  }
  return { values, positionals };
}
