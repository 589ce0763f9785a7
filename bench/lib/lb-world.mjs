// The world of bench/lb-scenarios.mjs: an upstream process (lb-upstreams.mjs: HTTP upstreams that can be told
// to fail, slow down or stop accepting, and latency relays between localities), a real sidecar process with a
// STATIC cluster spanning localities and priorities, and a keep-alive HTTP/1.1 load generator at a fixed
// concurrency that records every request (send time, latency, status, which upstream answered).
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as procs from './procs.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
export const MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');

/** CLOCK_MONOTONIC in ms: the same clock the upstream process stamps its events with. */
export const now = () => Number(process.hrtime.bigint()) / 1e6;

const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
const socket = (port) => ({ socket_address: { address: '127.0.0.1', port_value: port } });

/** `taskset -c CPU` in front of argv when pinning, else argv as is: [cmd, args]. */
export function pinned(cpu, argv) {
  return cpu === undefined ? [argv[0], argv.slice(1)] : ['taskset', ['-c', String(cpu), ...argv]];
}

/**
 * The upstream process: starts its endpoints and answers calls (see lb-upstreams.mjs). `endpoints`:
 * [{ name, delayMs, relayMs }]. Returns { ports: { name: port }, call(type, payload), proc }.
 */
export async function startUpstreams(dir, endpoints, cpu) {
  mkdirSync(dir, { recursive: true });
  const proc = procs.start('upstreams', ...pinned(cpu, [process.execPath, path.join(HERE, 'lb-upstreams.mjs')]), { stderrFile: path.join(dir, 'upstreams.log'), ipc: true });
  let seq = 0;
  const pending = new Map();
  proc.child.on('message', (m) => {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.error) p?.reject(new Error(`upstream process: ${m.error}`));
    else p?.resolve(m);
  });
  proc.exited.then(({ code, signal }) => {
    for (const p of pending.values()) p.reject(new Error(`upstream process exited (${code ?? signal}); see ${dir}/upstreams.log`));
    pending.clear();
  });
  const call = (type, payload = {}) => new Promise((resolve, reject) => {
    const id = ++seq;
    pending.set(id, { resolve, reject });
    proc.child.send({ id, type, ...payload });
  });
  const { ports } = await call('start', { endpoints });
  return { ports, call, proc };
}

/** One LocalityLbEndpoints of the load_assignment: a group's locality, priority and endpoints. */
const localityEndpoints = ({ region, zone, priority, ports }) => ({ locality: { region, zone }, priority, lb_endpoints: ports.map((p) => ({ endpoint: { address: socket(p) } })) });

/**
 * An outbound sidecar bootstrap: listener `outbound` on listenerPort routing Host "backend" to the STATIC
 * cluster `backend`, whose load_assignment has one locality per group ({ region, zone, priority, ports }),
 * plus the cluster fields given (lb_policy, outlier_detection, load_balancing_policy, ...) and route fields
 * (retry_policy).
 */
export function bootstrap({ listenerPort, adminPort, groups, cluster = {}, route = {} }) {
  return {
    node: { id: 'bench-caller', cluster: 'caller', locality: { region: groups[0].region, zone: groups[0].zone } },
    admin: { address: socket(adminPort) },
    static_resources: {
      listeners: [
        {
          name: 'outbound',
          traffic_direction: 'OUTBOUND',
          address: socket(listenerPort),
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': HCM_TYPE,
                    stat_prefix: 'outbound',
                    route_config: { name: 'outbound', virtual_hosts: [{ name: 'backend', domains: ['backend'], routes: [{ match: { prefix: '/' }, route: { cluster: 'backend', timeout: '5s', ...route } }] }] },
                    http_filters: [ROUTER],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [{ name: 'backend', type: 'STATIC', connect_timeout: '0.5s', ...cluster, load_assignment: { cluster_name: 'backend', endpoints: groups.map(localityEndpoints) } }],
    },
  };
}

/**
 * A sidecar as users run it (`node FLAGS dist/cli/main.js sidecar --config FILE`), access log off, ready when
 * its admin /ready answers 200. Returns { proc, port, adminPort }.
 */
export async function startSidecar(dir, doc, { listenerPort, adminPort, nodeFlags, cpu }) {
  mkdirSync(dir, { recursive: true });
  const conf = path.join(dir, 'bootstrap.json');
  writeFileSync(conf, JSON.stringify(doc, null, 1));
  const proc = procs.start('sidecar', ...pinned(cpu, [process.execPath, ...nodeFlags, MAIN, 'sidecar', '--config', conf, '--access-log', 'off', '--log-level', 'warn']), {
    cwd: ROOT,
    stdoutFile: path.join(dir, 'sidecar.log'),
    stderrFile: path.join(dir, 'sidecar.log'),
  });
  await procs.waitForHttp200(adminPort, '/ready', { proc, timeoutMs: 30_000 });
  return { proc, port: listenerPort, adminPort };
}

/**
 * Closed-loop load: `concurrency` workers, each with one keep-alive HTTP/1.1 connection (Host: backend),
 * sending the next request as soon as the previous one answered, until `requests` were sent or `durationMs`
 * passed (`agent`: keep its connections for a later call). Every request is recorded: { start (monotonic ms), ms (latency), status (0 = transport error),
 * by (x-served-by, '' for the sidecar's own replies), error }. Records are in completion order.
 */
export async function drive(port, { concurrency, requests = Infinity, durationMs = Infinity, agent: shared }) {
  const agent = shared ?? new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const recs = [];
  const until = now() + durationMs;
  let sent = 0;
  const one = () => new Promise((resolve) => {
    const start = now();
    const done = (status, by, error) => {
      recs.push({ start, ms: now() - start, status, by, error });
      resolve();
    };
    const req = http.request({ host: '127.0.0.1', port, path: '/', agent, headers: { host: 'backend' } }, (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode, String(res.headers['x-served-by'] ?? ''), undefined));
      res.on('error', (e) => done(0, '', e.code ?? e.message));
    });
    req.on('error', (e) => done(0, '', e.code ?? e.message));
    req.end();
  });
  const worker = async () => {
    while (sent < requests && now() < until) {
      sent++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (!shared) agent.destroy();
  return recs;
}

/** Admin text (/clusters, /stats/prometheus) of a sidecar. */
export async function adminText(adminPort, p) {
  const r = await procs.httpGet(adminPort, p, { timeoutMs: 5000 });
  return r.body.toString('utf8');
}
