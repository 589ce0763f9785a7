// RDS route tables by name: compiled once per RouteConfiguration version, read by HCMs at request start.
import type { RouteConfiguration } from '../model/types.js';
import { RouteTable } from './router.js';

/**
 * The slot an HCM with `rds` holds: RDS swaps `table` (a frozen, compiled object per version), a request
 * reads it once when it starts. A slot dropped from the store (no listener names it any more) still serves
 * the HCMs of draining listeners that hold it.
 */
export interface RouteSlot {
  readonly name: string;
  table: RouteTable | undefined;
  config: RouteConfiguration | undefined;
  version: string;
  lastUpdated: number;
}

/** The table a RouteConfiguration that does not exist gets: every request is a 404 NR, as in Envoy. */
const EMPTY: RouteConfiguration = Object.freeze({ name: '', virtualHosts: [] });

export class RouteStore {
  private readonly slots = new Map<string, RouteSlot>();

  constructor(private readonly now: () => number) {}

  /** The slot for `name`, created empty (no table yet: its listener warms) on first use. */
  slot(name: string): RouteSlot {
    let s = this.slots.get(name);
    if (!s) {
      s = { name, table: undefined, config: undefined, version: '', lastUpdated: 0 };
      this.slots.set(name, s);
    }
    return s;
  }

  /** True once `name` has a table (from RDS, or empty after it was found not to exist). */
  has(name: string): boolean {
    return this.slots.get(name)?.table !== undefined;
  }

  /** RDS: every RouteConfiguration held, by name; only `changed` ones are compiled again. */
  apply(configs: ReadonlyMap<string, RouteConfiguration>, changed: ReadonlySet<string>, version: string): void {
    const at = this.now();
    for (const name of changed) {
      const config = configs.get(name)!;
      Object.assign(this.slot(name), { config, table: new RouteTable(config), version, lastUpdated: at });
    }
  }

  /** The RouteConfiguration did not arrive within initial_fetch_timeout: its listener starts with no routes. */
  missing(name: string): void {
    const s = this.slot(name);
    if (!s.table) s.table = new RouteTable(EMPTY);
  }

  /** Forgets slots no current or warming listener names (draining HCMs keep the slot they hold). */
  retain(names: ReadonlySet<string>): void {
    for (const name of this.slots.keys()) if (!names.has(name)) this.slots.delete(name);
  }

  /** config_dump: the route configurations RDS delivered. */
  views(): RouteSlot[] {
    return [...this.slots.values()].filter((s) => s.config !== undefined);
  }
}
