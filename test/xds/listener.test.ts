// Listener, HttpConnectionManager, HTTP filters and DownstreamTlsContext decoders: the subset, defaults, every refusal.
import t from 'tap';
import { HTTP2_DEFAULTS } from '../../src/model/types.js';
import { LISTENER_TYPE_URL } from '../../src/xds/protos.js';
import { DOWNSTREAM_TLS, HCM_MODEL_DEFAULTS, INLINE_PEM, ROUTER, ROUTER_URL, UPSTREAM_TLS, hcm, listener, problems, viaJson } from './helpers.js';

const decode = (json: unknown) => viaJson(LISTENER_TYPE_URL, json);
const HCM_PATH = 'filter_chains[0].filters[0].typed_config';
/** Issues of a listener whose HCM has `extra` merged in. */
const hcmProblems = (extra: Record<string, unknown>) => problems(decode(listener({ hcm: hcm(extra) })));

t.test('a plaintext listener with Envoy defaults for everything left out', (t) => {
  const r = decode({ ...listener(), traffic_direction: 'OUTBOUND' });
  t.ok(r.ok);
  if (!r.ok) return t.end();
  t.strictSame(r.value.filterChains, [r.value.filterChain], 'filterChains holds the one chain');
  const { filterChains: _all, ...value } = r.value;
  t.strictSame(value, {
    name: 'web',
    address: { host: '127.0.0.1', port: 8080 },
    trafficDirection: 'OUTBOUND',
    filterChain: {
      name: '',
      hcm: {
        statPrefix: 'web',
        route: {
          kind: 'inline',
          config: {
            name: 'web',
            virtualHosts: [
              {
                name: 'web',
                domains: ['*'],
                routes: [{ name: '', match: { path: { kind: 'prefix', value: '/' }, caseSensitive: true, headers: [] }, action: { kind: 'route', action: { cluster: 'backend', timeoutMs: 15_000, hashPolicy: [] } } }],
              },
            ],
          },
        },
        ...HCM_MODEL_DEFAULTS,
      },
    },
  });
  t.ok(Object.isFrozen(r.value.filterChain.hcm.httpFilters[0]!.config), 'filter configs are frozen too');
  t.end();
});

t.test('every supported HCM knob is honoured', (t) => {
  const r = decode(
    listener({
      hcm: hcm({
        codec_type: 'HTTP2',
        common_http_protocol_options: { idle_timeout: '30s' },
        stream_idle_timeout: '10s',
        request_timeout: '2.5s',
        max_request_headers_kb: 96,
        http2_protocol_options: { max_concurrent_streams: 50, initial_stream_window_size: 65535, initial_connection_window_size: 1048576 },
        generate_request_id: false,
        use_remote_address: true,
        forward_client_cert_details: 'APPEND_FORWARD',
        set_current_client_cert_details: { subject: true, cert: true, chain: true, dns: true, uri: true },
        upgrade_configs: [{ upgrade_type: 'WebSocket' }, { upgrade_type: 'CONNECT', enabled: false }, { upgrade_type: 'h2c', enabled: true }],
      }),
    }),
  );
  t.match(r, {
    ok: true,
    value: {
      filterChain: {
        hcm: {
          codecType: 'HTTP2',
          idleTimeoutMs: 30_000,
          streamIdleTimeoutMs: 10_000,
          requestTimeoutMs: 2500,
          maxRequestHeadersKb: 96,
          http2: { maxConcurrentStreams: 50, initialStreamWindowSize: 65535, initialConnectionWindowSize: 1048576 },
          generateRequestId: false,
          useRemoteAddress: true,
          forwardClientCertDetails: 'APPEND_FORWARD',
          setCurrentClientCertDetails: { subject: true, cert: true, chain: true, dns: true, uri: true },
          upgradeTypes: ['websocket', 'h2c'],
        },
      },
    },
  });
  const partial = decode(listener({ hcm: hcm({ http2_protocol_options: { max_concurrent_streams: 7 }, common_http_protocol_options: {} }) }));
  t.match(partial, { ok: true, value: { filterChain: { hcm: { http2: { ...HTTP2_DEFAULTS, maxConcurrentStreams: 7 }, idleTimeoutMs: 3_600_000 } } } });
  t.end();
});

t.test('rds keeps the route table name for the ADS client', (t) => {
  const { route_config: _, ...base } = hcm();
  const ok = decode(listener({ hcm: { ...base, rds: { route_config_name: 'web', config_source: { ads: {}, resource_api_version: 'V3' } } } }));
  t.match(ok, { ok: true, value: { filterChain: { hcm: { route: { kind: 'rds', name: 'web' } } } } });
  t.strictSame(problems(decode(listener({ hcm: { ...base, rds: { config_source: { path: '/etc/rds.yaml', resource_api_version: 'V2' } } } }))), [
    `${HCM_PATH}.rds.config_source.path: field 'path' is not supported`,
    `${HCM_PATH}.rds.config_source.resource_api_version: V2 is not supported`,
    `${HCM_PATH}.rds.route_config_name: is required`,
  ]);
  t.strictSame(problems(decode(listener({ hcm: base }))), [`${HCM_PATH}: one of route_config, rds is required`]);
  t.strictSame(problems(decode(listener({ hcm: { ...base, scoped_routes: { name: 's' } } }))), [`${HCM_PATH}.scoped_routes: field 'scoped_routes' is not supported`]);
  t.end();
});

t.test('HCM values outside Envoy rules or our subset are refused by field', (t) => {
  t.strictSame(
    hcmProblems({
      stat_prefix: '',
      codec_type: 'HTTP3',
      max_request_headers_kb: 9000,
      stream_idle_timeout: '-1s',
      http2_protocol_options: { initial_stream_window_size: 100, hpack_table_size: 0 },
      common_http_protocol_options: { idle_timeout: '1s', max_connection_duration: '60s' },
      upgrade_configs: [{ enabled: true, filters: [] }, { upgrade_type: 'websocket', filters: [ROUTER] }],
      tracing: {},
      forward_client_cert_details: 'SANITIZE',
    }),
    [
      `${HCM_PATH}.tracing: field 'tracing' is not supported`,
      `${HCM_PATH}.stat_prefix: is required`,
      `${HCM_PATH}.max_request_headers_kb: 9000 is outside [1, 8192]`,
      `${HCM_PATH}.codec_type: HTTP3 is not supported`,
      `${HCM_PATH}.common_http_protocol_options.max_connection_duration: field 'max_connection_duration' is not supported`,
      `${HCM_PATH}.stream_idle_timeout: must not be negative`,
      `${HCM_PATH}.http2_protocol_options.hpack_table_size: field 'hpack_table_size' is not supported`,
      `${HCM_PATH}.http2_protocol_options.initial_stream_window_size: 100 is outside [65535, 2147483647]`,
      `${HCM_PATH}.upgrade_configs[0].upgrade_type: is required`,
      `${HCM_PATH}.upgrade_configs[1].filters: field 'filters' is not supported`,
    ],
  );
  t.strictSame(hcmProblems({ max_request_headers_kb: 0 }), [`${HCM_PATH}.max_request_headers_kb: 0 is outside [1, 8192]`]);
  t.end();
});

t.test('HTTP filters: registry by type URL, optional unknowns skipped, router last', (t) => {
  const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors';
  const fault = (extra: object = {}) => ({ name: 'envoy.filters.http.cors', typed_config: { '@type': FAULT }, ...extra });
  const skipped = decode(listener({ hcm: hcm({ http_filters: [fault({ is_optional: true }), ROUTER] }) }));
  t.match(skipped, { ok: true, value: { filterChain: { hcm: { httpFilters: [{ name: 'envoy.filters.http.router' }] } } } });
  t.equal(skipped.ok && skipped.value.filterChain.hcm.httpFilters.length, 1);
  const F = `${HCM_PATH}.http_filters`;
  t.strictSame(hcmProblems({ http_filters: [fault(), ROUTER] }), [`${F}[0].typed_config: HTTP filter ${FAULT} is not supported (set is_optional: true to skip it)`]);
  t.strictSame(hcmProblems({ http_filters: [ROUTER, fault({ is_optional: true })] }), [`${F}[0]: the router must be the last HTTP filter`]);
  t.strictSame(hcmProblems({ http_filters: [] }), [`${F}: the router (envoy.filters.http.router) is required as the last HTTP filter`]);
  t.strictSame(hcmProblems({ http_filters: [{ name: 'x' }, ROUTER] }), [`${F}[0].typed_config: is required`]);
  t.strictSame(hcmProblems({ http_filters: [{ name: 'x', config_discovery: { type_urls: [FAULT] } }, { ...ROUTER, disabled: true }] }), [
    `${F}[0].config_discovery: field 'config_discovery' is not supported`,
    `${F}[1].disabled: field 'disabled' is not supported`,
  ]);
  t.strictSame(hcmProblems({ http_filters: [{ name: '', typed_config: { '@type': ROUTER_URL, suppress_envoy_headers: true } }] }), [
    `${F}[0].name: is required`,
    `${F}[0].typed_config.suppress_envoy_headers: field 'suppress_envoy_headers' is not supported`,
  ]);
  t.end();
});

t.test('listener shape: one filter chain, one HCM filter, TCP on an IP address', (t) => {
  const base = listener();
  const chain = base.filter_chains[0]!;
  t.strictSame(problems(decode({ ...base, filter_chains: [] })), ['filter_chains: at least one filter chain is required']);
  t.strictSame(problems(decode({ ...base, filter_chains: [chain, chain] })), [
    'filter_chains[1].filter_chain_match: the same match as filter_chains[0]: multiple filter chains with the same matching rules are not allowed',
  ]);
  t.strictSame(problems(decode({ ...base, filter_chains: [{ filters: [...chain.filters, ...chain.filters] }] })), [
    'filter_chains[0].filters: exactly one filter (the HTTP connection manager) is supported (got 2)',
  ]);
  t.strictSame(problems(decode({ ...base, filter_chains: [{ filters: [{ name: 'x', typed_config: { '@type': ROUTER_URL } }] }] })), [
    'filter_chains[0].filters[0].typed_config: expected HttpConnectionManager, got "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"',
  ]);
  t.strictSame(problems(decode({ ...base, filter_chains: [{ filters: [{}] }] })), ['filter_chains[0].filters[0].name: is required', 'filter_chains[0].filters[0].typed_config: is required']);
  t.strictSame(problems(decode({ filter_chains: base.filter_chains, listener_filters: [{ name: 'tls_inspector' }] })), [
    'name: is required',
    'address: is required',
    'listener_filters[0].typed_config: is required',
  ]);
  const at = (socket_address: object) => problems(decode({ ...base, address: { socket_address } }));
  t.strictSame(at({ address: 'localhost', port_value: 70000, protocol: 'UDP' }), [
    'address.socket_address.protocol: UDP is not supported',
    'address.socket_address.address: "localhost" is not an IP address',
    'address.socket_address.port_value: port 70000 out of range',
  ]);
  t.strictSame(at({ address: '::', named_port: 'http' }), ["address.socket_address.named_port: field 'named_port' is not supported"]);
  t.strictSame(problems(decode({ ...base, address: { pipe: { path: '/tmp/s' } } })), ["address.pipe: field 'pipe' is not supported"]);
  t.strictSame(problems(decode({ ...base, address: {} })), ['address.socket_address: is required']);
  t.end();
});

const tlsSocket = (ctx: Record<string, unknown>, type = DOWNSTREAM_TLS) => ({ name: 'envoy.transport_sockets.tls', typed_config: { '@type': type, ...ctx } });
const common = (extra: Record<string, unknown> = {}) => ({ tls_certificates: [{ certificate_chain: INLINE_PEM, private_key: INLINE_PEM }], ...extra });
const TS = 'filter_chains[0].transport_socket';

t.test('DownstreamTlsContext: certificates, client certificates checked against a validation context', (t) => {
  const ctx = {
    require_client_certificate: true,
    common_tls_context: common({
      alpn_protocols: ['h2'],
      validation_context: { trusted_ca: { filename: '/etc/ca.pem' }, match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { prefix: 'spiffe://td/' } }] },
    }),
  };
  const r = decode(listener({ chain: { name: 'mtls', transport_socket: tlsSocket(ctx) } }));
  t.match(r, {
    ok: true,
    value: {
      filterChain: {
        name: 'mtls',
        tls: {
          requireClientCertificate: true,
          common: {
            certificates: [{ certificateChain: { kind: 'inline', value: INLINE_PEM.inline_string }, privateKey: { kind: 'inline' } }],
            validation: { trustedCa: { kind: 'file', path: '/etc/ca.pem' }, uriSanMatchers: [{ kind: 'prefix', value: 'spiffe://td/', ignoreCase: false }] },
            alpnProtocols: ['h2'],
          },
        },
      },
    },
  });
  const tlsProblems = (ctx: Record<string, unknown>, type?: string) => problems(decode(listener({ chain: { transport_socket: tlsSocket(ctx, type) } })));
  const C = `${TS}.typed_config.common_tls_context`;
  t.strictSame(tlsProblems({ require_client_certificate: true, common_tls_context: common() }), [
    `${TS}.typed_config.require_client_certificate: needs common_tls_context.validation_context to verify the client certificate`,
  ]);
  t.strictSame(tlsProblems({}), [`${C}.tls_certificates: a server certificate is required (tls_certificates or tls_certificate_sds_secret_configs)`]);
  t.strictSame(tlsProblems({ common_tls_context: common() }, UPSTREAM_TLS), [`${TS}.typed_config: expected DownstreamTlsContext, got "${UPSTREAM_TLS}"`]);
  t.strictSame(
    tlsProblems({
      require_sni: true,
      common_tls_context: {
        tls_params: { tls_minimum_protocol_version: 'TLSv1_3' },
        tls_certificates: [{ certificate_chain: { environment_variable: 'CERT' }, private_key: {}, password: INLINE_PEM }],
        validation_context: { match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'a' } }, { san_type: 'URI' }, { matcher: { exact: 'b' } }] },
      },
    }),
    [
      `${TS}.typed_config.require_sni: field 'require_sni' is not supported`,
      `${C}.tls_params: field 'tls_params' is not supported`,
      `${C}.tls_certificates[0].password: field 'password' is not supported`,
      `${C}.tls_certificates[0].certificate_chain.environment_variable: field 'environment_variable' is not supported`,
      `${C}.tls_certificates[0].private_key: one of filename, inline_string is required`,
      `${C}.validation_context.match_typed_subject_alt_names[0].san_type: DNS is not supported (only URI)`,
      `${C}.validation_context.match_typed_subject_alt_names[1].matcher: is required`,
      `${C}.validation_context.match_typed_subject_alt_names[2].san_type: SAN_TYPE_UNSPECIFIED is not supported (only URI)`,
      `${C}.validation_context.trusted_ca: is required`,
    ],
  );
  t.strictSame(problems(decode(listener({ chain: { transport_socket: { name: 'tls' } } }))), [`${TS}.typed_config: is required`]);
  t.strictSame(problems(decode(listener({ chain: { transport_socket: { typed_config: { '@type': DOWNSTREAM_TLS, common_tls_context: common() } } } }))), [`${TS}.name: is required`]);
  t.end();
});

t.test('several filter chains: filter_chain_match, default_filter_chain, tls_inspector (issue 7)', (t) => {
  const base = listener();
  const chain = base.filter_chains[0]!;
  const INSPECTOR = { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } };
  const r = decode({
    ...base,
    listener_filters: [INSPECTOR],
    listener_filters_timeout: '2s',
    continue_on_listener_filters_timeout: true,
    filter_chains: [
      { ...chain, name: 'tls', filter_chain_match: { transport_protocol: 'tls', application_protocols: ['h2', 'http/1.1'], destination_port: 15006 } },
      { ...chain, name: 'plain', filter_chain_match: { transport_protocol: 'raw_buffer' } },
    ],
    default_filter_chain: { ...chain, name: 'fallback' },
  });
  t.ok(r.ok, problems(r).join('\n'));
  if (!r.ok) return t.end();
  t.strictSame(
    r.value.filterChains.map((c) => [c.name, c.match]),
    [
      ['tls', { destinationPort: 15006, transportProtocol: 'tls', applicationProtocols: ['h2', 'http/1.1'] }],
      ['plain', { transportProtocol: 'raw_buffer', applicationProtocols: [] }],
    ],
  );
  t.equal(r.value.filterChain, r.value.filterChains[0], 'filterChain is the first chain');
  t.equal(r.value.defaultFilterChain?.name, 'fallback');
  t.strictSame(r.value.tlsInspector, { timeoutMs: 2000, continueOnTimeout: true });
  const bare = decode({ ...base, listener_filters: [INSPECTOR] });
  t.strictSame(bare.ok && bare.value.tlsInspector, { timeoutMs: 15_000, continueOnTimeout: false }, "Envoy's 15 s default, and close on timeout");
  const none = decode(base);
  t.equal(none.ok && none.value.tlsInspector, undefined, 'no listener filter: nothing to inspect');

  const bad = decode({
    ...base,
    listener_filters: [{ name: 'x', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector' } }, { ...INSPECTOR, typed_config: { ...INSPECTOR.typed_config, enable_ja3_fingerprinting: true } }],
    filter_chains: [
      { ...chain, filter_chain_match: { transport_protocol: 'quic', destination_port: 0, server_names: ['a'] } },
      { ...chain, filter_chain_match: { transport_protocol: 'tls' } },
      { ...chain, filter_chain_match: { transport_protocol: 'tls' } },
    ],
    default_filter_chain: { ...chain, filter_chain_match: { transport_protocol: 'tls' } },
  });
  t.strictSame(problems(bad), [
    "filter_chains[0].filter_chain_match.server_names: field 'server_names' is not supported",
    'filter_chains[0].filter_chain_match.destination_port: 0 is outside [1, 65535]',
    'filter_chains[0].filter_chain_match.transport_protocol: "quic" is not supported (tls or raw_buffer)',
    "default_filter_chain.filter_chain_match: the default filter chain serves what no chain matches; it takes no filter_chain_match",
    'filter_chains[2].filter_chain_match: the same match as filter_chains[1]: multiple filter chains with the same matching rules are not allowed',
    'listener_filters[0].typed_config: expected TlsInspector, got "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"',
    "listener_filters[1].typed_config.enable_ja3_fingerprinting: field 'enable_ja3_fingerprinting' is not supported",
    'listener_filters: tls_inspector may be listed once (got 2 filters)',
  ]);
  t.end();
});

t.test("listenerClusterRefs names every chain's inline routes, default_filter_chain included", async (t) => {
  const { listenerClusterRefs } = await import('../../src/xds/resources/listener.js');
  const base = listener();
  const other = listener({ hcm: hcm({}, 'fallback-backend') }).filter_chains[0]!;
  const r = decode({ ...base, filter_chains: [{ ...base.filter_chains[0]!, filter_chain_match: { transport_protocol: 'tls' } }], default_filter_chain: other });
  t.ok(r.ok);
  if (!r.ok) return;
  t.strictSame(
    listenerClusterRefs(r.value, 'listeners[0]').map((x) => `${x.path} ${x.cluster}`),
    [
      'listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster backend',
      'listeners[0].default_filter_chain.filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster fallback-backend',
    ],
  );
});
