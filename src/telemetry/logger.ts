// Logger factory: pino JSON to stderr for operational logs; the access log has its own destination.
import { pino, type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level?: string;
  /** A file descriptor or path; default stderr so stdout stays free for access logs. */
  destination?: number | string;
  name?: string;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const dest = pino.destination({ dest: opts.destination ?? 2, sync: true });
  return pino({ level: opts.level ?? 'info', name: opts.name ?? 'outrigger', base: undefined }, dest);
}

/** A logger that drops everything (tests, and access logging turned off). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
