// The balancer tree for one cluster version: priority (Envoy's priority load and panic) → locality (EDF on
// effective weights, when locality-weighted) → endpoint picker. Everything a pick consults is rebuilt in
// refresh(); a pick itself only indexes arrays and asks the picker.
import type { LbConfig, LbPolicy, Locality } from '../../model/types.js';
import { EdfScheduler } from './edf.js';
import { randomHash } from './hash.js';
import { leastRequest } from './pickers/least-request.js';
import { maglev } from './pickers/maglev.js';
import { peakEwma } from './pickers/peak-ewma.js';
import { random } from './pickers/random.js';
import { ringHash } from './pickers/ring-hash.js';
import { roundRobin } from './pickers/round-robin.js';
import { localityEffectiveWeight, priorityLoad } from './priority.js';
import { isAvailable, type Balancer, type BalancerView, type LbDeps, type LbHost, type Picker, type PickerFactory, type WeightedHost } from './types.js';

/** One line per policy: adding a picker is adding a file and a line here. */
const PICKERS: Readonly<Record<LbPolicy, PickerFactory>> = {
  ROUND_ROBIN: roundRobin,
  RANDOM: random,
  LEAST_REQUEST: leastRequest,
  RING_HASH: ringHash,
  MAGLEV: maglev,
  PEAK_EWMA: peakEwma,
};

/** Consistent-hash policies: the request hash picks the priority and the host, and localities are folded into host weights. */
const HASHED: ReadonlySet<LbPolicy> = new Set(['RING_HASH', 'MAGLEV']);

interface LocalityState {
  readonly locality: Locality;
  readonly weight: number;
  readonly hosts: readonly LbHost[];
  available: LbHost[];
  effectiveWeight: number;
  picker: Picker | undefined;
}

interface PriorityState {
  readonly priority: number;
  readonly hosts: readonly LbHost[];
  readonly localities: readonly LocalityState[];
  available: LbHost[];
  health: number;
  load: number;
  panic: boolean;
  /** Over `localities`, by effective weight; undefined when not locality-weighted or no locality has weight. */
  localityEdf: EdfScheduler | undefined;
  /** Picker over the available hosts (weights scaled by locality for the hashed policies). */
  picker: Picker | undefined;
  /** Picker over every host of the level, for panic mode. */
  panicPicker: Picker | undefined;
}

const localityKey = (l: Locality) => `${l.region}\u0000${l.zone}\u0000${l.subZone}`;
const plain = (hosts: readonly LbHost[]): WeightedHost[] => hosts.map((host) => ({ host, weight: host.weight }));

/**
 * Builds the balancer for one cluster version. `overprovisioningFactorPercent` is the
 * ClusterLoadAssignment's policy.overprovisioning_factor (140 = 1.4). Hosts may be shared with the previous
 * version; only their order within a priority and locality matters here.
 */
export function createBalancer(cfg: LbConfig, overprovisioningFactorPercent: number, hosts: readonly LbHost[], deps: LbDeps): Balancer {
  const factory = PICKERS[cfg.policy];
  const hashed = HASHED.has(cfg.policy);
  const levels = groupByPriority(hosts);
  const cumulative = new Int32Array(levels.length);
  /** The only priority with load, or -1 when the load is split (then a draw chooses). */
  let single = -1;
  let normalizedTotalHealth = 0;
  const stats = { healthyPanic: 0 };

  const buildPicker = (weighted: readonly WeightedHost[]): Picker => factory(weighted, cfg, deps);

  /** The hashed policies fold locality shares into host weights: host w / Σw in its locality × locality share. */
  function hashedPool(ps: PriorityState): WeightedHost[] {
    if (!cfg.localityWeighted || !ps.localityEdf) return plain(ps.available);
    const out: WeightedHost[] = [];
    for (const l of ps.localities) {
      if (l.effectiveWeight === 0) continue;
      const sum = l.available.reduce((a, h) => a + h.weight, 0);
      for (const host of l.available) out.push({ host, weight: (host.weight / sum) * l.effectiveWeight });
    }
    return out;
  }

  function refresh(): void {
    for (const ps of levels) {
      ps.available = ps.hosts.filter(isAvailable);
      for (const l of ps.localities) {
        l.available = l.hosts.filter(isAvailable);
        l.effectiveWeight = localityEffectiveWeight(l.weight, { total: l.hosts.length, available: l.available.length }, overprovisioningFactorPercent);
        l.picker = undefined;
      }
      const locs = ps.localities;
      ps.localityEdf = undefined;
      if (cfg.localityWeighted && locs.some((l) => l.effectiveWeight > 0)) {
        ps.localityEdf = new EdfScheduler(locs.length, (i) => locs[i]!.effectiveWeight);
      }
      ps.picker = undefined;
      ps.panicPicker = undefined;
    }
    const pl = priorityLoad(
      levels.map((ps) => ({ total: ps.hosts.length, available: ps.available.length })),
      overprovisioningFactorPercent,
      cfg.healthyPanicThresholdPercent,
    );
    normalizedTotalHealth = pl.normalizedTotalHealth;
    let sum = 0;
    single = -1;
    levels.forEach((ps, i) => {
      ps.health = pl.health[i]!;
      ps.load = pl.load[i]!;
      ps.panic = pl.panic[i]!;
      sum += ps.load;
      cumulative[i] = sum;
      if (ps.load === 100) single = i;
    });
  }

  function pickIn(ps: PriorityState, hash: number): LbHost | undefined {
    if (ps.panic) {
      // Panic: every host of the level, health and ejection disregarded, localities not weighted (Envoy's AllHosts source).
      stats.healthyPanic++;
      return (ps.panicPicker ??= buildPicker(plain(ps.hosts))).pick(hash);
    }
    if (ps.available.length === 0) return undefined;
    if (hashed) return (ps.picker ??= buildPicker(hashedPool(ps))).pick(hash);
    if (ps.localityEdf) {
      const l = ps.localities[ps.localityEdf.pick()]!;
      return (l.picker ??= buildPicker(plain(l.available))).pick(hash);
    }
    return (ps.picker ??= buildPicker(plain(ps.available))).pick(hash);
  }

  /**
   * Envoy's previous_priorities retry priority: the levels in `excluded` (a bit per priority) count as having
   * no healthy host and the load is recomputed over the rest. -1 when every level with health is excluded:
   * then, as in Envoy, the original load applies again.
   */
  function chooseExcluding(excluded: number, r: number): number {
    const counts = levels.map((ps, i) => ({ total: ps.hosts.length, available: excluded & (1 << i) ? 0 : ps.available.length }));
    const pl = priorityLoad(counts, overprovisioningFactorPercent, 0);
    if (pl.normalizedTotalHealth === 0) return -1;
    let p = 0;
    for (let sum = pl.load[0]!; p < levels.length - 1 && r >= sum; sum += pl.load[++p]!);
    return p;
  }

  function pick(hash?: number, excludedPriorities = 0): LbHost | undefined {
    const n = levels.length;
    if (n === 0) return undefined;
    const h = hashed ? (hash ?? randomHash(deps.rng.next)) : 0;
    let p = excludedPriorities === 0 ? single : chooseExcluding(excludedPriorities, hashed ? h % 100 : deps.rng.int(100));
    if (p < 0) p = single;
    if (p < 0) {
      // Envoy's choosePriority: the request hash (consistent policies) or a random draw, mod 100, against the cumulative load.
      const r = hashed ? h % 100 : deps.rng.int(100);
      p = 0;
      while (p < n - 1 && r >= cumulative[p]!) p++;
    }
    return pickIn(levels[p]!, h);
  }

  function view(): BalancerView {
    const now = deps.clock.monotonic();
    return {
      policy: cfg.policy,
      overprovisioningFactor: overprovisioningFactorPercent,
      panicThreshold: cfg.healthyPanicThresholdPercent,
      normalizedTotalHealth,
      priorities: levels.map((ps) => ({
        priority: ps.priority,
        hosts: ps.hosts.length,
        available: ps.available.length,
        health: ps.health,
        load: ps.load,
        panic: ps.panic,
        localities: ps.localities.map((l) => ({ locality: l.locality, weight: l.weight, effectiveWeight: l.effectiveWeight, hosts: l.hosts.length, available: l.available.length })),
      })),
      hosts: levels.flatMap((ps) =>
        ps.hosts.map((h) => ({
          hostPort: h.hostPort,
          priority: h.priority,
          locality: h.locality,
          weight: h.weight,
          available: isAvailable(h),
          rqActive: h.rqActive,
          ewmaMs: h.ewma.observed ? h.ewma.estimate(now) : null,
        })),
      ),
    };
  }

  refresh();
  return { pick, refresh, view, stats };
}

/** Levels 0..max priority (a gap is an empty level, as in Envoy's PrioritySet), each with its localities in first-seen order. */
function groupByPriority(hosts: readonly LbHost[]): PriorityState[] {
  const max = hosts.reduce((m, h) => Math.max(m, h.priority), -1);
  const levels: PriorityState[] = [];
  for (let p = 0; p <= max; p++) {
    const inLevel = hosts.filter((h) => h.priority === p);
    const byLocality = new Map<string, LbHost[]>();
    for (const h of inLevel) {
      const k = localityKey(h.locality);
      const list = byLocality.get(k);
      if (list) list.push(h);
      else byLocality.set(k, [h]);
    }
    levels.push({
      priority: p,
      hosts: inLevel,
      localities: [...byLocality.values()].map((list) => ({
        locality: list[0]!.locality,
        weight: list[0]!.localityWeight,
        hosts: list,
        available: [],
        effectiveWeight: 0,
        picker: undefined,
      })),
      available: [],
      health: 0,
      load: 0,
      panic: false,
      localityEdf: undefined,
      picker: undefined,
      panicPicker: undefined,
    });
  }
  return levels;
}
