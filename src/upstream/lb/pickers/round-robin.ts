// ROUND_ROBIN: plain rotation when weights are equal, EDF by weight when they differ (Envoy's RoundRobinLoadBalancer).
import { EdfScheduler } from '../edf.js';
import type { PickerFactory } from '../types.js';
import { hostsOf, weightsEqual } from './common.js';

/**
 * Starts at a random position (rotation offset, or that many EDF picks already made), as Envoy seeds its
 * schedules: a fleet of sidecars built from the same config must not all hit the first host together.
 */
export const roundRobin: PickerFactory = (weighted, _cfg, { rng }) => {
  const hosts = hostsOf(weighted);
  const n = hosts.length;
  if (weightsEqual(weighted)) {
    let next = rng.int(n);
    return {
      pick: () => {
        const h = hosts[next]!;
        next = next + 1 === n ? 0 : next + 1;
        return h;
      },
    };
  }
  const edf = new EdfScheduler(n, (i) => weighted[i]!.weight);
  for (let k = rng.int(n); k > 0; k--) edf.pick();
  return { pick: () => hosts[edf.pick()]! };
};
