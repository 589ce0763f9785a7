// Small Envoy v3 resources in proto3 JSON form, and ways to push them through the real decoders.
import { ConfigError, type FieldIssue } from '../../src/core/errors.js';
import type { Result } from '../../src/core/result.js';
import { HTTP2_DEFAULTS } from '../../src/model/types.js';
import { decodeResource, encodeResourceJson, type ResourceModels, type ResourceTypeUrl } from '../../src/xds/resources/index.js';

export const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const ROUTER_URL = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

/** The decoded HttpConnectionManager fields a config that sets none of them gets (Envoy's defaults). */
export const HCM_MODEL_DEFAULTS = {
  codecType: 'AUTO',
  httpFilters: [{ name: 'envoy.filters.http.router', typeUrl: ROUTER_URL, optional: false, config: {} }],
  forwardClientCertDetails: 'SANITIZE',
  setCurrentClientCertDetails: { subject: false, cert: false, chain: false, dns: false, uri: false },
  idleTimeoutMs: 3_600_000,
  streamIdleTimeoutMs: 300_000,
  requestTimeoutMs: 0,
  maxRequestHeadersKb: 60,
  http2: HTTP2_DEFAULTS,
  generateRequestId: true,
  useRemoteAddress: false,
  upgradeTypes: [] as string[],
};
export const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_URL } };
export const DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
export const UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
export const HTTP_OPTIONS_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
export const HTTP_OPTIONS = `type.googleapis.com/${HTTP_OPTIONS_KEY}`;

export const addr = (address: string, port_value: number) => ({ socket_address: { address, port_value } });

/** An HttpConnectionManager typed_config with one route to `cluster`; `extra` is merged in. */
export function hcm(extra: Record<string, unknown> = {}, cluster = 'backend') {
  return {
    '@type': HCM,
    stat_prefix: 'web',
    route_config: {
      name: 'web',
      virtual_hosts: [{ name: 'web', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster } }] }],
    },
    http_filters: [ROUTER],
    ...extra,
  };
}

export function listener(o: { name?: string; port?: number; hcm?: object; chain?: Record<string, unknown> } = {}) {
  return {
    name: o.name ?? 'web',
    address: addr('127.0.0.1', o.port ?? 8080),
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: o.hcm ?? hcm() }], ...o.chain }],
  };
}

export function cluster(extra: Record<string, unknown> = {}, name = 'backend') {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: addr('127.0.0.1', 9000) } }] }] },
    ...extra,
  };
}

export const INLINE_PEM = { inline_string: '-----BEGIN CERTIFICATE-----\n...' };

export function bootstrap(o: { listeners?: object[]; clusters?: object[]; extra?: Record<string, unknown> } = {}) {
  return { node: { id: 'n1', cluster: 'c1' }, static_resources: { listeners: o.listeners ?? [listener()], clusters: o.clusters ?? [cluster()] }, ...o.extra };
}

/** The JSON path for one resource: proto3 JSON -> bytes -> the same decoder the ADS client uses. */
export function viaJson<U extends ResourceTypeUrl>(typeUrl: U, json: unknown): Result<ResourceModels[U], FieldIssue> {
  const bytes = encodeResourceJson(typeUrl, json);
  return bytes.ok ? decodeResource(typeUrl, bytes.value) : bytes;
}

export const fmt = (i: FieldIssue) => `${i.path}: ${i.message}`;

/** "path: message" of every issue of a failed result (empty for a success). */
export function problems(r: Result<unknown, FieldIssue>): string[] {
  return r.ok ? [] : r.errors.map(fmt);
}

/** The issues of the ConfigError `fn` throws (fails loudly if it does not throw one). */
export function configIssues(fn: () => unknown): readonly FieldIssue[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  throw new Error('expected a ConfigError');
}
