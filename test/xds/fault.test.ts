// The fault filter's decoder (HTTPFault) in http_filters and per route (typed_per_filter_config), and its refusals.
import t from 'tap';
import { FAULT_TYPE_URL } from '../../src/model/fault.js';
import { fault } from '../../src/xds/http-filters/fault.js';
import { Issues } from '../../src/xds/resources/common.js';
import { decodeTypedPerFilterConfig } from '../../src/xds/resources/per-filter-config.js';
import { LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL } from '../../src/xds/protos.js';
import { hcm, listener, problems, viaJson, ROUTER } from './helpers.js';

const filter = (config: object = {}) => ({ name: 'envoy.filters.http.fault', typed_config: { '@type': FAULT_TYPE_URL, ...config } });
const onListener = (config: object) => viaJson(LISTENER_TYPE_URL, listener({ hcm: hcm({ http_filters: [filter(config), ROUTER] }) }));
const F = 'filter_chains[0].filters[0].typed_config.http_filters[0].typed_config';
const withPerFilter = (perFilter: object) =>
  viaJson(ROUTE_CONFIGURATION_TYPE_URL, { name: 'rc', virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' }, typed_per_filter_config: perFilter }] }] });
const R = 'virtual_hosts[0].routes[0].typed_per_filter_config';

t.test('HTTPFault decodes with percentages as probabilities (HUNDRED, TEN_THOUSAND, MILLION) and its matchers', (t) => {
  const r = onListener({
    delay: { fixed_delay: '1.5s', percentage: { numerator: 250_000, denominator: 'MILLION' } },
    abort: { http_status: 503, percentage: { numerator: 10 } },
    headers: [{ name: 'x-chaos', string_match: { exact: 'on' } }],
    downstream_nodes: ['frontend'],
    max_active_faults: 7,
    disable_downstream_cluster_stats: true,
  });
  t.strictSame(r.ok && r.value.filterChain.hcm.httpFilters[0], {
    name: 'envoy.filters.http.fault',
    typeUrl: FAULT_TYPE_URL,
    optional: false,
    config: {
      delay: { fixedDelayMs: 1500, probability: 0.25 },
      abort: { httpStatus: 503, probability: 0.1 },
      headers: [{ name: 'x-chaos', match: { kind: 'string', matcher: { kind: 'exact', value: 'on', ignoreCase: false } }, invert: false }],
      downstreamNodes: ['frontend'],
      maxActiveFaults: 7,
    },
  });
  const grpc = onListener({ abort: { grpc_status: 14, percentage: { numerator: 5, denominator: 'TEN_THOUSAND' } } });
  t.strictSame(grpc.ok && grpc.value.filterChain.hcm.httpFilters[0]!.config, { abort: { httpStatus: 200, grpcStatus: 14, probability: 0.0005 }, headers: [], downstreamNodes: [] }, 'gRPC aborts answer HTTP 200 carrying the grpc-status');
  const bare = onListener({ delay: { fixed_delay: '1s' }, abort: { http_status: 500, percentage: { numerator: 150 } } });
  t.strictSame(bare.ok && bare.value.filterChain.hcm.httpFilters[0]!.config, { delay: { fixedDelayMs: 1000, probability: 0 }, abort: { httpStatus: 500, probability: 1 }, headers: [], downstreamNodes: [] }, 'no percentage is never; above the denominator is always');
  const empty = onListener({});
  t.strictSame(empty.ok && empty.value.filterChain.hcm.httpFilters.map((f) => f.config), [{ headers: [], downstreamNodes: [] }, {}], "Istio's empty listener-level filter");
  t.end();
});

t.test('HTTPFault refusals name the field: statuses, delays, what is not implemented', (t) => {
  t.strictSame(problems(onListener({ abort: { http_status: 600 }, delay: { fixed_delay: '0s' } })), [`${F}.delay.fixed_delay: must be greater than 0`, `${F}.abort.http_status: 600 is not an HTTP status in [200, 600)`]);
  t.strictSame(problems(onListener({ abort: { http_status: 199 } })), [`${F}.abort.http_status: 199 is not an HTTP status in [200, 600)`]);
  t.strictSame(problems(onListener({ delay: { fixed_delay: '-1s' } })), [`${F}.delay.fixed_delay: must not be negative`]);
  t.strictSame(problems(onListener({ delay: { percentage: { numerator: 1 } }, abort: { percentage: { numerator: 1 } } })), [`${F}.delay.fixed_delay: is required`, `${F}.abort: one of http_status, grpc_status is required`]);
  t.strictSame(problems(onListener({ delay: { header_delay: {} }, abort: { header_abort: {} } })), [
    `${F}.delay.header_delay: field 'header_delay' is not supported`,
    `${F}.delay.header_delay: is not supported (delays requested by the x-envoy-fault-delay-request header); use fixed_delay`,
    `${F}.abort.header_abort: field 'header_abort' is not supported`,
    `${F}.abort.header_abort: is not supported (aborts requested by the x-envoy-fault-abort-request header); use http_status or grpc_status`,
  ]);
  t.strictSame(problems(onListener({ upstream_cluster: 'x', abort_percent_runtime: 'k' })), [
    `${F}.upstream_cluster: field 'upstream_cluster' is not supported`,
    `${F}.abort_percent_runtime: field 'abort_percent_runtime' is not supported`,
  ]);
  // A denominator this proto version does not know arrives as its number (canonical shape).
  t.strictSame(problems(fault.decode({ abort: { http_status: 503, percentage: { numerator: 1, denominator: 7 } } }, 'f')), ['f.abort.percentage.denominator: 7 is not one of HUNDRED, TEN_THOUSAND, MILLION']);
  t.strictSame(problems(onListener({ headers: [{ name: '' }] })), [`${F}.headers[0].name: is required`]);
  t.end();
});

t.test('typed_per_filter_config: decoded by the filter that takes its type; unknown is refused unless optional', (t) => {
  const r = withPerFilter({ 'envoy.filters.http.fault': { '@type': FAULT_TYPE_URL, abort: { http_status: 418, percentage: { numerator: 100 } } } });
  t.strictSame(r.ok && r.value.virtualHosts[0]!.routes[0]!.typedPerFilterConfig, {
    'envoy.filters.http.fault': { typeUrl: FAULT_TYPE_URL, config: { abort: { httpStatus: 418, probability: 1 }, headers: [], downstreamNodes: [] } },
  });
  const none = viaJson(ROUTE_CONFIGURATION_TYPE_URL, { name: 'rc', virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' } }] }] });
  t.equal(none.ok && 'typedPerFilterConfig' in none.value.virtualHosts[0]!.routes[0]!, false, 'absent when the route sets none');

  const WRAP = 'type.googleapis.com/envoy.config.route.v3.FilterConfig';
  const CORS = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy';
  const wrapped = withPerFilter({
    fault: { '@type': WRAP, config: { '@type': FAULT_TYPE_URL, delay: { fixed_delay: '2s', percentage: { numerator: 50 } } } },
    cors: { '@type': WRAP, is_optional: true, config: { '@type': CORS } },
  });
  t.strictSame(wrapped.ok && wrapped.value.virtualHosts[0]!.routes[0]!.typedPerFilterConfig, {
    fault: { typeUrl: FAULT_TYPE_URL, config: { delay: { fixedDelayMs: 2000, probability: 0.5 }, headers: [], downstreamNodes: [] } },
  }, 'a FilterConfig is unwrapped; an optional unknown one skipped');
  const optionalOnly = withPerFilter({ cors: { '@type': WRAP, is_optional: true, config: { '@type': CORS } } });
  t.equal(optionalOnly.ok && optionalOnly.value.virtualHosts[0]!.routes[0]!.typedPerFilterConfig, undefined);

  t.strictSame(problems(withPerFilter({ cors: { '@type': CORS } })), [`${R}["cors"]: no HTTP filter takes ${CORS} as per-route config (wrap it in a FilterConfig with is_optional: true to skip it)`]);
  t.strictSame(problems(withPerFilter({ r: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } })), [
    `${R}["r"]: no HTTP filter takes type.googleapis.com/envoy.extensions.filters.http.router.v3.Router as per-route config (wrap it in a FilterConfig with is_optional: true to skip it)`,
  ], 'the router takes no per-route config');
  t.strictSame(problems(withPerFilter({ f: { '@type': WRAP, disabled: true } })), [`${R}["f"].disabled: field 'disabled' is not supported`, `${R}["f"].config: is required`]);
  t.strictSame(problems(withPerFilter({ f: { '@type': FAULT_TYPE_URL, abort: { http_status: 99 } } })), [`${R}["f"].abort.http_status: 99 is not an HTTP status in [200, 600)`]);
  t.strictSame(problems(withPerFilter({ f: { '@type': WRAP, config: { '@type': FAULT_TYPE_URL, abort: {} } } })), [`${R}["f"].config.abort: one of http_status, grpc_status is required`]);
  const issues = new Issues();
  t.equal(decodeTypedPerFilterConfig({ typed_per_filter_config: { f: { type_url: 'type.googleapis.com/no.such.Type', value: Buffer.alloc(0) } } }, 'r', issues), undefined);
  t.strictSame(issues.list.map((i) => `${i.path}: ${i.message}`), ['r.typed_per_filter_config["f"]: unknown type URL "type.googleapis.com/no.such.Type"'], 'a payload of an unknown type');
  t.end();
});
