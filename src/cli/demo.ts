// `outrigger demo` (what `npm start` runs): the bundled multi-cloud bookinfo mesh on loopback, a control server
// serving it over xDS, live load through every pod's sidecar, and a scripted canary shift.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { systemClock } from '../core/clock.js';
import { ConfigError, errorMessage } from '../core/errors.js';
import { systemRng } from '../core/rng.js';
import { loadMeshDir } from '../control/mesh/loader.js';
import { formatMeshIssue } from '../control/mesh/types.js';
import { ControlServer } from '../control/server.js';
import { loadOrCreateTokenKey, mintBootstrapToken } from '../identity/token.js';
import { AccessLog } from '../telemetry/access-log.js';
import { createLogger, type Logger } from '../telemetry/logger.js';
import { decodeBootstrap } from '../xds/bootstrap.js';
import { UsageError, commandFlags, durationFlag, numberFlag } from './args.js';
import { callEcho, startBookinfoApp, startEchoGrpc, upstreamsOf, type AppAnswer, type RunningApp } from './demo-apps.js';
import { DEMO_HELP } from './demo-help.js';
import { LoadDriver, LoadStats, View, renderLine, renderTable, splitText, type Target, type ViewHeader } from './demo-load.js';
import { BUNDLED_MESH, CONTROL_IP, PORTS, copyMesh, planPods, podBootstrap, shiftCanary, shiftIp, type PodPlan } from './demo-mesh.js';
import { SIDECAR_NODE_FLAGS } from './node-flags.js';
import { startSidecar, type RunningSidecar } from './sidecar.js';

const TD = 'cluster.local';
/** The frontend's port, bookinfo's; the load driver calls it. */
const FRONTEND_PORT = 9080;
/** The canary the script moves: the bundled reviews VirtualService (90 % v1, 10 % v2). */
const CANARY = { name: 'reviews', namespace: 'default' };
/** How long a sidecar may take to start, get its SVID and its first config on a busy 2-core machine. */
const READY_TIMEOUT_MS = 60_000;
/**
 * Sidecars started at once: a start is CPU-bound for a moment (a process loads its modules; then key, CSR and
 * the first xDS decode), then waits on the control server. One more than the cores keeps both busy.
 */
const START_CONCURRENCY = { inProcess: 5, processes: os.availableParallelism() + 1 };

/** One running pod: its plan, its apps and its sidecar (in this process, or a child process). */
export interface Pod {
  readonly plan: PodPlan;
  /** The sidecar's process id, when it runs as its own process. */
  readonly pid?: number;
  /** The sidecar drains (in-flight requests finish), then the apps close. */
  stop(): Promise<void>;
}

/**
 * A timed step of the demo's script, run once the load has been going for `atMs`. The canary shift is one;
 * issue 5's "a locality goes dark" is meant to be another: stop every pod of one region (ctx.pods, each with
 * its plan's locality and stop()) and watch the table's region columns and failure count.
 */
export interface DemoStep {
  readonly atMs: number;
  readonly name: string;
  run(ctx: DemoContext): Promise<void>;
}

export interface DemoContext {
  readonly pods: readonly Pod[];
  readonly control: ControlServer;
  /** The mesh YAML the control server watches (a working copy). */
  readonly meshDir: string;
  readonly load: LoadDriver;
  readonly stats: LoadStats;
  /** Prints a line that stays above the live table. */
  event(line: string): void;
  /** Milliseconds since the load started. */
  elapsedMs(): number;
}

/** What the canary shift did and saw; the times are ms since the load started. */
export interface ShiftReport {
  readonly writtenAtMs: number;
  readonly acceptedAtMs?: number;
  /** When every sidecar had ACKed the new routes. */
  readonly syncedAtMs?: number;
  readonly weights: readonly { subset: string; before: number; after: number }[];
}

export interface DemoResult {
  readonly sent: number;
  readonly ok: number;
  readonly failed: number;
  readonly skipped: number;
  readonly firstFailure?: string;
  /**
   * reviews versions per phase: "before" = answered before the shift was written, "after" = sent after every
   * sidecar had ACKed it, "transition" = the rest (see Outcome.phase).
   */
  readonly split: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** "caller SPIFFE ID -> service" as the called apps saw their callers (x-forwarded-client-cert). */
  readonly peers: readonly string[];
  readonly shift?: ShiftReport;
  /** Every sidecar drained within its drain time. */
  readonly clean: boolean;
}

export interface DemoOptions {
  /** Requests per second to the frontends. */
  readonly rate: number;
  /** Stop after this long (ms of load); 0 = run until stop(). */
  readonly durationMs: number;
  /** Shift the reviews canary after this long (ms of load); 0 = never. */
  readonly shiftAfterMs: number;
  /** Run the sidecars inside this process instead of as `outrigger sidecar` child processes. */
  readonly inProcess?: boolean;
  /** Moves every address up the second octet (see shiftIp), to run beside another demo or in a test. */
  readonly ipOffset?: number;
  /** Where output goes (default stdout); `tty` redraws the live table in place, `columns` its width. */
  readonly write?: (text: string) => void;
  readonly tty?: boolean;
  readonly columns?: number;
  /** More script steps (issue 5: lose a locality). */
  readonly steps?: readonly DemoStep[];
  /** The mesh YAML to copy and serve (default the bundled examples/mesh). */
  readonly meshDir?: string;
}

export interface Demo {
  readonly pods: readonly Pod[];
  readonly control: ControlServer;
  /** What the load driver has seen so far (live). */
  readonly stats: LoadStats;
  stop(): Promise<void>;
  readonly done: Promise<DemoResult>;
}

/**
 * Runs `fn` over `items` with at most `n` at once, in order. After a failure no new item starts, and the call
 * rejects with the first error only once the ones already running have finished: whatever they started is
 * then known to the caller's cleanup.
 */
async function eachLimited<T>(items: readonly T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { e: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      try {
        await fn(items[next++]!);
      } catch (e) {
        failure ??= { e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failure) throw failure.e;
}

function probeReady(ip: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: ip, port: PORTS.admin, path: '/ready', timeout: 1000, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

/** Polls the sidecar's admin /ready (SVID issued, first full config applied, listeners bound). */
async function waitReady(p: PodPlan, exited: () => string | undefined): Promise<void> {
  const deadline = systemClock.now() + READY_TIMEOUT_MS;
  for (;;) {
    const gone = exited();
    if (gone) throw new Error(`the sidecar of ${p.name} exited: ${gone}`);
    if (await probeReady(p.ip)) return;
    if (systemClock.now() > deadline) throw new Error(`the sidecar of ${p.name} (${p.ip}) was not ready within ${READY_TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The last lines of a log, to say why a sidecar process died. */
function tail(file: string, lines = 5): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** A request's path through the mesh, one hop a line. */
function describe(a: AppAnswer, indent = '    '): string[] {
  const out: string[] = [];
  for (const [svc, b] of Object.entries(a.calls)) {
    out.push(`${indent}→ ${svc} ${b.version ? `${b.version} ` : ''}in ${b.region}/${b.zone} (${b.pod}), which saw caller ${b.caller || '(none)'}`);
    out.push(...describe(b, `${indent}  `));
  }
  return out;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Starts the whole demo; `done` resolves once it has stopped (duration over, or stop()). */
export async function runDemo(o: DemoOptions): Promise<Demo> {
  const view = new View(o.write ?? ((t) => process.stdout.write(t)), o.tty ?? false, o.columns);
  const say = (l: string) => view.event(l);
  const offset = o.ipOffset ?? 0;
  const controlIp = shiftIp(CONTROL_IP, offset);
  const base = mkdtempSync(path.join(os.tmpdir(), 'outrigger-demo-'));
  const removeBase = () => rmSync(base, { recursive: true, force: true });
  // The keys in it are throw-away, but they should not outlive an interrupted demo either.
  process.once('exit', removeBase);
  const meshDir = path.join(base, 'mesh');
  const logs: { close(): void }[] = [];
  const fileLogger = (file: string): Logger => {
    const fd = openSync(file, 'a');
    logs.push({ close: () => closeSync(fd) });
    return createLogger({ destination: fd, level: 'info' });
  };

  let control: ControlServer | undefined;
  const pods: Pod[] = [];
  const children = new Set<ChildProcess>();
  const killChildren = () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  };
  process.once('exit', killChildren);
  let clean = true;
  const teardown = async () => {
    // Everything drains at once: the load has stopped and every answer is in, so no request is on its way.
    const results = await Promise.allSettled(pods.map((p) => p.stop()));
    if (results.some((r) => r.status === 'rejected')) clean = false;
    await control?.close();
    for (const l of logs.splice(0)) l.close();
    process.off('exit', killChildren);
    process.off('exit', removeBase);
    removeBase();
  };

  let plans: PodPlan[];
  try {
    copyMesh(o.meshDir ?? BUNDLED_MESH, meshDir, offset);
    try {
      control = await ControlServer.start({
        caDir: path.join(base, 'ca'),
        trustDomain: TD,
        grpcAddress: { host: controlIp, port: PORTS.xdsTls },
        xdsAddress: { host: controlIp, port: PORTS.xds },
        monitoringAddress: { host: controlIp, port: PORTS.monitoring },
        configDir: meshDir,
        serverNames: [controlIp],
        defaultTtlMs: 3600_000,
        maxTtlMs: 24 * 3600_000,
        rotationStepTimeoutMs: 600_000,
        clock: systemClock,
        logger: fileLogger(path.join(base, 'control.log')),
        registry: new Registry(),
      });
    } catch (e) {
      // An invalid mesh directory is a ConfigError naming file, line and field (exit 2).
      if (e instanceof ConfigError) throw e;
      throw new Error(`the control server could not start on ${controlIp} (ports ${PORTS.xds}, ${PORTS.xdsTls}, ${PORTS.monitoring}): ${errorMessage(e)}`);
    }
    // The control server accepted this directory a moment ago; the pods are its WorkloadEntries.
    const loaded = await loadMeshDir(meshDir);
    if (!loaded.ok) throw new Error(`the mesh config changed under the demo: ${loaded.issues.map(formatMeshIssue).join('; ')}`);
    plans = planPods(loaded.config, TD);
    if (!plans.some((p) => p.app === 'frontend')) throw new UsageError(`the mesh in ${o.meshDir ?? BUNDLED_MESH} has no WorkloadEntry labelled app: frontend for the load driver to call`);
    say(`Outrigger demo: ${plans.length} pods of bookinfo across ${new Set(plans.map((p) => p.locality.region)).size} clouds, on loopback. Working directory ${base}`);
    say(`  control server on ${controlIp}: xDS + mesh CA over mTLS :${PORTS.xdsTls}, plaintext xDS :${PORTS.xds}, monitoring :${PORTS.monitoring}`);
    say(`    new self-signed root ${control.authority.roots[0]!.fingerprint256.slice(0, 23)}…; watching ${meshDir} (edit it live)`);
    say(`    \`outrigger status --control http://${controlIp}:${PORTS.monitoring}\` shows the CA, the config and every sidecar's xDS state`);
    const tokenKey = await loadOrCreateTokenKey(path.join(base, 'ca'));
    const sidecarStarted = systemClock.now();
    say(`  starting ${plans.length} pods (app + sidecar ${o.inProcess ? 'in this process' : 'process'} each; identity from the CA, config over ADS):`);
    await eachLimited(plans, o.inProcess ? START_CONCURRENCY.inProcess : START_CONCURRENCY.processes, async (p) => {
      const dir = path.join(base, 'pods', p.name);
      mkdirSync(dir, { recursive: true });
      // What a pod gets mounted: the roots to trust the CA with, and a single-use token for its first SVID.
      const files = { rootCert: path.join(dir, 'ca-root-cert.pem'), token: path.join(dir, 'token') };
      writeFileSync(files.rootCert, control!.authority.bundlePem);
      writeFileSync(files.token, await mintBootstrapToken(tokenKey, { spiffeId: p.spiffeId, ttlMs: 600_000, clock: systemClock }), { mode: 0o600 });
      const cfg = path.join(dir, 'bootstrap.json');
      writeFileSync(cfg, JSON.stringify(podBootstrap(p, { controlIp, trustDomain: TD, files }), null, 2));
      const t0 = systemClock.now();
      const pod = await startPod(p, { dir, cfg, inProcess: o.inProcess ?? false, children, fileLogger });
      pods.push(pod);
      const l = p.locality;
      say(`    ${p.name.padEnd(26)} ${p.ip.padEnd(13)} ${`${l.region}/${l.zone}`.padEnd(26)} ${p.spiffeId}  ready in ${seconds(systemClock.now() - t0)}${pod.pid ? `, pid ${pod.pid}` : ''}`);
    });
    say(`  all ${pods.length} sidecars ready in ${seconds(systemClock.now() - sidecarStarted)}: each holds its SVID and its listeners, routes, clusters and endpoints from the control server`);
  } catch (e) {
    await teardown();
    if (e instanceof ConfigError || e instanceof UsageError) throw e;
    throw new Error(`demo setup failed: ${errorMessage(e)}. If the addresses are busy (another demo?), move the demo with --ip-offset N.`);
  }
  pods.sort((a, b) => plans.indexOf(a.plan) - plans.indexOf(b.plan));

  const frontends = plans.filter((p) => p.app === 'frontend');
  const targets: Target[] = frontends.map((p) => ({ host: p.ip, port: FRONTEND_PORT }));
  // The script's clock starts with the load (after the walkthrough): steps run at atMs on it.
  let started = performance.now();
  const elapsedMs = () => performance.now() - started;
  const stats = new LoadStats();
  const load = new LoadDriver({ targets, rate: o.rate, now: () => performance.now(), onOutcome: (x) => stats.record(x) });

  // Walkthrough: one request, and one as the user the VirtualService routes to v3, shown hop by hop.
  const fe = targets[0]!;
  say('');
  say(`One request to the frontend in ${frontends[0]!.locality.region} (http://${fe.host}:${fe.port}/productpage):`);
  for (const [label, headers] of [['', {}], ['as end-user jason (the reviews VirtualService routes jason to v3)', { 'end-user': 'jason' }]] as const) {
    const r = await load.request(fe, headers);
    if (label) say(`  ${label}:`);
    if (r.ok && r.answer) {
      say(`    ${r.answer.pod} (${r.answer.region}) answered in ${r.ms.toFixed(1)} ms`);
      for (const l of describe(r.answer)) say(l);
    } else say(`    failed: ${r.error}`);
  }
  // gRPC goes the same way: from the frontend's side through its sidecar, HTTP/2 over mTLS to the far one.
  const grpcPort = plans.flatMap((p) => p.ports).find((p) => p.protocol === 'GRPC');
  if (grpcPort) {
    const authority = `${grpcPort.host.split('.')[0]}:${grpcPort.servicePort}`;
    const g = await callEcho(`${frontends[0]!.ip}:${PORTS.outbound}`, authority, 'hello over gRPC').then(
      (v) => `"${v.message}" from ${v.served_by}, which saw caller ${v.peer}`,
      (e: unknown) => `failed: ${errorMessage(e)}`,
    );
    say(`  gRPC Echo.Unary to ${authority} through the same sidecar: ${g}`);
  }
  say('');

  let shift: ShiftReport | undefined;
  const regions = [...new Set(plans.map((p) => p.locality.region))];
  const header = (): ViewHeader => ({
    elapsedS: Math.round(elapsedMs() / 1000),
    sent: load.sent,
    failed: stats.failed,
    skipped: load.skipped,
    regions,
    // In call order: the frontend, what it calls, then the rest.
    services: [...new Set(['frontend', ...upstreamsOf('frontend', ''), ...plans.map((p) => p.app)])].filter((a) => plans.some((p) => p.app === a)),
    versions: [...new Set(plans.filter((p) => p.app === CANARY.name).map((p) => p.version))].sort(),
    ...(shift && { split: { before: stats.versionsByPhase.get('before'), after: stats.versionsByPhase.get('after') } }),
  });
  const steps: DemoStep[] = [...(o.shiftAfterMs > 0 ? [canaryStep(o.shiftAfterMs, (r) => (shift = r))] : []), ...(o.steps ?? [])];
  say(
    `Load: ${o.rate} req/s over the ${targets.length} frontends${steps.length ? `; ${steps.map((s) => `${s.name} at ${seconds(s.atMs)}`).join(', ')}` : ''}. ${o.durationMs ? `Stopping after ${seconds(o.durationMs)}.` : 'Ctrl-C to stop.'}`,
  );

  let stopping: Promise<void> | undefined;
  let finish!: (r: DemoResult) => void;
  const done = new Promise<DemoResult>((r) => (finish = r));
  const ctx: DemoContext = { pods, control: control!, meshDir, load, stats, event: say, elapsedMs };
  const timers: ReturnType<typeof setTimeout>[] = [];
  const running = new Set<Promise<void>>();
  load.phase = 'before';
  started = performance.now();
  load.start();
  let splitShown = false;
  const tick = setInterval(() => {
    const w = stats.roll();
    const h = header();
    view.show(renderTable(h, w), renderLine(h, w));
    // A few seconds after every sidecar has the change, the split it made, as a line that stays.
    if (shift?.syncedAtMs !== undefined && !splitShown && elapsedMs() - shift.syncedAtMs >= 3000) {
      splitShown = true;
      say(`[t=${seconds(elapsedMs())}] reviews split before the change: ${splitText(stats.versionsByPhase.get('before'), true)}; since: ${splitText(stats.versionsByPhase.get('after'), true)}`);
    }
  }, 1000);
  for (const s of steps) {
    timers.push(
      setTimeout(() => {
        const p = s.run(ctx).catch((e: unknown) => say(`[${s.name}] failed: ${errorMessage(e)}`));
        running.add(p);
        void p.finally(() => running.delete(p));
      }, s.atMs),
    );
  }

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      for (const t of timers) clearTimeout(t);
      clearInterval(tick);
      // The answers already on their way come back before anything drains.
      await load.stop();
      await Promise.allSettled([...running]);
      view.end();
      say('');
      say(`Stopping: ${load.sent} requests sent, ${stats.ok} answered, ${stats.failed} failed${load.skipped ? `, ${load.skipped} skipped` : ''}.${stats.firstFailure ? ` First failure: ${stats.firstFailure}` : ''}`);
      const before = stats.versionsByPhase.get('before');
      const after = stats.versionsByPhase.get('after');
      if (shift) say(`reviews split before the shift: ${splitText(before, true)}; after: ${splitText(after, true)}`);
      say(`Draining ${pods.length} sidecars, closing the control server, removing ${base}…`);
      await teardown().catch((e: unknown) => {
        clean = false;
        say(`cleanup failed: ${errorMessage(e)}`);
      });
      say(clean ? 'Stopped cleanly.' : 'Stopped; some sidecars did not drain in time.');
      finish({
        sent: load.sent,
        ok: stats.ok,
        failed: stats.failed,
        skipped: load.skipped,
        ...(stats.firstFailure !== undefined && { firstFailure: stats.firstFailure }),
        split: stats.versionsByPhase,
        peers: [...stats.peers].sort(),
        ...(shift && { shift }),
        clean,
      });
    })();
    return stopping;
  };
  if (o.durationMs > 0) timers.push(setTimeout(() => void stop(), o.durationMs));
  return { pods, control: control!, stats, stop, done };
}

interface PodDeps {
  readonly dir: string;
  readonly cfg: string;
  readonly inProcess: boolean;
  readonly children: Set<ChildProcess>;
  readonly fileLogger: (file: string) => Logger;
}

/**
 * `outrigger sidecar` as this build runs it: node with the sidecar's heap flags and dist/cli/main.js; when the
 * demo itself runs from TypeScript source under a loader (the tests), main.ts under the same loader.
 */
function sidecarCommand(): string[] {
  const self = fileURLToPath(import.meta.url);
  const dir = path.dirname(self);
  return self.endsWith('.ts') ? [...process.execArgv, path.join(dir, 'main.ts')] : [...SIDECAR_NODE_FLAGS, path.join(dir, 'main.js')];
}

/** Starts a pod's apps, then its sidecar, and waits until the sidecar is ready. */
async function startPod(p: PodPlan, d: PodDeps): Promise<Pod> {
  const apps: (RunningApp | { close(): Promise<void> })[] = [];
  const closeApps = async () => {
    await Promise.all(apps.map((a) => a.close()));
  };
  try {
    const id = { pod: p.name, app: p.app, version: p.version, region: p.locality.region, zone: p.locality.zone };
    for (const port of p.ports) {
      if (port.protocol === 'GRPC') apps.push(await startEchoGrpc(p.name, p.ip, port.port));
      else apps.push(await startBookinfoApp({ id, host: p.ip, port: port.port, outbound: { host: p.ip, port: PORTS.outbound }, upstreams: upstreamsOf(p.app, p.version) }));
    }
  } catch (e) {
    await closeApps();
    throw new Error(`the app of ${p.name} could not listen on ${p.ip}: ${errorMessage(e)}`);
  }
  if (d.inProcess) {
    let sc: RunningSidecar;
    try {
      const b = decodeBootstrap(JSON.parse(readFileSync(d.cfg, 'utf8')), { file: d.cfg, baseDir: d.dir });
      sc = await startSidecar({ bootstrap: b, drainMs: 2000, accessLog: new AccessLog({ target: 'off', sampleRate: 1 }, systemRng), logger: d.fileLogger(path.join(d.dir, 'sidecar.log')) });
    } catch (e) {
      await closeApps();
      throw e;
    }
    try {
      await waitReady(p, () => undefined);
    } catch (e) {
      await sc.shutdown();
      await closeApps();
      throw e;
    }
    return {
      plan: p,
      async stop() {
        const drained = await sc.shutdown();
        await closeApps();
        if (!drained) throw new Error(`${p.name} did not drain in time`);
      },
    };
  }
  const logFile = path.join(d.dir, 'sidecar.log');
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, [...sidecarCommand(), 'sidecar', '--config', d.cfg, '--access-log', path.join(d.dir, 'access.log'), '--access-log-sample', '0.01', '--drain-time', '2s'], {
    stdio: ['ignore', log, log],
    // Its own process group: Ctrl-C in the terminal reaches only the demo, which stops the load, lets the
    // answers come back and then drains the sidecars (SIGTERM).
    detached: true,
  });
  closeSync(log);
  d.children.add(child);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    await waitReady(p, () => (child.exitCode !== null ? `code ${child.exitCode}\n${tail(logFile)}` : undefined));
  } catch (e) {
    child.kill('SIGTERM');
    await exited;
    d.children.delete(child);
    await closeApps();
    throw e;
  }
  return {
    plan: p,
    ...(child.pid !== undefined && { pid: child.pid }),
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const code = await exited;
      d.children.delete(child);
      await closeApps();
      if (code !== 0) throw new Error(`the sidecar of ${p.name} exited with ${code}`);
    },
  };
}

/** Polls the control server until every connected sidecar has ACKed an RDS version other than `before`'s. */
async function routesSynced(control: ControlServer, before: ReadonlyMap<string, string | undefined>, timeoutMs: number): Promise<boolean> {
  const deadline = systemClock.now() + timeoutMs;
  for (;;) {
    const nodes = control.status().xds?.nodes ?? [];
    const synced = nodes.every((n) => {
      const rds = n.types.rds;
      return rds?.state === 'SYNCED' && rds.acked_version !== before.get(n.connection_id);
    });
    if (synced) return true;
    if (systemClock.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The scripted config change: the reviews canary from 90/10 to 50/50, written to the watched YAML like a
 * deploy tool would (temp file, rename). Shows when it was written, when the control server accepted it
 * (nextConfigReload), when every sidecar had ACKed the new routes, and the split before and after: requests
 * sent from the write until the last ACK count for neither side.
 */
export function canaryStep(atMs: number, report: (r: ShiftReport) => void, syncTimeoutMs = 10_000): DemoStep {
  return {
    atMs,
    name: 'canary shift',
    async run(ctx) {
      const before = ctx.control.status();
      const acks = new Map((before.xds?.nodes ?? []).map((n) => [n.connection_id, n.types.rds?.acked_version]));
      const reloaded = ctx.control.nextConfigReload();
      ctx.load.phase = 'shifting';
      const writtenAtMs = ctx.elapsedMs();
      const change = shiftCanary(ctx.meshDir, CANARY);
      if (!change) {
        ctx.event(`[canary] no VirtualService ${CANARY.name} with a weighted route in ${ctx.meshDir}; nothing to shift`);
        ctx.load.phase = 'before';
        return;
      }
      const weights = change.weights.map((w) => `${w.subset} ${w.before} → ${w.after}`).join(', ');
      ctx.event(`[t=${seconds(writtenAtMs)}] wrote VirtualService ${CANARY.name} (${path.basename(change.file)}, route ${change.route}): ${weights}`);
      const r: { writtenAtMs: number; acceptedAtMs?: number; syncedAtMs?: number } = { writtenAtMs };
      await reloaded;
      const now = ctx.control.status().config;
      // The generation counts accepted configs: a reload that did not raise it was a rejection.
      if ((now?.generation ?? 0) <= (before.config?.generation ?? 0)) {
        ctx.event(`[t=${seconds(ctx.elapsedMs())}] the control server REJECTED it and keeps serving the previous config: ${now?.rejected?.issues.join('; ') ?? 'see outrigger status'}`);
        ctx.load.phase = 'before';
      } else {
        r.acceptedAtMs = ctx.elapsedMs();
        ctx.event(`[t=${seconds(r.acceptedAtMs)}] control server accepted it (config generation ${now!.generation}), ${Math.round(r.acceptedAtMs - writtenAtMs)} ms after the write`);
        if (await routesSynced(ctx.control, acks, syncTimeoutMs)) {
          r.syncedAtMs = ctx.elapsedMs();
          ctx.event(`[t=${seconds(r.syncedAtMs)}] every sidecar ACKed the new routes over ADS, ${Math.round(r.syncedAtMs - writtenAtMs)} ms after the write`);
        } else ctx.event(`[canary] not every sidecar ACKed the new routes within ${seconds(syncTimeoutMs)}; \`outrigger status\` shows which`);
        ctx.load.phase = 'after';
      }
      report({ ...r, weights: change.weights });
    },
  };
}

export async function demoMain(argv: string[]): Promise<number> {
  const values = commandFlags(
    argv,
    {
      rate: { type: 'string' },
      duration: { type: 'string' },
      'shift-after': { type: 'string' },
      'in-process': { type: 'boolean' },
      'ip-offset': { type: 'string' },
      mesh: { type: 'string' },
    },
    DEMO_HELP,
  );
  if (!values) return 0;
  const opts: DemoOptions = {
    rate: numberFlag('rate', values.rate, 50, 1, 2000),
    durationMs: durationFlag('duration', values.duration, 0),
    shiftAfterMs: durationFlag('shift-after', values['shift-after'], 10_000),
    inProcess: values['in-process'] ?? false,
    ipOffset: numberFlag('ip-offset', values['ip-offset'], 0, 0, 200),
    ...(values.mesh !== undefined && { meshDir: values.mesh }),
    tty: process.stdout.isTTY === true,
    columns: process.stdout.columns ?? 0,
  };
  if (!Number.isInteger(opts.ipOffset)) throw new UsageError('--ip-offset must be a whole number');
  // Ctrl-C during setup: exit through process.exit so the 'exit' hooks stop the sidecars already started
  // and remove the working directory (a signal's default action would skip them).
  const early = () => {
    process.stdout.write('\nInterrupted: stopping the sidecars started so far.\n');
    process.exit(130);
  };
  process.once('SIGINT', early);
  process.once('SIGTERM', early);
  const demo = await runDemo(opts);
  process.off('SIGINT', early);
  process.off('SIGTERM', early);
  // First Ctrl-C: stop the load, drain, clean up. A second one while that runs: leave now.
  const onSignal = () => {
    process.once('SIGINT', early);
    process.once('SIGTERM', early);
    void demo.stop();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const r = await demo.done;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  return r.failed === 0 && r.clean ? 0 : 1;
}
