// RouteAction.request_mirror_policies and max_grpc_timeout, and per_request_buffer_limit_bytes on routes and
// virtual hosts: decoded with Envoy's defaults, refused with field paths.
import t from 'tap';
import type { Route } from '../../src/model/types.js';
import { ROUTE_CONFIGURATION_TYPE_URL } from '../../src/xds/protos.js';
import { problems, viaJson } from './helpers.js';

const rc = (route: object, vh: object = {}, routeExtra: object = {}) =>
  viaJson(ROUTE_CONFIGURATION_TYPE_URL, { name: 'rc', virtual_hosts: [{ name: 'vh', domains: ['*'], ...vh, routes: [{ match: { prefix: '/' }, route: { cluster: 'c', ...route }, ...routeExtra }, { match: { prefix: '/b' }, route: { cluster: 'c' } }] }] });
const routes = (r: ReturnType<typeof rc>): readonly Route[] => (r.ok ? r.value.virtualHosts[0]!.routes : []);
const actionOf = (r: ReturnType<typeof rc>) => {
  const a = routes(r)[0]?.action;
  return a?.kind === 'route' ? a.action : undefined;
};
const P = 'virtual_hosts[0].routes[0].route';

t.test('request_mirror_policies: cluster and runtime_fraction default_value; no fraction = every request', (t) => {
  const a = actionOf(rc({ request_mirror_policies: [{ cluster: 'm1', runtime_fraction: { default_value: { numerator: 125000, denominator: 'MILLION' } }, trace_sampled: false }, { cluster: 'm2' }, { cluster: 'm3', runtime_fraction: { default_value: { numerator: 5 } } }] }));
  t.strictSame(a?.mirrorPolicies, [
    { cluster: 'm1', numerator: 125000, denominator: 1_000_000 },
    { cluster: 'm2', numerator: 1, denominator: 1 },
    { cluster: 'm3', numerator: 5, denominator: 100 },
  ]);
  t.equal(actionOf(rc({}))?.mirrorPolicies, undefined);
  t.strictSame(actionOf(rc({ request_mirror_policies: [{ cluster: 'm', runtime_fraction: {} }] }))?.mirrorPolicies, [{ cluster: 'm', numerator: 0, denominator: 100 }], 'an empty fraction is 0 %');
  t.strictSame(problems(rc({ request_mirror_policies: [{ cluster: 'm', runtime_fraction: { default_value: { numerator: 1, denominator: 7 } } }] })), [`${P}.request_mirror_policies[0].runtime_fraction.default_value.denominator: 7 is not a valid DenominatorType (one of HUNDRED, TEN_THOUSAND, MILLION)`]);
  t.strictSame(problems(rc({ request_mirror_policies: [{ runtime_fraction: { runtime_key: 'k', default_value: { numerator: 1 } } }, { cluster: 'x', cluster_header: 'h' }] })), [
    `${P}.request_mirror_policies[0].cluster: is required`,
    `${P}.request_mirror_policies[0].runtime_fraction.runtime_key: field 'runtime_key' is not supported`,
    `${P}.request_mirror_policies[1].cluster_header: field 'cluster_header' is not supported`,
  ]);
  t.end();
});

t.test('max_grpc_timeout: absent, 0 (no cap) or a duration; never negative', (t) => {
  t.equal(actionOf(rc({}))?.maxGrpcTimeoutMs, undefined);
  t.equal(actionOf(rc({ max_grpc_timeout: '0s' }))?.maxGrpcTimeoutMs, 0);
  t.equal(actionOf(rc({ max_grpc_timeout: '1.5s' }))?.maxGrpcTimeoutMs, 1500);
  t.strictSame(problems(rc({ max_grpc_timeout: '-1s' })), [`${P}.max_grpc_timeout: must not be negative`]);
  t.end();
});

t.test("per_request_buffer_limit_bytes: the route's, else the virtual host's, else unset (the 1 MiB default)", (t) => {
  t.strictSame(routes(rc({})).map((r) => r.perRequestBufferLimitBytes), [undefined, undefined]);
  t.strictSame(routes(rc({}, { per_request_buffer_limit_bytes: 4096 })).map((r) => r.perRequestBufferLimitBytes), [4096, 4096]);
  t.strictSame(routes(rc({}, { per_request_buffer_limit_bytes: 4096 }, { per_request_buffer_limit_bytes: 10 })).map((r) => r.perRequestBufferLimitBytes), [10, 4096]);
  t.end();
});
