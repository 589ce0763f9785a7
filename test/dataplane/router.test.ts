import t from 'tap';
import { seededRng } from '../../src/core/rng.js';
import { RouteTable } from '../../src/dataplane/router.js';
import type { Route, RouteConfiguration } from '../../src/model/types.js';

const route = (name: string, path: Route['match']['path'], extra: Partial<Route['match']> = {}): Route => ({
  name,
  match: { path, caseSensitive: true, headers: [], ...extra },
  action: { kind: 'route', action: { cluster: name, timeoutMs: 15000, hashPolicy: [] } },
});

const rc: RouteConfiguration = {
  name: 'rc',
  virtualHosts: [
    { name: 'exact', domains: ['api.example.com', 'api.example.com:8080'], routes: [route('exact-api', { kind: 'prefix', value: '/' })] },
    { name: 'suffix-long', domains: ['*.svc.example.com'], routes: [route('suffix-long', { kind: 'prefix', value: '/' })] },
    { name: 'suffix', domains: ['*.example.com'], routes: [route('suffix', { kind: 'prefix', value: '/' })] },
    { name: 'prefix', domains: ['reviews.*'], routes: [route('prefix', { kind: 'prefix', value: '/' })] },
    {
      name: 'default',
      domains: ['*'],
      routes: [
        route('exact-path', { kind: 'path', value: '/exact' }),
        route('nocase', { kind: 'prefix', value: '/CaSe' }, { caseSensitive: false }),
        route('regex', { kind: 'regex', regex: '/v[0-9]+/items/[a-z]+' }),
        route('hdr', { kind: 'prefix', value: '/h' }, {
          headers: [
            { name: 'x-canary', match: { kind: 'string', matcher: { kind: 'exact', value: 'yes', ignoreCase: false } }, invert: false },
            { name: 'x-block', match: { kind: 'present', present: true }, invert: true },
          ],
        }),
        route('h-fallback', { kind: 'prefix', value: '/h' }),
        route('method', { kind: 'prefix', value: '/m' }, { headers: [{ name: ':method', match: { kind: 'string', matcher: { kind: 'exact', value: 'POST', ignoreCase: false } }, invert: false }] }),
      ],
    },
  ],
};

const table = new RouteTable(rc);
const m = (authority: string, path: string, headers: Record<string, string> = {}) =>
  table.match(authority, path, (n) => headers[n])?.route.name;

t.test('virtual host precedence: exact, longest suffix, prefix, then *', (t) => {
  t.equal(m('api.example.com', '/x'), 'exact-api');
  t.equal(m('API.Example.com', '/x'), 'exact-api', 'host match is case-insensitive');
  t.equal(m('api.example.com:8080', '/x'), 'exact-api', 'the port is part of the domain');
  t.equal(m('a.svc.example.com', '/x'), 'suffix-long');
  t.equal(m('www.example.com', '/x'), 'suffix');
  t.equal(m('.example.com', '/exact'), 'exact-path', 'a wildcard needs at least one character, so this falls to *');
  t.equal(m('reviews.default', '/x'), 'prefix');
  t.end();
});

t.test('path matching: exact ignores the query, prefix case rules, RE2 regex on the whole path', (t) => {
  t.equal(m('other', '/exact'), 'exact-path');
  t.equal(m('other', '/exact?a=1'), 'exact-path');
  t.equal(m('other', '/exactly'), undefined);
  t.equal(m('other', '/case/x'), 'nocase');
  t.equal(m('other', '/v12/items/abc'), 'regex');
  t.equal(m('other', '/v12/items/abc?q=1'), 'regex');
  t.equal(m('other', '/v12/items/abc/more'), undefined, 'regex must match the entire path');
  t.end();
});

t.test('header matchers, invert, pseudo-headers, first match wins', (t) => {
  t.equal(m('other', '/h', { 'x-canary': 'yes' }), 'hdr');
  t.equal(m('other', '/h', { 'x-canary': 'yes', 'x-block': '1' }), 'h-fallback');
  t.equal(m('other', '/h', { 'x-canary': 'no' }), 'h-fallback');
  t.equal(m('other', '/h'), 'h-fallback', 'a missing header never matches a value matcher');
  t.equal(m('other', '/m', { ':method': 'POST' }), 'method');
  t.equal(m('other', '/m', { ':method': 'GET' }), undefined);
  t.end();
});

t.test('no virtual host and no route both give undefined', (t) => {
  const only = new RouteTable({ name: 'x', virtualHosts: [{ name: 'a', domains: ['a'], routes: [route('a', { kind: 'path', value: '/a' })] }] });
  t.equal(only.match('b', '/a', () => undefined), undefined);
  t.equal(only.match('a', '/b', () => undefined), undefined);
  t.equal(only.match('a', '/a', () => undefined)?.virtualHost, 'a');
  t.end();
});

t.test('weighted_clusters: each request picks one cluster in proportion to its weight; weight 0 never', (t) => {
  const split: Route = {
    name: 'split',
    match: { path: { kind: 'prefix', value: '/' }, caseSensitive: true, headers: [] },
    action: { kind: 'route', action: { cluster: '', timeoutMs: 0, hashPolicy: [], weightedClusters: [{ name: 'v1', weight: 90 }, { name: 'off', weight: 0 }, { name: 'v3', weight: 10 }] } },
  };
  const direct: Route = { ...route('d', { kind: 'path', value: '/d' }), action: { kind: 'direct_response', status: 200 } };
  const tbl = new RouteTable({ name: 'w', virtualHosts: [{ name: 'w', domains: ['*'], routes: [direct, split] }] });
  const picked = tbl.match('reviews', '/x', () => undefined)!;
  const rng = seededRng(7);
  const counts: Record<string, number> = {};
  for (let i = 0; i < 10_000; i++) {
    const c = picked.pickCluster(rng);
    counts[c] = (counts[c] ?? 0) + 1;
  }
  t.strictSame(Object.keys(counts).sort(), ['v1', 'v3']);
  t.ok(counts.v1! > 8700 && counts.v1! < 9300, `about 90 % to v1 (${counts.v1})`);
  // The draw decides: just under 0.9 is v1, 0.9 and above v3.
  t.equal(picked.pickCluster({ next: () => 0.8999, int: () => 0 }), 'v1');
  t.equal(picked.pickCluster({ next: () => 0.9, int: () => 0 }), 'v3');
  t.equal(tbl.match('a', '/d', () => undefined)!.pickCluster(rng), '', 'a direct response names no cluster');
  t.equal(table.match('api.example.com', '/', () => undefined)!.pickCluster(rng), 'exact-api', 'a single cluster needs no draw');
  t.end();
});
