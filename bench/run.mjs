#!/usr/bin/env node
// Outrigger benchmark: the same two-hop mTLS job through direct / nginx / HAProxy / Outrigger in one run.
// load → hop A (plaintext) → mTLS → hop B (client certs required) → backend (1 KiB). See bench/README.md.
// Settings come from BENCH_* environment variables (listed in README); results go to bench/RESULTS.md.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import * as procs from './lib/procs.mjs';
import { makeCerts } from './lib/certs.mjs';
import { checkEntry, checkMtls } from './lib/check.mjs';
import { grpcUnary, h2loadFixedRate, seconds, wrk } from './lib/load.mjs';
import { buildReport, median, writeReport } from './lib/report.mjs';
import { BODY_BYTES, startBackend } from './proxies/backend.mjs';
import { NGINX, startNginxPath } from './proxies/nginx.mjs';
import { HAPROXY, startHaproxyPath } from './proxies/haproxy.mjs';
import { MAIN_JS, probeSidecar, startOutriggerChainPath, startOutriggerPath, startOutriggerSecurePath } from './proxies/outrigger.mjs';
import { startNodeFloorPath } from './proxies/node-floor.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const OUT = path.join(BENCH, 'out');
const env = process.env;

const cfg = {
  duration: env.BENCH_DURATION ?? '10s',
  // wrk warm-up before the measured wrk run: long enough for V8 to optimise the sidecar's hot path (a cold
  // Node process runs at a third of its warm speed for the first seconds); the same for every path.
  warmup: env.BENCH_WARMUP ?? '5s',
  h2loadWarmup: env.BENCH_H2LOAD_WARMUP ?? '2s',
  wrkThreads: Number(env.BENCH_WRK_THREADS ?? 2),
  wrkConnections: Number(env.BENCH_WRK_CONNECTIONS ?? 16),
  rate: Number(env.BENCH_RATE ?? 1000),
  h2loadClients: Number(env.BENCH_H2LOAD_CLIENTS ?? 20),
  grpcCalls: Number(env.BENCH_GRPC_CALLS ?? 5000),
  grpcConcurrency: Number(env.BENCH_GRPC_CONCURRENCY ?? 16),
  idleWait: env.BENCH_IDLE_WAIT ?? '60s',
  rounds: Math.max(1, Number(env.BENCH_ROUNDS ?? 2)),
  paths: (env.BENCH_PATHS ?? 'direct,nginx,haproxy,outrigger,outrigger-chain,outrigger-secure,node-floor').split(',').map((s) => s.trim()).filter(Boolean),
  latencyProtos: (env.BENCH_LATENCY_PROTOS ?? 'h2c,h1').split(',').map((s) => s.trim()).filter(Boolean),
  bodyBytes: BODY_BYTES,
  results: env.BENCH_RESULTS ?? path.join(BENCH, 'RESULTS.md'),
};
seconds(cfg.duration); // validate early
seconds(cfg.warmup);
seconds(cfg.h2loadWarmup);
seconds(cfg.idleWait);
const TARGET_PROTO = cfg.latencyProtos.includes('h2c') ? 'h2c' : cfg.latencyProtos[0];
// The Host/:authority every load tool sends: Outrigger's outbound route matches on it (examples/sidecar-a.yaml).
const AUTHORITY = 'reviews:9080';

const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

const PATHS = {
  direct: { label: 'direct (no proxy)', start: startDirect },
  nginx: { label: 'nginx', start: startNginxPath },
  haproxy: { label: 'HAProxy', start: startHaproxyPath },
  outrigger: { label: 'Outrigger', start: startOutriggerPath },
  'outrigger-chain': { label: 'Outrigger + policy chain', start: startOutriggerChainPath },
  'outrigger-secure': { label: 'Outrigger + authn/authz', start: startOutriggerSecurePath },
  'node-floor': { label: 'Node floor (bare Node two-hop, reference)', start: startNodeFloorPath },
};

/** The "path" of the direct row: the load hits the backend itself. */
async function startDirect(ctx) {
  return {
    entry: { h1: ctx.ports.backendH1, h2c: ctx.ports.backendH2c, grpc: ctx.ports.grpcBackend },
    hops: [],
    configs: [],
    upstreamProto: '—',
    async stop() {},
  };
}

async function version(cmd, args, pick = (s) => s.trim().split('\n')[0]) {
  try {
    const r = await procs.run(cmd, args, { timeoutMs: 10000 });
    return pick(`${r.stdout}${r.stderr}`);
  } catch (e) {
    return `${cmd}: ${e.code ?? e.message}`;
  }
}

async function machineFacts(sidecar) {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? '?';
  let gitRev = '?';
  try {
    gitRev = (await procs.run('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])).stdout.trim();
    const dirty = (await procs.run('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src'])).stdout.trim();
    if (dirty) gitRev += ' + uncommitted changes in src/';
  } catch {
    /* not a git checkout */
  }
  return {
    nproc: (await version('nproc', [])) || String(os.availableParallelism()),
    cpu,
    memGiB: (os.totalmem() / 2 ** 30).toFixed(0),
    kernel: os.release(),
    loadavg: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    node: process.version,
    nginx: await version(NGINX, ['-v'], (s) => s.trim().replace(/^nginx version: /, '')),
    haproxy: await version(HAPROXY, ['-v'], (s) => s.split('\n')[0].replace(/ - https.*/, '').replace('HAProxy version', 'HAProxy')),
    wrk: await version('wrk', ['-v'], (s) => s.split('\n')[0].replace(/ Copyright.*/, '').replace(/ \[.*\]/, '')),
    h2load: await version('h2load', ['--version']),
    openssl: await version('openssl', ['version']),
    outrigger: sidecar.ok ? `${path.relative(ROOT, MAIN_JS)} at git ${gitRev}` : `not usable (${sidecar.reason})`,
  };
}

/** All load phases against one started path; fills `res`. */
async function measure(name, p, ctx, res) {
  const roots = p.hops.map((h) => h.pid);
  const entryH1 = `http://127.0.0.1:${p.entry.h1}/`;

  // Warm-up (JIT, TLS sessions, pools), not measured.
  log(`${name}: warm-up ${cfg.warmup}`);
  await wrk(entryH1, { threads: cfg.wrkThreads, connections: cfg.wrkConnections, duration: cfg.warmup, host: AUTHORITY });

  log(`${name}: wrk ${cfg.wrkThreads}t × ${cfg.wrkConnections}c for ${cfg.duration}`);
  const cpu0 = procs.cpuOfRoots(roots);
  const foreign = procs.foreignCpu([...roots, ...ctx.backendRoots]);
  res.wrk = await wrk(entryH1, { threads: cfg.wrkThreads, connections: cfg.wrkConnections, duration: cfg.duration, host: AUTHORITY });
  const cpu1 = procs.cpuOfRoots(roots);
  res.foreignCores = foreign.end();
  res.loadavg = os.loadavg()[0];
  delete res.wrk.raw;
  if (roots.length && res.wrk.requests) res.cpuPer1k = (cpu1 - cpu0) / (res.wrk.requests / 1000);
  log(`${name}: wrk ${res.wrk.error ?? `${res.wrk.rps?.toFixed(0)} req/s`}`);

  // Fixed-rate latency; RSS sampled throughout, CPU over the h2load runs.
  await sleep(500);
  const sampler = procs.sampleRss(roots);
  const cpuF0 = procs.cpuOfRoots(roots);
  let fixedSecs = 0;
  res.latency = {};
  for (const proto of cfg.latencyProtos) {
    const port = proto === 'h1' ? p.entry.h1 : p.entry.h2c;
    log(`${name}: h2load ${proto} at ${cfg.rate} req/s for ${cfg.duration}`);
    const t0 = Date.now();
    const l = await h2loadFixedRate(`http://127.0.0.1:${port}/`, {
      rate: cfg.rate,
      clients: cfg.h2loadClients,
      duration: cfg.duration,
      warmup: cfg.h2loadWarmup,
      h1: proto === 'h1',
      authority: AUTHORITY,
      logFile: path.join(OUT, `h2load-${name}-${proto}.log`),
    });
    fixedSecs += (Date.now() - t0) / 1000;
    delete l.raw;
    res.latency[proto] = l;
    log(`${name}: h2load ${proto}: ${l.error ?? `p50 ${l.p50_ms?.toFixed(3)} ms, p99 ${l.p99_ms?.toFixed(3)} ms, ${l.achievedRps?.toFixed(0)} req/s`}`);
  }
  const rssFixed = sampler.stop();
  if (roots.length && fixedSecs > 0) res.cpuFixedPct = ((procs.cpuOfRoots(roots) - cpuF0) / fixedSecs) * 100;

  if (p.grpcUnsupported) {
    res.grpc = { error: p.grpcUnsupported };
  } else {
    log(`${name}: gRPC ${cfg.grpcCalls} unary calls at concurrency ${cfg.grpcConcurrency}`);
    res.grpc = await grpcUnary(`127.0.0.1:${p.entry.grpc}`, { calls: cfg.grpcCalls, concurrency: cfg.grpcConcurrency, authority: AUTHORITY });
    log(`${name}: gRPC ${res.grpc.error ?? `${res.grpc.rps?.toFixed(0)} calls/s, p50 ${res.grpc.p50_ms?.toFixed(2)} ms`}`);
  }
  if (roots.length) {
    const mem = procs.memOfRoots(roots);
    res.mem = { rssFixed, rssEnd: mem.map((m) => m.rss), hwm: mem.map((m) => m.hwm) };
  }
}

async function runPath(name, ctx) {
  const def = PATHS[name];
  const res = { name, label: def.label, notes: [] };
  if (name.startsWith('outrigger') && !ctx.sidecar.ok) {
    res.error = `sidecar not usable: ${ctx.sidecar.reason}`;
    return res;
  }
  let p;
  try {
    log(`${name}: starting`);
    p = await def.start(ctx);
    res.upstreamProto = p.upstreamProto;
    res.configs = p.configs.map((c) => path.relative(ROOT, c));
    res.notes.push(...(p.notes ?? []));
    const bad = await checkEntry(p.entry.h1, { host: AUTHORITY, bodyBytes: cfg.bodyBytes });
    if (bad) throw new Error(`sanity check failed: ${bad}`);
    if (p.mtlsPort) {
      const m = await checkMtls(p.mtlsPort, { certs: ctx.certs, host: AUTHORITY, headers: p.mtlsHeaders });
      if (!m.ok) throw new Error(`mTLS check failed: ${m.detail}`);
      res.notes.push(m.detail);
    }
    await measure(name, p, ctx, res);
    for (const h of p.hops) if (!h.alive) res.notes.push(`${h.name} died during the run`);
  } catch (e) {
    res.error = e.message;
    log(`${name}: FAILED: ${e.message}`);
  } finally {
    if (p) await p.stop();
  }
  return res;
}

/**
 * Combine one path's rounds: every number becomes the median over the rounds that measured it, except memory
 * (the maximum: the RSS target is a ceiling). Ranges of the headline numbers are kept for the report.
 */
function mergeRounds(rounds) {
  if (rounds.length === 1) return rounds[0];
  const good = rounds.filter((r) => !r.error);
  const base = structuredClone(good[0] ?? rounds[0]);
  base.rounds = rounds.length;
  base.notes = [...new Set(rounds.flatMap((r) => r.notes ?? []))];
  const failed = rounds.filter((r) => r.error);
  if (failed.length && good.length) base.notes.push(`${failed.length} of ${rounds.length} rounds failed: ${failed[0].error.split('\n')[0]}`);
  if (!good.length) return base;
  const merge = (vals, key) => {
    const nums = vals.filter((v) => typeof v === 'number' && Number.isFinite(v));
    if (nums.length && nums.length === vals.filter((v) => v !== undefined && v !== null).length) return key === 'mem' ? Math.max(...nums) : median(nums);
    const objs = vals.filter((v) => v && typeof v === 'object');
    if (!objs.length) return vals.find((v) => v !== undefined);
    if (Array.isArray(objs[0])) return objs[0].map((_, i) => merge(objs.map((o) => o[i]), key));
    const out = {};
    for (const k of new Set(objs.flatMap(Object.keys))) out[k] = merge(objs.map((o) => o[k]), key === 'mem' ? 'mem' : k);
    return out;
  };
  for (const k of ['wrk', 'latency', 'grpc', 'cpuPer1k', 'cpuFixedPct', 'mem', 'foreignCores', 'loadavg']) base[k] = merge(good.map((r) => r[k]), k);
  const range = (f) => {
    const xs = good.map(f).filter((x) => typeof x === 'number');
    return xs.length ? [Math.min(...xs), Math.max(...xs)] : null;
  };
  // Per-round throughput, in round order (null for a failed round), so the report can pair rounds: path X's
  // round k ran next to path Y's round k and shared its machine weather.
  base.perRound = { wrkRps: rounds.map((r) => (r.error ? null : (r.wrk?.rps ?? null))), grpcRps: rounds.map((r) => (r.error || r.grpc?.error ? null : (r.grpc?.rps ?? null))) };
  base.range = { wrkRps: range((r) => r.wrk?.rps), p50: Object.fromEntries(cfg.latencyProtos.map((p) => [p, range((r) => r.latency?.[p]?.p50_ms)])) };
  return base;
}

async function main() {
  procs.installCleanup(log);
  const startedAt = new Date();
  const command = env.npm_lifecycle_event === 'bench' ? 'npm run bench' : `node ${path.relative(process.cwd(), process.argv[1]) || 'bench/run.mjs'}`;
  const pinned = Object.entries(env).filter(([k]) => k.startsWith('BENCH_')).map(([k, v]) => `${k}=${v}`).join(' ');
  mkdirSync(OUT, { recursive: true });
  const reaped = procs.reapStale(path.join(OUT, '.pgids.json'), BENCH);
  if (reaped) log(`killed ${reaped} process group(s) left over from an earlier run`);
  for (const e of ['certs', 'nginx-hop-a', 'nginx-hop-b', 'backend-nginx', 'haproxy-hop-a', 'haproxy-hop-b', 'outrigger-hop-a', 'outrigger-hop-b', 'outrigger-chain-hop-a', 'outrigger-chain-hop-b', 'outrigger-secure-hop-a', 'outrigger-secure-hop-b']) {
    rmSync(path.join(OUT, e), { recursive: true, force: true });
  }

  if (env.BENCH_SKIP_SETUP !== '1') {
    log('setup: checking tools (bench/setup.sh)');
    const s = await procs.run('bash', [path.join(BENCH, 'setup.sh')], { timeoutMs: 600000 });
    if (s.code !== 0) throw new Error(`bench/setup.sh failed (${s.code}):\n${s.stdout}${s.stderr}`);
  }

  const sidecar = cfg.paths.some((p) => p.startsWith('outrigger')) ? await probeSidecar() : { ok: false, reason: 'not selected (BENCH_PATHS)' };
  if (cfg.paths.some((p) => p.startsWith('outrigger'))) log(`outrigger: ${sidecar.ok ? 'sidecar usable' : `NOT usable: ${sidecar.reason}`}`);
  const facts = await machineFacts(sidecar);

  log('certs: ECDSA P-256 root + frontend/reviews X509-SVIDs');
  const certs = await makeCerts(OUT);
  const [backendH1, backendH2c, grpcBackend, hopA, hopAh2c, hopB, adminA, adminB] = await procs.freePorts(8);
  const ports = { backendH1, backendH2c, grpcBackend, hopA, hopAh2c, hopB, adminA, adminB };
  const ctx = { outDir: OUT, ports, certs, sidecar, sidecarHelp: sidecar.help };

  log('backend: nginx (1 worker, 1 KiB) + grpc-js echo');
  const backend = await startBackend(ctx);
  ctx.backendRoots = [backend.nginx.pid, backend.grpc.pid];
  log(`waiting for a quiet machine (up to ${cfg.idleWait})`);
  facts.idle = await procs.waitForQuiet(seconds(cfg.idleWait) * 1000);
  log(facts.idle);
  const runForeign = procs.foreignCpu(ctx.backendRoots);
  const results = [];
  try {
    const bad = await checkEntry(ports.backendH1, { bodyBytes: cfg.bodyBytes });
    if (bad) throw new Error(`backend sanity check failed: ${bad}`);
    for (const name of cfg.paths) {
      if (!PATHS[name]) throw new Error(`unknown path ${JSON.stringify(name)} in BENCH_PATHS (know: ${Object.keys(PATHS).join(', ')})`);
    }
    // Rounds interleave the paths (A B C D, A B C D, ...) so slow drifts of the shared machine hit all alike.
    const perPath = Object.fromEntries(cfg.paths.map((n) => [n, []]));
    for (let round = 1; round <= cfg.rounds; round++) {
      if (cfg.rounds > 1) log(`round ${round}/${cfg.rounds}`);
      for (const name of cfg.paths) {
        perPath[name].push(await runPath(name, ctx));
        await sleep(1000); // let TIME_WAIT/CPU settle between paths
      }
    }
    for (const name of cfg.paths) results.push(mergeRounds(perPath[name]));
  } finally {
    await backend.stop();
  }

  const finishedAt = new Date();
  facts.foreignCores = runForeign.end();
  facts.loadavgEnd = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const { md, console: text } = buildReport({
    results,
    cfg,
    facts,
    command: `${pinned ? `${pinned} ` : ''}${command}`,
    startedAt,
    finishedAt,
    latencyProtos: cfg.latencyProtos,
    targetProto: TARGET_PROTO,
  });
  writeReport(cfg.results, md);
  console.log(text);
  log(`wrote ${path.relative(process.cwd(), cfg.results)} in ${((finishedAt - startedAt) / 1000).toFixed(0)} s`);
  // Exit non-zero only when the baselines could not be measured; a missing sidecar is reported, not fatal.
  const failed = results.filter((r) => r.error && !r.name.startsWith('outrigger'));
  return failed.length ? 1 : 0;
}

procs.runMain(main, log);
