// The ADS server over real gRPC on 127.0.0.1: SotW subscriptions, ACK/NACK, nonces, pushes, refusals and metrics.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { encodeRequest } from '../../../src/control/ads/protocol.js';
import { renderXdsStatus } from '../../../src/control/ads/status.js';
import { CDS, DELTA_PATH, EDS, LDS, RDS, clusterJson, endpointsJson, listenerJson, nodeProto, rawStream, routeJson, startAds, type AdsTestClient } from '../../helpers/ads-client.js';

const SOTW_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';

/** Envoy's start: wildcard CDS and LDS (resource_names empty), the first request carrying the node. */
async function envoyStart(c: AdsTestClient, id = 'reviews-1.default') {
  const cds = await c.ask({ node: nodeProto(id), type_url: CDS });
  c.ack(cds);
  const lds = await c.ask({ type_url: LDS });
  c.ack(lds);
  return { cds, lds };
}

t.test('initial wildcard CDS and LDS get every resource; named RDS and EDS get what exists', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  const c = a.client();
  const cds = await c.ask({ node: nodeProto('reviews-1.default'), type_url: CDS });
  t.strictSame(cds.names, ['reviews', 'ratings']);
  t.equal(cds.version_info, a.source.version(CDS), 'version_info is the snapshot version of the type');
  t.ok(cds.nonce);
  // Any.value is the snapshot's bytes as they are.
  const snapBytes = a.source.snapshotFor({} as never).resources.get(CDS)!.get('reviews')!;
  t.strictSame(Buffer.from(cds.resources[0]!.value), Buffer.from(snapBytes));
  t.equal(cds.resources[0]!.type_url, CDS);

  // The new wildcard spelling: "*".
  const lds = await c.ask({ type_url: LDS, resource_names: ['*'] });
  t.strictSame(lds.names, ['outbound', 'inbound']);
  t.not(lds.nonce, cds.nonce, 'a fresh nonce per response');

  // Named: only what exists; a missing name is simply absent (SotW has no does-not-exist signal).
  const eds = await c.ask({ type_url: EDS, resource_names: ['ratings', 'missing'] });
  t.strictSame(eds.names, ['ratings']);
  const rds = await c.ask({ type_url: RDS, resource_names: ['outbound-routes'] });
  t.strictSame(rds.names, ['outbound-routes']);
  t.equal(rds.version_info, a.source.version(RDS));
});

t.test('proxyless gRPC subscribes LDS and CDS by name; "*" with names is still the wildcard', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  const c = a.client();
  const lds = await c.ask({ node: nodeProto('grpc-1', 'default', 'reviews', { GENERATOR: 'grpc' }), type_url: LDS, resource_names: ['inbound'] });
  t.strictSame(lds.names, ['inbound']);
  const cds = await c.ask({ type_url: CDS, resource_names: ['*', 'ratings'] });
  t.strictSame(cds.names, ['reviews', 'ratings']);
  t.equal(a.ads.status().nodes[0]!.kind, 'proxyless');
});

t.test('legacy wildcard: once a name was subscribed, an empty list unsubscribes (no response)', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  const c = a.client();
  const first = await c.ask({ node: nodeProto('n'), type_url: CDS, resource_names: ['reviews'] });
  t.strictSame(first.names, ['reviews']);
  // Unsubscribe from everything: not answered (the next response answers the LDS request) ...
  c.send({ type_url: CDS, response_nonce: first.nonce, version_info: first.version_info, resource_names: [] });
  const lds = await c.ask({ type_url: LDS });
  t.strictSame(lds.names, ['outbound', 'inbound']);
  // ... and not pushed on a change.
  a.source.set(CDS, [clusterJson('reviews'), clusterJson('ratings'), clusterJson('details')]);
  a.source.change();
  await a.ads.idle();
  t.equal((await c.ask({ type_url: RDS, resource_names: ['inbound-routes'] })).type_url, RDS);
  t.equal(a.ads.status().nodes[0]!.types.cds!.subscribed_names, 0);
  // Subscribing again is answered.
  const again = await c.ask({ type_url: CDS, response_nonce: first.nonce, resource_names: ['*'] });
  t.strictSame(again.names, ['reviews', 'ratings', 'details']);
});

t.test('ACK is recorded (SYNCED) with a push-to-ACK observation; an ACK is not answered', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  const c = a.client();
  const cds = await c.ask({ node: nodeProto('reviews-1.default'), type_url: CDS });
  let st = a.ads.status().nodes[0]!.types.cds!;
  t.equal(st.state, 'STALE', 'sent, not yet ACKed');
  t.equal(st.sent_version, cds.version_info);
  t.notOk(st.acked_version);
  c.ack(cds);
  // The ACK gets no response: the next message answers the LDS request.
  const lds = await c.ask({ type_url: LDS });
  t.strictSame(lds.names, ['outbound', 'inbound']);
  st = a.ads.status().nodes[0]!.types.cds!;
  t.equal(st.state, 'SYNCED');
  t.equal(st.acked_version, cds.version_info);
  t.equal(st.current_version, cds.version_info);
  t.match(await a.metric('outrigger_xds_push_to_ack_seconds'), /outrigger_xds_push_to_ack_seconds_count\{type="cds"\} 1/);
  t.equal(a.ads.status().nodes[0]!.types.lds!.state, 'STALE');
  t.notOk(a.ads.status().nodes[0]!.types.eds, 'EDS never requested');
});

t.test('NACK: recorded with error_detail, not resent; a later change pushes again and ACK makes it SYNCED', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  const c = a.client();
  const { lds } = await envoyStart(c);
  a.source.set(LDS, [listenerJson('outbound'), listenerJson('inbound', 15006), listenerJson('broken', 1)]);
  a.source.change();
  const bad = await c.next();
  t.equal(bad.type_url, LDS, 'only LDS changed, only LDS is pushed');
  t.strictSame(bad.names, ['outbound', 'inbound', 'broken']);
  c.nack(bad, 'listeners[2].address: port 1 is privileged', lds.version_info);
  // Not resent: the next message answers this RDS request.
  const rds = await c.ask({ type_url: RDS, resource_names: ['outbound-routes'] });
  t.strictSame(rds.names, ['outbound-routes']);
  const st = a.ads.status().nodes[0]!.types.lds!;
  t.equal(st.state, 'NACKED');
  t.equal(st.acked_version, lds.version_info, 'the proxy keeps its last accepted version');
  t.equal(st.sent_version, bad.version_info);
  t.match(st.nack, { version: bad.version_info, code: grpc.status.INVALID_ARGUMENT, message: 'listeners[2].address: port 1 is privileged' });
  const table = renderXdsStatus(a.ads.status());
  t.match(table, /reviews-1\.default\s+SYNCED\s+NACKED\s+NOT SENT\s+STALE/);
  t.match(table, new RegExp(`LDS rejected version ${bad.version_info}: listeners\\[2\\]\\.address: port 1 is privileged`));
  t.match(await a.metric('pilot_total_xds_rejects'), /pilot_total_xds_rejects\{type="lds"\} 1/);
  t.match(a.logs.join(''), /proxy rejected config \(NACK\)/);

  // The fix arrives: pushed again, ACKed, SYNCED.
  a.source.set(LDS, [listenerJson('outbound'), listenerJson('inbound', 15006), listenerJson('fixed', 15090)]);
  a.source.change();
  const good = await c.next();
  t.equal(good.type_url, LDS);
  t.not(good.version_info, bad.version_info);
  c.ack(good);
  // A request answered by a response orders us after the ACKs.
  await c.ask({ type_url: EDS, resource_names: ['reviews'] });
  const after = a.ads.status().nodes[0]!.types.lds!;
  t.equal(after.state, 'SYNCED');
  t.equal(after.nack?.version, bad.version_info, 'the last NACK stays visible in status');
  t.notMatch(renderXdsStatus(a.ads.status()), /rejected version/);
});

t.test('a NACK storm is counted per response and logged rate-limited per node', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  const c = a.client();
  let res = await c.ask({ node: nodeProto('storm'), type_url: EDS, resource_names: ['reviews'] });
  for (let i = 0; i < 12; i++) {
    c.nack(res, `bad endpoints ${i}`);
    // gRPC clients repeat the error_detail on a subscription change: answered, but not counted twice.
    res = await c.ask({ type_url: EDS, response_nonce: res.nonce, resource_names: i % 2 ? ['reviews'] : ['reviews', 'ratings'], error_detail: { message: `bad endpoints ${i}` } });
  }
  t.match(await a.metric('pilot_total_xds_rejects'), /\{type="eds"\} 12(\n|$)/);
  const logged = a.logs.filter((l) => l.includes('proxy rejected config')).length;
  t.equal(logged, 5, 'at most 5 NACK lines per node per minute');
});

t.test('a stale nonce is ignored, subscription included; the current nonce is honoured', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  const c = a.client();
  const first = await c.ask({ node: nodeProto('n'), type_url: EDS, resource_names: ['reviews'] });
  a.source.set(EDS, [endpointsJson('reviews', 1000), endpointsJson('ratings', 9081)]);
  a.source.change();
  const second = await c.next();
  t.equal(second.type_url, EDS);
  // A request answering the first response (now stale) that also adds a name: ignored entirely.
  c.send({ type_url: EDS, response_nonce: first.nonce, version_info: first.version_info, resource_names: ['reviews', 'ratings'] });
  // The same with the current nonce: answered with the new set.
  const third = await c.ask({ type_url: EDS, response_nonce: second.nonce, version_info: second.version_info, resource_names: ['reviews', 'ratings'] });
  t.strictSame(third.names, ['ratings', 'reviews']);
  t.match(await a.metric('pilot_xds_expired_nonce'), /\{type="eds"\} 1(\n|$)/);
  const st = a.ads.status().nodes[0]!.types.eds!;
  t.equal(st.acked_version, second.version_info, 'the ACK-with-new-names recorded the ACK');
  t.equal(st.subscribed_names, 2);
});

t.test('a subscription change with the same nonce is answered with the new set; an identical one is an ACK', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  const c = a.client();
  const r1 = await c.ask({ node: nodeProto('n'), type_url: RDS, resource_names: ['outbound-routes'] });
  const r2 = await c.ask({ type_url: RDS, response_nonce: r1.nonce, version_info: r1.version_info, resource_names: ['outbound-routes', 'inbound-routes'] });
  t.strictSame(r2.names, ['inbound-routes', 'outbound-routes']);
  t.equal(r2.version_info, r1.version_info, 'same config, same version');
  c.ack(r2, ['inbound-routes', 'outbound-routes']);
  // Same names in another order: no change, no response (the next answers the CDS request).
  c.ack(r2, ['outbound-routes', 'inbound-routes']);
  const cds = await c.ask({ type_url: CDS });
  t.equal(cds.type_url, CDS);
  // A second initial request (empty nonce) is always answered, as istiod does.
  const again = await c.ask({ type_url: RDS, resource_names: ['inbound-routes'] });
  t.strictSame(again.names, ['inbound-routes']);
});

t.test('a change pushes only changed types, in CDS, EDS, LDS, RDS order', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  const c = a.client();
  const { cds, lds } = await envoyStart(c);
  const eds = await c.ask({ type_url: EDS, resource_names: ['reviews', 'ratings'] });
  c.ack(eds, ['reviews', 'ratings']);
  const rds = await c.ask({ type_url: RDS, resource_names: ['outbound-routes'] });
  c.ack(rds, ['outbound-routes']);

  // Only the route changes.
  a.source.set(RDS, [routeJson('outbound-routes', 'ratings'), routeJson('inbound-routes', 'inbound')]);
  a.source.change();
  const pushed = await c.next();
  t.equal(pushed.type_url, RDS);
  t.not(pushed.version_info, rds.version_info);
  c.ack(pushed, ['outbound-routes']);
  const probe = await c.ask({ type_url: LDS, response_nonce: lds.nonce, resource_names: ['outbound'] });
  t.equal(probe.type_url, LDS, 'no CDS, EDS or LDS push came before');

  // Everything changes: pushed in make-before-break order.
  a.source.set(CDS, [clusterJson('reviews')]);
  a.source.set(EDS, [endpointsJson('reviews', 1)]);
  a.source.set(LDS, [listenerJson('outbound', 15002)]);
  a.source.set(RDS, [routeJson('outbound-routes', 'x')]);
  a.source.change();
  const order = [await c.next(), await c.next(), await c.next(), await c.next()].map((r) => r.type_url);
  t.strictSame(order, [CDS, EDS, LDS, RDS]);
  t.not(cds.version_info, a.source.version(CDS));
  t.match(await a.metric('pilot_xds_pushes'), /\{type="rds"\} 3(\n|$)/);
  t.match(await a.metric('pilot_proxy_convergence_time'), /pilot_proxy_convergence_time_count 2(\n|$)/);
  t.match(await a.metric('pilot_xds_config_size_bytes'), /pilot_xds_config_size_bytes_count\{type="cds"\} 2(\n|$)/);
});

t.test('after a CDS push the next EDS request is answered even when it looks like an ACK (Envoy warming)', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  const c = a.client();
  await envoyStart(c);
  const eds = await c.ask({ type_url: EDS, resource_names: ['reviews'] });
  c.ack(eds, ['reviews']);
  await c.ask({ type_url: RDS, resource_names: ['inbound-routes'] });
  // Only a cluster setting changes; endpoints do not.
  a.source.set(CDS, [{ ...clusterJson('reviews'), connect_timeout: '2s' }, clusterJson('ratings')]);
  a.source.change();
  const cds = await c.next();
  t.equal(cds.type_url, CDS);
  c.ack(cds);
  // Envoy re-requests EDS for the warming cluster with the same names and nonce.
  const warm = await c.ask({ type_url: EDS, response_nonce: eds.nonce, version_info: eds.version_info, resource_names: ['reviews'] });
  t.equal(warm.version_info, eds.version_info, 'same endpoints, answered anyway');
  t.strictSame(warm.names, ['reviews']);
  // Once answered, an ACK is an ACK again.
  c.ack(warm, ['reviews']);
  t.equal((await c.ask({ type_url: RDS, resource_names: ['outbound-routes'] })).type_url, RDS);
});

t.test('reconnect: same content, same version_info; a new stream is answered whatever version it reports', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  const c1 = a.client();
  const first = await c1.ask({ node: nodeProto('n'), type_url: CDS });
  c1.ack(first);
  c1.close();
  const c2 = a.client();
  // Envoy's first request on a new stream reports the version it holds; the nonce does not survive streams.
  const again = await c2.ask({ node: nodeProto('n'), type_url: CDS, version_info: first.version_info, response_nonce: first.nonce });
  t.equal(again.version_info, first.version_info);
  t.strictSame(again.names, first.names, 'the server has no state for a new stream: it sends the resources');
});

t.test('the first request must carry a node; identify() issues are INVALID_ARGUMENT with field paths', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  const c = a.client();
  c.send({ type_url: CDS });
  const s = await c.status();
  t.equal(s.code, grpc.status.INVALID_ARGUMENT);
  t.match(s.details, /must carry node/);
  await t.rejects(c.next(), /stream ended: INVALID_ARGUMENT/);

  const c2 = a.client();
  c2.send({ type_url: CDS, node: { id: 'x', metadata: { fields: { NAMESPACE: { string_value: 'default' } } } } });
  const s2 = await c2.status();
  t.equal(s2.code, grpc.status.INVALID_ARGUMENT);
  t.match(s2.details, /node "x" refused: node\.metadata\.SERVICE_ACCOUNT: is required/);

  // A node the node decoder refuses (an unknown locality field) names the field too.
  const c3 = a.client();
  c3.send({ type_url: CDS, node: { ...nodeProto('y'), locality: { region: 'r', zone: 'z', sub_zone: 's' }, metadata: { fields: {} } } });
  t.match((await c3.status()).details, /node\.metadata\.NAMESPACE: is required/);

  const c4 = a.client();
  c4.send({ node: nodeProto('z') });
  const s4 = await c4.status();
  t.equal(s4.code, grpc.status.INVALID_ARGUMENT);
  t.match(s4.details, /type_url is required/);
  t.match(await a.metric('outrigger_xds_refusals_total'), /reason="node_missing"\} 1[\s\S]*reason="node_invalid"\} 2[\s\S]*reason="type_url_missing"\} 1/);
  t.equal(a.ads.status().connected, 0);
});

t.test('unsupported types are ignored, logged once and counted; the stream keeps serving the others', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  const c = a.client();
  const cds = await c.ask({ node: nodeProto('n'), type_url: CDS });
  for (const type of ['type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret', 'type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration', 'type.googleapis.com/made.up.Thing']) {
    c.send({ type_url: type, resource_names: ['default'] });
    c.send({ type_url: type, resource_names: ['default'], version_info: 'x' });
  }
  // The next response answers this LDS request: nothing came for the unsupported ones.
  const lds = await c.ask({ type_url: LDS });
  t.strictSame(lds.names, ['outbound', 'inbound']);
  c.ack(cds);
  t.equal((await c.ask({ type_url: EDS, resource_names: ['reviews'] })).type_url, EDS);
  t.match(await a.metric('outrigger_xds_unsupported_requests_total'), /outrigger_xds_unsupported_requests_total 6(\n|$)/);
  t.equal(a.logs.filter((l) => l.includes('does not serve')).length, 3, 'once per type per stream');
  t.equal(a.ads.status().nodes[0]!.types.cds!.state, 'SYNCED');
});

t.test('garbage bytes end the stream with INVALID_ARGUMENT; the server keeps serving', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  // Field 15 with wire type 7, which does not exist: not a protobuf message at all.
  const s = await rawStream(a.address, SOTW_PATH, [Buffer.from([0x7f])]);
  t.equal(s.code, grpc.status.INVALID_ARGUMENT);
  t.match(s.details, /malformed DiscoveryRequest/);
  // Garbage after a good first request: same, and the identified stream is released.
  const good = encodeRequest({ node: nodeProto('g'), type_url: CDS });
  const s2 = await rawStream(a.address, SOTW_PATH, [good, Buffer.from([0xff, 0xff, 0xff, 0xff])]);
  t.equal(s2.code, grpc.status.INVALID_ARGUMENT);
  t.match(await a.metric('outrigger_xds_refusals_total'), /reason="malformed_request"\} 2/);
  t.match(await a.metric('pilot_xds'), /pilot_xds\{kind="sidecar",transport="plaintext"\} 0/);
  const c = a.client();
  t.equal((await c.ask({ node: nodeProto('n'), type_url: CDS })).type_url, CDS);
});

t.test('delta xDS answers UNIMPLEMENTED', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  const s = await rawStream(a.address, DELTA_PATH, [Buffer.alloc(0)]);
  t.equal(s.code, grpc.status.UNIMPLEMENTED);
  t.match(s.details, /state of the world/);
});

t.test('a source that throws ends that stream with INTERNAL, not the process', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  const c = a.client();
  await c.ask({ node: nodeProto('n'), type_url: CDS });
  a.source.broken = new Error('translation failed');
  a.source.change();
  const s = await c.status();
  t.equal(s.code, grpc.status.INTERNAL);
  t.match(s.details, /translation failed/);
  a.source.broken = undefined;
  const c2 = a.client();
  c2.send({ node: nodeProto('n2'), type_url: CDS });
  a.source.broken = new Error('again');
  t.equal((await c2.status()).code, grpc.status.INTERNAL);
});

t.test('a client that half-closes gets OK and its stream is released', async (t) => {
  const a = await startAds();
  t.teardown(() => a.close());
  const c = a.client();
  await c.ask({ node: nodeProto('n'), type_url: CDS });
  t.equal(a.ads.status().connected, 1);
  (c as unknown as { call: grpc.ClientDuplexStream<unknown, unknown> }).call.end();
  t.equal((await c.status()).code, grpc.status.OK);
  t.equal(a.ads.status().connected, 0);
  t.match(await a.metric('pilot_xds'), /pilot_xds\{kind="sidecar",transport="plaintext"\} 0/);
});

t.test('close() ends every stream with UNAVAILABLE and refuses new ones', async (t) => {
  const a = await startAds();
  const c1 = a.client();
  const c2 = a.client();
  await c1.ask({ node: nodeProto('a'), type_url: CDS });
  await c2.ask({ node: nodeProto('b'), type_url: LDS });
  t.match(await a.metric('pilot_xds'), /pilot_xds\{kind="sidecar",transport="plaintext"\} 2/);
  t.equal(a.source.subscribers, 1);
  a.ads.close();
  a.ads.close();
  const [s1, s2] = await Promise.all([c1.status(), c2.status()]);
  t.equal(s1.code, grpc.status.UNAVAILABLE);
  t.equal(s2.code, grpc.status.UNAVAILABLE);
  t.equal(a.source.subscribers, 0, 'no longer listening to config changes');
  a.source.change();
  const c3 = a.client();
  c3.send({ node: nodeProto('c'), type_url: CDS });
  t.equal((await c3.status()).code, grpc.status.UNAVAILABLE);
  t.equal(a.ads.status().connected, 0);
  t.match(await a.metric('pilot_xds'), /pilot_xds\{kind="sidecar",transport="plaintext"\} 0/);
  await a.close();
});
