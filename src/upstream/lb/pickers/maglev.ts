// MAGLEV (Envoy's MaglevLoadBalancer, Google's Maglev paper §3.4 with Envoy's weights): a lookup table of
// table_size (prime) slots filled from each host's permutation; a request takes slot hash mod table_size.
import { OutriggerError } from '../../../core/errors.js';
import { hash53 } from '../hash.js';
import type { PickerFactory } from '../types.js';

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/**
 * Host i's permutation is (offset_i + skip_i × j) mod M with offset = hash(host) mod M and
 * skip = hash'(host) mod (M − 1) + 1; a prime M makes every permutation visit every slot. Hosts take turns
 * claiming their next free slot; with weights, a host takes its turn in round r only when r × w ≥ its
 * running target (which grows by max_w per claim), so slots follow the weights. Hosts are ordered by
 * address, so every sidecar builds the same table from the same endpoints.
 */
export const maglev: PickerFactory = (weighted, cfg) => {
  const size = cfg.maglev.tableSize;
  if (!isPrime(size)) throw new OutriggerError('LB_MAGLEV_TABLE_SIZE', `maglev table_size ${size} is not prime`, { details: { tableSize: size } });
  const sorted = [...weighted].sort((a, b) => (a.host.hostPort < b.host.hostPort ? -1 : a.host.hostPort > b.host.hostPort ? 1 : 0));
  const total = sorted.reduce((a, h) => a + h.weight, 0);
  const build = sorted.map((h) => ({
    weight: h.weight / total,
    offset: hash53(h.host.hostPort, 0) % size,
    skip: (hash53(h.host.hostPort, 1) % (size - 1)) + 1,
    next: 0,
    target: 0,
  }));
  const maxWeight = build.reduce((m, b) => Math.max(m, b.weight), 0);
  const table = new Int32Array(size).fill(-1);
  let filled = 0;
  for (let round = 0; filled < size; round++) {
    for (let i = 0; i < build.length && filled < size; i++) {
      const b = build[i]!;
      if (round * b.weight < b.target) continue;
      b.target += maxWeight;
      let slot = (b.offset + b.skip * b.next) % size;
      while (table[slot]! >= 0) slot = (b.offset + b.skip * ++b.next) % size;
      table[slot] = i;
      b.next++;
      filled++;
    }
  }
  const hosts = sorted.map((h) => h.host);
  return { pick: (hash) => hosts[table[hash % size]!]! };
};
