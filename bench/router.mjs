#!/usr/bin/env node
// Router cost (issue 6): nanoseconds per RouteTable.match() on a virtual host of 1,000 routes, the way a
// sidecar's compiled table runs it per request (precompiled matchers, the literal-prefix index, RE2-validated
// regexes on V8 where equivalent). Each request is timed on its own (hrtime around one match; the first row
// shows what the timer itself adds); p50 / p99 / max are per match.
// Run `npm run bench:router`. Settings: BENCH_ROUTER_REQUESTS (timed matches per scenario, default 200,000).
import { distLoader } from './lib/dist.mjs';
const load = distLoader('dataplane/router.js');
const { RouteTable } = await load('dataplane/router.js');
const { seededRng } = await load('core/rng.js');

const REQUESTS = Number(process.env.BENCH_ROUTER_REQUESTS ?? 200_000);
const ROUTES = 1000;
const to = { kind: 'route', action: { cluster: 'c', timeoutMs: 0, hashPolicy: [] } };
const str = (kind, value) => (kind === 'regex' ? { kind, regex: value, ignoreCase: false } : { kind, value, ignoreCase: false });
const route = (name, path, extra = {}) => ({ name, match: { path, caseSensitive: true, headers: [], ...extra }, action: to });

/**
 * An Istio-shaped table: per service i, in VirtualService order: a header-matched canary prefix, an exact
 * health path, a regex item path, a query-matched prefix, a plain prefix; then a catch-all "/" last.
 */
function mixed() {
  const routes = [];
  for (let i = 0; routes.length < ROUTES - 1; i++) {
    routes.push(route(`canary-${i}`, { kind: 'prefix', value: `/svc${i}/api` }, { headers: [{ name: 'x-canary', match: { kind: 'string', matcher: str('exact', 'yes') }, invert: false }] }));
    routes.push(route(`health-${i}`, { kind: 'path', value: `/svc${i}/health` }));
    routes.push(route(`items-${i}`, { kind: 'regex', regex: `/svc${i}/items/[0-9]+` }));
    routes.push(route(`q-${i}`, { kind: 'prefix', value: `/svc${i}/search` }, { queryParameters: [{ name: 'v', match: { kind: 'string', matcher: str('regex', '[12]') } }] }));
    routes.push(route(`svc-${i}`, { kind: 'prefix', value: `/svc${i}/` }));
  }
  routes.length = ROUTES - 1;
  routes.push(route('catch-all', { kind: 'prefix', value: '/' }));
  return routes;
}

/** The same table with every path regex outside the V8 subset (`\s?` keeps RE2): the cost of the RE2 fallback. */
function re2Only() {
  return mixed().map((r) => (r.match.path.kind === 'regex' ? { ...r, match: { ...r.match, path: { kind: 'regex', regex: `${r.match.path.regex}\\s?` } } } : r));
}

/** 1,000 regex routes that promise no literal prefix (`.*` first), all unindexed: the worst case, every route tested. */
function unindexed() {
  return Array.from({ length: ROUTES }, (_, i) => route(`re-${i}`, { kind: 'regex', regex: `.*/svc${i}/items` }));
}

function requests(n, services) {
  const rng = seededRng(7);
  const shapes = [
    (i) => [`/svc${i}/api/users`, { 'x-canary': 'yes' }],
    (i) => [`/svc${i}/api/users`, {}],
    (i) => [`/svc${i}/health`, {}],
    (i) => [`/svc${i}/items/12345`, {}],
    (i) => [`/svc${i}/search?v=2&q=shoes`, {}],
    (i) => [`/svc${i}/other/path?x=1`, {}],
    () => ['/unknown/path', {}],
  ];
  return Array.from({ length: n }, () => {
    const [p, h] = shapes[rng.int(shapes.length)](rng.int(services));
    return { path: p, get: (name) => h[name] };
  });
}

function run(name, routes, services) {
  const table = routes ? new RouteTable({ name: 'b', virtualHosts: [{ name: 'vh', domains: ['*'], routes }] }) : { match: () => undefined };
  const reqs = requests(REQUESTS, services);
  // Warm up (JIT), then time each match on its own.
  for (let k = 0; k < 3; k++) for (const r of reqs.slice(0, 20_000)) table.match('svc', r.path, r.get);
  const ns = new Float64Array(reqs.length);
  let hits = 0;
  for (let i = 0; i < reqs.length; i++) {
    const r = reqs[i];
    const t0 = process.hrtime.bigint();
    const m = table.match('svc', r.path, r.get);
    ns[i] = Number(process.hrtime.bigint() - t0);
    if (m) hits++;
  }
  ns.sort();
  const at = (q) => ns[Math.min(ns.length - 1, Math.floor(q * ns.length))];
  const mean = ns.reduce((s, x) => s + x, 0) / ns.length;
  return { name, p50: at(0.5), p99: at(0.99), max: ns[ns.length - 1], mean, hits };
}

const services = Math.ceil((ROUTES - 1) / 5);
const rows = [run('(the timer alone: an empty call, timed the same way)', undefined, services), run('1,000 routes, Istio-shaped (prefix, exact, header, query, JS-path regex)', mixed(), services), run('same, every regex on RE2 (outside the V8 subset)', re2Only(), services), run('1,000 unindexed regex routes (`.*/svcN/items`), worst case', unindexed(), ROUTES)];
const us = (x) => (x / 1000).toFixed(2);
console.log(`Router match, ${REQUESTS.toLocaleString('en')} requests per scenario, node ${process.version}, ${new Date().toISOString().slice(0, 10)}`);
console.log('');
console.log('| table | p50 µs | p99 µs | max µs | mean µs |');
console.log('|---|---:|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.name} | ${us(r.p50)} | ${us(r.p99)} | ${us(r.max)} | ${us(r.mean)} |`);
