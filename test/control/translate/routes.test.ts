// VirtualService routing -> Envoy routes as istiod writes them, read back through the sidecar's own RDS decoder.
import t from 'tap';
import type { HTTPRoute } from '../../../src/control/mesh/types.js';
import { translate } from '../../../src/control/translate/index.js';
import type { Route, RouteConfiguration } from '../../../src/model/types.js';
import { ROUTE_CONFIGURATION_TYPE_URL } from '../../../src/xds/protos.js';
import { grpcAccepts } from './grpc-validators.js';
import { OPTS, REVIEWS, bookinfo, decodeAll, dest, node, vs } from './helpers.js';

const routesOf = (http: HTTPRoute[]): readonly Route[] => {
  const rc: RouteConfiguration = decodeAll(translate(bookinfo({ virtualServices: [vs('reviews', [REVIEWS], http)] }), node(), OPTS), ROUTE_CONFIGURATION_TYPE_URL).get('outbound')!;
  return rc.virtualHosts.find((v) => v.name === `${REVIEWS}:9080`)!.routes;
};
const v1 = [{ destination: dest(REVIEWS, 'v1'), weight: 100 }];
const s = (kind: 'exact' | 'prefix' | 'regex', value: string) => (kind === 'regex' ? { kind, regex: value, ignoreCase: false } : { kind, value, ignoreCase: false });

t.test('matches: one Envoy route per match block; every condition of a block on that route', (t) => {
  const routes = routesOf([
    {
      name: 'r',
      match: [
        { name: 'm', uri: { prefix: '/api' }, headers: { 'x-u': { exact: 'a' } }, queryParams: { v: { regex: '[12]' }, w: { prefix: 'x' } }, method: { exact: 'GET' }, authority: { regex: 'rev.*' }, ignoreUriCase: true, withoutHeaders: { 'x-b': { exact: '1' } } },
        { uri: { regex: '/i/[0-9]+' }, headers: {} },
      ],
      route: v1,
    },
  ]);
  t.equal(routes.length, 2);
  t.strictSame(routes[0]!.name, 'r.m');
  t.strictSame(routes[0]!.match, {
    path: { kind: 'prefix', value: '/api' },
    caseSensitive: false,
    headers: [
      { name: 'x-u', match: { kind: 'string', matcher: s('exact', 'a') }, invert: false },
      { name: 'x-b', match: { kind: 'string', matcher: s('exact', '1') }, invert: true },
      { name: ':method', match: { kind: 'string', matcher: s('exact', 'GET') }, invert: false },
      { name: ':authority', match: { kind: 'string', matcher: s('regex', 'rev.*') }, invert: false },
    ],
    queryParameters: [
      { name: 'v', match: { kind: 'string', matcher: s('regex', '[12]') } },
      { name: 'w', match: { kind: 'string', matcher: s('prefix', 'x') } },
    ],
  });
  t.strictSame(routes[1]!.match, { path: { kind: 'regex', regex: '/i/[0-9]+' }, caseSensitive: true, headers: [] });
  t.strictSame(routes[0]!.action, routes[1]!.action, 'the same action on both');
  t.end();
});

t.test('actions: redirect, direct response, rewrites, authority', (t) => {
  const [redirect, derived, direct, prefix, regex, hostHeader] = routesOf([
    { match: [], route: [], redirect: { uri: '/n', authority: 'b', scheme: 'https', port: 8443, redirectCode: 307 } },
    { match: [], route: [], redirect: { derivePort: 'FROM_REQUEST_PORT', redirectCode: 301 } },
    { match: [], route: [], directResponse: { status: 503, body: 'down' }, headers: { response: { set: { 'x-d': '1' } } } },
    { match: [], route: v1, rewrite: { uri: '/v2', authority: 'internal' } },
    { match: [], route: v1, rewrite: { uriRegexRewrite: { match: '^/a/(.*)$', rewrite: '/b/\\1' } } },
    { match: [], route: v1, headers: { request: { set: { host: 'h.example' } } } },
  ]);
  t.strictSame(redirect!.action, { kind: 'redirect', redirect: { scheme: 'https', host: 'b', port: 8443, path: '/n', status: 307, stripQuery: false } });
  t.strictSame(derived!.action, { kind: 'redirect', redirect: { port: 9080, status: 301, stripQuery: false } }, 'FROM_REQUEST_PORT: the port of the virtual host');
  t.strictSame(direct!.action, { kind: 'direct_response', status: 503, body: 'down' });
  t.strictSame(direct!.headers?.responseHeadersToAdd, [{ name: 'x-d', value: '1', appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' }]);
  t.match(prefix!.action, { kind: 'route', action: { prefixRewrite: '/v2', hostRewriteLiteral: 'internal' } });
  t.match(regex!.action, { kind: 'route', action: { regexRewrite: { regex: '^/a/(.*)$', substitution: '/b/\\1' } } });
  t.match(hostHeader!.action, { kind: 'route', action: { hostRewriteLiteral: 'h.example' } }, 'a request host header becomes the authority rewrite');
  t.equal(hostHeader!.headers, undefined, 'and is not a header edit');
  t.end();
});

t.test("header edits: set then add in name order, remove; a single destination's join the route's, several stay per cluster", (t) => {
  const edits = { request: { set: { 'x-b': '2', 'x-a': '1' }, add: { 'x-c': '3' }, remove: ['x-r'] }, response: { remove: ['server'], add: { 'x-z': 'z' } } };
  const [single, split] = routesOf([
    { match: [], route: [{ destination: dest(REVIEWS, 'v1'), weight: 100, headers: { request: { set: { 'x-d': 'd' } } } }], headers: edits },
    { match: [], route: [{ destination: dest(REVIEWS, 'v1'), weight: 50, headers: { response: { set: { 'x-v': 'v1' } } } }, { destination: dest(REVIEWS, 'v2'), weight: 50 }], headers: edits },
  ]);
  t.strictSame(single!.headers, {
    requestHeadersToAdd: [
      { name: 'x-a', value: '1', appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { name: 'x-b', value: '2', appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { name: 'x-c', value: '3', appendAction: 'APPEND_IF_EXISTS_OR_ADD' },
      { name: 'x-d', value: 'd', appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
    ],
    requestHeadersToRemove: ['x-r'],
    responseHeadersToAdd: [{ name: 'x-z', value: 'z', appendAction: 'APPEND_IF_EXISTS_OR_ADD' }],
    responseHeadersToRemove: ['server'],
  });
  t.match(split!.action, {
    kind: 'route',
    action: { weightedClusters: [{ name: `outbound|9080|v1|${REVIEWS}`, weight: 50, headers: { responseHeadersToAdd: [{ name: 'x-v', value: 'v1' }] } }, { name: `outbound|9080|v2|${REVIEWS}`, weight: 50 }] },
  });
  t.equal(split!.action.kind === 'route' && split!.action.action.weightedClusters![1]!.headers, undefined);
  t.end();
});

t.test('a proxyless gRPC client accepts every routing feature (gRPC skips what it cannot act on, as gRFC A28 says)', (t) => {
  const mesh = bookinfo({
    virtualServices: [
      vs('reviews', [REVIEWS], [
        { match: [{ uri: { regex: 'a|b' }, headers: {}, queryParams: { v: { exact: '1' } }, method: { exact: 'POST' }, withoutHeaders: { x: { prefix: 'y' } }, ignoreUriCase: true }], route: v1, rewrite: { uri: '/x', authority: 'a' }, headers: { request: { set: { 'x-a': '1' } } } },
        { match: [{ uri: { prefix: '/' }, headers: {}, queryParams: { q: { exact: '1' } } }, { uri: { prefix: '/b' }, headers: {} }], route: v1 },
        { match: [], route: [], redirect: { uri: '/n', redirectCode: 302 } },
        { match: [], route: [], directResponse: { status: 503 } },
      ]),
    ],
  });
  const rds = grpcAccepts(t, translate(mesh, node({ proxyless: true, sa: 'productpage', id: 'grpc~10.0.0.9~productpage.default~default.svc.cluster.local' }), OPTS)).get(ROUTE_CONFIGURATION_TYPE_URL)!;
  const rc = rds.get('reviews:9080') as { virtual_hosts: { routes: { action: string; match: { query_parameters: unknown[]; prefix?: string } }[] }[] };
  t.strictSame(
    rc.virtual_hosts[0]!.routes.map((r) => r.action),
    ['route', 'non_forwarding_action', 'non_forwarding_action'],
    'redirect and directResponse: calls that match them fail, as a gRPC client cannot follow either',
  );
  t.strictSame(
    rc.virtual_hosts[0]!.routes.map((r) => [r.match.prefix, r.match.query_parameters.length]),
    [['/b', 0], ['/', 0], ['/', 0]],
    'the match blocks with queryParams are left out (a gRPC call has no query string)',
  );
  t.end();
});
