// RING_HASH (Envoy's RingHashLoadBalancer): a sorted ring of hashed host entries, entries per host in
// proportion to its weight; a request goes to the first entry at or after its hash, wrapping around.
import { hash53 } from '../hash.js';
import type { PickerFactory } from '../types.js';
import { hostsOf } from './common.js';

/**
 * Ring size as Envoy sizes it: scale = min(⌈min_w × minimum_ring_size⌉ / min_w, maximum_ring_size) for
 * normalized weights w, and host h gets entries until the running total reaches Σ scale × w. Entry k of
 * a host sits at hash("<host:port>_<k>"), so an entry's position depends on nothing but its host: removing
 * a host removes only its entries, and a request moves only if its ring neighbour was one of them (or a
 * surviving host gained an entry in front of it because the ring was re-scaled).
 */
export const ringHash: PickerFactory = (weighted, cfg) => {
  const hosts = hostsOf(weighted);
  const total = weighted.reduce((a, h) => a + h.weight, 0);
  const minNorm = weighted.reduce((m, h) => Math.min(m, h.weight / total), 1);
  const { minimumRingSize, maximumRingSize } = cfg.ringHash;
  const scale = Math.min(Math.ceil(minNorm * minimumRingSize) / minNorm, maximumRingSize);
  const entries: { pos: number; host: number }[] = [];
  let target = 0;
  weighted.forEach((h, i) => {
    target += (scale * h.weight) / total;
    for (let k = 0; entries.length < target; k++) entries.push({ pos: hash53(`${h.host.hostPort}_${k}`), host: i });
  });
  entries.sort((a, b) => a.pos - b.pos || a.host - b.host);
  const pos = Float64Array.from(entries, (e) => e.pos);
  const owner = Int32Array.from(entries, (e) => e.host);
  const n = pos.length;
  return {
    pick: (hash) => {
      // Lower bound: the first entry with pos >= hash; past the last entry wraps to the first.
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (pos[mid]! < hash) lo = mid + 1;
        else hi = mid;
      }
      return hosts[owner[lo === n ? 0 : lo]!]!;
    },
  };
};
