// Envoy v3 resources in proto3 JSON as a control server would send them over ADS, and an ADS sidecar bootstrap.
const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
const ADS_SOURCE = { ads: {}, resource_api_version: 'V3' };
const H2_OPTIONS = {
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
    explicit_http_config: { http2_protocol_options: {} },
  },
};

const address = (port: number, host = '127.0.0.1') => ({ socket_address: { address: host, port_value: port } });

/** A Cluster of type EDS (Istio's shape), its endpoints named service_name (default: the cluster name). */
export function edsCluster(name: string, o: { serviceName?: string; initialFetchTimeout?: string; connectTimeout?: string; extra?: object } = {}) {
  return {
    name,
    type: 'EDS',
    connect_timeout: o.connectTimeout ?? '1s',
    eds_cluster_config: {
      eds_config: { ...ADS_SOURCE, ...(o.initialFetchTimeout && { initial_fetch_timeout: o.initialFetchTimeout }) },
      ...(o.serviceName && { service_name: o.serviceName }),
    },
    ...o.extra,
  };
}

/** A ClusterLoadAssignment with one locality of endpoints on 127.0.0.1. */
export function assignment(name: string, ports: readonly number[]) {
  return { cluster_name: name, endpoints: [{ lb_endpoints: ports.map((p) => ({ endpoint: { address: address(p) } })) }] };
}

/** A RouteConfiguration: one catch-all virtual host; routes as [prefix, cluster] pairs, first match wins. */
export function routeConfig(name: string, routes: readonly (readonly [string, string])[]) {
  return {
    name,
    virtual_hosts: [{ name: 'all', domains: ['*'], routes: routes.map(([prefix, cluster]) => ({ match: { prefix }, route: { cluster, timeout: '5s' } })) }],
  };
}

/** A plaintext HTTP listener on 127.0.0.1:port whose routes come from RDS (or inline, to one cluster). */
export function httpListener(name: string, port: number, route: { rds: string; initialFetchTimeout?: string } | { cluster: string }, extra: object = {}) {
  const routeSpec =
    'rds' in route
      ? { rds: { route_config_name: route.rds, config_source: { ...ADS_SOURCE, ...(route.initialFetchTimeout && { initial_fetch_timeout: route.initialFetchTimeout }) } } }
      : { route_config: routeConfig(name, [['/', route.cluster]]) };
  return {
    name,
    address: address(port),
    traffic_direction: 'OUTBOUND',
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: { '@type': HCM_TYPE, stat_prefix: name, codec_type: 'AUTO', ...routeSpec, http_filters: [ROUTER], ...extra } }] }],
  };
}

/** A sidecar bootstrap in Istio's shape: no static listeners, ADS through the static cluster xds-grpc. */
export function adsBootstrap(adsPort: number, o: { tls?: object; metadata?: Record<string, unknown>; initialFetchTimeout?: string } = {}) {
  const source = { ...ADS_SOURCE, ...(o.initialFetchTimeout && { initial_fetch_timeout: o.initialFetchTimeout }) };
  return {
    node: { id: 'sidecar~127.0.0.1~app-1.default~default.svc.cluster.local', cluster: 'app', locality: { region: 'r1', zone: 'z1' }, metadata: { NAMESPACE: 'default', ...o.metadata } },
    admin: { address: address(0) },
    dynamic_resources: {
      ads_config: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }], set_node_on_first_message_only: true },
      lds_config: source,
      cds_config: source,
    },
    static_resources: {
      clusters: [
        {
          name: 'xds-grpc',
          type: 'STATIC',
          connect_timeout: '1s',
          typed_extension_protocol_options: H2_OPTIONS,
          load_assignment: { cluster_name: 'xds-grpc', endpoints: [{ lb_endpoints: [{ endpoint: { address: address(adsPort) } }] }] },
          ...(o.tls && { transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', ...o.tls } } }),
        },
      ],
    },
  };
}
