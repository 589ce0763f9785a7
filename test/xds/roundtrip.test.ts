// The ADS path (wire bytes -> decoder) gives the same model as the file path (proto3 JSON -> bytes -> decoder).
import t from 'tap';
import type { Type } from 'protobufjs';
import { decodeBootstrap } from '../../src/xds/bootstrap.js';
import { unpackAny } from '../../src/xds/canonical.js';
import {
  CLUSTER_LOAD_ASSIGNMENT_TYPE_URL,
  CLUSTER_TYPE_URL,
  LISTENER_TYPE_URL,
  ROUTE_CONFIGURATION_TYPE_URL,
  lookupType,
  typeForUrl,
} from '../../src/xds/protos.js';
import { decodeResource, encodeResourceJson } from '../../src/xds/resources/index.js';
import { DOWNSTREAM_TLS, HCM, HTTP_OPTIONS, HTTP_OPTIONS_KEY, ROUTER, UPSTREAM_TLS, addr, bootstrap, hcm, problems } from './helpers.js';

/** What a control plane sends: protobufjs's own fromObject + encode, none of our JSON converter. */
function wire(typeUrl: string, object: Record<string, unknown>): Uint8Array {
  const T = typeForUrl(typeUrl) as Type;
  return T.encode(T.fromObject(object)).finish();
}
/** An Any built the way protobufjs does it (its Any wrapper packs "@type" objects). */
const any = (typeUrl: string, object: Record<string, unknown>) => ({ type_url: typeUrl, value: wire(typeUrl, object) });

const tlsContext = {
  require_client_certificate: true,
  common_tls_context: {
    alpn_protocols: ['h2'],
    tls_certificates: [{ certificate_chain: { inline_string: 'chain' }, private_key: { inline_string: 'key' } }],
    validation_context: { trusted_ca: { inline_string: 'ca' }, match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { prefix: 'spiffe://td/' } }] },
  },
};

t.test('Listener: control-plane bytes and a bootstrap file decode to the same model', (t) => {
  const hcmJson = hcm({ codec_type: 'AUTO', stream_idle_timeout: '1.5s', generate_request_id: false, upgrade_configs: [{ upgrade_type: 'websocket' }] });
  const fileListener = {
    name: 'in',
    traffic_direction: 'INBOUND',
    address: addr('127.0.0.1', 15006),
    filter_chains: [{ filters: [{ name: 'hcm', typed_config: hcmJson }], transport_socket: { name: 'tls', typed_config: { '@type': DOWNSTREAM_TLS, ...tlsContext } } }],
  };
  const { '@type': _, ...hcmFields } = hcmJson;
  const cpListener = {
    ...fileListener,
    filter_chains: [
      {
        filters: [
          {
            name: 'hcm',
            typed_config: any(HCM, {
              ...hcmFields,
              stream_idle_timeout: { seconds: 1, nanos: 500_000_000 },
              generate_request_id: { value: false },
              http_filters: [{ name: ROUTER.name, typed_config: any(ROUTER.typed_config['@type'], {}) }],
            }),
          },
        ],
        transport_socket: { name: 'tls', typed_config: any(DOWNSTREAM_TLS, { ...tlsContext, require_client_certificate: { value: true } }) },
      },
    ],
  };
  const fromFile = decodeBootstrap(bootstrap({ listeners: [fileListener], clusters: [{ name: 'backend' }] })).listeners[0];
  const fromAds = decodeResource(LISTENER_TYPE_URL, wire(LISTENER_TYPE_URL, cpListener));
  t.ok(fromAds.ok, problems(fromAds).join('\n'));
  t.strictSame(fromAds.ok && fromAds.value, fromFile);
  t.match(fromFile, { filterChain: { hcm: { streamIdleTimeoutMs: 1500, generateRequestId: false }, tls: { requireClientCertificate: true } } });
  const viaJson = encodeResourceJson(LISTENER_TYPE_URL, fileListener);
  t.strictSame(viaJson.ok && decodeResource(LISTENER_TYPE_URL, viaJson.value), { ok: true, value: fromFile });
  t.end();
});

t.test('Cluster with HTTP/2 options and upstream TLS: same model both ways', (t) => {
  const fileCluster = {
    name: 'out',
    type: 'STATIC',
    lb_policy: 'ROUND_ROBIN',
    connect_timeout: '0.25s',
    typed_extension_protocol_options: {
      [HTTP_OPTIONS_KEY]: { '@type': HTTP_OPTIONS, explicit_http_config: { http2_protocol_options: { max_concurrent_streams: 64 } }, common_http_protocol_options: { idle_timeout: '60s' } },
    },
    load_assignment: { cluster_name: 'out', endpoints: [{ priority: 0, lb_endpoints: [{ endpoint: { address: addr('127.0.0.1', 9) }, load_balancing_weight: 2 }] }] },
    transport_socket: { name: 'tls', typed_config: { '@type': UPSTREAM_TLS, sni: 'out', common_tls_context: tlsContext.common_tls_context } },
  };
  const cpCluster = {
    ...fileCluster,
    connect_timeout: { seconds: 0, nanos: 250_000_000 },
    typed_extension_protocol_options: {
      [HTTP_OPTIONS_KEY]: any(HTTP_OPTIONS, { explicit_http_config: { http2_protocol_options: { max_concurrent_streams: { value: 64 } } }, common_http_protocol_options: { idle_timeout: { seconds: 60 } } }),
    },
    load_assignment: { ...fileCluster.load_assignment, endpoints: [{ priority: 0, lb_endpoints: [{ endpoint: { address: addr('127.0.0.1', 9) }, load_balancing_weight: { value: 2 } }] }] },
    transport_socket: { name: 'tls', typed_config: any(UPSTREAM_TLS, { sni: 'out', common_tls_context: tlsContext.common_tls_context }) },
  };
  const fromFile = decodeBootstrap(bootstrap({ listeners: [], clusters: [fileCluster] })).clusters[0];
  const fromAds = decodeResource(CLUSTER_TYPE_URL, wire(CLUSTER_TYPE_URL, cpCluster));
  t.strictSame(fromAds.ok && fromAds.value, fromFile);
  t.match(fromFile, { connectTimeoutMs: 250, protocol: 'HTTP2', idleTimeoutMs: 60_000, http2: { maxConcurrentStreams: 64 }, tls: { sni: 'out' } });
  t.end();
});

t.test('RouteConfiguration and ClusterLoadAssignment arrive as their own resources', (t) => {
  const rc = decodeResource(ROUTE_CONFIGURATION_TYPE_URL, wire(ROUTE_CONFIGURATION_TYPE_URL, { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' } }] }] }));
  t.match(rc, { ok: true, value: { name: 'r', virtualHosts: [{ routes: [{ action: { action: { cluster: 'c', timeoutMs: 15_000 } } }] }] } });
  const cla = decodeResource(CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, wire(CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, { cluster_name: 'c', endpoints: [{ lb_endpoints: [{ endpoint: { address: addr('10.1.2.3', 8080) } }] }] }));
  t.match(cla, { ok: true, value: { clusterName: 'c', overprovisioningFactor: 140, localities: [{ endpoints: [{ address: { host: '10.1.2.3', port: 8080 } }] }] } });
  t.end();
});

t.test('what only a byte stream can carry: malformed bytes, unknown types and enum numbers', (t) => {
  t.match(problems(decodeResource(LISTENER_TYPE_URL, Buffer.from([0x0a, 0xff]), 'resources[0]')), [/^resources\[0\]: malformed Listener: /]);
  const filterAt = (filter: object) => ({
    name: 'l',
    address: addr('127.0.0.1', 1),
    filter_chains: [{ filters: [{ name: 'hcm', typed_config: any(HCM, { stat_prefix: 's', rds: { route_config_name: 'r' }, http_filters: [filter, { name: ROUTER.name, typed_config: any(ROUTER.typed_config['@type'], {}) }] }) }] }],
  });
  const acme = { type_url: 'type.googleapis.com/acme.v1.Filter', value: Buffer.from([8, 1]) };
  const optional = decodeResource(LISTENER_TYPE_URL, wire(LISTENER_TYPE_URL, filterAt({ name: 'acme', typed_config: acme, is_optional: true })));
  t.match(optional, { ok: true, value: { filterChain: { hcm: { httpFilters: [{ name: 'envoy.filters.http.router' }] } } } });
  t.strictSame(problems(decodeResource(LISTENER_TYPE_URL, wire(LISTENER_TYPE_URL, filterAt({ name: 'acme', typed_config: acme })))), [
    'filter_chains[0].filters[0].typed_config.http_filters[0].typed_config: HTTP filter type.googleapis.com/acme.v1.Filter is not supported (set is_optional: true to skip it)',
  ]);
  const broken = { name: 'l', address: addr('127.0.0.1', 1), filter_chains: [{ filters: [{ name: 'hcm', typed_config: { type_url: HCM, value: Buffer.from([0x08, 0xff]) } }] }] };
  t.match(problems(decodeResource(LISTENER_TYPE_URL, wire(LISTENER_TYPE_URL, broken))), [/^filter_chains\[0\]\.filters\[0\]\.typed_config: malformed HttpConnectionManager: /]);
  t.strictSame(problems(decodeResource(CLUSTER_TYPE_URL, wire(CLUSTER_TYPE_URL, { name: 'c', lb_policy: 42 }))), ['lb_policy: 42 is not supported']);
  t.strictSame(problems(unpackAny({ type_url: 'type.googleapis.com/acme.v1.Filter' }, 'x')), ['x: unknown type URL "type.googleapis.com/acme.v1.Filter"']);
  t.strictSame(problems(unpackAny({}, 'x')), ['x: unknown type URL ""']);
  t.end();
});

t.test('encodeResourceJson reports proto3 JSON problems instead of bytes', (t) => {
  t.strictSame(problems(encodeResourceJson(CLUSTER_TYPE_URL, { name: 'c', colour: 'blue' })), ['colour: unknown field']);
  t.ok(lookupType('envoy.config.cluster.v3.Cluster'));
  t.end();
});
