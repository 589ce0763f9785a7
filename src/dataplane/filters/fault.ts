// envoy.filters.http.fault at request time: delay on the injected clock, abort as a local reply, per-route override.
import type { Clock } from '../../core/clock.js';
import type { Rng } from '../../core/rng.js';
import { FAULT_TYPE_URL, type FaultConfig } from '../../model/fault.js';
import { compileHeaderMatcher, type HeaderGetter } from '../../model/matchers.js';
import type { RequestRecord } from '../exchange.js';
import type { LocalReply } from '../local-reply.js';
import type { FilterDeps, FilterRequest, FilterVerdict, HttpFilter, HttpFilterFactory } from './filter.js';

/** Envoy's x-envoy-downstream-service-node: the caller's node name, which downstream_nodes is matched against. */
const DOWNSTREAM_NODE = 'x-envoy-downstream-service-node';

/** One FaultConfig with its header matchers compiled: built once per config (listener- or route-level). */
interface Compiled {
  readonly cfg: FaultConfig;
  readonly headers: readonly ((get: HeaderGetter) => boolean)[];
  readonly nodes: ReadonlySet<string>;
}

function compile(cfg: FaultConfig): Compiled {
  return { cfg, headers: cfg.headers.map(compileHeaderMatcher), nodes: new Set(cfg.downstreamNodes) };
}

/** Header values as Envoy's HeaderMatcher sees them: repeats joined by ','. */
function headerOf(rec: RequestRecord): HeaderGetter {
  return (name) => {
    if (name === ':path') return rec.path;
    if (name === ':method') return rec.method;
    if (name === ':authority') return rec.authority;
    const v = rec.headers[name];
    return Array.isArray(v) ? v.join(',') : v;
  };
}

/** Envoy's fault abort reply: body "fault filter abort", details fault_filter_abort, flag FI. */
function abortReply(cfg: NonNullable<FaultConfig['abort']>): LocalReply {
  return { status: cfg.httpStatus, code: 'fault_abort', message: 'fault filter abort', flag: 'FI', details: 'fault_filter_abort', ...(cfg.grpcStatus !== undefined && { grpcStatus: cfg.grpcStatus }) };
}

class FaultFilter implements HttpFilter {
  private readonly listenerLevel: Compiled;
  /** Route-level configs compiled on first use; keyed by the frozen config object, so one compile per config version. */
  private readonly perRoute = new WeakMap<object, Compiled>();
  /** Faults in progress (delays being waited out), for max_active_faults. */
  private active = 0;
  private readonly clock: Clock;
  private readonly rng: Rng;
  private readonly delays;
  private readonly aborts;
  private readonly overflows;

  constructor(
    readonly name: string,
    config: FaultConfig,
    deps: FilterDeps,
  ) {
    this.listenerLevel = compile(config);
    this.clock = deps.clock;
    this.rng = deps.rng;
    this.delays = deps.metrics.faultsInjected.labels({ listener: deps.listenerName, kind: 'delay' });
    this.aborts = deps.metrics.faultsInjected.labels({ listener: deps.listenerName, kind: 'abort' });
    this.overflows = deps.metrics.faultsOverflow.labels({ listener: deps.listenerName });
  }

  /** The route's typed_per_filter_config under this filter's name replaces the listener-level config whole, as in Envoy. */
  private settings(req: FilterRequest): Compiled {
    const own = req.route?.route.typedPerFilterConfig?.[this.name]?.config;
    if (!own) return this.listenerLevel;
    let c = this.perRoute.get(own);
    if (!c) this.perRoute.set(own, (c = compile(own as FaultConfig)));
    return c;
  }

  decodeHeaders(req: FilterRequest): FilterVerdict | Promise<FilterVerdict> {
    const { cfg, headers, nodes } = this.settings(req);
    if (!cfg.delay && !cfg.abort) return undefined;
    if (headers.length) {
      const get = headerOf(req.rec);
      if (!headers.every((h) => h(get))) return undefined;
    }
    if (nodes.size) {
      const node = req.rec.headers[DOWNSTREAM_NODE];
      if (typeof node !== 'string' || !nodes.has(node)) return undefined;
    }
    // Envoy checks the limit before either fault: at the limit, the request passes untouched and is counted.
    if (cfg.maxActiveFaults !== undefined && this.active >= cfg.maxActiveFaults) {
      this.overflows.inc();
      return undefined;
    }
    // Delay first, then abort, each drawn on its own (Istio: "delay and abort faults are independent").
    if (cfg.delay && this.rng.next() < cfg.delay.probability) return this.delay(req, cfg.delay.fixedDelayMs, cfg.abort);
    return this.maybeAbort(cfg.abort);
  }

  private maybeAbort(abort: FaultConfig['abort']): FilterVerdict {
    if (!abort || !(this.rng.next() < abort.probability)) return undefined;
    this.aborts.inc();
    return abortReply(abort);
  }

  /**
   * Holds the request on the injected clock, then decides the abort. A caller that goes away meanwhile cancels
   * the timer at once (the HCM has already completed the request as DC), so abandoned delays hold nothing.
   */
  private delay(req: FilterRequest, ms: number, abort: FaultConfig['abort']): Promise<FilterVerdict> {
    this.delays.inc();
    this.active++;
    if (req.rec.flag === '-') req.rec.flag = 'DI';
    return new Promise((resolve) => {
      let done = false;
      const finish = (v: FilterVerdict) => {
        if (done) return;
        done = true;
        this.active--;
        resolve(v);
      };
      const timer = this.clock.setTimeout(() => finish(this.maybeAbort(abort)), ms);
      req.onAbort?.(() => {
        this.clock.clearTimeout(timer);
        finish(undefined);
      });
    });
  }
}

export const faultFilter: HttpFilterFactory = {
  typeUrl: FAULT_TYPE_URL,
  create: (c, deps) => new FaultFilter(c.name, c.config as FaultConfig, deps),
};
