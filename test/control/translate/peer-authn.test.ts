// PeerAuthentication -> virtualInbound: the chains each mode gets, read back through the sidecar's own decoders,
// and portLevelMtls as the plaintext chain's `inbound-plaintext` route table.
import t from 'tap';
import type { MtlsMode, PeerAuthentication } from '../../../src/control/mesh/types.js';
import { translate } from '../../../src/control/translate/index.js';
import { MeshSnapshots } from '../../../src/control/translate/snapshots.js';
import type { Listener, RouteConfiguration } from '../../../src/model/types.js';
import { LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL } from '../../../src/xds/protos.js';
import { OPTS, bookinfo, decodeAll, node } from './helpers.js';

const pa = (name: string, namespace: string, mtls: MtlsMode, o: { selector?: Record<string, string>; ports?: Record<number, MtlsMode> } = {}): PeerAuthentication => ({
  kind: 'PeerAuthentication',
  meta: { name, namespace, file: 'pa.yaml', line: 1 },
  mtls,
  ...(o.selector && { selector: { matchLabels: o.selector } }),
  ...(o.ports && { portLevelMtls: o.ports }),
});
const REVIEWS_NODE = { ip: '10.0.1.1', labels: { app: 'reviews', version: 'v1' }, sa: 'bookinfo-reviews' };

function inbound(peerAuthentications: PeerAuthentication[], opts: { rootNamespace?: string } = {}): { l: Listener; routes: Map<string, RouteConfiguration> } {
  const s = translate(bookinfo({ peerAuthentications }), node(REVIEWS_NODE), { ...OPTS, ...opts });
  return { l: decodeAll(s, LISTENER_TYPE_URL).get('virtualInbound')!, routes: decodeAll(s, ROUTE_CONFIGURATION_TYPE_URL) };
}

const shape = (l: Listener) =>
  l.filterChains.map((c) => ({
    name: c.name,
    transport: c.match?.transportProtocol,
    mtls: c.tls?.requireClientCertificate,
    routes: c.hcm.route.kind === 'rds' ? c.hcm.route.name : undefined,
    xfcc: c.hcm.forwardClientCertDetails,
  }));

const MTLS_CHAIN = { name: 'virtualInbound-catchall-http', transport: 'tls', mtls: true, routes: 'inbound', xfcc: 'SANITIZE_SET' };
const PLAIN_CHAIN = { name: 'virtualInbound-catchall-http', transport: 'raw_buffer', mtls: undefined, routes: 'inbound', xfcc: 'SANITIZE' };

t.test("no policy: Istio's default PERMISSIVE, an mTLS and a plaintext chain told apart by tls_inspector", (t) => {
  const { l, routes } = inbound([]);
  t.strictSame(shape(l), [MTLS_CHAIN, PLAIN_CHAIN]);
  t.ok(l.tlsInspector, 'tls_inspector is on');
  t.equal(l.tlsInspector!.timeoutMs, 15_000, "Envoy's default listener_filters_timeout");
  t.strictSame([...routes.keys()].sort(), ['inbound', 'outbound'], 'no inbound-plaintext table without a STRICT port');
  t.strictSame(l.filterChains[1]!.hcm.httpFilters, l.filterChains[0]!.hcm.httpFilters, 'the same HTTP filters on both chains');
  t.end();
});

t.test('STRICT: one mTLS chain matching tls, so a plaintext client matches nothing and is refused', (t) => {
  const { l } = inbound([pa('mesh', 'istio-system', 'STRICT')]);
  t.strictSame(shape(l), [MTLS_CHAIN]);
  t.ok(l.tlsInspector);
  t.end();
});

t.test('DISABLE: one plaintext chain, nothing to inspect', (t) => {
  const { l } = inbound([pa('mesh', 'istio-system', 'STRICT'), pa('ns', 'default', 'DISABLE')]);
  t.strictSame(shape(l), [{ ...PLAIN_CHAIN, transport: undefined }]);
  t.equal(l.tlsInspector, undefined);
  t.end();
});

t.test('--root-namespace moves the mesh-wide level', (t) => {
  t.strictSame(shape(inbound([pa('mesh', 'mesh-root', 'STRICT')]).l), [MTLS_CHAIN, PLAIN_CHAIN], 'not the root namespace by default');
  t.strictSame(shape(inbound([pa('mesh', 'mesh-root', 'STRICT')], { rootNamespace: 'mesh-root' }).l), [MTLS_CHAIN]);
  const snaps = new MeshSnapshots({ trustDomain: OPTS.trustDomain, rootNamespace: 'mesh-root' }, bookinfo({ peerAuthentications: [pa('mesh', 'mesh-root', 'STRICT')] }));
  t.strictSame(shape(decodeAll(snaps.snapshotFor(node(REVIEWS_NODE)), LISTENER_TYPE_URL).get('virtualInbound')!), [MTLS_CHAIN], 'the control server passes it to every translation');
  t.end();
});

/** Per virtual host of a route table: the cluster it forwards to, or the direct response it answers. */
const actions = (rc: RouteConfiguration) =>
  Object.fromEntries(
    rc.virtualHosts.map((vh) => {
      const a = vh.routes[0]!.action;
      return [vh.name, a.kind === 'route' ? (a.action as { cluster?: string }).cluster : a.kind === 'direct_response' ? `${a.status} ${a.body}` : a.kind];
    }),
  );

t.test('portLevelMtls STRICT under PERMISSIVE: the plaintext chain reads inbound-plaintext, where the port answers 403', (t) => {
  const { l, routes } = inbound([pa('reviews', 'default', 'PERMISSIVE', { selector: { app: 'reviews' }, ports: { 9081: 'STRICT' } })]);
  t.strictSame(shape(l), [MTLS_CHAIN, { ...PLAIN_CHAIN, routes: 'inbound-plaintext' }]);
  const body = JSON.stringify({ code: 'mtls_required', message: 'mTLS required for port 9081 by PeerAuthentication default/reviews: plaintext is refused' });
  t.strictSame(actions(routes.get('inbound-plaintext')!), {
    'inbound|reviews.default.svc.cluster.local:9080': 'inbound|9080||',
    'inbound|reviews.default.svc.cluster.local:9081': `403 ${body}`,
    'inbound|*': 'inbound|9080||',
  });
  t.strictSame(actions(routes.get('inbound')!)['inbound|reviews.default.svc.cluster.local:9081'], 'inbound|9081||', 'mTLS requests keep every port');
  t.end();
});

t.test('STRICT with one PERMISSIVE port: plaintext reaches that port only; UNSET ports inherit STRICT', (t) => {
  const { l, routes } = inbound([pa('ns', 'default', 'STRICT'), pa('reviews', 'default', 'UNSET', { selector: { app: 'reviews' }, ports: { 9080: 'PERMISSIVE', 9081: 'UNSET' } })]);
  t.strictSame(shape(l), [MTLS_CHAIN, { ...PLAIN_CHAIN, routes: 'inbound-plaintext' }]);
  const a = actions(routes.get('inbound-plaintext')!);
  t.equal(a['inbound|reviews.default.svc.cluster.local:9080'], 'inbound|9080||');
  t.match(a['inbound|reviews.default.svc.cluster.local:9081'], /^403 .*mTLS required for port 9081 by PeerAuthentication default\/reviews/, 'the UNSET port took STRICT from the workload policy, which names it');
  t.end();
});

t.test('another workload is not affected by a selector policy', (t) => {
  const s = translate(bookinfo({ peerAuthentications: [pa('reviews', 'default', 'STRICT', { selector: { app: 'reviews' } })] }), node(), OPTS);
  t.strictSame(shape(decodeAll(s, LISTENER_TYPE_URL).get('virtualInbound')!), [MTLS_CHAIN, PLAIN_CHAIN]);
  t.end();
});
