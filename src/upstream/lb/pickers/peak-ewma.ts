// PEAK_EWMA (Outrigger's extension, as Linkerd's and Finagle's balancers): power of two choices by
// cost = latency estimate × (in-flight + 1), divided by the endpoint weight.
import type { PickerFactory } from '../types.js';
import { hostsOf } from './common.js';

/**
 * Two distinct hosts drawn uniformly; the cheaper wins (the first on a tie). Dividing by the weight lets a
 * host of weight 2 carry twice the cost before it loses, the only way weights can apply to a cost-driven pick.
 */
export const peakEwma: PickerFactory = (weighted, _cfg, { rng, clock }) => {
  const hosts = hostsOf(weighted);
  const n = hosts.length;
  if (n === 1) return { pick: () => hosts[0]! };
  return {
    pick: () => {
      const i = rng.int(n);
      let j = rng.int(n - 1);
      if (j >= i) j++;
      const a = hosts[i]!;
      const b = hosts[j]!;
      const now = clock.monotonic();
      return b.ewma.cost(b.rqActive, now) / b.weight < a.ewma.cost(a.rqActive, now) / a.weight ? b : a;
    },
  };
};
