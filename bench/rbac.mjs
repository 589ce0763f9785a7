#!/usr/bin/env node
// RBAC decision cost (issue 7): one compiled engine of 50 Istio-shaped ALLOW policies (what istiod writes for
// AuthorizationPolicy rules: methods, paths, ports, principals, namespaces as `.*/ns/<ns>/.*` regexes, a header
// condition, ipBlocks), decoded from Envoy's JSON by the real decoder. Each decision is timed on its own
// (hrtime around one evaluate; the first row is the timer by itself); p50 / p99 / max per decision, and the CPU
// time per decision over a tight loop (what a loaded machine cannot inflate).
// Target: < 5 µs per decision at p99. Settings: BENCH_RBAC_REQUESTS (decisions per case, default 200,000).
import { distLoader, filterKit } from './lib/dist.mjs';
const load = distLoader('policy/rbac.js');
const { compileRbac } = await load('policy/rbac.js');
const { decodeRbacRules } = await load('xds/http-filters/rbac.js');
const { Issues } = await load('xds/resources/common.js');
const { rbacFactory } = await load('dataplane/filters/rbac.js');
const kit = await filterKit(load);

const REQUESTS = Number(process.env.BENCH_RBAC_REQUESTS ?? 200_000);
const POLICIES = 50;
const TD = 'cluster.local';

const or = (kind, items) => ({ [kind === 'rules' ? 'or_rules' : 'or_ids']: { [kind]: items } });

/** Policy i as istiod writes one AuthorizationPolicy rule: AND of ORs, one OR per field. */
function policy(i) {
  const permissions = [
    {
      and_rules: {
        rules: [
          or('rules', [{ header: { name: ':method', string_match: { exact: 'GET' } } }, { header: { name: ':method', string_match: { exact: 'POST' } } }]),
          or('rules', [{ url_path: { path: { prefix: `/api/v${i}/` } } }, { url_path: { path: { exact: `/svc${i}/health` } } }, { url_path: { path: { suffix: `.v${i}.png` } } }]),
          or('rules', [{ destination_port: 8080 }, { destination_port: 9000 + i }]),
        ],
      },
    },
  ];
  const principals = [
    {
      and_ids: {
        ids: [
          or('ids', [{ authenticated: { principal_name: { exact: `spiffe://${TD}/ns/ns${i}/sa/client` } } }, { authenticated: { principal_name: { exact: `spiffe://${TD}/ns/ns${i}/sa/batch` } } }]),
          or('ids', [{ authenticated: { principal_name: { safe_regex: { regex: `.*/ns/ns${i}/.*` } } } }, { authenticated: { principal_name: { safe_regex: { regex: `.*/ns/shared-${i}/.*` } } } }]),
          or('ids', [{ header: { name: 'x-tenant', string_match: { exact: `t${i}` } } }]),
          or('ids', [{ direct_remote_ip: { address_prefix: '10.0.0.0', prefix_len: { value: 8 } } }, { direct_remote_ip: { address_prefix: 'fd00::', prefix_len: { value: 8 } } }]),
        ],
      },
    },
  ];
  return [`ns[ns${i}]-policy[p${i}]-rule[0]`, { permissions, principals }];
}

/** Policy i with `from` only (principals and namespaces, any operation): no path for the index to use. */
function fromOnly(i) {
  const [name, p] = policy(i);
  return [name, { permissions: [{ any: true }], principals: p.principals }];
}

function compile(make) {
  const issues = new Issues();
  const rules = decodeRbacRules({ action: 'ALLOW', policies: Object.fromEntries(Array.from({ length: POLICIES }, (_, i) => make(i))) }, 'rules', issues);
  if (issues.list.length) throw new Error(JSON.stringify(issues.list));
  return { rules, engine: compileRbac(rules) };
}
const { rules, engine } = compile(policy);
const fromOnlyEngine = compile(fromOnly).engine;

const req = (o) => ({
  method: 'GET',
  path: '/api/v49/items?page=2',
  authority: 'svc.ns49.svc.cluster.local',
  headers: { 'x-tenant': 't49', 'user-agent': 'bench', accept: '*/*' },
  directRemoteIp: '10.1.2.3',
  remoteIp: '10.1.2.3',
  destinationIp: '10.1.2.4',
  destinationPort: 8080,
  principal: `spiffe://${TD}/ns/ns49/sa/client`,
  sni: undefined,
  metadata: undefined,
  tls: true,
  ...o,
});

// The last policy in name order is ns[ns9]-...: the allowed case matches the policy evaluated last.
const last = rules.policies[rules.policies.length - 1].name;
const lastI = Number(/ns\[ns(\d+)\]/.exec(last)[1]);
const cases = [
  ['(the timer alone: an empty call, timed the same way)', undefined, undefined],
  [`allowed: matches the last of 50 policies (${last})`, req({ path: `/api/v${lastI}/items?page=2`, headers: { 'x-tenant': `t${lastI}` }, principal: `spiffe://${TD}/ns/ns${lastI}/sa/client` }), true],
  ['denied: right path and port, a caller from another namespace (no policy matches)', req({ path: `/api/v${lastI}/items`, principal: `spiffe://${TD}/ns/other/sa/client` }), false],
  ['denied: a path no policy names (every policy tested, none past its permissions)', req({ path: '/nowhere' }), false],
  ['from-only policies (no paths to index), denied: every policy\'s principals tested', req({ principal: `spiffe://${TD}/ns/other/sa/client` }), false, fromOnlyEngine],
];

function run(name, input, want, e = engine) {
  const fn = input ? () => e.evaluate(input) : () => undefined;
  if (input && want !== undefined && e.evaluate(input).allowed !== want) throw new Error(`${name}: wrong decision`);
  for (let k = 0; k < 50_000; k++) fn();
  const ns = new Float64Array(REQUESTS);
  for (let i = 0; i < REQUESTS; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    ns[i] = Number(process.hrtime.bigint() - t0);
  }
  ns.sort();
  const at = (q) => ns[Math.min(ns.length - 1, Math.floor(q * ns.length))];
  return { name, p50: at(0.5), p99: at(0.99), max: ns[ns.length - 1], mean: ns.reduce((s, x) => s + x, 0) / ns.length };
}

/** CPU time per decision over a tight loop: unlike wall-clock percentiles, not inflated by waiting for a core. */
function cpuNs(input, e = engine) {
  const c0 = process.cpuUsage();
  for (let i = 0; i < REQUESTS; i++) e.evaluate(input);
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) * 1000) / REQUESTS;
}

// The whole filter: the request's RbacInput from the record and its route, the engine, the decision tally.
const filter = kit.create(rbacFactory, 'envoy.filters.http.rbac', { rules, shadowRules: undefined, rulesStatPrefix: '', shadowRulesStatPrefix: '' }, { monotonic: () => 0, now: () => 0 });
const allowedIn = cases[1][1];
const filterReq = {
  rec: kit.get(allowedIn.authority, allowedIn.path, allowedIn.headers, { remoteIp: '10.1.2.3', remotePort: 1, tls: true, peer: { uri: allowedIn.principal }, localIp: '10.1.2.4', localPort: 15006 }),
  route: { route: { action: { kind: 'route', action: { cluster: 'inbound|8080||' } } }, virtualHost: 'inbound' },
};
if (filter.decodeHeaders(filterReq) !== undefined) throw new Error('the filter refused the allowed request');
cases.push(['whole filter, allowed case: input from the request record and route, engine, decision tally', filterReq, undefined, { evaluate: (r) => filter.decodeHeaders(r) }]);

const rows = cases.map(([name, input, want, e]) => ({ ...run(name, input, want, e), cpu: input ? cpuNs(input, e) : undefined }));
const us = (x) => (x / 1000).toFixed(2);
console.log(`RBAC decision, ${POLICIES} Istio-shaped ALLOW policies, ${REQUESTS.toLocaleString('en')} decisions per case, node ${process.version}, ${new Date().toISOString().slice(0, 16)} UTC`);
console.log('');
console.log('| case | p50 µs | p99 µs | max µs | mean µs | CPU µs per decision (tight loop) |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.name} | ${us(r.p50)} | ${us(r.p99)} | ${us(r.max)} | ${us(r.mean)} | ${r.cpu === undefined ? '—' : us(r.cpu)} |`);
