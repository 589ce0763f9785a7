// Per-key log rate limiting, so one proxy NACKing in a loop cannot flood the control server's log, and a
// plaintext scanner hitting a STRICT listener cannot flood a sidecar's.
import type { Clock } from '../core/clock.js';

interface Window {
  start: number;
  used: number;
  suppressed: number;
}

/**
 * At most `burst` lines per key per window. The first line allowed after a dropped run reports how many
 * were dropped, so the log still says a storm happened. Keys are bounded (the map is reset past maxKeys).
 */
export class LogLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly clock: Clock,
    private readonly burst = 5,
    private readonly windowMs = 60_000,
    private readonly maxKeys = 10_000,
  ) {}

  /** undefined: drop this line; otherwise log it with `suppressed` (lines dropped since the last one logged). */
  allow(key: string): { suppressed: number } | undefined {
    const now = this.clock.monotonic();
    let w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) {
      if (!w && this.windows.size >= this.maxKeys) this.windows.clear();
      w = { start: now, used: 0, suppressed: w?.suppressed ?? 0 };
      this.windows.set(key, w);
    }
    if (w.used >= this.burst) {
      w.suppressed++;
      return undefined;
    }
    w.used++;
    const suppressed = w.suppressed;
    w.suppressed = 0;
    return { suppressed };
  }
}
