#!/usr/bin/env node
// LB pick cost (issue 5): nanoseconds per Balancer.pick() on a 1,000-endpoint cluster in 3 priorities and
// 6 localities (locality-weighted), for each policy, with everything healthy and with P0 at 60 % available
// (so the priority draw and spill-over run on every pick). Prints a markdown table; run `npm run bench:lb`.
// Settings: BENCH_LB_PICKS (picks per timed run, default 1,000,000), BENCH_LB_RUNS (runs, median kept, default 5).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
if (!existsSync(path.join(DIST, 'upstream', 'lb', 'index.js'))) {
  console.error('dist/ is missing: run `npm run build` first');
  process.exit(2);
}
const load = (p) => import(pathToFileURL(path.join(DIST, p)).href);
const { createBalancer, PeakEwma, requestHash } = await load('upstream/lb/index.js');
const { LB_DEFAULTS } = await load('model/types.js');
const { seededRng } = await load('core/rng.js');
const { systemClock } = await load('core/clock.js');

const PICKS = Number(process.env.BENCH_LB_PICKS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_LB_RUNS ?? 5);
const ENDPOINTS = 1000;
const POLICIES = ['ROUND_ROBIN', 'RANDOM', 'LEAST_REQUEST', 'RING_HASH', 'MAGLEV', 'PEAK_EWMA'];

/** 1,000 hosts: priority p = i mod 3, locality = two zones per priority, mixed in-flight counts and latencies. */
function cluster() {
  const rng = seededRng(42);
  return Array.from({ length: ENDPOINTS }, (_, i) => {
    const priority = i % 3;
    const zone = `zone-${priority}-${(i >> 2) % 2}`;
    const ewma = new PeakEwma(10_000);
    ewma.observe(1 + rng.next() * 20, systemClock.monotonic());
    return {
      hostPort: `10.${priority}.${i >> 8}.${i & 255}:8080`,
      weight: 1,
      locality: { region: `region-${priority}`, zone, subZone: '' },
      localityWeight: 1 + (i % 2),
      priority,
      rqActive: rng.int(8),
      healthy: true,
      ejected: false,
      ewma,
    };
  });
}

function measure(policy, degraded) {
  const hosts = cluster();
  if (degraded) hosts.filter((h) => h.priority === 0).forEach((h, i) => (h.healthy = i % 5 >= 2)); // P0 60 % available
  const cfg = { ...LB_DEFAULTS, policy, localityWeighted: true };
  const b = createBalancer(cfg, 140, hosts, { rng: seededRng(7), clock: systemClock });
  // Request hashes as the router would compute them (precomputed: the hash is the router's cost, not the pick's).
  const hashes = Array.from({ length: 4096 }, (_, i) => requestHash([`user-${i}`]));
  const hashed = policy === 'RING_HASH' || policy === 'MAGLEV';
  let sink = 0;
  const run = (n) => {
    const t0 = process.hrtime.bigint();
    if (hashed) for (let i = 0; i < n; i++) sink += b.pick(hashes[i & 4095]).weight;
    else for (let i = 0; i < n; i++) sink += b.pick().weight;
    return Number(process.hrtime.bigint() - t0) / n;
  };
  run(Math.min(PICKS, 200_000)); // warm up: builds the pick tables lazily, lets V8 optimise
  const times = Array.from({ length: RUNS }, () => run(PICKS)).sort((a, b) => a - b);
  if (sink === 0) throw new Error('no picks');
  const v = b.view();
  return { ns: times[Math.floor(RUNS / 2)], loads: v.priorities.map((p) => p.load).join('/') };
}

const rows = [];
for (const policy of POLICIES) {
  const healthy = measure(policy, false);
  const degraded = measure(policy, true);
  rows.push({ policy, healthy, degraded });
}
console.log(`LB pick cost: ${ENDPOINTS} endpoints, 3 priorities, 6 localities (locality-weighted), node ${process.version}, median of ${RUNS} × ${PICKS.toLocaleString('en')} picks\n`);
console.log(`| policy | ns/pick, all healthy (load ${rows[0].healthy.loads}) | ns/pick, P0 60 % available (load ${rows[0].degraded.loads}) |`);
console.log('|---|---:|---:|');
for (const r of rows) console.log(`| ${r.policy} | ${r.healthy.ns.toFixed(0)} | ${r.degraded.ns.toFixed(0)} |`);
const worst = Math.max(...rows.flatMap((r) => [r.healthy.ns, r.degraded.ns]));
console.log(`\nTarget < 2,000 ns per pick: ${worst < 2000 ? 'met' : 'MISSED'} (worst ${worst.toFixed(0)} ns).`);
