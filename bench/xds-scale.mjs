#!/usr/bin/env node
// xDS scale benchmark: N simulated ADS clients against one control server; config change -> last ACK (p50, p99), server CPU and peak RSS, for N = 500, 1,000 and 2,000. Writes the "xDS scale" section of bench/RESULTS.md.
//
// Per N: a fresh `outrigger control` (its own process, pinned to CPU 0) serving a temp copy of examples/mesh,
// and bench/xds-clients.mjs (pinned to CPU 1) opening N ADS streams. Once all are synced, the reviews canary
// is flipped 90/10 <-> 50/50 by rewriting reviews.yaml atomically: two unmeasured warm-up flips (the first
// teaches every client the versions of the other config, read off /status; the second warms V8), then
// --changes measured flips, each timed from just before the write to the ACK with which each client holds
// the new config's versions of every type. The time includes the watcher's 100 ms debounce (istiod's
// PILOT_DEBOUNCE_AFTER), as a user's edit would.
//
// Usage: node bench/xds-scale.mjs [--clients 500,1000,2000] [--changes 5] [--streams-per-channel 1]
//        [--cpu-prof] (profiles the server into bench/out/xds/n<N>/, leaves RESULTS.md alone)
// Environment: BENCH_IDLE_WAIT (60s: wait for other programs to go quiet before the measured changes),
// BENCH_XDS_CHANGE_TIMEOUT (120s: a change not converged by then fails the run, naming clients still waiting).
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { percentile, seconds } from './lib/load.mjs';
import * as procs from './lib/procs.mjs';
import { replaceSection, table } from './lib/report.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const DIST = path.join(ROOT, 'dist');
const OUT = path.join(BENCH, 'out', 'xds');
const MAIN = path.join(DIST, 'cli', 'main.js');
const TARGET = { clients: 2000, p99Ms: 2000 };
const CHANGE_TIMEOUT_MS = seconds(process.env.BENCH_XDS_CHANGE_TIMEOUT ?? '120s') * 1000;
const IDLE_WAIT_MS = seconds(process.env.BENCH_IDLE_WAIT ?? '60s') * 1000;
const log = (m) => console.error(`[bench-xds ${new Date().toISOString().slice(11, 19)}] ${m}`);
const now = () => Number(process.hrtime.bigint()) / 1e6;

if (!existsSync(MAIN)) {
  log('dist/ is missing: run `npm run build` first');
  process.exit(2);
}
const { SIDECAR_NODE_FLAGS } = await import(pathToFileURL(path.join(DIST, 'cli', 'node-flags.js')).href);
const { writeFilesAtomic } = await import(pathToFileURL(path.join(DIST, 'identity', 'ca-dir.js')).href);

const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '500,1000,2000' },
    changes: { type: 'string', default: '5' },
    'streams-per-channel': { type: 'string', default: '1' },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const SIZES = args.clients.split(',').map(Number);
const CHANGES = Number(args.changes);
if (SIZES.some((n) => !Number.isInteger(n) || n < 1) || !(CHANGES >= 1)) {
  log('usage: node bench/xds-scale.mjs [--clients 500,1000,2000] [--changes 5] [--streams-per-channel 1] [--cpu-prof]');
  process.exit(2);
}

/** The IPC channel of the client process as a queue per message type; a 'failed' message fails every wait. */
function messenger(proc) {
  const queues = new Map();
  const waiters = new Map();
  let failure;
  const take = (type) => queues.get(type)?.shift();
  proc.child.on('message', (m) => {
    if (m.type === 'progress') return log(`  ${m.synced}/${m.started} streams synced`);
    if (m.type === 'failed') {
      failure = new Error(`client process: ${m.message}`);
      for (const w of waiters.values()) w.reject(failure);
      return waiters.clear();
    }
    const w = waiters.get(m.type);
    if (w) {
      waiters.delete(m.type);
      w.resolve(m);
    } else queues.set(m.type, [...(queues.get(m.type) ?? []), m]);
  });
  proc.exited.then(({ code, signal }) => {
    failure ??= new Error(`client process exited (${code ?? signal}); see its log`);
    for (const w of waiters.values()) w.reject(failure);
    waiters.clear();
  });
  return {
    send: (m) => proc.child.send(m),
    /** The next message of `type` (queued or to come); rejects after timeoutMs. */
    next(type, timeoutMs) {
      const q = take(type);
      if (q) return Promise.resolve(q);
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(type);
          reject(new Error(`no '${type}' from the client process within ${timeoutMs / 1000} s`));
        }, timeoutMs);
        waiters.set(type, { resolve: (m) => (clearTimeout(timer), resolve(m)), reject: (e) => (clearTimeout(timer), reject(e)) });
      });
    },
  };
}

/** Polls the control server's /status until config generation `gen` is served and all n proxies ACKed it (warm-up only). */
async function statusSynced(monPort, n, gen, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const r = await procs.httpGet(monPort, '/status', { timeoutMs: 10_000 }).catch((e) => ({ status: 0, body: e.message }));
    if (r.status === 200) {
      const s = JSON.parse(r.body);
      const nodes = s.xds?.nodes ?? [];
      const stale = nodes.filter((x) => Object.values(x.types).some((t) => t.state !== 'SYNCED')).length;
      if (s.config?.generation === gen && nodes.length === n && stale === 0) return;
      last = `generation ${s.config?.generation}, ${nodes.length} connected, ${stale} not synced`;
    } else last = `HTTP ${r.status} ${r.body}`;
    await new Promise((res) => setTimeout(res, 250));
  }
  throw new Error(`proxies not synced on generation ${gen} after ${timeoutMs / 1000} s (last: ${last})`);
}

async function taskset() {
  return (await procs.run('sh', ['-c', 'command -v taskset'])).code === 0;
}

/** One N: server and clients up, warm-up, measured changes; the numbers for one table row. */
async function runOne(n, pin) {
  const dir = path.join(OUT, `n${n}`);
  rmSync(dir, { recursive: true, force: true });
  const meshDir = path.join(dir, 'mesh');
  cpSync(path.join(ROOT, 'examples', 'mesh'), meshDir, { recursive: true });
  const canary = readFileSync(path.join(meshDir, 'reviews.yaml'), 'utf8');
  const even = canary.replace(/weight: 90\n/, 'weight: 50\n').replace(/weight: 10\n/, 'weight: 50\n');
  if (even === canary || /weight: (90|10)\n/.test(even)) throw new Error('examples/mesh/reviews.yaml no longer has the 90/10 canary this bench flips');
  const configs = { A: canary, B: even };
  const [xdsPort, grpcPort, monPort] = await procs.freePorts(3);
  const pinned = (cpu, argv) => (pin ? ['taskset', ['-c', String(cpu), ...argv]] : [argv[0], argv.slice(1)]);

  log(`N=${n}: control server${pin ? ' on CPU 0' : ''}`);
  const control = procs.start(
    'control',
    ...pinned(0, [process.execPath, ...SIDECAR_NODE_FLAGS, ...(args['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', dir] : []), MAIN, 'control', '--config', meshDir, '--ca-dir', path.join(dir, 'ca'), '--xds-address', `127.0.0.1:${xdsPort}`, '--grpc-address', `127.0.0.1:${grpcPort}`, '--monitoring-address', `127.0.0.1:${monPort}`, '--log-level', 'warn']),
    { stderrFile: path.join(dir, 'control.log'), stdoutFile: path.join(dir, 'control.log') },
  );
  let clients;
  try {
    await procs.waitForHttp200(monPort, '/ready', { proc: control, timeoutMs: 60_000 });
    log(`N=${n}: ${n} ADS clients${pin ? ' on CPU 1' : ''}, ${args['streams-per-channel']} stream(s) per channel`);
    clients = procs.start('xds-clients', ...pinned(1, [process.execPath, path.join(BENCH, 'xds-clients.mjs'), '--target', `127.0.0.1:${xdsPort}`, '--clients', String(n), '--streams-per-channel', args['streams-per-channel']]), {
      stderrFile: path.join(dir, 'clients.log'),
      ipc: true,
    });
    const ipc = messenger(clients);
    const synced = await ipc.next('synced', 600_000);
    log(`N=${n}: all synced in ${(synced.ms / 1000).toFixed(1)} s over ${synced.channels} channels`);
    await statusSynced(monPort, n, 1);
    ipc.send({ type: 'learn', label: 'A' });
    await ipc.next('learned', 30_000);

    let generation = 1;
    const write = (label) => writeFilesAtomic(meshDir, { 'reviews.yaml': configs[label] });
    /** One flip to `label`, measured by the clients: ms from before the write to each changed client's last ACK. */
    const change = async (label, k) => {
      ipc.send({ type: 'expect', label, change: k });
      await ipc.next('expecting', 30_000);
      const t0 = now();
      await write(label);
      const done = await ipc.next('done', CHANGE_TIMEOUT_MS).catch(async (e) => {
        ipc.send({ type: 'pending' });
        const p = await ipc.next('pending', 10_000).catch(() => undefined);
        throw new Error(`${e.message}${p ? `; ${p.count} clients still wait, e.g. ${JSON.stringify(p.examples)}` : ''}`);
      });
      generation++;
      return { lat: done.times.map((t) => t - t0).sort((a, b) => a - b), unchanged: done.unchanged };
    };

    log(`N=${n}: warm-up (90/10 -> 50/50 learned from /status, then back)`);
    await write('B');
    await statusSynced(monPort, n, ++generation);
    ipc.send({ type: 'learn', label: 'B' });
    const learned = await ipc.next('learned', 30_000);
    await change('A', 0);

    const idle = await procs.waitForQuiet(IDLE_WAIT_MS, [control.pid, clients.pid]);
    log(`N=${n}: ${idle}`);
    const cpu0 = procs.cpuSeconds(control.pid);
    const clientCpu0 = procs.cpuSeconds(clients.pid);
    const foreign = procs.foreignCpu([control.pid, clients.pid]);
    const rss = procs.sampleRss([control.pid], 100);
    const t0 = now();
    const perChange = [];
    for (let k = 1; k <= CHANGES; k++) {
      const c = await change(k % 2 === 1 ? 'B' : 'A', k);
      perChange.push(c);
      log(`N=${n}: change ${k}: ${c.lat.length} clients moved (${c.unchanged} unchanged), p50 ${percentile(c.lat, 50).toFixed(0)} ms, p99 ${percentile(c.lat, 99).toFixed(0)} ms, last ${c.lat.at(-1).toFixed(0)} ms`);
    }
    const wallS = (now() - t0) / 1000;
    // The measured window on the profile's clock (V8 TimeTicks: CLOCK_MONOTONIC in µs, as process.hrtime).
    if (args['cpu-prof']) writeFileSync(path.join(dir, 'measured-window.json'), JSON.stringify({ startUs: Math.round(t0 * 1000), endUs: Math.round(now() * 1000) }));
    const serverCpuS = procs.cpuSeconds(control.pid) - cpu0;
    const clientCpuS = procs.cpuSeconds(clients.pid) - clientCpu0;
    const foreignCores = foreign.end();
    const [rssMaxKiB] = rss.stop();
    const { hwm } = procs.memKiB(control.pid);
    const all = perChange.flatMap((c) => c.lat).sort((a, b) => a - b);

    ipc.send({ type: 'stop' });
    await clients.exited;
    return {
      n,
      idle,
      channels: synced.channels,
      syncS: synced.ms / 1000,
      distinctVersionSets: learned.distinctVersionSets,
      p50: percentile(all, 50),
      p99: percentile(all, 99),
      lastAck: all.at(-1),
      perChange: perChange.map((c) => ({ moved: c.lat.length, p50: percentile(c.lat, 50), p99: percentile(c.lat, 99), last: c.lat.at(-1) })),
      serverCpuS,
      serverCpuPerChangeS: serverCpuS / CHANGES,
      clientCpuS,
      wallS,
      foreignCores,
      rssMaxMB: rssMaxKiB / 1024,
      hwmMB: hwm / 1024,
    };
  } finally {
    await clients?.stop();
    await control.stop(args['cpu-prof'] ? 30_000 : 3000);
  }
}

function report(rows, { startedAt, pin }) {
  const f = (x, d = 0) => (x == null || Number.isNaN(x) ? 'n/a' : x.toFixed(d));
  const met = (r) => (r.p99 < TARGET.p99Ms ? (r.n >= TARGET.clients ? '**met**' : 'yes') : r.n >= TARGET.clients ? '**not met**' : 'no');
  const main = table(
    ['clients N', 'p50 ms', 'p99 ms', 'last ACK ms', 'server CPU s (all changes)', 'server CPU s per change', 'server peak RSS MB (VmHWM)', 'server RSS max during changes MB', 'p99 < 2 s?', 'all N synced after start s', 'client process CPU s', "other programs' CPU, cores"],
    rows.map((r) => [r.n, f(r.p50), f(r.p99), f(r.lastAck), f(r.serverCpuS, 2), f(r.serverCpuPerChangeS, 2), f(r.hwmMB, 1), f(r.rssMaxMB, 1), met(r), f(r.syncS, 1), f(r.clientCpuS, 2), f(r.foreignCores, 2)]),
  );
  const detail = table(
    ['clients N', ...rows[0].perChange.map((_, i) => `change ${i + 1} p50 / p99 / last ms`)],
    rows.map((r) => [r.n, ...r.perChange.map((c) => `${f(c.p50)} / ${f(c.p99)} / ${f(c.last)}`)]),
  );
  const n = rows.find((r) => r.n === TARGET.clients);
  return [
    '## xDS scale (ADS State of the World)',
    '',
    `- command: \`npm run bench:xds${process.argv.slice(2).length ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\`; ${startedAt.toISOString()}; ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} at the end; node ${process.version}`,
    `- ${pin ? 'control server pinned to CPU 0, client process to CPU 1 (`taskset`)' : 'no taskset: server and clients share the CPUs'}; ${args['streams-per-channel']} ADS stream(s) per grpc-js channel (one TCP connection per proxy when 1); ${CHANGES} measured changes after 2 warm-up changes; server started with the \`outrigger\` shebang's V8 flags (${SIDECAR_NODE_FLAGS.join(' ')}), \`--log-level warn\``,
    '',
    'One `outrigger control --config` serving examples/mesh on its plaintext xDS port, and one process',
    '(`bench/xds-clients.mjs`) with N ADS streams: 90 % Envoy-like sidecars (wildcard CDS -> EDS -> wildcard LDS',
    '-> RDS) of the five bookinfo workloads, 10 % proxyless gRPC clients (GENERATOR=grpc, LDS by name -> RDS ->',
    'CDS -> EDS), each with Istio node metadata, its own INSTANCE_IPS and a locality in one of the three clouds.',
    'A change flips the reviews canary 90/10 <-> 50/50 (reviews.yaml rewritten atomically); its latency per',
    'client is the time from just before the write to the ACK with which that client holds the new versions of',
    'every type (it includes the 100 ms debounce of the config watcher). p50 / p99 are over all clients of all',
    'measured changes; "last ACK" is the slowest client of any change. CPU is the server\'s utime+stime over the',
    'measured changes; peak RSS is its VmHWM at the end (connect storm included).',
    '',
    main,
    '',
    detail,
    '',
    ...rows.map((r) => `- N = ${r.n}: before the measured changes, ${r.idle}; other programs then used ${f(r.foreignCores, 2)} cores during them.`),
    '',
    n ? `Target (2,000 clients, p99 < 2 s on this 2-core machine): ${n.p99 < TARGET.p99Ms ? '**met**' : '**not met**'} (p99 ${f(n.p99)} ms).` : `Target (2,000 clients, p99 < 2 s): not measured in this run (N = ${rows.map((r) => r.n).join(', ')}).`,
  ].join('\n');
}

async function main() {
  procs.installCleanup(log);
  procs.reapStale(path.join(BENCH, 'out', '.xds-pgids.json'), BENCH);
  mkdirSync(OUT, { recursive: true });
  const startedAt = new Date();
  const pin = os.cpus().length >= 2 && (await taskset());
  const rows = [];
  for (const n of SIZES) rows.push(await runOne(n, pin));
  const md = report(rows, { startedAt, pin });
  console.log(md);
  if (args['cpu-prof']) {
    log(`profiles in ${OUT}/n<N>/*.cpuprofile; RESULTS.md not written (profiling slows the server)`);
    return 0;
  }
  const resultsFile = path.join(BENCH, 'RESULTS.md');
  writeFileSync(resultsFile, replaceSection(existsSync(resultsFile) ? readFileSync(resultsFile, 'utf8') : '', 'xds', md));
  log(`wrote bench/RESULTS.md (section "xDS scale") in ${((Date.now() - startedAt.getTime()) / 1000).toFixed(0)} s`);
  return 0;
}

procs.runMain(main, log);
