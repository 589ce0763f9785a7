#!/usr/bin/env node
// Rate-limit check cost (issue 6): nanoseconds per local_ratelimit decision, target < 1 µs. Three cases: the
// limiter alone with one exact descriptor; the limiter with a per-principal (wildcard) descriptor over 20 callers;
// and the whole filter (descriptors from the route's rate_limits actions, then the limiter, then the metric).
// Settings: BENCH_RL_CHECKS (checks per timed run, default 1,000,000), BENCH_RL_RUNS (runs, median kept, default 5).
import { distLoader, filterKit } from './lib/dist.mjs';

const load = distLoader('policy/rate-limit.js');
const { LocalRateLimiter } = await load('policy/rate-limit.js');
const { localRateLimitFactory } = await load('dataplane/filters/local-ratelimit.js');
const kit = await filterKit(load);

const CHECKS = Number(process.env.BENCH_RL_CHECKS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RL_RUNS ?? 5);
// Buckets that never run dry, so every check takes the same (admitting) path.
const BIG = { maxTokens: 2 ** 32 - 1, tokensPerFill: 2 ** 32 - 1, fillIntervalMs: 1000 };
const callers = Array.from({ length: 20 }, (_, i) => `spiffe://cluster.local/ns/default/sa/caller-${i}`);

/** Median ns per call of `fn(i)` over RUNS runs of CHECKS calls, after a warm-up run. */
function time(fn) {
  const runs = [];
  for (let r = 0; r <= RUNS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < CHECKS; i++) fn(i);
    const ns = Number(process.hrtime.bigint() - t0) / CHECKS;
    if (r > 0) runs.push(ns);
  }
  return runs.sort((a, b) => a - b)[Math.floor(runs.length / 2)];
}

let now = 0;
const exact = new LocalRateLimiter({ tokenBucket: BIG, descriptors: [{ entries: [{ key: 'rule', value: 'api' }], tokenBucket: BIG }], alwaysConsumeDefaultTokenBucket: false }, 0);
const apiDesc = [[{ key: 'rule', value: 'api' }]];
const perPrincipal = new LocalRateLimiter({ tokenBucket: BIG, descriptors: [{ entries: [{ key: 'rule', value: 'api' }, { key: 'source_principal', value: '' }], tokenBucket: BIG }], alwaysConsumeDefaultTokenBucket: false }, 0);
const principalDescs = callers.map((c) => [[{ key: 'rule', value: 'api' }, { key: 'source_principal', value: c }]]);

const clock = { monotonic: () => now, now: () => now };
const filter = kit.create(
  localRateLimitFactory,
  'envoy.filters.http.local_ratelimit',
  { statPrefix: 'bench', status: 429, tokenBucket: BIG, enabled: 1, enforced: 1, responseHeadersToAdd: [], descriptors: [{ entries: [{ key: 'rule', value: 'api' }, { key: 'source_principal', value: '' }], tokenBucket: BIG }], stage: 0, alwaysConsumeDefaultTokenBucket: false, rateLimitedAsResourceExhausted: true },
  clock,
);
const rateLimits = [
  {
    stage: 0,
    actions: [
      { kind: 'header_value_match', key: 'rule', value: 'api', expectMatch: true, headers: [{ name: ':path', match: { kind: 'string', matcher: { kind: 'prefix', value: '/api', ignoreCase: false } }, invert: false }] },
      { kind: 'source_principal', key: 'source_principal', skip: false },
    ],
  },
];
const route = { route: { name: '', match: {}, action: { kind: 'route', action: { cluster: 'c', timeoutMs: 0, hashPolicy: [], rateLimits } } }, virtualHost: 'v' };
const reqs = callers.map((uri) => ({ rec: kit.get('reviews', '/api/items', {}, { remoteIp: '10.0.0.1', remotePort: 1, tls: true, peer: { uri } }), route }));

const rows = [
  ['limiter, one exact descriptor', time((i) => exact.check(apiDesc, (now = i)))],
  ['limiter, per-principal buckets (20 callers)', time((i) => perPrincipal.check(principalDescs[i % 20], (now = i)))],
  ['whole filter: rate_limits actions + limiter + metric', time((i) => ((now = i), filter.decodeHeaders(reqs[i % 20])))],
];
console.log(`node ${process.version}, ${CHECKS.toLocaleString('en')} checks per run, median of ${RUNS} runs\n`);
console.log('| case | ns per check |\n|---|---:|');
for (const [name, ns] of rows) console.log(`| ${name} | ${ns.toFixed(0)} |`);
