// Shared setup for the outlier detector tests: a detector on a fake clock, seeded rng and a fresh registry.
import { Registry } from 'prom-client';
import { FakeClock } from '../../src/core/clock.js';
import { seededRng } from '../../src/core/rng.js';
import { OUTLIER_DEFAULTS, type OutlierDetection } from '../../src/model/types.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { OutlierDetector, type OutlierHost } from '../../src/upstream/outlier.js';

export interface Fixture {
  readonly clock: FakeClock;
  readonly d: OutlierDetector;
  readonly hosts: OutlierHost[];
  readonly registry: Registry;
  /** onChange calls so far. */
  changes(): number;
  /** A metric's value for the labels given (0 when the child does not exist). */
  value(name: string, labels?: Record<string, string>): Promise<number>;
  /** Hosts ejected now, by index. */
  ejected(): number[];
}

export function setup(over: Partial<OutlierDetection> = {}, n = 10, seed = 1): Fixture {
  const clock = new FakeClock();
  const registry = new Registry();
  let changes = 0;
  const d = new OutlierDetector('outbound|80||svc', { ...OUTLIER_DEFAULTS, ...over }, { clock, rng: seededRng(seed), metrics: createMetrics(registry), onChange: () => changes++ });
  const hosts: OutlierHost[] = Array.from({ length: n }, (_, i) => ({ hostPort: `10.0.0.${i}:80`, ejected: false }));
  d.setHosts(hosts);
  return {
    clock,
    d,
    hosts,
    registry,
    changes: () => changes,
    value: async (name, labels = {}) => {
      const m = registry.getSingleMetric(name);
      if (m === undefined) throw new Error(`no metric ${name}`);
      const all = (await m.get()).values;
      const hit = all.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
      return hit?.value ?? 0;
    },
    ejected: () => hosts.flatMap((h, i) => (h.ejected ? [i] : [])),
  };
}

/** Reports `count` responses with `status` for host. */
export function respond(d: OutlierDetector, host: OutlierHost, status: number, count = 1): void {
  for (let i = 0; i < count; i++) d.putHttpStatus(host, status);
}

/** Reports `ok` 200s and `total - ok` 500s for host, in one interval. */
export function traffic(d: OutlierDetector, host: OutlierHost, ok: number, total: number): void {
  respond(d, host, 200, ok);
  respond(d, host, 500, total - ok);
}
