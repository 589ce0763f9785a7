// Time source for everything outside core/ and cli/: wall clock, monotonic clock and timers,
// injected so balancers, outlier detection and rotation can be tested on a fake clock.
export interface Timer {
  unref(): void;
}

export interface Clock {
  /** Wall-clock milliseconds since the epoch (for certificates, logs). */
  now(): number;
  /** Monotonic milliseconds with sub-millisecond precision (for durations). */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(t: Timer): void;
  setInterval(fn: () => void, ms: number): Timer;
  clearInterval(t: Timer): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (t) => clearInterval(t as NodeJS.Timeout),
};

interface FakeTimer extends Timer {
  id: number;
  at: number;
  every: number;
  fn: () => void;
  cancelled: boolean;
}

/** A clock that only moves when told to; timers fire in deadline order during advance(). */
export class FakeClock implements Clock {
  private t: number;
  private mono = 0;
  private seq = 0;
  private timers: FakeTimer[] = [];

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  monotonic(): number {
    return this.mono;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.add(fn, ms, 0);
  }

  setInterval(fn: () => void, ms: number): Timer {
    return this.add(fn, ms, Math.max(1, ms));
  }

  clearTimeout(t: Timer): void {
    (t as FakeTimer).cancelled = true;
  }

  clearInterval(t: Timer): void {
    (t as FakeTimer).cancelled = true;
  }

  /** Moves time forward by ms, firing every due timer in order. */
  advance(ms: number): void {
    const end = this.mono + ms;
    for (;;) {
      this.timers = this.timers.filter((x) => !x.cancelled);
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.t += next.at - this.mono;
      this.mono = next.at;
      if (next.every > 0) next.at += next.every;
      else next.cancelled = true;
      next.fn();
    }
    this.t += end - this.mono;
    this.mono = end;
  }

  pending(): number {
    return this.timers.filter((x) => !x.cancelled).length;
  }

  private add(fn: () => void, ms: number, every: number): FakeTimer {
    const timer: FakeTimer = {
      id: ++this.seq,
      at: this.mono + Math.max(0, ms),
      every,
      fn,
      cancelled: false,
      unref() {},
    };
    this.timers.push(timer);
    return timer;
  }
}
