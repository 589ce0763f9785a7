// Interop: a real proxyless gRPC client (@grpc/grpc-js-xds) gets its channel READY from the ADS server, and its NACK shows in status.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import type { XdsAnswer } from '../../../src/control/ads/server.js';
import { renderXdsStatus } from '../../../src/control/ads/status.js';
import { CDS, EDS, LDS, RDS, TestSource, startAds } from '../../helpers/ads-client.js';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

/** What gRFC A27 needs for xds:///reviews: an API listener (HCM over RDS), a route, an EDS cluster, its endpoints. */
function proxylessConfig(backendPort: number, listener: object = { api_listener: { api_listener: { '@type': HCM, rds: { config_source: { ads: {} }, route_config_name: 'reviews-routes' }, http_filters: [{ name: 'router', typed_config: { '@type': ROUTER } }] } } }) {
  return new TestSource({
    [LDS]: [{ name: 'reviews', ...listener }],
    [RDS]: [{ name: 'reviews-routes', virtual_hosts: [{ name: 'reviews', domains: ['*'], routes: [{ match: { prefix: '' }, route: { cluster: 'outbound|9080||reviews' } }] }] }],
    [CDS]: [{ name: 'outbound|9080||reviews', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } }, lb_policy: 'ROUND_ROBIN' }],
    [EDS]: [{ cluster_name: 'outbound|9080||reviews', endpoints: [{ locality: { region: 'r1', zone: 'z1' }, load_balancing_weight: 1, lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: backendPort } } } }] }] }],
  });
}

t.test('grpc-js-xds: metadata, named LDS/CDS, ACKs, then a NACK of a listener it cannot use', async (t) => {
  // A backend with no services: a connected subchannel is all READY needs.
  const backend = new grpc.Server();
  const backendPort = await new Promise<number>((resolve, reject) => backend.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  t.teardown(() => backend.forceShutdown());
  const source = proxylessConfig(backendPort);
  const a = await startAds({ source });
  t.teardown(() => a.close());
  // grpc-js-xds reads its bootstrap once per process, from the environment (gRFC A27).
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
    xds_servers: [{ server_uri: a.address, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: 'grpc-reviews-1', metadata: { NAMESPACE: 'default', SERVICE_ACCOUNT: 'reviews', GENERATOR: 'grpc' }, locality: { region: 'r1', zone: 'z1' } },
  });
  grpcXds.register();
  const edsAcked = new Promise<void>((resolve) => a.ads.on('ack', (e) => e.typeUrl === EDS && resolve()));
  const client = new grpc.Client('xds:///reviews', grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 20_000, (e) => (e ? reject(e) : resolve())));
  await edsAcked;

  const n = a.ads.status().nodes[0]!;
  t.equal(n.kind, 'proxyless', 'GENERATOR=grpc from the Struct metadata grpc-js-xds sends');
  t.equal(n.spiffe_id, 'spiffe://cluster.local/ns/default/sa/reviews');
  t.equal(n.types.lds!.wildcard, false, 'gRPC subscribes its listener by name');
  t.equal(n.types.lds!.subscribed_names, 1);
  t.equal(n.types.cds!.wildcard, false);
  t.equal(n.types.eds!.state, 'SYNCED');

  // A listener without api_listener is unusable to gRPC: it NACKs and keeps its channel.
  source.set(LDS, [{ name: 'reviews', address: { socket_address: { address: '0.0.0.0', port_value: 9080 } } }]);
  const nacked = new Promise<XdsAnswer>((resolve) => a.ads.on('nack', (e) => e.typeUrl === LDS && resolve(e)));
  source.change();
  const nack = await nacked;
  t.equal(nack.nodeId, 'grpc-reviews-1');
  t.match(nack.message, /Listener/);
  const lds = a.ads.status().nodes[0]!.types.lds!;
  t.equal(lds.state, 'NACKED');
  t.equal(lds.nack?.message, nack.message);
  t.not(lds.acked_version, lds.sent_version, 'it still uses the version it accepted');
  t.match(renderXdsStatus(a.ads.status()), /grpc-reviews-1\s+SYNCED\s+NACKED/);
  t.equal(client.getChannel().getConnectivityState(false), grpc.connectivityState.READY);
});
