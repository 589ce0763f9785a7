// `outrigger demo` (what `npm start` runs): two workloads, each behind its own sidecar, talking mTLS on loopback.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, openSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { systemClock } from '../core/clock.js';
import { systemRng } from '../core/rng.js';
import { ControlServer } from '../control/server.js';
import { loadOrCreateTokenKey, mintBootstrapToken } from '../identity/token.js';
import { AccessLog } from '../telemetry/access-log.js';
import { silentLogger } from '../telemetry/logger.js';
import { Registry } from 'prom-client';
import { decodeBootstrap } from '../xds/bootstrap.js';
import { loadEchoService, peerFromXfcc, startEchoGrpc } from './demo-apps.js';
import { UsageError, commandFlags, numberFlag } from './args.js';
import { startSidecar, type RunningSidecar } from './sidecar.js';
import { DEMO_HELP } from './demo-help.js';
import { SIDECAR_NODE_FLAGS } from './node-flags.js';


const TD = 'cluster.local';
const PORTS = { admin: 15000, outbound: 15001, inbound: 15006, http: 9080, grpc: 9081, ca: 15012, monitoring: 15014 };
/** Short enough to watch the sidecars rotate their SVIDs during the demo (they renew at half-life). */
const DEMO_SVID_TTL = '2m';

interface Pod {
  name: 'frontend' | 'reviews';
  ip: string;
  peer: { name: string; ip: string };
  dir: string;
}

const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const H2_OPTIONS = {
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
    explicit_http_config: { http2_protocol_options: {} },
  },
};

const sa = (name: string) => `spiffe://${TD}/ns/default/sa/${name}`;
const addr = (ip: string, port: number) => ({ socket_address: { address: ip, port_value: port } });
const staticCluster = (name: string, ip: string, port: number, extra: object = {}) => ({
  name,
  type: 'STATIC',
  connect_timeout: '1s',
  load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: addr(ip, port) } }] }] },
  ...extra,
});

/**
 * The Envoy v3 bootstrap of one pod's sidecar; written to disk so users can read what the demo runs. Its
 * identity comes from the mesh CA through Istio's SDS names, as istio-agent provides them.
 */
export function podBootstrap(p: Pod, controlIp: string) {
  const tls = (matchers: object[], alpn: string[]) => ({
    alpn_protocols: alpn,
    tls_certificate_sds_secret_configs: [{ name: 'default' }],
    combined_validation_context: {
      default_validation_context: { match_typed_subject_alt_names: matchers.map((matcher) => ({ san_type: 'URI', matcher })) },
      validation_context_sds_secret_config: { name: 'ROOTCA' },
    },
  });
  const peerHost = p.peer.name;
  return {
    node: {
      id: `${p.name}-1`,
      cluster: p.name,
      locality: { region: 'local', zone: 'local-a' },
      metadata: {
        CA_ADDR: `${controlIp}:${PORTS.ca}`,
        CA_ROOT_CERT: path.join(p.dir, 'ca-root-cert.pem'),
        BOOTSTRAP_TOKEN: path.join(p.dir, 'token'),
        NAMESPACE: 'default',
        SERVICE_ACCOUNT: p.name,
        SECRET_TTL: DEMO_SVID_TTL,
      },
    },
    admin: { address: addr(p.ip, PORTS.admin) },
    static_resources: {
      listeners: [
        {
          name: 'outbound',
          traffic_direction: 'OUTBOUND',
          address: addr(p.ip, PORTS.outbound),
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': HCM,
                    stat_prefix: 'outbound',
                    upgrade_configs: [{ upgrade_type: 'websocket' }],
                    route_config: {
                      name: 'outbound',
                      virtual_hosts: [
                        {
                          name: peerHost,
                          domains: [peerHost, `${peerHost}:${PORTS.http}`, `${peerHost}.default.svc.cluster.local`, `${peerHost}.default.svc.cluster.local:${PORTS.http}`],
                          routes: [{ match: { prefix: '/' }, route: { cluster: `outbound|${PORTS.http}||${peerHost}`, timeout: '5s' } }],
                        },
                      ],
                    },
                    http_filters: [ROUTER],
                  },
                },
              ],
            },
          ],
        },
        {
          name: 'inbound',
          traffic_direction: 'INBOUND',
          address: addr(p.ip, PORTS.inbound),
          filter_chains: [
            {
              transport_socket: {
                name: 'envoy.transport_sockets.tls',
                typed_config: {
                  '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
                  require_client_certificate: true,
                  common_tls_context: tls([{ prefix: `spiffe://${TD}/` }], ['h2', 'http/1.1']),
                },
              },
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': HCM,
                    stat_prefix: 'inbound',
                    forward_client_cert_details: 'SANITIZE_SET',
                    set_current_client_cert_details: { uri: true },
                    upgrade_configs: [{ upgrade_type: 'websocket' }],
                    route_config: {
                      name: 'inbound',
                      virtual_hosts: [
                        {
                          name: 'inbound',
                          domains: ['*'],
                          routes: [
                            // gRPC goes to the app's gRPC port, everything else to its HTTP port.
                            {
                              name: 'grpc',
                              match: { prefix: '/', headers: [{ name: 'content-type', string_match: { prefix: 'application/grpc' } }] },
                              route: { cluster: `inbound|${PORTS.grpc}||`, timeout: '0s' },
                            },
                            { name: 'http', match: { prefix: '/' }, route: { cluster: `inbound|${PORTS.http}||`, timeout: '0s' } },
                          ],
                        },
                      ],
                    },
                    http_filters: [ROUTER],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        staticCluster(`outbound|${PORTS.http}||${peerHost}`, p.peer.ip, PORTS.inbound, {
          typed_extension_protocol_options: H2_OPTIONS,
          transport_socket: {
            name: 'envoy.transport_sockets.tls',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
              sni: `outbound_.${PORTS.http}_._.${peerHost}`,
              common_tls_context: tls([{ exact: sa(peerHost) }], ['h2']),
            },
          },
        }),
        staticCluster(`inbound|${PORTS.http}||`, p.ip, PORTS.http),
        staticCluster(`inbound|${PORTS.grpc}||`, p.ip, PORTS.grpc, { typed_extension_protocol_options: H2_OPTIONS }),
      ],
    },
  };
}

/** The workload itself: an HTTP echo app that also calls its peer through its own sidecar on /call. */
function startHttpApp(p: Pod): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => {
      const body = JSON.stringify({
        served_by: p.name,
        path: req.url,
        http_version: req.httpVersion,
        caller: peerFromXfcc(req.headers['x-forwarded-client-cert'] as string | undefined) || null,
        x_forwarded_client_cert: req.headers['x-forwarded-client-cert'] ?? null,
        x_request_id: req.headers['x-request-id'] ?? null,
        body_bytes: n,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(PORTS.http, p.ip, () => resolve(server));
  });
}

function waitReady(ip: string, child: ChildProcess | undefined, timeoutMs: number): Promise<void> {
  const deadline = systemClock.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const probe = () => {
      if (child && child.exitCode !== null) return reject(new Error(`sidecar on ${ip} exited with code ${child.exitCode}`));
      const req = http.get({ host: ip, port: PORTS.admin, path: '/ready', timeout: 500 }, (res) => {
        res.resume();
        if (res.statusCode === 200) return resolve();
        retry();
      });
      req.on('error', retry);
      req.on('timeout', () => req.destroy());
    };
    const retry = () => {
      if (systemClock.now() > deadline) return reject(new Error(`sidecar on ${ip} was not ready within ${timeoutMs} ms`));
      setTimeout(probe, 100);
    };
    probe();
  });
}

/** The sidecar's current SVID as its admin /certs shows it. */
async function currentSvid(ip: string): Promise<{ serial: string; until: string }> {
  const r = await fetch(`http://${ip}:${PORTS.admin}/certs`);
  const b = (await r.json()) as { certificates: { name: string; serial_number: string; expiration_time: string }[] };
  const c = b.certificates.find((x) => x.name === 'default');
  if (!c) throw new Error(`sidecar on ${ip} shows no SVID`);
  return { serial: c.serial_number, until: c.expiration_time };
}

function get(ip: string, host: string, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: ip, port: PORTS.outbound, path: p, headers: { host }, agent: keepAlive }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 16 });

function h2cGet(ip: string, host: string, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`http://${ip}:${PORTS.outbound}`);
    s.on('error', reject);
    const r = s.request({ ':path': p, ':authority': host });
    let body = '';
    let status = 0;
    r.setEncoding('utf8');
    r.on('response', (h) => (status = Number(h[':status'])));
    r.on('data', (c: string) => (body += c));
    r.on('end', () => {
      s.close();
      resolve({ status, body });
    });
    r.on('error', reject);
  });
}

function grpcUnary(ip: string, host: string): Promise<{ message: string; peer: string; served_by: string }> {
  const Echo = loadEchoService();
  const client = new Echo(`${ip}:${PORTS.outbound}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': host });
  return new Promise((resolve, reject) => {
    (client as unknown as { Unary: (r: object, cb: (e: Error | null, v: never) => void) => void }).Unary({ message: 'hello over gRPC' }, (e, v) => {
      client.close();
      if (e) reject(e);
      else resolve(v);
    });
  });
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export interface DemoOptions {
  frontendIp: string;
  reviewsIp: string;
  /** Where the control server (the mesh CA) listens, on Istio's ports 15012 and 15014. */
  controlIp: string;
  rate: number;
  durationMs: number;
  /** Run the sidecars inside this process instead of as child processes (tests). */
  inProcess?: boolean;
  out?: (line: string) => void;
}

/** Runs the demo; resolves when it stops (duration elapsed or stop() called). */
export async function runDemo(o: DemoOptions): Promise<{ stop: () => Promise<void>; done: Promise<{ sent: number; failed: number }> }> {
  const say = o.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const base = mkdtempSync(path.join(os.tmpdir(), 'outrigger-demo-'));
  const pods: Pod[] = [
    { name: 'frontend', ip: o.frontendIp, peer: { name: 'reviews', ip: o.reviewsIp }, dir: path.join(base, 'frontend') },
    { name: 'reviews', ip: o.reviewsIp, peer: { name: 'frontend', ip: o.frontendIp }, dir: path.join(base, 'reviews') },
  ];
  say(`Outrigger demo — working directory ${base}`);
  // The keys in it are throw-away, but they should not outlive an interrupted demo either.
  process.once('exit', () => rmSync(base, { recursive: true, force: true }));

  // The control server is the mesh CA: a self-signed root on first start, SVIDs for whoever proves an identity.
  const caDir = path.join(base, 'ca');
  let control: ControlServer;
  try {
    control = await ControlServer.start({
      caDir,
      trustDomain: TD,
      grpcAddress: { host: o.controlIp, port: PORTS.ca },
      monitoringAddress: { host: o.controlIp, port: PORTS.monitoring },
      serverNames: [o.controlIp],
      defaultTtlMs: 3600_000,
      maxTtlMs: 24 * 3600_000,
      rotationStepTimeoutMs: 600_000,
      clock: systemClock,
      logger: silentLogger(),
      registry: new Registry(),
    });
  } catch (e) {
    rmSync(base, { recursive: true, force: true });
    throw new Error(`demo setup failed: the control server could not start on ${o.controlIp}:${PORTS.ca}: ${(e as Error).message}. Pick another address with --control-ip.`);
  }
  say(`  control server (mesh CA) on ${o.controlIp}:${PORTS.ca}: new self-signed root ${control.authority.roots[0]!.fingerprint256.slice(0, 23)}…; \`outrigger status --control http://${o.controlIp}:${PORTS.monitoring}\``);
  const tokenKey = await loadOrCreateTokenKey(caDir);
  for (const p of pods) {
    mkdirSync(p.dir, { recursive: true });
    // What a pod gets mounted: the root to trust the CA with, and a single-use token for its first SVID.
    writeFileSync(path.join(p.dir, 'ca-root-cert.pem'), control.authority.bundlePem);
    writeFileSync(path.join(p.dir, 'token'), await mintBootstrapToken(tokenKey, { spiffeId: sa(p.name), ttlMs: 600_000, clock: systemClock }), { mode: 0o600 });
    writeFileSync(path.join(p.dir, 'bootstrap.json'), JSON.stringify(podBootstrap(p, o.controlIp), null, 2));
    say(`  bootstrap token for ${sa(p.name)} → ${p.dir}/token`);
  }

  const apps: { close(): unknown }[] = [];
  const children: ChildProcess[] = [];
  const inproc: RunningSidecar[] = [];
  const cleanup = async () => {
    // Callers first: the frontend sidecar drains while reviews still serves what it forwards, then reviews.
    for (const c of children) {
      if (c.exitCode !== null) continue;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await exited;
    }
    for (const s of inproc) await s.shutdown();
    for (const a of apps) await a.close();
    await control.close();
    keepAlive.destroy();
    rmSync(base, { recursive: true, force: true });
  };

  const serials = new Map<string, string>();
  try {
    for (const p of pods) {
      apps.push(await startHttpApp(p));
      apps.push(await startEchoGrpc(p.name, p.ip, PORTS.grpc));
      const cfg = path.join(p.dir, 'bootstrap.json');
      if (o.inProcess) {
        const b = decodeBootstrap(JSON.parse((await import('node:fs')).readFileSync(cfg, 'utf8')), { file: cfg, baseDir: p.dir });
        inproc.push(await startSidecar({ bootstrap: b, drainMs: 2000, accessLog: new AccessLog({ target: 'off', sampleRate: 1 }, systemRng), logger: silentLogger() }));
      } else {
        const main = fileURLToPath(new URL('./main.js', import.meta.url));
        const log = openSync(path.join(p.dir, 'sidecar.log'), 'a');
        const child = spawn(process.execPath, [...SIDECAR_NODE_FLAGS, main, 'sidecar', '--config', cfg, '--access-log', path.join(p.dir, 'access.log'), '--drain-time', '2s'], {
          stdio: ['ignore', log, log],
          // Its own process group: Ctrl-C in the terminal reaches only the demo, which stops the load, lets
          // the requests in flight come back and then drains the sidecars in order (SIGTERM in cleanup).
          detached: true,
        });
        children.push(child);
        // Should the demo itself die, its sidecars must not outlive it.
        process.once('exit', () => {
          if (child.exitCode === null) child.kill('SIGTERM');
        });
      }
      await waitReady(p.ip, children.at(-1), 15_000);
      const svid = await currentSvid(p.ip);
      say(`  ${p.name} sidecar ready with its SVID from the CA (serial ${svid.serial.slice(0, 12)}…, ${DEMO_SVID_TTL} lifetime, renewed at half-life): outbound ${p.ip}:${PORTS.outbound}, inbound ${p.ip}:${PORTS.inbound} (mTLS), admin http://${p.ip}:${PORTS.admin}`);
      serials.set(p.name, svid.serial);
    }
  } catch (e) {
    await cleanup();
    throw new Error(`demo setup failed: ${(e as Error).message}. If the addresses are busy, pick others with --frontend-ip/--reviews-ip/--control-ip.`);
  }

  const [fe] = pods;
  say('');
  say('Walkthrough: the frontend app calls reviews through its own sidecar');
  const r1 = await get(fe!.ip, 'reviews:9080', '/hello');
  const b1 = JSON.parse(r1.body) as { served_by: string; caller: string; x_forwarded_client_cert: string };
  say(`  HTTP/1.1  GET http://reviews:9080/hello → ${r1.status}, served by ${b1.served_by}`);
  say(`            reviews saw caller ${b1.caller}`);
  say(`            x-forwarded-client-cert: ${b1.x_forwarded_client_cert}`);
  const r2 = await h2cGet(fe!.ip, 'reviews', '/h2c');
  say(`  h2c       GET http://reviews/h2c → ${r2.status}, served by ${(JSON.parse(r2.body) as { served_by: string }).served_by}`);
  const g = await grpcUnary(fe!.ip, 'reviews:9080');
  say(`  gRPC      Echo.Unary → "${g.message}" from ${g.served_by}, caller ${g.peer}`);
  const r3 = await get(fe!.ip, 'ratings:9080', '/');
  say(`  no route  GET http://ratings:9080/ → ${r3.status} ${r3.body}`);
  say('');

  let sent = 0;
  let failed = 0;
  // The first failure's cause is worth more than a count when a newcomer asks why.
  let firstFailure: string | undefined;
  const fail = (why: string) => {
    failed++;
    firstFailure ??= why;
  };
  let lat: number[] = [];
  let stopped = false;
  let finish: (v: { sent: number; failed: number }) => void = () => {};
  const done = new Promise<{ sent: number; failed: number }>((r) => (finish = r));
  const interval = Math.max(1, Math.round(1000 / Math.max(1, o.rate)));
  let inFlight = 0;
  let allAnswered: (() => void) | undefined;
  const loop = setInterval(() => {
    const t0 = performance.now();
    sent++;
    inFlight++;
    get(fe!.ip, 'reviews', '/load')
      .then(
        (r) => {
          if (r.status !== 200) fail(`${r.status} ${r.body.slice(0, 200)}`);
          lat.push(performance.now() - t0);
        },
        (e: unknown) => fail((e as Error).message),
      )
      .finally(() => {
        if (--inFlight === 0) allAnswered?.();
      });
  }, interval);
  const report = setInterval(() => {
    const s = lat.sort((a, b) => a - b);
    say(`[load] ${sent} sent, ${failed} failed, last 5 s: p50 ${percentile(s, 50).toFixed(1)} ms, p99 ${percentile(s, 99).toFixed(1)} ms (app → sidecar → mTLS h2 → sidecar → app)`);
    lat = [];
    // Rotation is invisible to the traffic; the serial in /certs is how to see it happened.
    for (const p of pods) {
      currentSvid(p.ip).then(
        (c) => {
          if (stopped || serials.get(p.name) === c.serial) return;
          serials.set(p.name, c.serial);
          say(`[identity] ${p.name} rotated its SVID: serial ${c.serial.slice(0, 12)}…, valid until ${c.until}`);
        },
        () => {},
      );
    }
  }, 5000);
  say(`Sending ${o.rate} req/s through the mesh; a status line every 5 s. ${o.durationMs ? `Stopping after ${o.durationMs / 1000} s.` : 'Ctrl-C to stop.'}`);
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    clearInterval(loop);
    clearInterval(report);
    // Let the requests already sent come back before the sidecars drain: both sidecars drain at once
    // here, and a request still on its way would meet a peer that is already gone.
    if (inFlight > 0) await new Promise<void>((r) => (allAnswered = r));
    say('Draining sidecars…');
    await cleanup();
    say(`Stopped: ${sent} requests sent, ${failed} failed.${firstFailure ? ` First failure: ${firstFailure}` : ''}`);
    finish({ sent, failed });
  };
  if (o.durationMs > 0) setTimeout(() => void stop(), o.durationMs).unref();
  return { stop, done };
}

export async function demoMain(argv: string[]): Promise<number> {
  const values = commandFlags(
    argv,
    {
      'frontend-ip': { type: 'string' },
      'reviews-ip': { type: 'string' },
      'control-ip': { type: 'string' },
      rate: { type: 'string' },
      duration: { type: 'string' },
    },
    DEMO_HELP,
  );
  if (!values) return 0;
  const ipOk = (v: string) => /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v);
  const frontendIp = values['frontend-ip'] ?? '127.0.10.1';
  const reviewsIp = values['reviews-ip'] ?? '127.0.10.2';
  const controlIp = values['control-ip'] ?? '127.0.10.3';
  if (![frontendIp, reviewsIp, controlIp].every(ipOk)) throw new UsageError('--frontend-ip/--reviews-ip/--control-ip must be loopback addresses (127.x.y.z)');
  // Ctrl-C during setup: exit through process.exit so the 'exit' hooks stop the sidecars already started
  // (a signal's default action would skip them and leave the children running).
  const early = () => process.exit(130);
  process.once('SIGINT', early);
  process.once('SIGTERM', early);
  const demo = await runDemo({
    frontendIp,
    reviewsIp,
    controlIp,
    rate: numberFlag('rate', values.rate, 20, 1, 10000),
    durationMs: numberFlag('duration', values.duration, 0, 0, 86400) * 1000,
  });
  process.off('SIGINT', early);
  process.off('SIGTERM', early);
  process.once('SIGINT', () => void demo.stop());
  process.once('SIGTERM', () => void demo.stop());
  const r = await demo.done;
  return r.failed === 0 ? 0 : 1;
}
