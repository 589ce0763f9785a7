// The ADS client's protocol state (SotW): subscriptions, ACK/NACK, per-resource status and last-known-good
// resources per type, independent of the transport. Follows Envoy's xDS protocol doc ("ACK/NACK and resource
// type instance version", "Knowing When a Requested Resource Does Not Exist", "Resource warming").
import { EventEmitter } from 'node:events';
import type { Clock, Timer } from '../core/clock.js';
import type { FieldIssue } from '../core/errors.js';
import { listenerChains, type Cluster, type Listener } from '../model/types.js';
import type { Logger } from '../telemetry/logger.js';
import type { XdsClientMetrics } from '../telemetry/metrics.js';
import type { DiscoveryRequestMsg, DiscoveryResponseMsg, NodeMsg } from './ads-proto.js';
import { decodeCanonical } from './canonical.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL, typeForUrl } from './protos.js';
import { decodeResource, type ResourceModels, type ResourceTypeUrl } from './resources/index.js';

/** The protocol doc's make-before-break order: CDS, then EDS, then LDS, then RDS. */
export const ADS_TYPES = [CLUSTER_TYPE_URL, CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL] as const;

/** The short names Envoy's stats use (cluster_manager.cds, …), for metric labels and logs. */
export const SHORT_NAMES: Readonly<Record<ResourceTypeUrl, 'cds' | 'eds' | 'lds' | 'rds'>> = {
  [CLUSTER_TYPE_URL]: 'cds',
  [CLUSTER_LOAD_ASSIGNMENT_TYPE_URL]: 'eds',
  [LISTENER_TYPE_URL]: 'lds',
  [ROUTE_CONFIGURATION_TYPE_URL]: 'rds',
};

/** Envoy's ClientResourceStatus, the states a subscribed resource goes through. */
export type ResourceStatus = 'requested' | 'acked' | 'nacked' | 'does-not-exist';

/** An accepted response, as the data plane gets it: the complete set of that type now held. */
export interface ResourceUpdate<U extends ResourceTypeUrl = ResourceTypeUrl> {
  readonly typeUrl: U;
  readonly version: string;
  /** LDS/CDS: every resource of the response (SotW); EDS/RDS: every subscribed resource received so far. */
  readonly resources: ReadonlyMap<string, ResourceModels[U]>;
  /** Names that are new or whose bytes changed with this response. */
  readonly changed: ReadonlySet<string>;
}

/** The data plane, as the ADS client sees it. */
export interface AdsWatcher {
  /** Validates and applies an update atomically; returns the issues that refuse it (a NACK), or none. */
  apply(update: ResourceUpdate): readonly FieldIssue[];
  /** An EDS/RDS resource was not received within its initial_fetch_timeout: it does not exist (for now). */
  missing(typeUrl: ResourceTypeUrl, name: string): void;
}

/** A rejected update, as Envoy's UpdateFailureState shows it. */
export interface Rejection {
  readonly version: string;
  readonly details: string;
  readonly at: number;
}

export interface ResourceStatusView {
  readonly name: string;
  readonly status: ResourceStatus;
  /** The version of the response that last changed it (absent until one arrived). */
  readonly version?: string;
  readonly lastUpdated?: number;
  /** The last rejected update of this resource, until a later one is accepted. */
  readonly error?: Rejection;
}

/** One type's client status: Envoy's CSDS / config_dump client_status, error_state, version_info. */
export interface TypeStatusView {
  readonly typeUrl: ResourceTypeUrl;
  readonly type: 'cds' | 'eds' | 'lds' | 'rds';
  /** The last ACKed version_info ('' before the first). */
  readonly version: string;
  readonly lastUpdated?: number;
  /** '*' for the wildcard types; the names asked for otherwise (absent while not subscribed). */
  readonly subscribed?: '*' | readonly string[];
  readonly rejected?: Rejection;
  readonly resources: readonly ResourceStatusView[];
}

interface Entry {
  readonly model: ResourceModels[ResourceTypeUrl];
  readonly bytes: Buffer;
  readonly version: string;
  readonly lastUpdated: number;
}

interface ResourceState {
  status: ResourceStatus;
  error?: Rejection;
}

class TypeState {
  /** Subscribed at all: LDS waits for the initial CDS/EDS fetch (Envoy's init order); EDS/RDS need names. */
  active = false;
  /** Named types: the names wanted, each with its initial_fetch_timeout. */
  readonly wanted = new Map<string, number>();
  /** The names of the last request on this stream; undefined = no request of this type on this stream yet. */
  sent: string | undefined;
  version = '';
  nonce = '';
  entries = new Map<string, Entry>();
  readonly states = new Map<string, ResourceState>();
  readonly timers = new Map<string, Timer>();
  rejected: Rejection | undefined;
  lastUpdated: number | undefined;
  /** The first response was applied, or the initial fetch timed out. */
  initialDone = false;

  constructor(
    readonly typeUrl: ResourceTypeUrl,
    readonly wildcard: boolean,
  ) {}

  get short() {
    return SHORT_NAMES[this.typeUrl];
  }

  /** The resource_names of a request: [] is the wildcard for LDS/CDS (Envoy sends no names for them). */
  names(): string[] {
    return this.wildcard ? [] : [...this.wanted.keys()].sort();
  }
}

export interface AdsStateOptions {
  readonly watcher: AdsWatcher;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics?: XdsClientMetrics;
  readonly node: NodeMsg;
  /** ads_config.set_node_on_first_message_only: the node goes on the first request of each stream only. */
  readonly setNodeOnFirstMessageOnly: boolean;
  /** Static resources that use EDS / RDS: they are subscribed from the start. */
  readonly staticListeners: readonly Listener[];
  readonly staticClusters: readonly Cluster[];
  readonly cdsInitialFetchTimeoutMs: number;
  readonly ldsInitialFetchTimeoutMs: number;
}

/** A DiscoveryResponse with its proto3 defaults filled in. */
type Response = Required<Omit<DiscoveryResponseMsg, 'resources'>> & { readonly resources: NonNullable<DiscoveryResponseMsg['resources']> };

/** gRPC INVALID_ARGUMENT: the code of every NACK's error_detail (what Envoy sends). */
const INVALID_ARGUMENT = 3;

/**
 * Events: 'ack' / 'nack' ({type, version, nonce, details?}) after each answer, 'initialized' once the initial
 * CDS, EDS, LDS and RDS fetches are all done.
 */
export class AdsState extends EventEmitter {
  private readonly types = new Map<string, TypeState>();
  private send: ((r: DiscoveryRequestMsg) => void) | undefined;
  private nodeSent = false;
  private initTimers: Timer[] = [];
  private isInitialized = false;

  constructor(private readonly o: AdsStateOptions) {
    super();
    for (const t of ADS_TYPES) this.types.set(t, new TypeState(t, t === CLUSTER_TYPE_URL || t === LISTENER_TYPE_URL));
    this.type(CLUSTER_TYPE_URL).active = true;
    this.recomputeEds();
    this.recomputeRds();
    this.initialFetchTimer(CLUSTER_TYPE_URL, o.cdsInitialFetchTimeoutMs);
  }

  private type(u: ResourceTypeUrl): TypeState {
    return this.types.get(u)!;
  }

  /** LDS/CDS initial_fetch_timeout: initialization goes on without the first response (it still applies when it comes). */
  private initialFetchTimer(u: ResourceTypeUrl, ms: number): void {
    if (ms <= 0) return;
    const t = this.o.clock.setTimeout(() => {
      const ts = this.type(u);
      if (ts.initialDone) return;
      this.o.logger.warn({ type: ts.short, timeoutMs: ms }, 'initial xDS fetch timed out; initialization goes on without it');
      ts.initialDone = true;
      this.progress();
    }, ms);
    t.unref();
    this.initTimers.push(t);
  }

  get initialized(): boolean {
    return this.isInitialized;
  }

  /** A stream is up: every subscription goes out again, with the last ACKed versions (nonces die with streams). */
  streamStarted(send: (r: DiscoveryRequestMsg) => void): void {
    this.send = send;
    this.nodeSent = false;
    for (const ts of this.types.values()) {
      ts.sent = undefined;
      ts.nonce = '';
    }
    for (const u of ADS_TYPES) this.subscribe(this.type(u));
  }

  streamEnded(): void {
    this.send = undefined;
  }

  /** Sends the type's subscription if it changed since the last request on this stream. */
  private subscribe(ts: TypeState): void {
    if (!ts.active || !this.send) return;
    const names = ts.names();
    // An empty list is a wildcard to a server that never saw names from us on this stream: say nothing then.
    if (!ts.wildcard && names.length === 0 && ts.sent === undefined) return;
    if (ts.sent === names.join('\n')) return;
    this.request(ts, { version_info: ts.version, resource_names: names, type_url: ts.typeUrl, response_nonce: ts.nonce });
  }

  private request(ts: TypeState, r: DiscoveryRequestMsg): void {
    if (!this.send) return;
    if (!this.nodeSent || !this.o.setNodeOnFirstMessageOnly) r.node = this.o.node;
    this.nodeSent = true;
    ts.sent = r.resource_names.join('\n');
    this.send(r);
  }

  /** One DiscoveryResponse: decode every resource, hand the result to the data plane, then ACK or NACK. */
  handle(received: DiscoveryResponseMsg): void {
    // proto3: an empty list, version or nonce is not on the wire at all.
    const res: Response = { version_info: received.version_info ?? '', resources: received.resources ?? [], type_url: received.type_url ?? '', nonce: received.nonce ?? '' };
    const ts = this.types.get(res.type_url);
    if (!ts) {
      // Answering would subscribe us to a type we cannot use: say nothing (the server may be newer than us).
      this.o.logger.warn({ type_url: res.type_url }, 'xDS response for a type this sidecar does not subscribe to; ignored');
      return;
    }
    const started = this.o.clock.monotonic();
    ts.nonce = res.nonce;
    const { decoded, issues, bad } = this.decodeAll(ts, res);
    let refused = issues;
    let update: ResourceUpdate | undefined;
    if (!refused.length) {
      update = this.updateFor(ts, res.version_info, decoded);
      const mine = this.applyToWatcher(update);
      refused = mine.map((i) => `${i.path}: ${i.message}`);
      // The data plane names the resource first in each issue's path.
      for (const name of update.changed) if (mine.some((i) => i.path === name || i.path.startsWith(`${name}: `))) bad.add(name);
    }
    this.o.metrics?.applyDuration.observe({ type: ts.short }, this.o.clock.monotonic() - started);
    if (refused.length) this.nack(ts, res, refused, bad);
    else this.ack(ts, res, decoded, update!);
  }

  private applyToWatcher(update: ResourceUpdate): readonly FieldIssue[] {
    try {
      return this.o.watcher.apply(update);
    } catch (e) {
      // A bug, not the server's fault; refusing keeps the stream and the last good config alive.
      this.o.logger.error({ type: SHORT_NAMES[update.typeUrl], err: e instanceof Error ? e.stack : String(e) }, 'applying an xDS update failed');
      return [{ path: '(sidecar)', message: `internal error while applying: ${e instanceof Error ? e.message : String(e)}` }];
    }
  }

  /** Every resource through decodeResource; any failure, a duplicate name or a wrong type is an issue naming the resource. */
  private decodeAll(ts: TypeState, res: Response) {
    const decoded = new Map<string, { model: ResourceModels[ResourceTypeUrl]; bytes: Buffer }>();
    const issues: string[] = [];
    const bad = new Set<string>();
    res.resources.forEach((any, i) => {
      const where = `resources[${i}]`;
      if (any.type_url !== res.type_url) {
        issues.push(`${where}: a ${any.type_url ?? 'resource without a type'} in a ${ts.short.toUpperCase()} response`);
        return;
      }
      const bytes = Buffer.from(any.value ?? []);
      const name = nameInBytes(ts.typeUrl, bytes);
      // SotW: the client silently ignores resources it did not ask for (xDS protocol doc).
      if (!ts.wildcard && name !== undefined && !ts.wanted.has(name)) return;
      const r = decodeResource(ts.typeUrl, bytes);
      const label = name || where;
      if (!r.ok) {
        for (const e of r.errors) issues.push(`${label}: ${e.path ? `${e.path}: ` : ''}${e.message}`);
        if (name) bad.add(name);
        return;
      }
      // Listener and Cluster decoders require a name; a nameless RDS/EDS resource was never asked for.
      if (decoded.has(name!)) issues.push(`${name}: the response holds it twice (a server must send each resource once)`);
      else decoded.set(name!, { model: r.value, bytes });
    });
    return { decoded, issues, bad };
  }

  /** The complete set the data plane gets: the response for LDS/CDS, the held set plus the response for EDS/RDS. */
  private updateFor(ts: TypeState, version: string, decoded: Map<string, { model: ResourceModels[ResourceTypeUrl]; bytes: Buffer }>): ResourceUpdate {
    const resources = new Map<string, ResourceModels[ResourceTypeUrl]>();
    if (!ts.wildcard) for (const [name, e] of ts.entries) resources.set(name, e.model);
    const changed = new Set<string>();
    for (const [name, d] of decoded) {
      resources.set(name, d.model);
      if (!ts.entries.get(name)?.bytes.equals(d.bytes)) changed.add(name);
    }
    return { typeUrl: ts.typeUrl, version, resources, changed };
  }

  private ack(ts: TypeState, res: Response, decoded: Map<string, { model: ResourceModels[ResourceTypeUrl]; bytes: Buffer }>, update: ResourceUpdate): void {
    const at = this.o.clock.now();
    const entries = ts.wildcard ? new Map<string, Entry>() : new Map(ts.entries);
    for (const [name, d] of decoded) {
      const prev = ts.entries.get(name);
      entries.set(name, update.changed.has(name) || !prev ? { ...d, version: res.version_info, lastUpdated: at } : prev);
      ts.states.set(name, { status: 'acked' });
      this.clearTimer(ts, name);
    }
    // A wildcard response without a resource it held before removes it (xDS protocol doc, "Deleting Resources").
    if (ts.wildcard) for (const name of ts.states.keys()) if (!entries.has(name)) ts.states.delete(name);
    ts.entries = entries;
    ts.version = res.version_info;
    ts.rejected = undefined;
    ts.lastUpdated = at;
    ts.initialDone = true;
    this.request(ts, { version_info: res.version_info, resource_names: ts.names(), type_url: ts.typeUrl, response_nonce: res.nonce });
    this.o.metrics?.updates.inc({ type: ts.short, result: 'ack' });
    this.o.logger.debug({ type: ts.short, version: res.version_info, resources: update.resources.size, changed: update.changed.size }, 'xDS update applied');
    this.emit('ack', { type: ts.short, version: res.version_info, nonce: res.nonce });
    if (ts.typeUrl === CLUSTER_TYPE_URL) this.recomputeEds();
    if (ts.typeUrl === LISTENER_TYPE_URL) this.recomputeRds();
    this.progress();
  }

  /**
   * NACK: the previous version_info with this nonce and error_detail (code INVALID_ARGUMENT, every issue).
   * Nothing of the response is applied; the last good config of this type keeps serving.
   */
  private nack(ts: TypeState, res: Response, issues: string[], bad: ReadonlySet<string>): void {
    const rejection: Rejection = { version: res.version_info, details: issues.join('\n'), at: this.o.clock.now() };
    ts.rejected = rejection;
    for (const name of bad) {
      const s = ts.states.get(name);
      if (s) Object.assign(s, { status: 'nacked', error: rejection });
      else ts.states.set(name, { status: 'nacked', error: rejection });
    }
    this.request(ts, {
      version_info: ts.version,
      resource_names: ts.names(),
      type_url: ts.typeUrl,
      response_nonce: res.nonce,
      error_detail: { code: INVALID_ARGUMENT, message: rejection.details },
    });
    this.o.metrics?.updates.inc({ type: ts.short, result: 'nack' });
    this.o.logger.warn({ type: ts.short, version: res.version_info, nonce: res.nonce, keptVersion: ts.version, issues }, 'xDS update rejected (NACK); the last good config keeps serving');
    this.emit('nack', { type: ts.short, version: res.version_info, nonce: res.nonce, details: rejection.details });
  }

  /** EDS names: the service_name (or name) of every EDS cluster, static and from CDS. */
  private recomputeEds(): void {
    const wanted = new Map<string, number>();
    const clusters = [...this.o.staticClusters, ...[...this.type(CLUSTER_TYPE_URL).entries.values()].map((e) => e.model as Cluster)];
    for (const c of clusters) if (c.eds) wanted.set(c.eds.serviceName, Math.max(wanted.get(c.eds.serviceName) ?? 0, c.eds.initialFetchTimeoutMs));
    this.want(this.type(CLUSTER_LOAD_ASSIGNMENT_TYPE_URL), wanted);
  }

  /** RDS names: the rds route_config_name of every listener, static and from LDS. */
  private recomputeRds(): void {
    const wanted = new Map<string, number>();
    const listeners = [...this.o.staticListeners, ...[...this.type(LISTENER_TYPE_URL).entries.values()].map((e) => e.model as Listener)];
    for (const c of listeners.flatMap(listenerChains)) {
      const r = c.hcm.route;
      if (r.kind === 'rds') wanted.set(r.name, Math.max(wanted.get(r.name) ?? 0, r.initialFetchTimeoutMs));
    }
    this.want(this.type(ROUTE_CONFIGURATION_TYPE_URL), wanted);
  }

  /** New names start `requested` with their does-not-exist timer; dropped names are forgotten (implicit deletion). */
  private want(ts: TypeState, wanted: Map<string, number>): void {
    for (const name of [...ts.wanted.keys()]) {
      if (wanted.has(name)) continue;
      ts.wanted.delete(name);
      ts.entries.delete(name);
      ts.states.delete(name);
      this.clearTimer(ts, name);
    }
    for (const [name, timeoutMs] of wanted) {
      if (ts.wanted.has(name)) continue;
      ts.wanted.set(name, timeoutMs);
      ts.states.set(name, { status: 'requested' });
      if (timeoutMs > 0) {
        const t = this.o.clock.setTimeout(() => this.doesNotExist(ts, name), timeoutMs);
        t.unref();
        ts.timers.set(name, t);
      }
    }
    ts.active = ts.wanted.size > 0 || ts.sent !== undefined;
    this.subscribe(ts);
  }

  private clearTimer(ts: TypeState, name: string): void {
    const t = ts.timers.get(name);
    if (t) this.o.clock.clearTimeout(t);
    ts.timers.delete(name);
  }

  /** "Knowing When a Requested Resource Does Not Exist": no response within initial_fetch_timeout. */
  private doesNotExist(ts: TypeState, name: string): void {
    ts.timers.delete(name);
    const s = ts.states.get(name);
    if (!s || ts.entries.has(name)) return;
    s.status = 'does-not-exist';
    this.o.logger.warn({ type: ts.short, name, timeoutMs: ts.wanted.get(name) }, 'requested xDS resource did not arrive within initial_fetch_timeout; treated as not existing');
    this.o.watcher.missing(ts.typeUrl, name);
    this.progress();
  }

  /** Resolved: received, or given up on. A NACKed resource without a good version is neither. */
  private resolved(ts: TypeState): boolean {
    return [...ts.wanted.keys()].every((n) => ts.entries.has(n) || ts.states.get(n)?.status === 'does-not-exist');
  }

  /** Envoy's initialization order: LDS starts once CDS and the EDS it implies are done; then RDS. */
  private progress(): void {
    const lds = this.type(LISTENER_TYPE_URL);
    if (!lds.active && this.type(CLUSTER_TYPE_URL).initialDone && this.resolved(this.type(CLUSTER_LOAD_ASSIGNMENT_TYPE_URL))) {
      lds.active = true;
      this.initialFetchTimer(LISTENER_TYPE_URL, this.o.ldsInitialFetchTimeoutMs);
      this.subscribe(lds);
    }
    if (!this.isInitialized && lds.active && lds.initialDone && this.resolved(this.type(ROUTE_CONFIGURATION_TYPE_URL))) {
      this.isInitialized = true;
      this.emit('initialized');
    }
  }

  status(): TypeStatusView[] {
    return ADS_TYPES.map((u) => {
      const ts = this.type(u);
      return {
        typeUrl: u,
        type: ts.short,
        version: ts.version,
        ...(ts.lastUpdated !== undefined && { lastUpdated: ts.lastUpdated }),
        ...(ts.active && { subscribed: ts.wildcard ? ('*' as const) : ts.names() }),
        ...(ts.rejected && { rejected: ts.rejected }),
        resources: [...ts.states].map(([name, s]) => {
          const e = ts.entries.get(name);
          return { name, status: s.status, ...(e && { version: e.version, lastUpdated: e.lastUpdated }), ...(s.error && { error: s.error }) };
        }),
      };
    });
  }

  close(): void {
    this.send = undefined;
    for (const t of this.initTimers) this.o.clock.clearTimeout(t);
    for (const ts of this.types.values()) for (const name of [...ts.timers.keys()]) this.clearTimer(ts, name);
  }
}

/** The name a resource is keyed by (ClusterLoadAssignment: cluster_name), read without the full decoder. */
function nameInBytes(typeUrl: ResourceTypeUrl, bytes: Buffer): string | undefined {
  try {
    const o = decodeCanonical(typeForUrl(typeUrl)!, bytes);
    const v = o[typeUrl === CLUSTER_LOAD_ASSIGNMENT_TYPE_URL ? 'cluster_name' : 'name'];
    return typeof v === 'string' ? v : '';
  } catch {
    return undefined;
  }
}
