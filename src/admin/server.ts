// Admin HTTP endpoints (Envoy's port 15000): /ready, /stats/prometheus, /config_dump, /clusters, /certs, /quitquitquit.
import http from 'node:http';
import { isLoopbackAddress } from '../core/net.js';
import type { Registry } from 'prom-client';
import type { SocketAddress } from '../model/types.js';

/** Read-only views the admin server renders; the CLI wires them to the live runtime. */
export interface AdminViews {
  ready(): boolean;
  registry: Registry;
  configDump(): unknown;
  clusters(): ClusterView[];
  certs(): CertView[];
  quit(): void;
}

export interface ClusterView {
  name: string;
  /** The balancer's view: lb_policy, and per priority its health, share of requests and panic state. */
  lb_policy: string;
  /** Requests picked while a priority was in panic (Envoy's lb_healthy_panic). */
  healthy_panic: number;
  priorities: { priority: number; hosts: number; available: number; health: number; load: number; panic: boolean }[];
  endpoints: {
    address: string;
    locality: { region: string; zone: string; sub_zone: string };
    priority: number;
    weight: number;
    health_status: string;
    rq_active: number;
    rq_total: number;
    rq_error: number;
    cx_active: number;
    cx_connect_fail: number;
    /** Outlier detection: ejected now, how often, by which detector last; success rate of the last interval (-1 = not judged). */
    ejected: boolean;
    times_ejected: number;
    ejection_detector: string | null;
    success_rate: number;
    /** The PEAK_EWMA latency estimate, ms (null before the first answer). */
    ewma_ms: number | null;
  }[];
}

export interface CertView {
  name: string;
  spiffe_id: string | null;
  serial_number: string;
  valid_from: string;
  expiration_time: string;
  seconds_until_expiration: number;
  cert_chain: { subject: string; serial_number: string; expiration_time: string }[];
  ca_cert: { subject: string; serial_number: string; expiration_time: string }[];
}

export class AdminServer {
  private server: http.Server | undefined;

  constructor(private readonly v: AdminViews) {}

  async start(addr: SocketAddress): Promise<SocketAddress> {
    const server = http.createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: addr.host, port: addr.port }, () => resolve());
    });
    const a = server.address() as { address: string; port: number };
    return { host: a.address, port: a.port };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // Defence in depth: the decoder already insists on a loopback bind address.
    if (!isLoopbackAddress(req.socket.remoteAddress)) return this.send(res, 403, 'text/plain', 'admin is loopback-only\n');
    const url = new URL(req.url ?? '/', 'http://admin');
    switch (url.pathname) {
      case '/ready':
        return this.v.ready() ? this.send(res, 200, 'text/plain', 'LIVE\n') : this.send(res, 503, 'text/plain', 'PRE_INITIALIZING\n');
      case '/stats/prometheus':
        return this.send(res, 200, this.v.registry.contentType, await this.v.registry.metrics());
      case '/config_dump':
        return this.json(res, this.v.configDump());
      case '/clusters':
        if (url.searchParams.get('format') === 'json') return this.json(res, { cluster_statuses: this.v.clusters() });
        return this.send(res, 200, 'text/plain', clustersText(this.v.clusters()));
      case '/certs':
        return this.json(res, { certificates: this.v.certs() });
      case '/quitquitquit':
        if (req.method !== 'POST') return this.send(res, 405, 'text/plain', 'POST only\n');
        this.send(res, 200, 'text/plain', 'OK\n');
        this.v.quit();
        return;
      default:
        return this.send(res, 404, 'text/plain', 'admin endpoints: /ready /stats/prometheus /config_dump /clusters /certs /quitquitquit\n');
    }
  }

  private json(res: http.ServerResponse, body: unknown): void {
    this.send(res, 200, 'application/json', JSON.stringify(body, null, 2) + '\n');
  }

  private send(res: http.ServerResponse, status: number, type: string, body: string): void {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  close(): Promise<void> {
    return new Promise((r) => {
      if (!this.server) return r();
      this.server.close(() => r());
      this.server.closeAllConnections();
    });
  }
}

/** Envoy's text format: cluster::host:port::stat::value. */
function clustersText(cs: ClusterView[]): string {
  const lines: string[] = [];
  for (const c of cs) {
    lines.push(`${c.name}::lb_policy::${c.lb_policy}`, `${c.name}::healthy_panic::${c.healthy_panic}`);
    for (const p of c.priorities) lines.push(`${c.name}::priority_${p.priority}::health::${p.health}`, `${c.name}::priority_${p.priority}::load::${p.load}`, `${c.name}::priority_${p.priority}::panic::${p.panic}`);
    for (const e of c.endpoints) {
      const p = `${c.name}::${e.address}`;
      lines.push(`${p}::cx_active::${e.cx_active}`, `${p}::cx_connect_fail::${e.cx_connect_fail}`, `${p}::rq_active::${e.rq_active}`, `${p}::rq_error::${e.rq_error}`, `${p}::rq_total::${e.rq_total}`);
      const flags = [e.health_status === 'UNHEALTHY' ? '/failed_eds_health' : '', e.ejected ? '/failed_outlier_check' : ''].join('');
      lines.push(`${p}::health_flags::${flags || 'healthy'}`, `${p}::success_rate::${e.success_rate}`, `${p}::times_ejected::${e.times_ejected}`);
      if (e.ewma_ms !== null) lines.push(`${p}::ewma_ms::${e.ewma_ms.toFixed(3)}`);
      lines.push(`${p}::region::${e.locality.region}`, `${p}::zone::${e.locality.zone}`, `${p}::sub_zone::${e.locality.sub_zone}`, `${p}::priority::${e.priority}`, `${p}::weight::${e.weight}`);
    }
  }
  return lines.join('\n') + '\n';
}
