// Process management for the benchmark: spawn children in their own process groups, wait for ports/HTTP,
// read /proc accounting, and make sure every child (and its workers) dies on exit, failure or signal.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

/** Every live child we started: pid -> { name, pgid }. The pgid is the child's own (spawned detached). */
const children = new Map();
let pgidFile;

/** Remember our process groups on disk so a later run can reap leftovers of a crashed one. */
function persist() {
  if (!pgidFile) return;
  try {
    writeFileSync(pgidFile, JSON.stringify([...children.values()].map((c) => ({ name: c.name, pgid: c.pgid, cmd: c.cmd }))));
  } catch {
    /* best effort */
  }
}

/**
 * Kill process groups left behind by an earlier run that died without cleanup (e.g. SIGKILL of the harness).
 * Only groups whose leader's command line still contains `marker` (our bench directory) are touched.
 */
export function reapStale(file, marker) {
  pgidFile = file;
  if (!existsSync(file)) return 0;
  let n = 0;
  try {
    for (const { pgid } of JSON.parse(readFileSync(file, 'utf8'))) {
      let cmdline = '';
      try {
        cmdline = readFileSync(`/proc/${pgid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      } catch {
        continue; // gone already
      }
      if (cmdline.includes(marker)) {
        try {
          process.kill(-pgid, 'SIGKILL');
          n++;
        } catch {
          /* raced with exit */
        }
      }
    }
  } catch {
    /* unreadable file: ignore */
  }
  writeFileSync(file, '[]');
  return n;
}

/**
 * Start a child in its own process group (so nginx workers die with their master), stdout/stderr to files.
 * `ipc: true` adds Node's IPC channel (the child, a node script even under `taskset`, gets process.send).
 * Returns { pid, name, child, exited (promise of {code, signal}), stop() }.
 */
export function start(name, cmd, args, { cwd, env, stdoutFile, stderrFile, ipc = false } = {}) {
  const out = stdoutFile ? openSync(stdoutFile, 'a') : 'ignore';
  const err = stderrFile ? openSync(stderrFile, 'a') : 'ignore';
  const child = spawn(cmd, args, { cwd, env: env ?? process.env, stdio: ['ignore', out, err, ...(ipc ? ['ipc'] : [])], detached: true });
  if (typeof out === 'number') closeSync(out);
  if (typeof err === 'number') closeSync(err);
  const rec = { name, pgid: child.pid, cmd: `${cmd} ${args.join(' ')}`, child, alive: true };
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      rec.alive = false;
      children.delete(child.pid);
      persist();
      resolve({ code, signal });
    });
    child.on('error', (e) => {
      rec.alive = false;
      children.delete(child.pid);
      persist();
      resolve({ code: -1, signal: null, error: e });
    });
  });
  if (child.pid) {
    children.set(child.pid, rec);
    persist();
  }
  return {
    name,
    pid: child.pid,
    child,
    exited,
    get alive() {
      return rec.alive;
    },
    /** TERM the whole group, KILL it after graceMs. */
    async stop(graceMs = 3000) {
      if (!child.pid) return;
      signalGroup(child.pid, 'SIGTERM');
      const t = sleep(graceMs).then(() => 'timeout');
      if ((await Promise.race([exited, t])) === 'timeout') signalGroup(child.pid, 'SIGKILL');
      await exited;
      // Workers of a killed master may outlive it in the group: make sure the group is empty.
      signalGroup(child.pid, 'SIGKILL');
    },
  };
}

function signalGroup(pgid, sig) {
  try {
    process.kill(-pgid, sig);
  } catch {
    /* no such group */
  }
}

/** Runs a harness's main(): exit with its code, or 1 with the stack; every child is killed either way. */
export function runMain(main, log) {
  main().then(
    (code) => {
      killAll();
      process.exit(code);
    },
    (e) => {
      log(`FAILED: ${e.stack ?? e.message}`);
      killAll();
      process.exit(1);
    },
  );
}

/** Synchronous last-resort kill of everything we started (safe inside process.on('exit')). */
export function killAll() {
  for (const pgid of children.keys()) signalGroup(pgid, 'SIGKILL');
  children.clear();
  persist();
}

/** Kill children on normal exit, uncaught errors and Ctrl-C/TERM. Call once at startup. */
export function installCleanup(log = console.error) {
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      log(`\nbench: ${sig}, stopping children`);
      killAll();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (e) => {
    log(`bench: uncaught: ${e?.stack ?? e}`);
    killAll();
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => {
    log(`bench: unhandled rejection: ${e?.stack ?? e}`);
    killAll();
    process.exit(1);
  });
}

/** Reserve n distinct free TCP ports on 127.0.0.1 (held open together so they're distinct, then released). */
export async function freePorts(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      await new Promise((res, rej) => s.once('error', rej).listen(0, '127.0.0.1', res));
      servers.push(s);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/** Resolve when a TCP connect to host:port succeeds; reject after timeoutMs or when proc exits. */
export async function waitForPort(port, { host = '127.0.0.1', timeoutMs = 15000, proc } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc && !proc.alive) throw new Error(`${proc.name} exited before listening on ${port}`);
    const ok = await new Promise((res) => {
      const s = net.connect(port, host);
      s.once('connect', () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`timeout waiting for ${host}:${port}${proc ? ` (${proc.name})` : ''}`);
}

/** Minimal HTTP/1.1 GET; resolves { status, body }. */
export function httpGet(port, path = '/', { host = '127.0.0.1', headers = {}, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Poll GET url until it returns 200 (e.g. a sidecar's admin /ready). */
export async function waitForHttp200(port, path, { timeoutMs = 20000, proc } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (proc && !proc.alive) throw new Error(`${proc.name} exited before ${path} was 200 (last: ${last})`);
    try {
      const r = await httpGet(port, path, { timeoutMs: 1000 });
      if (r.status === 200) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = e.message;
    }
    await sleep(100);
  }
  throw new Error(`timeout waiting for 127.0.0.1:${port}${path} (last: ${last})`);
}

// ---- /proc accounting ----------------------------------------------------------------------------------

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  return Number(r.stdout?.trim()) || 100;
})();

/** The pid and all its descendants (nginx master + worker), found by scanning /proc for ppid links. */
export function processTree(rootPid) {
  const parentOf = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(d), Number(rest[1]));
    } catch {
      /* exited meanwhile */
    }
  }
  const out = [rootPid];
  for (let i = 0; i < out.length; i++) for (const [pid, ppid] of parentOf) if (ppid === out[i]) out.push(pid);
  return out.filter((p) => parentOf.has(p));
}

/** utime+stime of one pid, in seconds. */
export function cpuSeconds(pid) {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ", field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12.
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** VmRSS and VmHWM of one pid, in KiB. */
export function memKiB(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const get = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0);
    return { rss: get('VmRSS'), hwm: get('VmHWM') };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

/** CPU seconds summed over the trees of several root pids (one root per hop). */
export function cpuOfRoots(rootPids) {
  let t = 0;
  for (const r of rootPids) for (const p of processTree(r)) t += cpuSeconds(p);
  return t;
}

/** Memory per root (summed over that root's tree), in KiB: [{ rss, hwm }]. */
export function memOfRoots(rootPids) {
  return rootPids.map((r) => processTree(r).reduce((a, p) => {
    const m = memKiB(p);
    return { rss: a.rss + m.rss, hwm: a.hwm + m.hwm };
  }, { rss: 0, hwm: 0 }));
}

/**
 * Sample VmRSS of the given roots every intervalMs until stop() is called; returns per-root max RSS (KiB).
 * VmHWM already gives the kernel's peak; this gives the RSS actually held *during* load.
 */
export function sampleRss(rootPids, intervalMs = 250) {
  const max = rootPids.map(() => 0);
  const tick = () => memOfRoots(rootPids).forEach((m, i) => {
    if (m.rss > max[i]) max[i] = m.rss;
  });
  tick();
  const h = setInterval(tick, intervalMs);
  return {
    stop() {
      clearInterval(h);
      tick();
      return max;
    },
  };
}

/** Run a command to completion, capturing output; rejects on spawn failure, never on exit code. */
export function run(cmd, args, { timeoutMs = 120000, env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env, detached: true });
    const rec = { name: cmd, pgid: child.pid, cmd: `${cmd} ${args.join(' ')}`, child, alive: true };
    if (child.pid) children.set(child.pid, rec);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      children.delete(child.pid);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child.pid);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Machine-wide busy CPU seconds so far (all cores), from /proc/stat. */
export function machineBusySeconds() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return (user + nice + system + irq + softirq + (steal || 0)) / CLK_TCK;
}

/** CPU seconds of this process plus all its children that have exited and been reaped (wrk, h2load, ...). */
export function selfAndReapedSeconds() {
  const st = readFileSync('/proc/self/stat', 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
}

/**
 * Measures how much CPU *other* programs on the machine used during a phase: machine busy time minus what
 * the bench itself used (the given live process trees + this process + its reaped children). Call
 * begin() before the phase, end() after the phase's tools have exited; returns cores used by others.
 */
export function foreignCpu(liveRoots) {
  const sample = () => ({ busy: machineBusySeconds(), ours: cpuOfRoots(liveRoots) + selfAndReapedSeconds(), t: process.hrtime.bigint() });
  const a = sample();
  return {
    end() {
      const b = sample();
      const secs = Number(b.t - a.t) / 1e9;
      const other = b.busy - a.busy - (b.ours - a.ours);
      return secs > 0 ? Math.max(0, other / secs) : null;
    },
  };
}

/**
 * The machine is shared: wait (up to limitMs) until other programs use less than a quarter of a core for 3 s
 * in a row, so a measurement starts quiet. `roots`: our own live processes, not counted as others. Returns a
 * note for the report.
 */
export async function waitForQuiet(limitMs, roots = []) {
  if (limitMs <= 0) return 'idle wait skipped';
  const t0 = Date.now();
  let quiet = 0;
  let last = null;
  while (Date.now() - t0 < limitMs) {
    const m = foreignCpu(roots);
    await sleep(1000);
    last = m.end();
    quiet = last < 0.25 ? quiet + 1 : 0;
    if (quiet >= 3) return `machine quiet after ${((Date.now() - t0) / 1000).toFixed(0)} s`;
  }
  return `machine still busy after waiting ${(limitMs / 1000).toFixed(0)} s (other programs at ${last?.toFixed(2)} cores); ran anyway`;
}
