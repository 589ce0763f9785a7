// The proxy-status table and the shared response bodies, without a network.
import t from 'tap';
import { decodeResponse, withNonce } from '../../../src/control/ads/protocol.js';
import { ResponseCache } from '../../../src/control/ads/response-cache.js';
import { renderXdsStatus, type XdsNodeStatus, type XdsTypeStatus } from '../../../src/control/ads/status.js';
import type { NodeSnapshot, ProxyNode } from '../../../src/control/snapshot.js';
import { CDS, DEFAULT_RESOURCES, EDS, LDS, RDS, TestSource, listenerJson, nodeProto, startAds } from '../../helpers/ads-client.js';

const type = (state: XdsTypeStatus['state'], extra: Partial<XdsTypeStatus> = {}): XdsTypeStatus => ({ type_url: CDS, state, current_version: 'v2', wildcard: true, subscribed_names: 0, ...extra });
const node = (id: string, types: XdsNodeStatus['types'], conn = `${id}-1`): XdsNodeStatus => ({
  connection_id: conn,
  node_id: id,
  kind: 'sidecar',
  namespace: 'default',
  service_account: 'reviews',
  spiffe_id: 'spiffe://cluster.local/ns/default/sa/reviews',
  connected_at: '2026-01-01T00:00:00.000Z',
  peer: '127.0.0.1:1234',
  transport: 'mtls',
  types,
});

t.test('renderXdsStatus: istioctl proxy-status columns, NACKED rows followed by the error', async (t) => {
  const out = renderXdsStatus({
    connected: 3,
    nodes: [
      node('b-proxy.default', { cds: type('SYNCED'), lds: type('NACKED', { nack: { version: 'v2', code: 3, message: 'listeners[0]: bad\n  port', at: '2026-01-01T00:00:01.000Z' } }), eds: type('STALE'), rds: type('NOT_SENT') }),
      node('a.default', { cds: type('SYNCED') }, 'a.default-9'),
      node('a.default', { cds: type('STALE') }, 'a.default-2'),
    ],
  });
  t.equal(
    out,
    [
      'NAME              CDS      LDS        EDS        RDS        POLICY',
      'a.default         STALE    NOT SENT   NOT SENT   NOT SENT   -',
      'a.default         SYNCED   NOT SENT   NOT SENT   NOT SENT   -',
      'b-proxy.default   SYNCED   NACKED     STALE      NOT SENT   -',
      '    LDS rejected version v2: listeners[0]: bad port',
      '',
    ].join('\n'),
  );
  t.equal(renderXdsStatus({ connected: 0, nodes: [] }), 'NAME   CDS   LDS   EDS   RDS   POLICY\n(no proxies connected)\n');
});

t.test('ResponseCache: one body per (resources, version, selection), shared; missing names do not split it', async (t) => {
  const c = new ResponseCache();
  const resources = new Map([
    ['b', Uint8Array.from([0x0a, 0x01, 0x62])],
    ['a', Uint8Array.from([0x0a, 0x01, 0x61])],
  ]);
  const all = c.body(EDS, resources, 'v1', { wildcard: true, sortedNames: [] });
  t.equal(c.body(EDS, resources, 'v1', { wildcard: true, sortedNames: ['a'] }), all, 'the same Buffer: encoded once');
  const named = c.body(EDS, resources, 'v1', { wildcard: false, sortedNames: ['a', 'b', 'missing'] });
  t.equal(c.body(EDS, resources, 'v1', { wildcard: false, sortedNames: ['a', 'b'] }), named);
  t.not(c.body(EDS, resources, 'v2', { wildcard: false, sortedNames: ['a', 'b'] }), named, 'another version is another body');
  const r = decodeResponse(withNonce(named, 'n1'));
  t.equal(r.nonce, 'n1');
  t.equal(r.version_info, 'v1');
  t.strictSame(r.resources.map((x) => Buffer.from(x.value).toString('hex')), ['0a0161', '0a0162'], 'named: sorted by name');
  t.strictSame(decodeResponse(all).resources.map((x) => Buffer.from(x.value).toString('hex')), ['0a0162', '0a0161'], 'wildcard: snapshot order');
  // Bounded: 256 selections per map, the oldest dropped first.
  for (let i = 0; i < 300; i++) c.body(EDS, resources, `x${i}`, { wildcard: true, sortedNames: [] });
  t.not(c.body(EDS, resources, 'v1', { wildcard: true, sortedNames: [] }), all, 'evicted, encoded again');
});

/** TestSource whose snapshots carry a security-policy version, as the translator's do for sidecars. */
class PolicySource extends TestSource {
  policy = 'p1';
  override snapshotFor(node: ProxyNode): NodeSnapshot {
    return { ...super.snapshotFor(node), policyVersion: this.policy };
  }
}

t.test('policy: the version of the listeners a sidecar ACKed, against the current one; the table and /status agree', async (t) => {
  const source = new PolicySource(DEFAULT_RESOURCES);
  const a = await startAds({ source });
  t.teardown(() => a.close());
  const c = a.client();
  const cds = await c.ask({ node: nodeProto('reviews-1.default'), type_url: CDS });
  c.ack(cds);
  t.strictSame(a.ads.status().nodes[0]!.policy, { current_version: 'p1', state: 'NOT_SENT' }, 'no listeners asked for yet');
  const lds = await c.ask({ type_url: LDS });
  t.strictSame(a.ads.status().nodes[0]!.policy, { current_version: 'p1', state: 'STALE' }, 'sent, not ACKed: not enforced yet');
  c.ack(lds);
  // A request answered by a response orders us after the ACK.
  await c.ask({ type_url: RDS, resource_names: ['outbound-routes'] });
  t.strictSame(a.ads.status().nodes[0]!.policy, { current_version: 'p1', enforced_version: 'p1', state: 'SYNCED' });
  t.match(renderXdsStatus(a.ads.status()), /^NAME\s+CDS\s+LDS\s+EDS\s+RDS\s+POLICY\nreviews-1\.default\s+SYNCED\s+SYNCED\s+NOT SENT\s+STALE\s+p1\n$/);

  // A policy change reaches the sidecar as new listeners: enforced only once they are ACKed.
  source.policy = 'p2';
  source.set(LDS, [listenerJson('outbound'), listenerJson('inbound', 15007)]);
  source.change();
  const pushed = await c.next();
  t.equal(pushed.type_url, LDS);
  t.strictSame(a.ads.status().nodes[0]!.policy, { current_version: 'p2', enforced_version: 'p1', state: 'STALE' });
  t.match(renderXdsStatus(a.ads.status()), /reviews-1\.default\s+SYNCED\s+STALE\s+NOT SENT\s+\S+\s+p1 \(STALE, current p2\)\n$/);
  c.nack(pushed, 'listeners[1]: bad', lds.version_info);
  await c.ask({ type_url: RDS, resource_names: ['inbound-routes'] });
  t.strictSame(a.ads.status().nodes[0]!.policy, { current_version: 'p2', enforced_version: 'p1', state: 'NACKED' }, 'rejected: it goes on enforcing p1');

  source.set(LDS, [listenerJson('outbound'), listenerJson('inbound', 15008)]);
  source.change();
  const fixed = await c.next();
  c.ack(fixed);
  await c.ask({ type_url: RDS, resource_names: ['outbound-routes'] });
  t.equal(a.ads.status().nodes[0]!.policy?.state, 'SYNCED');
  t.equal(a.ads.status().nodes[0]!.policy?.enforced_version, 'p2');

  // An ACK naming another version than the one sent (a confused client): what it enforces is unknown.
  source.policy = 'p3';
  source.set(LDS, [listenerJson('outbound'), listenerJson('inbound', 15009)]);
  source.change();
  const odd = await c.next();
  c.send({ type_url: LDS, response_nonce: odd.nonce, version_info: 'something-else' });
  await c.ask({ type_url: RDS, resource_names: ['inbound-routes'] });
  t.strictSame(a.ads.status().nodes[0]!.policy, { current_version: 'p3', state: 'STALE' });
});

t.test('policy: proxyless clients have none ("-"); a failing translation shows no policy rather than failing /status', async (t) => {
  const out = renderXdsStatus({ connected: 1, nodes: [node('grpc-1.default', { lds: type('SYNCED') })] });
  t.match(out, /grpc-1\.default\s+NOT SENT\s+SYNCED\s+NOT SENT\s+NOT SENT\s+-\n$/);
  const pending = renderXdsStatus({ connected: 1, nodes: [{ ...node('r.default', {}), policy: { current_version: 'abc', state: 'NOT_SENT' } }] });
  t.match(pending, /r\.default\s+NOT SENT\s+NOT SENT\s+NOT SENT\s+NOT SENT\s+- \(NOT SENT, current abc\)\n$/);
  const source = new PolicySource(DEFAULT_RESOURCES);
  const a = await startAds({ source });
  t.teardown(() => a.close());
  const c = a.client();
  c.ack(await c.ask({ node: nodeProto('reviews-1.default'), type_url: CDS }));
  await c.ask({ type_url: LDS });
  source.broken = new Error('translator bug');
  t.equal(a.ads.status().nodes[0]!.policy, undefined);
});
