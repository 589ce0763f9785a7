// Randomness source, injected so load balancing, jitter and sampling are reproducible in tests.
import { randomUUID } from 'node:crypto';

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
}

export const systemRng: Rng = {
  next: () => Math.random(),
  int: (n) => Math.floor(Math.random() * n),
};

/** mulberry32: tiny, fast, good enough for tests and sampling; not for secrets. */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n) => Math.floor(next() * n) };
}

/**
 * Request ids are not secrets, but must not collide across sidecars: 122 random bits, UUIDv4 shape.
 * randomUUID draws from a cached entropy pool; one randomBytes call per request cost ~3 % of a proxied request.
 */
export function uuid4(): string {
  return randomUUID();
}
