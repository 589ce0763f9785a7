// `outrigger demo` (what `npm start` runs): the bundled multi-cloud bookinfo mesh on loopback, a control server
// serving it over xDS, live load through every pod's sidecar, a scripted canary shift and a locality failure.
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
import { LoadDriver, LoadStats, View, crossText, renderLine, renderTable, splitText, type CrossCloud, type Outcome, type Target, type ViewHeader } from './demo-load.js';
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

/** One start of a pod: its apps and its sidecar (in this process, or a child process). */
interface PodInstance {
  readonly pid?: number;
  /** The sidecar drains (in-flight requests finish), then the apps close. */
  stop(): Promise<void>;
  /** As a node failure: the sidecar dies without draining (SIGKILL; in-process, every socket destroyed), the apps with it. */
  kill(): Promise<void>;
}

/** One pod of the mesh, across kills and restarts: its plan, and its current instance if it runs. */
export interface Pod {
  readonly plan: PodPlan;
  /** The sidecar's process id, when it runs as its own process. */
  readonly pid?: number;
  /** The sidecar drains (in-flight requests finish), then the apps close. A killed pod has nothing to stop. */
  stop(): Promise<void>;
  /** Kills the pod without draining (see PodInstance.kill). */
  kill(): Promise<void>;
  /** Starts a killed pod again on the same address: a new key and SVID (with a fresh bootstrap token), config over ADS. */
  restart(): Promise<void>;
}

/**
 * A timed step of the demo's script, run once the load has been going for `atMs`: the canary shift, and the
 * locality failure (failoverStep), which kills every backend pod of one region and brings them back.
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
  /** The load driver's clock (Outcome.sentAtMs is on it). */
  now(): number;
  /** Aborted when the demo stops: a step that waits gives up then. */
  readonly signal: AbortSignal;
}

/** What the canary shift did and saw; the times are ms since the load started. */
export interface ShiftReport {
  readonly writtenAtMs: number;
  readonly acceptedAtMs?: number;
  /** When every sidecar had ACKed the new routes. */
  readonly syncedAtMs?: number;
  readonly weights: readonly { subset: string; before: number; after: number }[];
}

/** What the locality failure did and saw; the times are ms since the load started. */
export interface FailoverReport {
  readonly region: string;
  /** The pods killed: every pod of the region but its frontends. */
  readonly pods: readonly string[];
  readonly killedAtMs: number;
  /** Requests that failed (anywhere in the mesh) from the kill until traffic was home again, or the demo stopped. */
  readonly failed: number;
  /** Requests the region's frontends were sent while its backends were down. */
  readonly affectedSent: number;
  /**
   * From the kill until the first of the region's frontends' requests answered with every hop in another region:
   * the moment outlier detection and the per-caller priorities moved the traffic. Not "until the last failure":
   * each subset is its own cluster with its own detector, so a rarely picked subset (the 10 % canary) may fail
   * once more seconds later, when its first request finds the dead host; that is `lastFailureMs`.
   */
  readonly switchMs?: number;
  /** From the kill until the send time of the last of the region's frontends' requests that failed while it was down. */
  readonly lastFailureMs?: number;
  /** When the last of the killed pods was running again. */
  readonly restartedAtMs?: number;
  /** When the first of the killed pods was running again: the earliest traffic can come home. */
  readonly firstBackAtMs?: number;
  /** When a run of the region's frontends' requests was answered in the region again (outlier ejection over). */
  readonly returnedAtMs?: number;
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
  readonly failover?: FailoverReport;
  /** Cross-cloud hops per period of the failover script: "before", "during" (killed), "recovering", "after" (home). */
  readonly crossCloud: ReadonlyMap<string, CrossCloud>;
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
  /** Kill the backends of the first frontend's region after this long (ms of load); 0 or unset = never. */
  readonly failAfterMs?: number;
  /** How long they stay down before they are restarted (default 10 s). */
  readonly recoverAfterMs?: number;
  /** Run the sidecars inside this process instead of as `outrigger sidecar` child processes. */
  readonly inProcess?: boolean;
  /** Moves every address up the second octet (see shiftIp), to run beside another demo or in a test. */
  readonly ipOffset?: number;
  /** Where output goes (default stdout); `tty` redraws the live table in place, `columns` its width. */
  readonly write?: (text: string) => void;
  readonly tty?: boolean;
  readonly columns?: number;
  /** More script steps. */
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
    const launch = async (p: PodPlan): Promise<PodInstance> => {
      const dir = path.join(base, 'pods', p.name);
      mkdirSync(dir, { recursive: true });
      // What a pod gets mounted: the roots to trust the CA with, and a single-use token for its first SVID (a
      // restarted pod gets a new one, as a rescheduled pod would).
      const files = { rootCert: path.join(dir, 'ca-root-cert.pem'), token: path.join(dir, 'token') };
      writeFileSync(files.rootCert, control!.authority.bundlePem);
      writeFileSync(files.token, await mintBootstrapToken(tokenKey, { spiffeId: p.spiffeId, ttlMs: 600_000, clock: systemClock }), { mode: 0o600 });
      const cfg = path.join(dir, 'bootstrap.json');
      writeFileSync(cfg, JSON.stringify(podBootstrap(p, { controlIp, trustDomain: TD, files }), null, 2));
      return startPod(p, { dir, cfg, inProcess: o.inProcess ?? false, children, fileLogger });
    };
    await eachLimited(plans, o.inProcess ? START_CONCURRENCY.inProcess : START_CONCURRENCY.processes, async (p) => {
      const t0 = systemClock.now();
      const pod = podOf(p, await launch(p), launch);
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
  let failover: FailoverReport | undefined;
  const failAfterMs = o.failAfterMs ?? 0;
  const steps: DemoStep[] = [
    ...(o.shiftAfterMs > 0 ? [canaryStep(o.shiftAfterMs, (r) => (shift = r))] : []),
    ...(failAfterMs > 0 ? [failoverStep({ atMs: failAfterMs, downMs: o.recoverAfterMs ?? 10_000, report: (r) => (failover = r) })] : []),
    ...(o.steps ?? []),
  ];
  say(
    `Load: ${o.rate} req/s over the ${targets.length} frontends${steps.length ? `; ${steps.map((s) => `${s.name} at ${seconds(s.atMs)}`).join(', ')}` : ''}. ${o.durationMs ? `Stopping after ${seconds(o.durationMs)}.` : 'Ctrl-C to stop.'}`,
  );

  let stopping: Promise<void> | undefined;
  let finish!: (r: DemoResult) => void;
  const done = new Promise<DemoResult>((r) => (finish = r));
  const aborted = new AbortController();
  const ctx: DemoContext = { pods, control: control!, meshDir, load, stats, event: say, elapsedMs, now: () => performance.now(), signal: aborted.signal };
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
      aborted.abort();
      // The answers already on their way come back before anything drains.
      await load.stop();
      await Promise.allSettled([...running]);
      view.end();
      say('');
      say(`Stopping: ${load.sent} requests sent, ${stats.ok} answered, ${stats.failed} failed${load.skipped ? `, ${load.skipped} skipped` : ''}.${stats.firstFailure ? ` First failure: ${stats.firstFailure}` : ''}`);
      const before = stats.versionsByPhase.get('before');
      const after = stats.versionsByPhase.get('after');
      if (shift) say(`reviews split before the shift: ${splitText(before, true)}; after: ${splitText(after, true)}`);
      if (failover) for (const l of failoverSummary(failover, stats.crossByPeriod)) say(l);
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
        ...(failover && { failover }),
        crossCloud: stats.crossByPeriod,
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

/** A pod across kills and restarts; `launch` starts an instance of it. */
function podOf(plan: PodPlan, first: PodInstance, launch: (p: PodPlan) => Promise<PodInstance>): Pod {
  let current: PodInstance | undefined = first;
  const take = () => {
    const c = current;
    current = undefined;
    return c;
  };
  return {
    plan,
    get pid() {
      return current?.pid;
    },
    stop: async () => take()?.stop(),
    kill: async () => take()?.kill(),
    async restart() {
      if (current) throw new Error(`${plan.name} is running`);
      current = await launch(plan);
    },
  };
}

/** Starts a pod's apps, then its sidecar, and waits until the sidecar is ready. */
async function startPod(p: PodPlan, d: PodDeps): Promise<PodInstance> {
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
      async stop() {
        const drained = await sc.shutdown();
        await closeApps();
        if (!drained) throw new Error(`${p.name} did not drain in time`);
      },
      async kill() {
        // Every listener and upstream socket destroyed at once, as a crash would; then the rest (ADS, admin,
        // certificates) is released, with nothing left to drain.
        sc.runtime.close();
        await sc.shutdown();
        await closeApps();
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
    ...(child.pid !== undefined && { pid: child.pid }),
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const code = await exited;
      d.children.delete(child);
      await closeApps();
      if (code !== 0) throw new Error(`the sidecar of ${p.name} exited with ${code}`);
    },
    async kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
      d.children.delete(child);
      await closeApps();
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

/** Consecutive answers from the home region that say traffic is back. */
const HOME_RUN = 20;

/** Every region a request's hops were answered from (reviews, ratings, and what reviews called). */
function hopRegions(a: AppAnswer): string[] {
  return Object.values(a.calls).flatMap((b) => [b.region, ...hopRegions(b)]);
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, signal.aborted ? 0 : ms);
    signal.addEventListener('abort', done);
  });
}

/**
 * The earliest send time from which on at least SWITCHED_SHARE of `xs` (sorted by send time) were served
 * elsewhere; undefined when there is none to judge.
 */
export function switchedAt(xs: readonly { readonly at: number; readonly away: boolean }[]): number | undefined {
  let first: number | undefined;
  for (const x of xs) if (x.away && (first === undefined || x.at < first)) first = x.at;
  return first;
}

export interface FailoverStepOptions {
  readonly atMs: number;
  /** How long the region's backends stay down before they are restarted. */
  readonly downMs: number;
  /** The region to take down (default: the first frontend's). */
  readonly region?: string;
  /** How long to wait for traffic to come home after the restart before saying it did not (default 120 s). */
  readonly returnTimeoutMs?: number;
  readonly report: (r: FailoverReport) => void;
}

/**
 * The scripted locality failure: kill every backend pod of one region (reviews and ratings, app and sidecar,
 * without draining), so that region's frontend must fail over to another cloud; watch its requests move (the
 * outlier detection ejects the dead hosts and the per-caller EDS priorities send the traffic to the next
 * locality, with Istio's default retries covering the moment of the switch); bring the pods back on the same
 * addresses with new SVIDs; and watch the traffic return home once the ejection time is over. The stats'
 * period follows it ("during", "recovering", "after") so the cross-cloud share is counted per phase.
 */
export function failoverStep(o: FailoverStepOptions): DemoStep {
  return {
    atMs: o.atMs,
    name: 'locality failure',
    async run(ctx) {
      const frontends = ctx.pods.filter((p) => p.plan.app === 'frontend');
      const region = o.region ?? frontends[0]?.plan.locality.region;
      const victims = ctx.pods.filter((p) => p.plan.locality.region === region && p.plan.app !== 'frontend');
      const callers = new Set(frontends.filter((p) => p.plan.locality.region === region).map((p) => p.plan.ip));
      if (!region || !victims.length || !callers.size) {
        ctx.event(`[failover] no region with both a frontend and backends to kill; skipped`);
        return;
      }
      const seen: { at: number; away: boolean; home: boolean; failed: boolean }[] = [];
      let restartAt = Infinity;
      let run = 0;
      let runFrom = 0;
      // Home again ends the wait for it.
      const homeAgain = new AbortController();
      let returnedAt: number | undefined;
      const killAt = ctx.now();
      const observe = (x: Outcome) => {
        if (x.host === undefined || !callers.has(x.host) || x.sentAtMs === undefined || x.sentAtMs < killAt) return;
        const regions = x.ok && x.answer ? hopRegions(x.answer) : [];
        const r = { at: x.sentAtMs, away: regions.length > 0 && regions.every((g) => g !== region), home: regions.length > 0 && regions.every((g) => g === region), failed: !x.ok };
        seen.push(r);
        if (r.at < restartAt || returnedAt !== undefined) return;
        run = r.home ? run + 1 : 0;
        if (run === 1) runFrom = r.at;
        if (run >= HOME_RUN) {
          returnedAt = runFrom;
          homeAgain.abort();
        }
      };
      const failedBefore = ctx.stats.failed;
      const since = (t: number) => seconds(t - killAt);
      const at = (t: number) => `[t=${seconds(ctx.elapsedMs() - (ctx.now() - t))}]`;
      const killedAtMs = ctx.elapsedMs();
      ctx.stats.observers.add(observe);
      ctx.stats.period = 'during';
      const names = victims.map((p) => p.plan.name);
      let report: FailoverReport = { region, pods: names, killedAtMs, failed: 0, affectedSent: 0 };
      try {
        await Promise.all(victims.map((p) => p.kill()));
        ctx.event(`${at(killAt)} killed the ${victims.length} backend pods of ${region} (${names.join(', ')}): app and sidecar, no drain. Its frontend must fail over to another cloud.`);
        await pause(o.downMs, ctx.signal);
        restartAt = ctx.now();
        const during = seen.filter((x) => x.at < restartAt).sort((a, b) => a.at - b.at);
        const switched = switchedAt(during);
        const lastFailure = during.filter((x) => x.failed).at(-1)?.at;
        report = {
          ...report,
          affectedSent: during.length,
          failed: ctx.stats.failed - failedBefore,
          ...(switched !== undefined && { switchMs: switched - killAt }),
          ...(lastFailure !== undefined && { lastFailureMs: lastFailure - killAt }),
        };
        ctx.event(
          `${at(restartAt)} failover: ${switched === undefined ? `${region}'s frontend was never served elsewhere` : `${region}'s frontend was first served from other clouds ${Math.round(switched - killAt)} ms after the kill`}; ${report.failed} requests failed during the switch${lastFailure !== undefined ? `, the last sent ${Math.round(lastFailure - killAt)} ms after the kill` : ''} (its frontend was sent ${during.length} while ${region} was down)`,
        );
        if (ctx.signal.aborted) return;
        ctx.stats.period = 'recovering';
        // Restarts run side by side and traffic may come home as soon as the first restarted pod serves, before
        // the slowest is back: both moments are reported.
        let firstBackAtMs: number | undefined;
        await Promise.all(victims.map((p) => p.restart().then(() => (firstBackAtMs ??= ctx.elapsedMs()))));
        const restartedAtMs = ctx.elapsedMs();
        report = { ...report, restartedAtMs, ...(firstBackAtMs !== undefined && { firstBackAtMs }) };
        ctx.event(`${at(ctx.now())} restarted them on the same addresses (new keys, SVIDs from the CA, config over ADS) in ${seconds(ctx.now() - restartAt)}; traffic returns when outlier detection lets the hosts back in (baseEjectionTime)`);
        await pause(o.returnTimeoutMs ?? 120_000, AbortSignal.any([ctx.signal, homeAgain.signal]));
        if (returnedAt === undefined) {
          ctx.event(`[failover] traffic had not returned to ${region} when the demo ${ctx.signal.aborted ? 'stopped' : `gave up waiting (${seconds(o.returnTimeoutMs ?? 120_000)})`}`);
          return;
        }
        ctx.stats.period = 'after';
        report = { ...report, returnedAtMs: killedAtMs + (returnedAt - killAt) };
        ctx.event(`${at(returnedAt)} traffic is home: ${region}'s frontend served from ${region} again (${HOME_RUN} answers in a row), ${since(returnedAt)} after the kill`);
      } finally {
        ctx.stats.observers.delete(observe);
        o.report({ ...report, failed: ctx.stats.failed - failedBefore });
      }
    },
  };
}

/** The failover's lines in the closing summary: failures, switch time, return, and cross-cloud traffic per phase. */
export function failoverSummary(f: FailoverReport, cross: ReadonlyMap<string, CrossCloud>): string[] {
  const back = f.returnedAtMs !== undefined ? `traffic home at t=${seconds(f.returnedAtMs)}` : 'traffic not home yet';
  return [
    `Failover: ${f.region} lost its ${f.pods.length} backend pods at t=${seconds(f.killedAtMs)}${f.restartedAtMs !== undefined ? `, back at t=${seconds(f.restartedAtMs)}` : ''}; ${f.failed} requests failed from the kill until ${f.returnedAtMs !== undefined ? 'traffic was home' : 'the end'}; the switch took ${f.switchMs !== undefined ? `${Math.round(f.switchMs)} ms` : '(no switch seen)'}; ${back}.`,
    `Cross-cloud answers (reviews/ratings answered from another region than their caller's): before ${crossText(cross.get('before'))}; during ${crossText(cross.get('during'))}; after ${crossText(cross.get('after'))}`,
  ];
}

export async function demoMain(argv: string[]): Promise<number> {
  const values = commandFlags(
    argv,
    {
      rate: { type: 'string' },
      duration: { type: 'string' },
      'shift-after': { type: 'string' },
      'fail-after': { type: 'string' },
      'recover-after': { type: 'string' },
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
    failAfterMs: durationFlag('fail-after', values['fail-after'], 25_000),
    recoverAfterMs: durationFlag('recover-after', values['recover-after'], 10_000),
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
  // Failures while a locality is down are the demo's point and are reported; any other failure is not.
  return r.failed - (r.failover?.failed ?? 0) === 0 && r.clean ? 0 : 1;
}
