// Envoy's priority arithmetic: per-priority health, the priority load (spill-over with normalisation),
// panic per priority and total panic, and a locality's effective weight. Pure functions on counts.
//
// Sources: arch_overview/upstream/load_balancing/{priority,panic_threshold,locality_weight,overprovisioning}
// and Envoy's LoadBalancerBase (recalculatePerPriorityState, recalculatePerPriorityPanic,
// recalculateLoadInTotalPanic), whose integer arithmetic this reproduces exactly.

/** One priority level's host counts. */
export interface LevelCounts {
  readonly total: number;
  readonly available: number;
}

export interface PriorityLoad {
  /** Per priority: min(100, ⌊overprovisioning% × available / total⌋); 0 for an empty level. */
  readonly health: readonly number[];
  /** Per priority, integer percent; sums to 100 (P0 gets 100 when nothing is available and panic is off). */
  readonly load: readonly number[];
  readonly panic: readonly boolean[];
  /** min(100, Σ health). */
  readonly normalizedTotalHealth: number;
}

/**
 * health(P) = min(100, overprovisioning × 100 × available / total), integer as in Envoy ("the priority level
 * logic works with integer health scores"); overprovisioningPercent is policy.overprovisioning_factor (140).
 */
export function levelHealth(c: LevelCounts, overprovisioningPercent: number): number {
  if (c.total === 0) return 0;
  return Math.min(100, Math.floor((overprovisioningPercent * c.available) / c.total));
}

/**
 * The priority load. Each level takes min(remaining, ⌊health × 100 / normalized_total⌋) in order; the integer
 * remainder goes to the first level with any health. Panic applies only when the normalized total is below
 * 100, per level whose raw available percentage is below the threshold; when every level is in panic
 * (total panic) the load follows host counts instead. Panic threshold 0 with nothing available: P0 gets the
 * load on paper and the pick finds no host (503 UH).
 */
export function priorityLoad(levels: readonly LevelCounts[], overprovisioningPercent: number, panicThresholdPercent: number): PriorityLoad {
  const n = levels.length;
  const health = levels.map((c) => levelHealth(c, overprovisioningPercent));
  const normalized = Math.min(100, health.reduce((a, b) => a + b, 0));
  const load = new Array<number>(n).fill(0);
  const panic = new Array<boolean>(n).fill(false);
  if (n === 0) return { health, load, panic, normalizedTotalHealth: normalized };
  const threshold = Math.min(100, panicThresholdPercent);
  if (normalized > 0) {
    let remaining = 100;
    let firstHealthy = -1;
    for (let i = 0; i < n; i++) {
      if (firstHealthy < 0 && health[i]! > 0) firstHealthy = i;
      load[i] = Math.min(remaining, Math.floor((health[i]! * 100) / normalized));
      remaining -= load[i]!;
    }
    load[firstHealthy]! += remaining;
  } else if (threshold === 0) {
    load[0] = 100;
    return { health, load, panic, normalizedTotalHealth: normalized };
  }
  let totalPanic = true;
  for (let i = 0; i < n; i++) {
    const c = levels[i]!;
    const availablePercent = c.total === 0 ? 0 : (100 * c.available) / c.total;
    panic[i] = normalized < 100 && availablePercent < threshold;
    totalPanic &&= panic[i]!;
  }
  if (totalPanic) loadByHostCount(levels, load);
  return { health, load, panic, normalizedTotalHealth: normalized };
}

/** Total panic: every level routes to all its hosts, so the load follows host counts (remainder to the first non-empty level). */
function loadByHostCount(levels: readonly LevelCounts[], load: number[]): void {
  const total = levels.reduce((a, c) => a + c.total, 0);
  load.fill(0);
  if (total === 0) {
    load[0] = 100;
    return;
  }
  let remaining = 100;
  let firstNonEmpty = -1;
  levels.forEach((c, i) => {
    if (firstNonEmpty < 0 && c.total > 0) firstNonEmpty = i;
    load[i] = Math.floor((100 * c.total) / total);
    remaining -= load[i]!;
  });
  load[firstNonEmpty]! += remaining;
}

/**
 * effective_weight(L) = locality_weight × min(100, overprovisioning × 100 × available / total). The
 * availability is taken in whole percent, like the priority health: that reproduces every row of Envoy's
 * locality-weight table (Envoy's code keeps the fraction, which differs by under one percent of a weight).
 */
export function localityEffectiveWeight(weight: number, c: LevelCounts, overprovisioningPercent: number): number {
  return weight * levelHealth(c, overprovisioningPercent);
}
