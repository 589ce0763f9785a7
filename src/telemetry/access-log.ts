// Access log: one JSON line per request in Envoy's field names, cheap when sampled or turned off.
import { pino, type Logger } from 'pino';
import type { Rng } from '../core/rng.js';

/** Envoy/Istio default JSON access log fields (https://istio.io/latest/docs/tasks/observability/logs/access-log/). */
export interface AccessLogEntry {
  start_time: string;
  method: string;
  path: string;
  protocol: string;
  response_code: number;
  response_flags: string;
  response_code_details: string;
  bytes_received: number;
  bytes_sent: number;
  duration: number;
  upstream_service_time: number | null;
  upstream_host: string | null;
  /** Outrigger's addition: the chosen upstream host's locality, region/zone/subzone (cross-cloud traffic at a glance). */
  upstream_locality: string | null;
  upstream_cluster: string | null;
  upstream_transport_failure_reason: string | null;
  x_forwarded_for: string | null;
  user_agent: string | null;
  request_id: string;
  authority: string;
  downstream_remote_address: string;
  downstream_peer_uri_san: string | null;
  upstream_peer_uri_san: string | null;
  route_name: string | null;
  listener: string;
}

export interface AccessLogOptions {
  /** 'off', 'stdout', 'stderr' or a file path. */
  target: string;
  /** Fraction of requests logged, 0..1. Error responses (>= 500 or any flag) are always logged. */
  sampleRate: number;
}

export class AccessLog {
  private readonly out: Logger | undefined;

  constructor(
    private readonly opts: AccessLogOptions,
    private readonly rng: Rng,
  ) {
    if (opts.target === 'off') return;
    const dest = opts.target === 'stdout' ? 1 : opts.target === 'stderr' ? 2 : opts.target;
    // Asynchronous writes: the request path never waits on the disk or the terminal.
    this.out = pino({ base: undefined, timestamp: false, messageKey: 'msg' }, pino.destination({ dest, sync: false, minLength: 4096 }));
  }

  get enabled(): boolean {
    return this.out !== undefined;
  }

  /** Decided before the entry is built, so unsampled requests cost one rng call. */
  wants(isError: boolean): boolean {
    if (this.out === undefined) return false;
    return isError || this.opts.sampleRate >= 1 || this.rng.next() < this.opts.sampleRate;
  }

  write(entry: AccessLogEntry): void {
    this.out?.info(entry);
  }

  /** Resolves once buffered lines are written (shutdown, tests). */
  flush(): Promise<void> {
    const out = this.out;
    if (!out) return Promise.resolve();
    return new Promise((resolve) => out.flush(() => resolve()));
  }
}
