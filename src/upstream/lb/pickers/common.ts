// Helpers every picker shares: the host list without weights, and whether weights differ.
import type { LbHost, WeightedHost } from '../types.js';

export const hostsOf = (hosts: readonly WeightedHost[]): readonly LbHost[] => hosts.map((h) => h.host);

/** Envoy switches to the weighted (EDF) variant only when weights differ; equal weights keep the cheaper path. */
export function weightsEqual(hosts: readonly WeightedHost[]): boolean {
  const w = hosts[0]!.weight;
  return hosts.every((h) => h.weight === w);
}
