#!/usr/bin/env node
// Load-balancing benchmark (issue 5), against a real sidecar process: writes the "Load balancing" section of
// bench/RESULTS.md (between `<!-- lb:start -->` markers). Run with `npm run bench:lb-scenarios`.
//
// 1. Slow endpoint: 11 endpoints in the caller's zone answer after BASE ms, one after 20 x BASE. For each of
//    ROUND_ROBIN, RANDOM, LEAST_REQUEST and PEAK_EWMA: p50 / p99 / p99.9 and the slow endpoint's share over a
//    fixed number of requests at a fixed concurrency (4: the sidecar has CPU to spare; 16: it is saturated on
//    this machine). Per round and concurrency, one sidecar per picker, all alive; they take turns in short
//    slices (rotating order), so a burst of other programs' work on this shared machine falls on every picker
//    alike; ROUNDS rounds with fresh sidecars, medians reported.
// 2. Failover: P0 (caller's zone, 2 endpoints, no relay), P1 (other zone of the region, 2 endpoints behind a
//    2 ms relay), P2 (other cloud, 2 endpoints behind a 30 ms relay), outlier detection on. Under steady load
//    P0 starts answering 503, or stops accepting connections: failed requests, time until traffic has moved
//    to P1, with and without one retry to another priority.
// 3. LB pick cost: bench/lb-pick.mjs (ns per pick on 1,000 endpoints), run as a child process.
//
// Processes: the sidecar (`node FLAGS dist/cli/main.js sidecar --config FILE`) pinned to CPU 0, the upstreams
// and relays (bench/lib/lb-upstreams.mjs) pinned to CPU 1, and this process, the load generator, pinned to
// CPU 1 too (taskset, when the machine has 2+ CPUs and taskset exists).
//
// Settings (environment): BENCH_LB_BASE_MS (2), BENCH_LB_CONCURRENCY (4,16: each is measured), BENCH_LB_REQUESTS
// (20000 per picker, concurrency and round), BENCH_LB_SLICE (1000), BENCH_LB_WARMUP (2s), BENCH_LB_ROUNDS (2),
// BENCH_LB_PICKERS (all four),
// BENCH_LB_FAIL_CONCURRENCY (8), BENCH_LB_FAIL_ROUNDS (2), BENCH_LB_STEADY (2s before the fault),
// BENCH_LB_AFTER (4s after it), BENCH_LB_WINDOW (200 requests), BENCH_LB_PARTS (slow,failover,pick),
// BENCH_IDLE_WAIT (30s), BENCH_LB_PICKS (lb-pick.mjs, 1000000).
// RESULTS.md is written only when all three parts ran.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { percentile, seconds } from './lib/load.mjs';
import * as procs from './lib/procs.mjs';
import { replaceSection, table } from './lib/report.mjs';
import { MAIN, adminText, bootstrap, drive, now, pinned, startSidecar, startUpstreams } from './lib/lb-world.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const OUT = path.join(BENCH, 'out', 'lb');
const env = process.env;
const log = (m) => console.error(`[bench-lb ${new Date().toISOString().slice(11, 19)}] ${m}`);

const CFG = {
  baseMs: Number(env.BENCH_LB_BASE_MS ?? 2),
  factor: 20,
  endpoints: 11,
  concurrencies: (env.BENCH_LB_CONCURRENCY ?? '4,16').split(',').map(Number),
  requests: Number(env.BENCH_LB_REQUESTS ?? 20_000),
  warmupMs: seconds(env.BENCH_LB_WARMUP ?? '2s') * 1000,
  rounds: Number(env.BENCH_LB_ROUNDS ?? 2),
  slice: Number(env.BENCH_LB_SLICE ?? 1000),
  failConcurrency: Number(env.BENCH_LB_FAIL_CONCURRENCY ?? 8),
  failRounds: Number(env.BENCH_LB_FAIL_ROUNDS ?? 2),
  steadyMs: seconds(env.BENCH_LB_STEADY ?? '2s') * 1000,
  afterMs: seconds(env.BENCH_LB_AFTER ?? '4s') * 1000,
  window: Number(env.BENCH_LB_WINDOW ?? 200),
  idleWaitMs: seconds(env.BENCH_IDLE_WAIT ?? '30s') * 1000,
  parts: (env.BENCH_LB_PARTS ?? 'slow,failover,pick').split(','),
  pickers: env.BENCH_LB_PICKERS?.split(','),
};

if (!existsSync(MAIN)) {
  log('dist/ is missing: run `npm run build` first');
  process.exit(2);
}
const { SIDECAR_NODE_FLAGS } = await import(pathToFileURL(path.join(ROOT, 'dist', 'cli', 'node-flags.js')).href);
const { TYPE_URL_PEAK_EWMA } = await import(pathToFileURL(path.join(ROOT, 'dist', 'model', 'types.js')).href);

const ALL_PICKERS = {
  ROUND_ROBIN: { lb_policy: 'ROUND_ROBIN' },
  RANDOM: { lb_policy: 'RANDOM' },
  LEAST_REQUEST: { lb_policy: 'LEAST_REQUEST' },
  // Outrigger's extension as users configure it in xDS: a TypedStruct first, a standard fallback after it.
  PEAK_EWMA: {
    lb_policy: 'LOAD_BALANCING_POLICY_CONFIG',
    load_balancing_policy: {
      policies: [
        { typed_extension_config: { name: 'outrigger.peak_ewma', typed_config: { '@type': 'type.googleapis.com/xds.type.v3.TypedStruct', type_url: TYPE_URL_PEAK_EWMA, value: { decay_time: '10s' } } } },
        { typed_extension_config: { name: 'envoy.load_balancing_policies.round_robin', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin' } } },
      ],
    },
  },
};

const PICKERS = CFG.pickers ? Object.fromEntries(CFG.pickers.map((p) => [p, ALL_PICKERS[p]])) : ALL_PICKERS;
if (Object.values(PICKERS).some((c) => !c)) {
  log(`BENCH_LB_PICKERS: one of ${CFG.pickers} is not one of ${Object.keys(ALL_PICKERS)}`);
  process.exit(2);
}

const f = (x, d = 1) => (x == null || Number.isNaN(x) ? 'n/a' : Number(x).toFixed(d));
const median = (xs) => {
  const s = xs.filter((x) => x != null && !Number.isNaN(x)).sort((a, b) => a - b);
  if (!s.length) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
/** "median (min–max)" over rounds. */
const spread = (xs, d = 1) => {
  const s = xs.filter((x) => x != null && !Number.isNaN(x));
  if (!s.length) return 'n/a';
  return s.length > 1 ? `${f(median(s), d)} (${f(Math.min(...s), d)}–${f(Math.max(...s), d)})` : f(s[0], d);
};

async function hasTaskset() {
  return (await procs.run('sh', ['-c', 'command -v taskset'])).code === 0;
}

/** A sidecar for one run, with a cluster over `groups` and the given cluster/route fields. */
async function sidecarFor(dir, groups, cluster, route, cpu) {
  const [listenerPort, adminPort] = await procs.freePorts(2);
  return startSidecar(dir, bootstrap({ listenerPort, adminPort, groups, cluster, route }), { listenerPort, adminPort, nodeFlags: SIDECAR_NODE_FLAGS, cpu });
}

// ---- 1. slow endpoint ---------------------------------------------------------------------------------

const SLOW = 'e5';

/** One sidecar per picker over the same 11 endpoints; checks it runs the picker asked for. */
async function pickerSidecar(world, picker, round, conc, pin) {
  const dir = path.join(OUT, 'slow', `c${conc}-round-${round}`, picker);
  const groups = [{ region: 'aws-us-east-1', zone: 'us-east-1a', priority: 0, ports: Object.values(world.ports) }];
  const s = await sidecarFor(dir, groups, PICKERS[picker], {}, pin.sidecar);
  const policy = /backend::lb_policy::(\w+)/.exec(await adminText(s.adminPort, '/clusters'))?.[1];
  if (policy !== picker) throw new Error(`sidecar runs ${policy}, not ${picker} (see ${dir})`);
  // One keep-alive agent per sidecar for the whole round: slices reuse their connections.
  return { ...s, picker, agent: new http.Agent({ keepAlive: true, maxSockets: conc }) };
}

/**
 * One round: a fresh sidecar per picker, all alive at once (idle ones cost nothing); each warmed up, then
 * measured in slices of CFG.slice requests, cycling through the pickers in an order that rotates every cycle,
 * until each has CFG.requests. Noise from other programs then falls on every picker alike, instead of on
 * whichever picker happened to run while someone's tests did.
 */
async function slowRound(world, round, conc, pin) {
  const names = Object.keys(PICKERS);
  const sides = [];
  try {
    for (const p of names) sides.push(await pickerSidecar(world, p, round, conc, pin));
    for (const s of sides) await drive(s.port, { concurrency: conc, durationMs: CFG.warmupMs, agent: s.agent });
    const roots = [world.proc.pid, ...sides.map((s) => s.proc.pid)];
    const acc = new Map(sides.map((s) => [s, { recs: [], wall: 0, sidecarCpu: 0, upCpu: 0, loadCpu: 0, otherCpu: 0, cycleWins: 0 }]));
    const cycles = Math.ceil(CFG.requests / CFG.slice);
    for (let c = 0; c < cycles; c++) {
      const sliceP99 = [];
      for (let i = 0; i < sides.length; i++) {
        const s = sides[(i + c) % sides.length];
        const a = acc.get(s);
        const foreign = procs.foreignCpu(roots);
        const cpu0 = procs.cpuSeconds(s.proc.pid);
        const up0 = procs.cpuSeconds(world.proc.pid);
        const self0 = process.cpuUsage();
        const t0 = now();
        const recs = await drive(s.port, { concurrency: conc, requests: Math.min(CFG.slice, CFG.requests - a.recs.length), agent: s.agent });
        const wall = (now() - t0) / 1000;
        const self = process.cpuUsage(self0);
        a.wall += wall;
        a.sidecarCpu += procs.cpuSeconds(s.proc.pid) - cpu0;
        a.upCpu += procs.cpuSeconds(world.proc.pid) - up0;
        a.loadCpu += (self.user + self.system) / 1e6;
        a.otherCpu += (foreign.end() ?? 0) * wall;
        for (const r of recs) a.recs.push(r);
        sliceP99.push([s, percentile(recs.map((r) => r.ms).sort((x, y) => x - y), 99)]);
      }
      acc.get(sliceP99.reduce((b, x) => (x[1] < b[1] ? x : b))[0]).cycleWins++;
    }
    const slowPort = String(world.ports[SLOW]);
    const rows = [];
    for (const s of sides) {
      const a = acc.get(s);
      // The picker's view at the end: PEAK_EWMA's estimate of the slow host against the others'.
      const ewma = {};
      for (const m of (await adminText(s.adminPort, '/clusters')).matchAll(/backend::127\.0\.0\.1:(\d+)::ewma_ms::([\d.]+)/g)) ewma[m[1]] = Number(m[2]);
      const lat = a.recs.map((r) => r.ms).sort((x, y) => x - y);
      const row = {
        picker: s.picker,
        conc,
        round,
        n: a.recs.length,
        failed: a.recs.filter((r) => r.status !== 200).length,
        p50: percentile(lat, 50),
        p99: percentile(lat, 99),
        p999: percentile(lat, 99.9),
        slowShare: a.recs.filter((r) => r.by === SLOW).length / a.recs.length,
        rps: a.recs.length / a.wall,
        sidecarCpuMsPer1k: (a.sidecarCpu * 1e6) / a.recs.length,
        // Shares of a core while this picker was measured: is the sidecar (CPU 0) or the load side (CPU 1) the limit?
        cores: { sidecar: a.sidecarCpu / a.wall, upstreams: a.upCpu / a.wall, load: a.loadCpu / a.wall },
        others: a.otherCpu / a.wall,
        cycleWins: a.cycleWins,
        cycles,
        ewmaSlow: ewma[slowPort],
        ewmaOthers: median(Object.entries(ewma).filter(([p]) => p !== slowPort).map(([, v]) => v)),
      };
      log(`  ${row.picker} concurrency ${conc} round ${round}: ${row.n} req, ${f(row.rps, 0)} req/s, p50 ${f(row.p50, 2)} p99 ${f(row.p99, 2)} p99.9 ${f(row.p999, 2)} ms, slow share ${f(row.slowShare * 100, 2)} %, ${row.failed} failed, best slice p99 in ${row.cycleWins}/${cycles} cycles; cores: sidecar ${f(row.cores.sidecar, 2)}, upstreams ${f(row.cores.upstreams, 2)}, load ${f(row.cores.load, 2)}, others ${f(row.others, 2)}`);
      rows.push(row);
    }
    return rows;
  } finally {
    for (const s of sides) s.agent.destroy();
    await Promise.all(sides.map((s) => s.proc.stop()));
  }
}

async function slowEndpoint(pin) {
  const endpoints = Array.from({ length: CFG.endpoints }, (_, i) => ({ name: `e${i}`, delayMs: `e${i}` === SLOW ? CFG.baseMs * CFG.factor : CFG.baseMs, relayMs: null }));
  const world = await startUpstreams(path.join(OUT, 'slow'), endpoints, pin.upstreams);
  const rows = [];
  try {
    for (let round = 1; round <= CFG.rounds; round++) for (const conc of CFG.concurrencies) rows.push(...(await slowRound(world, round, conc, pin)));
  } finally {
    await world.proc.stop();
  }
  return rows;
}

function slowReport(rows) {
  const by = Object.keys(PICKERS).map((picker) => {
    const rs = rows.filter((r) => r.picker === picker);
    const m = (k) => median(rs.map((r) => r[k]));
    return { picker, rs, p50: m('p50'), p99: m('p99'), p999: m('p999'), slowShare: m('slowShare'), failed: rs.reduce((a, r) => a + r.failed, 0), wins: rs.reduce((a, r) => a + r.cycleWins, 0), cycles: rs.reduce((a, r) => a + r.cycles, 0) };
  });
  const best99 = Math.min(...by.map((b) => b.p99));
  const best999 = Math.min(...by.map((b) => b.p999));
  const t = table(
    ['picker', 'p50 ms', 'p99 ms', 'p99.9 ms', 'p99 × best', 'p99.9 × best', "slow endpoint's share %", 'lowest p99 of its cycle', 'req/s', 'failed', 'sidecar CPU-ms per 1k req', 'cores used: sidecar / upstreams / load generator', "other programs' CPU, cores"],
    by.map((b) => [
      b.picker,
      spread(b.rs.map((r) => r.p50), 2),
      spread(b.rs.map((r) => r.p99), 2),
      spread(b.rs.map((r) => r.p999), 2),
      `${f(b.p99 / best99, 2)}×`,
      `${f(b.p999 / best999, 2)}×`,
      spread(b.rs.map((r) => r.slowShare * 100), 2),
      `${b.wins} of ${b.cycles}`,
      spread(b.rs.map((r) => r.rps), 0),
      String(b.failed),
      spread(b.rs.map((r) => r.sidecarCpuMsPer1k), 0),
      ['sidecar', 'upstreams', 'load'].map((k) => f(median(b.rs.map((r) => r.cores[k])), 2)).join(' / '),
      spread(b.rs.map((r) => r.others), 2),
    ]),
  );
  const win99 = by.find((b) => b.p99 === best99);
  const win999 = by.find((b) => b.p999 === best999);
  const next = (k, w) => by.filter((b) => b !== w).reduce((x, b) => (b[k] < x[k] ? b : x));
  const n99 = next('p99', win99);
  const n999 = next('p999', win999);
  const ew = rows.filter((r) => r.picker === 'PEAK_EWMA' && r.ewmaSlow != null);
  const lines = [
    t,
    '',
    `Lowest p99: **${win99.picker}** (${f(win99.p99, 2)} ms; next ${n99.picker}, ${f(n99.p99 / win99.p99, 2)}× that). Lowest p99.9: **${win999.picker}** (${f(win999.p999, 2)} ms; next ${n999.picker}, ${f(n999.p999 / win999.p999, 2)}× that).`,
  ];
  lines.push(
    '',
    `Reading the tail: while the slow endpoint gets more than 1 % of the requests (0.1 % for p99.9), a picker's p99 is at least its ${CFG.baseMs * CFG.factor} ms plus queueing, so p99 and p99.9 mostly rank the pickers by that share (the per-round table shows how much noise moves them).`,
  );
  if (ew.length) {
    lines.push(
      `PEAK_EWMA's estimates at the end of each round (/clusters \`ewma_ms\`): slow endpoint ${spread(ew.map((r) => r.ewmaSlow), 1)} ms, the other ten's median ${spread(ew.map((r) => r.ewmaOthers), 1)} ms: a ratio of ${f(median(ew.map((r) => r.ewmaSlow / r.ewmaOthers)), 1)} where the endpoints' delays differ ${CFG.factor}×. The estimate is time to response headers measured inside the sidecar, and it jumps to any slower sample and decays over 10 s: when the sidecar is descheduled (other programs on its core) or its event loop lags, every endpoint with a request in flight takes the stall as its own latency, the likely reason PEAK_EWMA still sends the slow endpoint some traffic here (the fast endpoints' estimates are far above their p50).`,
    );
  }
  const rounds = table(
    ['round', ...Object.keys(PICKERS).map((p) => `${p}: p50 / p99 / p99.9 ms, slow %, other programs' cores`)],
    Array.from({ length: CFG.rounds }, (_, i) => [
      String(i + 1),
      ...Object.keys(PICKERS).map((p) => {
        const r = rows.find((x) => x.picker === p && x.round === i + 1);
        return r ? `${f(r.p50, 2)} / ${f(r.p99, 2)} / ${f(r.p999, 2)}, ${f(r.slowShare * 100, 2)}, ${f(r.others, 2)}` : 'n/a';
      }),
    ]),
  );
  return { md: lines.join('\n'), rounds, win99, win999, by, rows };
}

// ---- 2. failover ----------------------------------------------------------------------------------------

const PREVIOUS_HOSTS = { name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } };
const PREVIOUS_PRIORITIES = { name: 'envoy.retry_priorities.previous_priorities', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig', update_frequency: 1 } };
// Istio's default retry policy has host_selection_retry_max_attempts 5 with previous_hosts; back-off is Envoy's default (25 ms base).
const RETRY = { retry_on: '5xx', num_retries: 1, retry_host_predicate: [PREVIOUS_HOSTS], host_selection_retry_max_attempts: 5, retry_priority: PREVIOUS_PRIORITIES };
const OUTLIER = { consecutive_5xx: 5, interval: '1s', base_ejection_time: '30s', max_ejection_percent: 100 };
// Connect failures and resets are locally originated: with the split they count towards
// consecutive_local_origin_failure (Envoy's default 5) instead of being mapped to 503s.
const OUTLIER_SPLIT = { ...OUTLIER, split_external_local_origin_errors: true, consecutive_local_origin_failure: 5 };

const FAILOVER_ENDPOINTS = [
  { name: 'p0-a', relayMs: null },
  { name: 'p0-b', relayMs: null },
  { name: 'p1-a', relayMs: 2 },
  { name: 'p1-b', relayMs: 2 },
  { name: 'p2-a', relayMs: 30 },
  { name: 'p2-b', relayMs: 30 },
];
const VARIANTS = [
  { fault: '503', retry: false },
  { fault: '503', retry: true },
  { fault: 'refuse', retry: false },
  { fault: 'refuse', retry: true },
];
const variantName = (v) => `${v.fault === '503' ? 'P0 answers 503' : 'P0 stops accepting'}, ${v.retry ? 'one retry (previous_priorities)' : 'no retry'}`;

/**
 * When traffic has moved: over requests in send order that completed after the fault, the first request
 * from which on every window of `w` consecutive requests has ≥ 99 % answered 200 by P1. Returns its index or
 * -1 (never converged within the run).
 */
function convergedAt(post, w) {
  const good = post.map((r) => (r.status === 200 && r.by.startsWith('p1-') ? 1 : 0));
  if (good.length < w) return -1;
  let sum = 0;
  for (let i = 0; i < w; i++) sum += good[i];
  let lastBad = sum < 0.99 * w ? 0 : -1;
  for (let j = 1; j + w <= good.length; j++) {
    sum += good[j + w - 1] - good[j - 1];
    if (sum < 0.99 * w) lastBad = j;
  }
  const i = lastBad + 1;
  return i + w <= good.length ? i : -1;
}

async function failoverRun(v, round, pin) {
  const dir = path.join(OUT, 'failover', `${v.fault}-${v.retry ? 'retry' : 'noretry'}-${round}`);
  rmSync(dir, { recursive: true, force: true });
  const world = await startUpstreams(dir, FAILOVER_ENDPOINTS.map((e) => ({ ...e, delayMs: 0 })), pin.upstreams);
  const portsOf = (prefix) => FAILOVER_ENDPOINTS.filter((e) => e.name.startsWith(prefix)).map((e) => world.ports[e.name]);
  const groups = [
    { region: 'aws-us-east-1', zone: 'us-east-1a', priority: 0, ports: portsOf('p0-') },
    { region: 'aws-us-east-1', zone: 'us-east-1b', priority: 1, ports: portsOf('p1-') },
    { region: 'gcp-us-east4', zone: 'us-east4-a', priority: 2, ports: portsOf('p2-') },
  ];
  // istiod's retry limit (uint32 max) instead of Envoy's default max_retries of 3 concurrent retries, which the
  // failover's burst of retries at this concurrency would overflow.
  const cluster = { lb_policy: 'ROUND_ROBIN', outlier_detection: v.fault === 'refuse' ? OUTLIER_SPLIT : OUTLIER, circuit_breakers: { thresholds: [{ max_retries: 4294967295 }] } };
  let s;
  try {
    s = await sidecarFor(dir, groups, cluster, v.retry ? { retry_policy: RETRY } : {}, pin.sidecar);
    const foreign = procs.foreignCpu([s.proc.pid, world.proc.pid]);
    const load = drive(s.port, { concurrency: CFG.failConcurrency, durationMs: CFG.steadyMs + CFG.afterMs });
    await sleep(CFG.steadyMs);
    const p0 = ['p0-a', 'p0-b'];
    const { at: faultAt } = v.fault === '503' ? await world.call('set', { names: p0, mode: 'fail' }) : await world.call('refuse', { names: p0 });
    const recs = await load;
    const others = foreign.end();
    const { counts } = await world.call('counts', { since: faultAt });
    const metrics = await adminText(s.adminPort, '/stats/prometheus');
    const ejections = [...metrics.matchAll(/outrigger_outlier_ejections_total\{cluster="backend",detector="(\w+)"\} (\d+)/g)].filter((m) => m[2] !== '0').map((m) => `${m[1]} ${m[2]}`);

    const pre = recs.filter((r) => r.start + r.ms < faultAt);
    const post = recs.filter((r) => r.start + r.ms >= faultAt).sort((a, b) => a.start - b.start);
    const failedPost = post.filter((r) => r.status !== 200);
    const i = convergedAt(post, CFG.window);
    const lat = post.map((r) => r.ms).sort((a, b) => a - b);
    const statuses = {};
    for (const r of failedPost) {
      const k = r.status ? `${r.status} ${r.by || '(sidecar)'}` : r.error;
      statuses[k] = (statuses[k] ?? 0) + 1;
    }
    // A failure the ejection should have prevented: sent after the client already had its host's
    // consecutive_5xx-th error back (the sidecar saw that error earlier still, and picked later still).
    let lateFailures = 0;
    for (const host of p0) {
      const mine = failedPost.filter((r) => r.by === host).sort((x, y) => x.start + x.ms - (y.start + y.ms));
      const nth = mine[OUTLIER.consecutive_5xx - 1];
      if (nth) lateFailures += mine.filter((r) => r.start > nth.start + nth.ms).length;
    }
    const row = {
      variant: variantName(v),
      v,
      round,
      preN: pre.length,
      preFailed: pre.filter((r) => r.status !== 200).length,
      preP0Share: pre.filter((r) => r.by.startsWith('p0-')).length / Math.max(1, pre.length),
      postN: post.length,
      failed: failedPost.length,
      statuses,
      lateFailures: v.fault === '503' ? lateFailures : null,
      lastFailureMs: failedPost.length ? Math.max(...failedPost.map((r) => r.start + r.ms)) - faultAt : null,
      convergeMs: i < 0 ? null : Math.max(0, post[i].start - faultAt),
      // Attempts that reached P0 after the fault (the upstream counts them; a refused connect never arrives).
      p0Attempts: p0.reduce((a, n) => a + counts[n].after, 0),
      p0LastMs: v.fault === '503' ? Math.max(...p0.map((n) => (counts[n].lastAt ?? faultAt) - faultAt)) : null,
      p2Answers: post.filter((r) => r.by.startsWith('p2-')).length,
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      ejections: ejections.join(', ') || 'none',
      others,
    };
    log(`  ${row.variant} round ${round}: ${row.failed} failed after the fault (${JSON.stringify(statuses)}), converged ${row.convergeMs == null ? 'never' : `+${f(row.convergeMs, 0)} ms`}, ejections ${row.ejections}`);
    return row;
  } finally {
    await s?.proc.stop();
    await world.proc.stop();
  }
}

async function failover(pin) {
  const rows = [];
  for (let round = 1; round <= CFG.failRounds; round++) {
    for (const v of round % 2 ? VARIANTS : [...VARIANTS].reverse()) rows.push(await failoverRun(v, round, pin));
  }
  return rows;
}

function failoverReport(rows) {
  const t = table(
    ['variant', 'failed requests after the fault', 'their answers', `failures sent after their host's ${OUTLIER.consecutive_5xx}th error was back`, 'converged (≥ 99 % on P1) after ms', 'last failure at ms', 'attempts reaching P0 after the fault', 'last P0 attempt at ms', 'answers from P2', 'p50 / p99 ms after the fault', 'ejections (detector count)', 'req/s before the fault → after'],
    VARIANTS.map((v) => {
      const rs = rows.filter((r) => r.v === v);
      const merged = {};
      for (const r of rs) for (const [k, n] of Object.entries(r.statuses)) merged[k] = [...(merged[k] ?? []), n];
      return [
        variantName(v),
        rs.map((r) => r.failed).join(' / '),
        Object.entries(merged).map(([k, ns]) => `${k} × ${ns.join('+')}`).join('; ') || '—',
        v.fault === '503' ? rs.map((r) => r.lateFailures).join(' / ') : 'n/a (no host named)',
        rs.map((r) => (r.convergeMs == null ? 'never' : f(r.convergeMs, 0))).join(' / '),
        rs.map((r) => (r.lastFailureMs == null ? '—' : f(r.lastFailureMs, 0))).join(' / '),
        v.fault === '503' ? rs.map((r) => r.p0Attempts).join(' / ') : 'n/a (refused)',
        v.fault === '503' ? rs.map((r) => f(r.p0LastMs, 0)).join(' / ') : 'n/a',
        rs.map((r) => r.p2Answers).join(' / '),
        rs.map((r) => `${f(r.p50, 1)} / ${f(r.p99, 1)}`).join(', '),
        [...new Set(rs.map((r) => r.ejections))].join(' | '),
        rs.map((r) => `${f(r.preN / (CFG.steadyMs / 1000), 0)} → ${f(r.postN / (CFG.afterMs / 1000), 0)}`).join(', '),
      ];
    }),
  );
  const pre = rows.map((r) => r.preP0Share);
  const preFailed = rows.reduce((a, r) => a + r.preFailed, 0);
  return [
    t,
    '',
    `Cells list the rounds in order (round 1 / round 2 / ...). Before the fault at least ${f(Math.min(...pre) * 100, 2)} % of the requests stayed in P0 in every run, with ${preFailed} failed. Bound from the issue without retries: consecutive_5xx × P0 endpoints = ${OUTLIER.consecutive_5xx * 2}, which holds one request at a time (test/e2e/lb-failover.test.ts); at concurrency ${CFG.failConcurrency}, requests already on their way to a host when its ${OUTLIER.consecutive_5xx}th error comes back fail too (as in Envoy: ejection stops new picks, it does not recall requests), so up to ${OUTLIER.consecutive_5xx * 2} + ${CFG.failConcurrency - 1} = ${OUTLIER.consecutive_5xx * 2 + CFG.failConcurrency - 1}; a failure *sent* after its host's ${OUTLIER.consecutive_5xx}th error was back would be an ejection that came late (the column must be 0). With one retry: 0.`,
  ].join('\n');
}

// ---- 3. pick cost ---------------------------------------------------------------------------------------

async function pickCost(pin) {
  const r = await procs.run(...pinned(pin.sidecar, [process.execPath, path.join(BENCH, 'lb-pick.mjs')]), { timeoutMs: 600_000 });
  if (r.code !== 0) return `lb-pick.mjs failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 500)}`;
  return r.stdout.trim();
}

// ---- main -----------------------------------------------------------------------------------------------

async function main() {
  procs.installCleanup(log);
  procs.reapStale(path.join(BENCH, 'out', '.lb-pgids.json'), BENCH);
  mkdirSync(OUT, { recursive: true });
  const startedAt = new Date();
  const loadStart = os.loadavg();
  const taskset = os.cpus().length >= 2 && (await hasTaskset());
  const pin = taskset ? { sidecar: 0, upstreams: 1 } : {};
  // The load generator (this process, all its threads) shares CPU 1 with the upstreams; the sidecar has CPU 0.
  if (taskset) await procs.run('taskset', ['-a', '-p', '-c', '1', String(process.pid)]);

  const idle = await procs.waitForQuiet(CFG.idleWaitMs);
  log(`${idle}; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const loadMeasured = os.loadavg();
  const sections = {};
  if (CFG.parts.includes('slow')) {
    log(`slow endpoint: ${CFG.endpoints} endpoints at ${CFG.baseMs} ms, ${SLOW} at ${CFG.baseMs * CFG.factor} ms; ${CFG.rounds} rounds × concurrency ${CFG.concurrencies.join(', ')} × ${Object.keys(PICKERS).length} pickers, ${CFG.requests} requests each after ${CFG.warmupMs / 1000} s of warm-up`);
    const rows = await slowEndpoint(pin);
    sections.slow = CFG.concurrencies.map((c) => ({ conc: c, ...slowReport(rows.filter((r) => r.conc === c)) }));
  }
  if (CFG.parts.includes('failover')) {
    log(`failover: ${VARIANTS.length} variants × ${CFG.failRounds} rounds at concurrency ${CFG.failConcurrency}`);
    sections.failover = failoverReport(await failover(pin));
  }
  if (CFG.parts.includes('pick')) {
    log('LB pick cost (bench/lb-pick.mjs)');
    sections.pick = await pickCost(pin);
  }
  const loadEnd = os.loadavg();
  const la = (l) => l.map((x) => x.toFixed(2)).join(' ');
  const md = [
    '## Load balancing (issue 5)',
    '',
    `- command: \`${Object.entries(env).filter(([k]) => k.startsWith('BENCH_')).map(([k, v]) => `${k}=${v} `).join('')}npm run bench:lb-scenarios\`; ${startedAt.toISOString()}; ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), node ${process.version}; load average ${la(loadStart)} at the start, ${la(loadMeasured)} when measuring began (${idle}), ${la(loadEnd)} at the end. The machine is shared with other engineers' tests: compare ratios, not absolute numbers.`,
    `- ${taskset ? 'sidecar pinned to CPU 0; upstreams + relays (one process) and the load generator (another) pinned to CPU 1 (`taskset`)' : 'no taskset: all processes share the CPUs'}; the sidecar is \`node ${SIDECAR_NODE_FLAGS.join(' ')} dist/cli/main.js sidecar --config FILE --access-log off --log-level warn\` with a STATIC cluster (bootstraps under bench/out/lb/).`,
    '- load: a Node keep-alive HTTP/1.1 client with a fixed number of connections, each sending its next request when the previous one answered (closed loop), recording every request (latency, status, the upstream that answered from `x-served-by`). wrk would do the same loop with less CPU, but it cannot tell which upstream answered each request nor give per-request timings for the failover windows.',
    '',
    ...(sections.slow
      ? [
          `### Slow endpoint: ${CFG.endpoints} endpoints, one 20× slower`,
          '',
          `${CFG.endpoints} endpoints in the caller's zone (no relay) answer after ${CFG.baseMs} ms (a timer in the upstream process), \`${SLOW}\` after ${CFG.baseMs * CFG.factor} ms from the start. Each round starts one fresh sidecar per picker (all four alive, on CPU 0) and warms each up with ${CFG.warmupMs / 1000} s of the same load; then the pickers take turns in slices of ${CFG.slice.toLocaleString('en')} requests, the order rotating every cycle, until each has ${CFG.requests.toLocaleString('en')} measured requests; so a burst of other programs' work falls on all pickers alike. Percentiles are over a picker's ${CFG.requests.toLocaleString('en')} requests of a round; cells are the median (min–max) over ${CFG.rounds} rounds, "× best" compares medians, and "lowest p99 of its cycle" counts the cycles in which the picker's slice had the lowest p99 of the four. LEAST_REQUEST is Envoy's default (2 choices, equal weights); PEAK_EWMA is configured through \`load_balancing_policy\` (TypedStruct, decay_time 10 s).`,
          '',
          `Each round runs every concurrency (${CFG.concurrencies.join(', ')}), one after another. Median over pickers and rounds: ${sections.slow.map((x) => `concurrency ${x.conc}: p50 ${f(median(x.by.map((b) => b.p50)), 1)} ms, sidecar ${f(median(x.rows.map((r) => r.cores.sidecar)), 2)} cores (${f(median(x.rows.map((r) => r.sidecarCpuMsPer1k)) / 1000, 2)} CPU-ms per request), other programs ${f(median(x.rows.map((r) => r.others)), 2)} cores`).join('; ')}. The endpoints answer in ${CFG.baseMs} ms; the rest of the p50 is queueing, mostly in the sidecar: where its p50 is several times ${CFG.baseMs} ms, the sidecar is saturated (it had one core, shared with other programs).`,
          '',
          ...sections.slow.flatMap((x) => [`#### Concurrency ${x.conc}`, '', x.md, '', 'Per round:', '', x.rounds, '']),
        ]
      : []),
    ...(sections.failover
      ? [
          '### Failover: the caller\'s zone fails',
          '',
          `Caller in aws-us-east-1 / us-east-1a. P0: 2 endpoints in its zone (the sidecar dials them directly); P1: 2 in us-east-1b behind a relay adding 2 ms each way; P2: 2 in another cloud behind a 30 ms relay. Upstreams answer at once. ROUND_ROBIN, \`outlier_detection {consecutive_5xx: 5, interval: 1s, base_ejection_time: 30s, max_ejection_percent: 100}\`; for "stops accepting" also \`split_external_local_origin_errors: true, consecutive_local_origin_failure: 5\`, so connect failures and resets eject as local-origin errors. Load at concurrency ${CFG.failConcurrency} for ${CFG.steadyMs / 1000} s, then the fault (P0 answers 503 to everything, or closes its listeners and every open connection), then ${CFG.afterMs / 1000} s more. With retry: \`circuit_breakers {max_retries: 4294967295}\` (istiod's), \`retry_policy {retry_on: 5xx, num_retries: 1, retry_host_predicate: previous_hosts, host_selection_retry_max_attempts: 5, retry_priority: previous_priorities {update_frequency: 1}}\`, default back-off.`,
          '',
          `"Converged" is the time from the fault to the send time of the first request from which on every window of ${CFG.window} consecutive requests (in send order) has ≥ 99 % answered 200 by P1; "attempts reaching P0" counts requests the P0 upstreams received after the fault (retried ones included).`,
          '',
          sections.failover,
          '',
        ]
      : []),
    ...(sections.pick ? ['### LB pick cost', '', '`bench/lb-pick.mjs` (also `npm run bench:lb`), pinned to CPU 0:', '', sections.pick, ''] : []),
  ].join('\n');
  console.log(md);
  if (CFG.parts.length === 3 && !CFG.pickers && sections.slow && sections.failover && sections.pick) {
    const file = path.join(BENCH, 'RESULTS.md');
    writeFileSync(file, replaceSection(existsSync(file) ? readFileSync(file, 'utf8') : '', 'lb', md));
    log(`wrote bench/RESULTS.md (section "Load balancing") in ${((Date.now() - startedAt.getTime()) / 1000).toFixed(0)} s`);
  } else log('only part of the bench ran: RESULTS.md left alone');
  return 0;
}

procs.runMain(main, log);
