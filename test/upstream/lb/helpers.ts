// Test hosts and statistics shared by the balancer tests.
import type { Test } from 'tap';
import { FakeClock } from '../../../src/core/clock.js';
import { seededRng } from '../../../src/core/rng.js';
import type { LbConfig, LbPolicy, Locality } from '../../../src/model/types.js';
import { LB_DEFAULTS } from '../../../src/model/types.js';
import { PeakEwma } from '../../../src/upstream/lb/peak-ewma.js';
import type { LbDeps, LbHost } from '../../../src/upstream/lb/types.js';

export class TestHost implements LbHost {
  rqActive = 0;
  healthy = true;
  ejected = false;
  readonly ewma: PeakEwma;
  constructor(
    readonly hostPort: string,
    readonly priority = 0,
    readonly locality: Locality = { region: 'r', zone: 'z', subZone: '' },
    readonly weight = 1,
    readonly localityWeight = 1,
  ) {
    this.ewma = new PeakEwma(10_000);
  }
}

/** n hosts named 10.<priority>.<zone index>.<i>:80 in one priority and zone. */
export function hostsIn(n: number, priority = 0, zone = 'z', localityWeight = 1, weight = 1): TestHost[] {
  return Array.from({ length: n }, (_, i) => new TestHost(`10.${priority}.${zone}.${i}:80`, priority, { region: 'r', zone, subZone: '' }, weight, localityWeight));
}

/** Marks the first `unhealthy` hosts of the list unhealthy. */
export function sicken(hosts: TestHost[], unhealthy: number): TestHost[] {
  hosts.forEach((h, i) => (h.healthy = i >= unhealthy));
  return hosts;
}

export function lbConfig(policy: LbPolicy, over: Partial<LbConfig> = {}): LbConfig {
  return { ...LB_DEFAULTS, policy, ...over };
}

export function deps(seed = 7): LbDeps & { clock: FakeClock } {
  return { rng: seededRng(seed), clock: new FakeClock() };
}

export function countBy<T, K>(n: number, draw: () => T, key: (t: T) => K): Map<K, number> {
  const c = new Map<K, number>();
  for (let i = 0; i < n; i++) {
    const k = key(draw());
    c.set(k, (c.get(k) ?? 0) + 1);
  }
  return c;
}

/**
 * Asserts a count of n Bernoulli(p) draws lies within 5 standard deviations of n·p (σ = √(n p (1−p))): with
 * a seeded rng the outcome is fixed, and 5σ keeps any seed from failing by chance (p ≈ 6e-7).
 */
export function binomial(t: Test, count: number, n: number, p: number, what: string): void {
  const sigma = Math.sqrt(n * p * (1 - p));
  const tol = 5 * sigma + 1;
  t.ok(Math.abs(count - n * p) <= tol, `${what}: ${count} of ${n}, expected ${(n * p).toFixed(1)} ± ${tol.toFixed(1)}`);
}
