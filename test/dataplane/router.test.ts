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

t.test('the prefix index keeps first-match order exactly, across indexed and unindexed routes', (t) => {
  const routes: Route[] = [
    route('long', { kind: 'prefix', value: '/api/v1/users' }),
    route('regex-any', { kind: 'regex', regex: '.*/special' }),
    route('alt', { kind: 'regex', regex: '/(a|b)/x' }),
    route('api', { kind: 'prefix', value: '/api' }),
    route('re-lit', { kind: 'regex', regex: '/api/v[0-9]+/items' }),
    route('re-q', { kind: 'regex', regex: '/ab?c' }),
    route('nocase', { kind: 'prefix', value: '/Mixed/' }, { caseSensitive: false }),
    route('nocase-utf', { kind: 'prefix', value: '/Ä/' }, { caseSensitive: false }),
    route('query', { kind: 'prefix', value: '/q' }, { queryParameters: [{ name: 'v', match: { kind: 'string', matcher: { kind: 'exact', value: '2', ignoreCase: false } } }] }),
    route('empty', { kind: 'prefix', value: '' }),
  ];
  const tbl = new RouteTable({ name: 'i', virtualHosts: [{ name: 'i', domains: ['*'], routes }] });
  const at = (p: string) => tbl.match('h', p, () => undefined)?.route.name;
  t.equal(at('/api/v1/users/7'), 'long');
  t.equal(at('/api/v1/special'), 'regex-any', 'an unindexed route listed earlier beats a later indexed one');
  t.equal(at('/api/v1/users/special'), 'long', 'and loses to an earlier indexed one');
  t.equal(at('/a/x'), 'alt', 'a regex with | is not indexed, yet matches');
  t.equal(at('/api/v2/items'), 'api', 'a shorter prefix listed earlier wins over a longer regex');
  t.equal(at('/ac'), 're-q', '`b?` makes the b optional: only "/a" is indexed');
  t.equal(at('/abc'), 're-q');
  t.equal(at('/mIxEd/x'), 'nocase', 'ASCII case folded in the walk, the route decides');
  t.equal(at('/ä/x'), 'nocase-utf', 'non-ASCII case-insensitive prefixes are unindexed');
  t.equal(at('/q?v=2'), 'query');
  t.equal(at('/q?v=3'), 'empty', 'query parameters are ANDed with the path');
  t.equal(at('/q?v=2#frag'), 'query', 'a fragment is not part of the value');
  t.equal(at(''), 'empty');
  const caseSensitive = new RouteTable({ name: 'c', virtualHosts: [{ name: 'c', domains: ['*'], routes: [route('upper', { kind: 'prefix', value: '/API' }), route('lower', { kind: 'prefix', value: '/api' })] }] });
  t.equal(caseSensitive.match('h', '/api/x', () => undefined)?.route.name, 'lower', 'both sit on one trie node; the matcher tells them apart');
  t.end();
});

t.test('pickTarget carries the cluster and its header edits; route-level response edits apply with or without a pick', (t) => {
  const hdr = (name: string, value: string) => ({ requestHeadersToAdd: [], requestHeadersToRemove: [], responseHeadersToAdd: [{ name, value, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' as const }], responseHeadersToRemove: [] });
  const split: Route = {
    name: 's',
    match: { path: { kind: 'prefix', value: '/' }, caseSensitive: true, headers: [] },
    action: { kind: 'route', action: { cluster: '', timeoutMs: 0, hashPolicy: [], weightedClusters: [{ name: 'a', weight: 1, headers: hdr('x-c', 'a') }, { name: 'b', weight: 1 }] } },
    headers: hdr('x-r', 'r'),
  };
  const tbl = new RouteTable({ name: 'p', virtualHosts: [{ name: 'p', domains: ['*'], routes: [split] }] });
  const m = tbl.match('h', '/', () => undefined)!;
  const a = m.pickTarget({ next: () => 0.1, int: () => 0 });
  const b = m.pickTarget({ next: () => 0.9, int: () => 0 });
  t.equal(a.name, 'a');
  t.equal(b.name, 'b');
  const ha = {};
  a.responseHeaders!(ha);
  t.strictSame(ha, { 'x-c': 'a', 'x-r': 'r' });
  const hb = {};
  b.responseHeaders!(hb);
  t.strictSame(hb, { 'x-r': 'r' });
  const hr = {};
  m.responseHeaders!(hr);
  t.strictSame(hr, { 'x-r': 'r' });
  t.equal(a.requestHeaders, undefined);
  t.equal(m.redirectLocation, undefined);
  t.end();
});
