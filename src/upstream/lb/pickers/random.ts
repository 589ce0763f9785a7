// RANDOM: a uniform draw from the injected rng; like Envoy's RandomLoadBalancer it ignores endpoint weights.
import type { PickerFactory } from '../types.js';
import { hostsOf } from './common.js';

export const random: PickerFactory = (weighted, _cfg, { rng }) => {
  const hosts = hostsOf(weighted);
  const n = hosts.length;
  return { pick: () => hosts[rng.int(n)]! };
};
