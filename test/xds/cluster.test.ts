// Cluster and ClusterLoadAssignment decoders: protocol options, upstream TLS, localities and endpoints.
import t from 'tap';
import { CIRCUIT_BREAKER_DEFAULTS, HTTP2_DEFAULTS, LB_DEFAULTS } from '../../src/model/types.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL } from '../../src/xds/protos.js';
import { DOWNSTREAM_TLS, HTTP_OPTIONS, HTTP_OPTIONS_KEY, INLINE_PEM, UPSTREAM_TLS, addr, cluster, problems, viaJson } from './helpers.js';

const decode = (json: unknown) => viaJson(CLUSTER_TYPE_URL, json);
const decodeCla = (json: unknown) => viaJson(CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, json);
const withOptions = (options: Record<string, unknown>) => cluster({ typed_extension_protocol_options: { [HTTP_OPTIONS_KEY]: { '@type': HTTP_OPTIONS, ...options } } });
const O = `typed_extension_protocol_options["${HTTP_OPTIONS_KEY}"]`;

t.test('a STATIC cluster with Envoy defaults: 5 s connect timeout, round robin, HTTP/1.1, 1 h idle', (t) => {
  const r = decode({ name: 'c' });
  t.strictSame(r.ok && r.value, { name: 'c', type: 'STATIC', connectTimeoutMs: 5000, lbPolicy: 'ROUND_ROBIN', lb: LB_DEFAULTS, protocol: 'HTTP1', http2: HTTP2_DEFAULTS, idleTimeoutMs: 3_600_000 });
  t.end();
});

t.test('HttpProtocolOptions choose HTTP/1.1 or HTTP/2 and the upstream idle timeout', (t) => {
  const h2 = decode(withOptions({ common_http_protocol_options: { idle_timeout: '90s' }, explicit_http_config: { http2_protocol_options: { max_concurrent_streams: 16, initial_connection_window_size: 65535 } } }));
  t.match(h2, { ok: true, value: { protocol: 'HTTP2', idleTimeoutMs: 90_000, http2: { ...HTTP2_DEFAULTS, maxConcurrentStreams: 16, initialConnectionWindowSize: 65535 } } });
  t.match(decode(withOptions({ explicit_http_config: { http_protocol_options: {} } })), { ok: true, value: { protocol: 'HTTP1', http2: HTTP2_DEFAULTS } });
  t.strictSame(problems(decode(withOptions({}))), [`${O}.explicit_http_config: is required`]);
  t.strictSame(problems(decode(withOptions({ auto_config: {} }))), [`${O}.auto_config: field 'auto_config' is not supported`]);
  t.strictSame(problems(decode(withOptions({ explicit_http_config: {} }))), [`${O}.explicit_http_config: one of http_protocol_options, http2_protocol_options is required`]);
  t.strictSame(problems(decode(withOptions({ explicit_http_config: { http3_protocol_options: {} } }))), [`${O}.explicit_http_config.http3_protocol_options: field 'http3_protocol_options' is not supported`]);
  t.strictSame(problems(decode(withOptions({ explicit_http_config: { http_protocol_options: { accept_http_10: true } }, common_http_protocol_options: { max_headers_count: 10 } }))), [
    `${O}.explicit_http_config.http_protocol_options.accept_http_10: field 'accept_http_10' is not supported`,
    `${O}.common_http_protocol_options.max_headers_count: field 'max_headers_count' is not supported`,
  ]);
  t.strictSame(problems(decode(cluster({ typed_extension_protocol_options: { 'envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions': { '@type': 'type.googleapis.com/google.protobuf.Empty' } } }))), [
    'typed_extension_protocol_options["envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions"]: protocol options "envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions" are not supported',
  ]);
  t.strictSame(problems(decode(cluster({ typed_extension_protocol_options: { [HTTP_OPTIONS_KEY]: { '@type': 'type.googleapis.com/google.protobuf.Empty' } } }))), [
    `${O}: expected HttpProtocolOptions, got "type.googleapis.com/google.protobuf.Empty"`,
  ]);
  t.end();
});

t.test('cluster fields outside the subset are refused by name', (t) => {
  t.strictSame(problems(decode({ type: 'STRICT_DNS', connect_timeout: '0s', lb_policy: 'CLUSTER_PROVIDED', upstream_connection_options: {}, health_checks: [{}] })), [
    "health_checks: field 'health_checks' is not supported",
    "upstream_connection_options: field 'upstream_connection_options' is not supported",
    'name: is required',
    'type: STRICT_DNS is not supported yet',
    'connect_timeout: must be greater than 0',
    'lb_policy: CLUSTER_PROVIDED is not supported',
  ]);
  t.strictSame(problems(decode({ name: 'c', cluster_type: { name: 'custom' } })), ["cluster_type: field 'cluster_type' is not supported"]);
  t.end();
});

t.test('EDS clusters: endpoints over ADS under eds_cluster_config.service_name (default: the cluster name)', (t) => {
  const eds = (extra: object = {}) => decode({ name: 'outbound|9080||reviews', type: 'EDS', eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: 'reviews-eds' }, ...extra });
  t.match(eds(), { ok: true, value: { name: 'outbound|9080||reviews', type: 'EDS', eds: { serviceName: 'reviews-eds', initialFetchTimeoutMs: 15_000 }, lbPolicy: 'ROUND_ROBIN' } });
  t.match(decode({ name: 'c', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } } }), { ok: true, value: { type: 'EDS', eds: { serviceName: 'c' } } });
  const st = decode({ name: 'c' });
  t.ok(st.ok && !('eds' in st.value), 'STATIC clusters have none');
  t.strictSame(problems(decode({ name: 'c', type: 'EDS' })), ['eds_cluster_config: is required for type EDS (eds_config: {ads: {}})']);
  t.strictSame(problems(decode({ name: 'c', type: 'EDS', eds_cluster_config: {} })), ['eds_cluster_config.eds_config: is required']);
  t.strictSame(problems(eds({ load_assignment: { cluster_name: 'c' } })), ['load_assignment: an EDS cluster gets its endpoints from EDS; load_assignment is not allowed']);
  t.strictSame(problems(decode({ name: 'c', type: 'EDS', eds_cluster_config: { eds_config: { path_config_source: { path: '/x' }, resource_api_version: 'V2' } } })), [
    "eds_cluster_config.eds_config.path_config_source: field 'path_config_source' is not supported",
    'eds_cluster_config.eds_config.resource_api_version: V2 is not supported',
  ]);
  t.strictSame(problems(decode(cluster({ eds_cluster_config: {} }))), ['eds_cluster_config: only a cluster of type EDS takes eds_cluster_config']);
  t.end();
});

t.test('UpstreamTlsContext: SNI, optional client certificate, SAN matchers', (t) => {
  const ts = (ctx: object, type = UPSTREAM_TLS) => ({ transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': type, ...ctx } } });
  const r = decode(cluster(ts({ sni: 'svc', common_tls_context: { validation_context: { trusted_ca: INLINE_PEM, match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: 'spiffe://td/ns/a/sa/b' } }] } } })));
  t.match(r, {
    ok: true,
    value: { tls: { sni: 'svc', common: { certificates: [], alpnProtocols: [], validation: { trustedCa: { kind: 'inline' }, uriSanMatchers: [{ kind: 'exact', value: 'spiffe://td/ns/a/sa/b' }] } } } },
  });
  t.match(decode(cluster(ts({}))), { ok: true, value: { tls: { sni: '', common: { certificates: [], alpnProtocols: [] } } } });
  t.strictSame(problems(decode(cluster(ts({ allow_renegotiation: true })))), ["transport_socket.typed_config.allow_renegotiation: field 'allow_renegotiation' is not supported"]);
  t.strictSame(problems(decode(cluster(ts({}, DOWNSTREAM_TLS)))), [`transport_socket.typed_config: expected UpstreamTlsContext, got "${DOWNSTREAM_TLS}"`]);
  t.end();
});

t.test('ClusterLoadAssignment: localities, priorities, weights, health, overprovisioning', (t) => {
  const r = decodeCla({
    cluster_name: 'c',
    endpoints: [
      {
        locality: { region: 'aws-us-east-1', zone: 'aws-us-east-1a', sub_zone: 'rack1' },
        load_balancing_weight: 3,
        lb_endpoints: [
          { endpoint: { address: addr('10.0.0.1', 80), hostname: 'a.internal' }, health_status: 'HEALTHY', load_balancing_weight: 5 },
          { endpoint: { address: addr('::1', 81) }, health_status: 'DRAINING' },
        ],
      },
      { priority: 1, lb_endpoints: [{ endpoint: { address: addr('10.0.1.1', 80) } }] },
    ],
    policy: { overprovisioning_factor: 200 },
  });
  t.strictSame(r.ok && r.value, {
    clusterName: 'c',
    localities: [
      {
        locality: { region: 'aws-us-east-1', zone: 'aws-us-east-1a', subZone: 'rack1' },
        priority: 0,
        weight: 3,
        endpoints: [
          { address: { host: '10.0.0.1', port: 80 }, healthStatus: 'HEALTHY', weight: 5, hostname: 'a.internal' },
          { address: { host: '::1', port: 81 }, healthStatus: 'DRAINING', weight: 1, hostname: '' },
        ],
      },
      { locality: { region: '', zone: '', subZone: '' }, priority: 1, weight: 0, endpoints: [{ address: { host: '10.0.1.1', port: 80 }, healthStatus: 'UNKNOWN', weight: 1, hostname: '' }] }],
    overprovisioningFactor: 200,
  });
  t.end();
});

t.test('ClusterLoadAssignment refusals name the endpoint field', (t) => {
  const E = 'endpoints[0]';
  t.strictSame(
    problems(
      decodeCla({
        named_endpoints: {},
        endpoints: [
          {
            load_balancing_weight: 0,
            proximity: 1,
            lb_endpoints: [
              { endpoint: { address: addr('10.0.0.1', 0), health_check_config: { port_value: 1 } }, load_balancing_weight: 0, metadata: {} },
              { endpoint_name: 'x' },
              { health_status: 'HEALTHY' },
            ],
          },
        ],
        policy: { overprovisioning_factor: 0, drop_overloads: [{ category: 'x' }] },
      }),
    ),
    [
      'cluster_name: is required',
      `${E}.proximity: field 'proximity' is not supported`,
      `${E}.load_balancing_weight: must be at least 1`,
      `${E}.lb_endpoints[0].metadata: field 'metadata' is not supported`,
      `${E}.lb_endpoints[0].endpoint.health_check_config: field 'health_check_config' is not supported`,
      `${E}.lb_endpoints[0].load_balancing_weight: must be at least 1`,
      `${E}.lb_endpoints[0].endpoint.address.socket_address.port_value: a port is required`,
      `${E}.lb_endpoints[1].endpoint_name: field 'endpoint_name' is not supported`,
      `${E}.lb_endpoints[2].endpoint: is required`,
      "policy.drop_overloads: field 'drop_overloads' is not supported",
      'policy.overprovisioning_factor: must be greater than 0',
    ],
  );
  t.strictSame(problems(decodeCla({ cluster_name: 'c', endpoints: [{ locality: { region: 'r', zone: 'z' }, lb_endpoints: [{ endpoint: {} }] }] })), [
    'endpoints[0].lb_endpoints[0].endpoint.address: is required',
  ]);
  // LocalityLbEndpoints.priority validate rule: lte 128.
  t.strictSame(problems(decodeCla({ cluster_name: 'c', endpoints: [{ priority: 128 }, { priority: 129 }] })), ['endpoints[1].priority: 129 is greater than 128']);
  t.end();
});

t.test('a cluster reports its load_assignment problems at their full path', (t) => {
  t.strictSame(problems(decode(cluster({ load_assignment: { endpoints: [] } }))), ['load_assignment.cluster_name: is required']);
  t.end();
});

t.test('circuit_breakers: the DEFAULT priority thresholds with Envoy defaults; HIGH checked and ignored', (t) => {
  const cb = (circuit_breakers: unknown) => decode(cluster({ circuit_breakers }));
  const empty = cb({});
  t.strictSame(empty.ok && empty.value.circuitBreakers, CIRCUIT_BREAKER_DEFAULTS, 'empty: 1024/1024/1024 and 3 retries');
  const set = cb({
    thresholds: [
      { priority: 'HIGH', max_connections: 1, max_retries: 0 },
      { max_connections: 2, max_pending_requests: 0, max_requests: 5, max_retries: 7, track_remaining: true },
      { priority: 'DEFAULT', max_connections: 9 },
    ],
  });
  t.strictSame(set.ok && set.value.circuitBreakers, { maxConnections: 2, maxPendingRequests: 0, maxRequests: 5, maxRetries: 7, trackRemaining: true }, 'the first DEFAULT entry wins; 0 is a real limit');
  const budget = cb({ thresholds: [{ retry_budget: {} }] });
  t.strictSame(budget.ok && budget.value.circuitBreakers, { ...CIRCUIT_BREAKER_DEFAULTS, retryBudget: { budgetPercent: 20, minRetryConcurrency: 3 } }, 'an empty retry_budget: 20 % and 3');
  const custom = cb({ thresholds: [{ retry_budget: { budget_percent: { value: 50 }, min_retry_concurrency: 1 } }] });
  t.strictSame(custom.ok && custom.value.circuitBreakers?.retryBudget, { budgetPercent: 50, minRetryConcurrency: 1 });
  t.strictSame(problems(cb({ per_host_thresholds: [{}], thresholds: [{ max_connection_pools: 3 }, { priority: 'HIGH', retry_budget: { budget_percent: { value: 101 } } }] })), [
    "circuit_breakers.per_host_thresholds: field 'per_host_thresholds' is not supported",
    "circuit_breakers.thresholds[0].max_connection_pools: field 'max_connection_pools' is not supported",
    'circuit_breakers.thresholds[1].retry_budget.budget_percent.value: 101 is outside [0, 100]',
  ]);
  t.strictSame(problems(cb({ thresholds: [{ retry_budget: { x: 1 } }] })), ['circuit_breakers.thresholds[0].retry_budget.x: unknown field'], 'a field no proto has');
  const unset = decode(cluster());
  t.equal(unset.ok && unset.value.circuitBreakers, undefined, 'unset: absent (the runtime applies the defaults)');
  t.end();
});

t.test('max_requests_per_connection: the protocol options field, else the deprecated cluster field; 0 is unlimited', (t) => {
  const mrpc = (json: unknown) => {
    const r = decode(json);
    return r.ok ? r.value.maxRequestsPerConnection : 'error';
  };
  t.equal(mrpc(withOptions({ explicit_http_config: { http_protocol_options: {} }, common_http_protocol_options: { max_requests_per_connection: 3 } })), 3);
  t.equal(mrpc(cluster({ max_requests_per_connection: 4 })), 4);
  t.equal(mrpc({ ...withOptions({ explicit_http_config: { http_protocol_options: {} }, common_http_protocol_options: { max_requests_per_connection: 2 } }), max_requests_per_connection: 9 }), 2, 'the newer field wins');
  t.equal(mrpc(withOptions({ explicit_http_config: { http_protocol_options: {} }, common_http_protocol_options: { max_requests_per_connection: 0 } })), undefined);
  t.equal(mrpc(cluster()), undefined);
  t.end();
});
