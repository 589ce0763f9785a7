// The balancer's proving ground on real sockets: upstreams that can be told to fail, to stop accepting or to
// slow down, a relay that adds distance between "clouds", an outbound sidecar whose cluster spans
// localities and priorities, and a load driver that counts who answered.
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { AccessLog } from '../../src/telemetry/access-log.js';
import { outboundListener, runSidecar, type StartedSidecar } from './mesh.js';

export interface FaultyUpstream {
  readonly name: string;
  readonly port: number;
  /** 'ok' answers 200; 'fail' answers 503 to everything (the upstream's own error, as a dying app does). */
  mode: 'ok' | 'fail';
  /** Added before each answer. */
  delayMs: number;
  /** Requests answered (any status) since start. */
  readonly served: number;
  /** Closes the listener and every open connection: new connections are refused, as a dead host's are. */
  stopAccepting(): Promise<void>;
  /** Listens again on the same port. */
  resume(): Promise<void>;
  close(): Promise<void>;
}

export async function startFaultyUpstream(name: string): Promise<FaultyUpstream> {
  const sockets = new Set<net.Socket>();
  let served = 0;
  const u = {
    name,
    port: 0,
    mode: 'ok' as 'ok' | 'fail',
    delayMs: 0,
    get served() {
      return served;
    },
  };
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume();
    const answer = () => {
      served++;
      const status = u.mode === 'ok' ? 200 : 503;
      const body = JSON.stringify({ server: name, status });
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-served-by': name });
      res.end(body);
    };
    if (u.delayMs > 0) setTimeout(answer, u.delayMs);
    else answer();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const listen = (port: number) => new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  await listen(0);
  u.port = (server.address() as AddressInfo).port;
  const stop = () => new Promise<void>((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
  });
  return Object.assign(u, {
    stopAccepting: stop,
    resume: () => listen(u.port),
    close: stop,
  });
}

export interface Relay {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A TCP relay that delays every chunk by delayMs in each direction: distance between localities (0.2 ms
 * in-zone, 2 ms cross-zone, 30 ms cross-cloud). Chunks keep their order because timers of one duration fire
 * in the order they were set. Node's timers have 1 ms granularity, so a sub-millisecond delay is one event-
 * loop turn (setImmediate) rather than a timer.
 */
export async function startLatencyRelay(targetPort: number, delayMs: number): Promise<Relay> {
  const open = new Set<net.Socket>();
  const later = delayMs >= 1 ? (fn: () => void) => setTimeout(fn, delayMs) : (fn: () => void) => setImmediate(fn);
  const forward = (from: net.Socket, to: net.Socket) => {
    from.on('data', (c) => later(() => to.destroyed || to.write(c)));
    from.on('end', () => later(() => to.end()));
    from.on('error', () => to.destroy());
    from.on('close', () => later(() => to.destroy()));
  };
  const server = net.createServer((down) => {
    const up = net.connect(targetPort, '127.0.0.1');
    for (const s of [down, up]) {
      open.add(s);
      s.on('close', () => open.delete(s));
    }
    forward(down, up);
    forward(up, down);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of open) s.destroy();
    }),
  };
}

export interface LocalityGroup {
  readonly region: string;
  readonly zone: string;
  readonly priority: number;
  /** load_balancing_weight of the locality (only used with locality_weighted_lb_config). */
  readonly weight?: number;
  readonly ports: readonly number[];
}

/**
 * An outbound sidecar whose cluster `backend` spans the given localities (plain HTTP/1.1 upstreams, so the
 * test sees the balancer, not TLS), with the cluster fields the test sets: lb_policy, outlier_detection,
 * common_lb_config, load_balancing_policy. Host header "backend" routes to it.
 */
export function localityBootstrap(groups: readonly LocalityGroup[], cluster: Record<string, unknown> = {}, route: Record<string, unknown> = {}): object {
  return {
    node: { id: 'caller-1', cluster: 'caller', locality: { region: groups[0]?.region ?? '', zone: groups[0]?.zone ?? '' } },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [
        outboundListener({
          name: 'outbound',
          virtual_hosts: [{ name: 'backend', domains: ['backend'], routes: [{ match: { prefix: '/' }, route: { cluster: 'backend', timeout: '5s', ...route } }] }],
        }),
      ],
      clusters: [
        {
          name: 'backend',
          type: 'STATIC',
          connect_timeout: '0.5s',
          ...cluster,
          load_assignment: {
            cluster_name: 'backend',
            endpoints: groups.map((g) => ({
              locality: { region: g.region, zone: g.zone },
              priority: g.priority,
              ...(g.weight !== undefined && { load_balancing_weight: g.weight }),
              lb_endpoints: g.ports.map((p) => ({ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: p } } } })),
            })),
          },
        },
      ],
    },
  };
}

export async function startLocalitySidecar(groups: readonly LocalityGroup[], cluster?: Record<string, unknown>, route?: Record<string, unknown>, accessLog?: AccessLog): Promise<StartedSidecar> {
  return runSidecar(localityBootstrap(groups, cluster, route), accessLog ? { accessLog } : {});
}

export interface DriveResult {
  /** Answers by the x-served-by header ("" for local replies), status 200 only. */
  readonly byServer: Record<string, number>;
  /** Every non-200 answer or transport error, in order, as "status served-by" or the error text. */
  readonly failures: string[];
  /** Latency of every request in ms, in completion order. */
  readonly latencies: number[];
}

/** Sends n requests (or as many as fit in forMs) through the sidecar's outbound port with `concurrency` keep-alive workers. */
export async function drive(port: number, n: number, o: { concurrency?: number; headers?: Record<string, string>; onEach?: (i: number) => void | Promise<void>; forMs?: number } = {}): Promise<DriveResult> {
  const until = o.forMs === undefined ? Infinity : performance.now() + o.forMs;
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency ?? 4 });
  const byServer: Record<string, number> = {};
  const failures: string[] = [];
  const latencies: number[] = [];
  let next = 0;
  const one = () => new Promise<void>((resolve) => {
    const t0 = performance.now();
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent, headers: { host: 'backend', ...o.headers } }, (res) => {
      res.resume();
      res.on('end', () => {
        latencies.push(performance.now() - t0);
        const by = String(res.headers['x-served-by'] ?? '');
        if (res.statusCode === 200) byServer[by] = (byServer[by] ?? 0) + 1;
        else failures.push(`${res.statusCode} ${by}`.trim());
        resolve();
      });
    });
    req.on('error', (e) => {
      failures.push(String(e));
      resolve();
    });
  });
  const worker = async () => {
    while (next < n && performance.now() < until) {
      const i = next++;
      await o.onEach?.(i);
      await one();
    }
  };
  await Promise.all(Array.from({ length: o.concurrency ?? 4 }, worker));
  agent.destroy();
  return { byServer, failures, latencies };
}

/** The q-quantile (0..1) of xs, nearest rank. */
export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
}
