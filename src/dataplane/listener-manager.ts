// Listeners from the bootstrap and from LDS, applied make-before-break: warm until their RDS routes exist,
// swap config on the same socket, bind a new address before draining the old one, drain when removed.
import type { Clock } from '../core/clock.js';
import { errorMessage, type FieldIssue } from '../core/errors.js';
import { chainField, listenerChains, type CommonTls, type FilterChain, type Listener, type SocketAddress } from '../model/types.js';
import { LogLimiter } from '../telemetry/log-limit.js';
import type { Logger } from '../telemetry/logger.js';
import type { MeshMetrics } from '../telemetry/metrics.js';
import type { MaterialSource } from '../upstream/tls.js';
import type { HcmRuntime } from './hcm.js';
import { ListenerRuntime, type ChainBinding, type ListenerDeps } from './listener.js';
import type { RouteStore } from './route-store.js';

export interface ListenerManagerDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: MeshMetrics;
  /** How long a replaced or removed listener's connections get to finish. */
  readonly drainMs: number;
  readonly routes: RouteStore;
  /** The HCM runtime of one filter chain of a listener version (its TLS material, if any, is its own identity). */
  readonly hcmFor: (l: Listener, chain: FilterChain, tls: MaterialSource | undefined) => HcmRuntime;
  /** The secret store: throws when the material cannot be loaded. */
  readonly materialFor: (common: CommonTls) => MaterialSource;
}

/** One LDS version of a listener, with the xDS version it arrived in. */
export interface ListenerVersion {
  readonly listener: Listener;
  readonly version: string;
  readonly lastUpdated: number;
}

/** Envoy's DynamicListener: active, warming, draining and error states of one listener name. */
export interface ListenerStateView {
  readonly name: string;
  readonly active?: ListenerVersion & { readonly address: SocketAddress | undefined };
  readonly warming?: ListenerVersion;
  readonly draining: readonly ListenerVersion[];
  readonly error?: ListenerVersion & { readonly details: string };
}

interface Slot {
  readonly name: string;
  active?: ListenerVersion & { readonly runtime: ListenerRuntime };
  /** Waiting for its RouteConfiguration (Envoy: listener warming), or for its new address to bind. */
  warming?: ListenerVersion & { readonly binding?: ListenerRuntime };
  readonly draining: Set<ListenerVersion & { readonly runtime: ListenerRuntime }>;
  error?: ListenerVersion & { readonly details: string };
}

/** The RDS route configurations a listener's chains name (each must exist before it serves). */
function rdsNames(l: Listener): string[] {
  return listenerChains(l).flatMap((c) => (c.hcm.route.kind === 'rds' ? [c.hcm.route.name] : []));
}

const UNSPECIFIED = new Set(['0.0.0.0', '::']);

/** Two listeners cannot bind one port on the same (or a wildcard) address; port 0 never clashes. */
function clash(a: SocketAddress, b: SocketAddress): boolean {
  return a.port !== 0 && a.port === b.port && (a.host === b.host || UNSPECIFIED.has(a.host) || UNSPECIFIED.has(b.host));
}

export class ListenerManager {
  private readonly slots = new Map<string, Slot>();
  private readonly statics: readonly ListenerRuntime[];
  private readonly listenerDeps: ListenerDeps;
  private closed = false;

  constructor(
    private readonly staticListeners: readonly Listener[],
    private readonly d: ListenerManagerDeps,
  ) {
    // One limiter for every listener of this sidecar (its keys name the listener): a replaced listener keeps the
    // count of what it dropped. 5 refusal lines per listener and kind per minute; the key table is bounded.
    this.listenerDeps = { metrics: d.metrics, logger: d.logger, clock: d.clock, drainMs: d.drainMs, refusals: new LogLimiter(d.clock, 5, 60_000, 1000) };
    this.statics = staticListeners.map((l) => this.runtime(l));
  }

  /** Each chain's TLS material (from the secret store), in listenerChains order; throws when one cannot be loaded. */
  private materialOf(l: Listener): (MaterialSource | undefined)[] {
    return listenerChains(l).map((c) => (c.tls ? this.d.materialFor(c.tls.common) : undefined));
  }

  /** What serves each chain of a listener version: its material and a fresh HCM runtime. */
  private bindings(l: Listener): ChainBinding[] {
    const material = this.materialOf(l);
    return listenerChains(l).map((chain, i) => ({ chain, tlsMaterial: material[i], hcm: this.d.hcmFor(l, chain, material[i]) }));
  }

  private runtime(l: Listener): ListenerRuntime {
    return new ListenerRuntime(l, this.bindings(l), this.listenerDeps);
  }

  /** Binds the bootstrap's listeners (all or nothing: startup fails on the first that cannot bind). */
  async startStatic(): Promise<void> {
    for (const l of this.statics) {
      const a = await l.start();
      this.d.logger.info({ listener: l.name, address: `${a.host}:${a.port}` }, 'listener bound');
    }
  }

  /** Every listener serving now: static ones and the active version of each dynamic one. */
  get active(): ListenerRuntime[] {
    return [...this.statics, ...[...this.slots.values()].flatMap((s) => (s.active ? [s.active.runtime] : []))];
  }

  /** No listener is warming or binding. */
  get settled(): boolean {
    return [...this.slots.values()].every((s) => !s.warming);
  }

  /**
   * LDS (state of the world): `listeners` is every dynamic listener, `changed` those new or different. All
   * checks run before anything changes, so a refused update (NACK) leaves every listener as it was.
   */
  apply(listeners: ReadonlyMap<string, Listener>, changed: ReadonlySet<string>, version: string): FieldIssue[] {
    const issues: FieldIssue[] = [];
    // Static listeners by the address they hold (port 0 in the bootstrap means whatever port they got).
    const taken: { name: string; address: SocketAddress }[] = this.statics.map((l) => ({ name: l.name, address: l.address() ?? l.listener.address }));
    for (const [name, l] of listeners) {
      if (this.staticListeners.some((s) => s.name === name)) issues.push({ path: name, message: 'a static listener of this name exists; LDS cannot replace it' });
      const other = taken.find((t) => clash(t.address, l.address));
      if (other) issues.push({ path: `${name}: address.socket_address`, message: `${l.address.host}:${l.address.port} is also the address of listener ${JSON.stringify(other.name)}` });
      taken.push({ name, address: l.address });
      if (!changed.has(name)) continue;
      listenerChains(l).forEach((c, i) => {
        if (!c.tls) return;
        try {
          this.d.materialFor(c.tls.common);
        } catch (e) {
          issues.push({ path: `${name}: ${chainField(l, i)}.transport_socket`, message: errorMessage(e) });
        }
      });
    }
    if (issues.length) return issues;
    const at = this.d.clock.now();
    for (const slot of [...this.slots.values()]) if (!listeners.has(slot.name)) this.remove(slot);
    for (const name of changed) this.update(this.slotFor(name), { listener: listeners.get(name)!, version, lastUpdated: at });
    this.retainRoutes();
    return [];
  }

  /** RDS delivered (or gave up on) route configurations: listeners that waited for them start. */
  routesChanged(): void {
    for (const slot of this.slots.values()) {
      const w = slot.warming;
      if (w && !w.binding && this.routesReady(w.listener)) this.activate(slot, w);
    }
  }

  private routesReady(l: Listener): boolean {
    return rdsNames(l).every((n) => this.d.routes.has(n));
  }

  /** The route slots a listener that serves, or will, still needs; draining HCMs hold their own. */
  private retainRoutes(): void {
    const names = new Set<string>();
    const add = (l: Listener | undefined) => {
      for (const n of l ? rdsNames(l) : []) names.add(n);
    };
    this.staticListeners.forEach(add);
    for (const s of this.slots.values()) {
      add(s.active?.listener);
      add(s.warming?.listener);
    }
    this.d.routes.retain(names);
  }

  private slotFor(name: string): Slot {
    let s = this.slots.get(name);
    if (!s) {
      s = { name, draining: new Set() };
      this.slots.set(name, s);
    }
    return s;
  }

  private update(slot: Slot, v: ListenerVersion): void {
    // A newer version supersedes one still warming or binding.
    slot.warming?.binding?.close();
    slot.warming = undefined;
    const missing = rdsNames(v.listener).filter((n) => !this.d.routes.has(n));
    if (missing.length) {
      // Envoy does not serve a listener before its RDS arrived: it warms, the previous version keeps serving.
      for (const n of missing) this.d.routes.slot(n);
      slot.warming = v;
      return;
    }
    this.activate(slot, v);
  }

  private activate(slot: Slot, v: ListenerVersion): void {
    const cur = slot.active;
    if (cur && cur.listener.address.host === v.listener.address.host && cur.listener.address.port === v.listener.address.port) {
      cur.runtime.update(v.listener, this.bindings(v.listener));
      slot.active = { ...v, runtime: cur.runtime };
      slot.warming = undefined;
      slot.error = undefined;
      return;
    }
    // A new address: bind it first, and only then drain the old one (make before break).
    const rt = this.runtime(v.listener);
    slot.warming = { ...v, binding: rt };
    rt.start().then(
      (a) => {
        if (slot.warming?.binding !== rt || this.closed) return rt.close();
        slot.warming = undefined;
        slot.error = undefined;
        const old = slot.active;
        slot.active = { ...v, runtime: rt };
        this.d.logger.info({ listener: slot.name, address: `${a.host}:${a.port}`, version: v.version }, 'listener bound');
        if (old) this.drainAway(slot, old);
      },
      (e: unknown) => {
        rt.close();
        if (slot.warming?.binding !== rt) return;
        slot.warming = undefined;
        const { host, port } = v.listener.address;
        slot.error = { ...v, details: `cannot bind ${host}:${port}: ${errorMessage(e)}` };
        this.d.logger.error({ listener: slot.name, address: `${host}:${port}`, version: v.version, err: errorMessage(e) }, 'listener could not bind; the previous version keeps serving');
        this.forgetIfEmpty(slot);
      },
    );
  }

  private remove(slot: Slot): void {
    slot.warming?.binding?.close();
    slot.warming = undefined;
    slot.error = undefined;
    const a = slot.active;
    slot.active = undefined;
    if (a) this.drainAway(slot, a);
    this.forgetIfEmpty(slot);
  }

  /** Stops accepting, lets requests in flight finish (up to the drain time), then closes. */
  private drainAway(slot: Slot, v: ListenerVersion & { readonly runtime: ListenerRuntime }): void {
    slot.draining.add(v);
    v.runtime.drain();
    this.d.logger.info({ listener: slot.name, version: v.version }, 'listener draining');
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    const timedOut = new Promise<void>((r) => {
      timer = this.d.clock.setTimeout(r, this.d.drainMs);
    });
    void Promise.race([v.runtime.whenIdle(), timedOut]).then(() => {
      if (timer) this.d.clock.clearTimeout(timer);
      v.runtime.close();
      slot.draining.delete(v);
      this.forgetIfEmpty(slot);
    });
  }

  private forgetIfEmpty(slot: Slot): void {
    if (!slot.active && !slot.warming && !slot.error && slot.draining.size === 0 && this.slots.get(slot.name) === slot) this.slots.delete(slot.name);
  }

  /** config_dump's dynamic_listeners. */
  views(): { static: ListenerRuntime[]; dynamic: ListenerStateView[] } {
    const strip = (v: ListenerVersion): ListenerVersion => ({ listener: v.listener, version: v.version, lastUpdated: v.lastUpdated });
    return {
      static: [...this.statics],
      dynamic: [...this.slots.values()].map((s) => ({
        name: s.name,
        ...(s.active && { active: { ...strip(s.active), address: s.active.runtime.address() } }),
        ...(s.warming && { warming: strip(s.warming) }),
        draining: [...s.draining].map(strip),
        ...(s.error && { error: { ...strip(s.error), details: s.error.details } }),
      })),
    };
  }

  /** Every runtime with a socket or requests: serving, binding, and draining ones (for shutdown). */
  all(): ListenerRuntime[] {
    const out = [...this.active];
    for (const s of this.slots.values()) {
      if (s.warming?.binding) out.push(s.warming.binding);
      for (const d of s.draining) out.push(d.runtime);
    }
    return out;
  }

  close(): void {
    this.closed = true;
    for (const l of this.all()) l.close();
  }
}
