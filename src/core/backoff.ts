// Exponential backoff with full jitter (as Envoy and gRPC use for reconnects and retries).
import type { Rng } from './rng.js';

export interface Backoff {
  next(): number;
  reset(): void;
}

export function exponentialBackoff(rng: Rng, baseMs: number, maxMs: number): Backoff {
  let attempt = 0;
  return {
    next() {
      const cap = Math.min(maxMs, baseMs * 2 ** attempt);
      attempt = Math.min(attempt + 1, 30);
      return rng.next() * cap;
    },
    reset() {
      attempt = 0;
    },
  };
}
