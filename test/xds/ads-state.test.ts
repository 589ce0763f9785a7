// The ADS protocol state machine on its own (fake clock, recorded requests): subscriptions, ACK/NACK, does-not-exist.
import t from 'tap';
import { FakeClock } from '../../src/core/clock.js';
import type { FieldIssue } from '../../src/core/errors.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { nodeMessage, type DiscoveryRequestMsg } from '../../src/xds/ads-proto.js';
import { AdsState, type AdsStateOptions, type ResourceUpdate } from '../../src/xds/ads-state.js';
import { decodeBootstrap } from '../../src/xds/bootstrap.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL } from '../../src/xds/protos.js';
import { encodeResourceJson, type ResourceTypeUrl } from '../../src/xds/resources/index.js';
import { assignment, edsCluster, httpListener, routeConfig } from '../helpers/xds-resources.js';
import { memoryLogger } from '../helpers/mesh.js';

const URLS = { cds: CLUSTER_TYPE_URL, eds: CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, lds: LISTENER_TYPE_URL, rds: ROUTE_CONFIGURATION_TYPE_URL } as const;
type T = keyof typeof URLS;

function any(type: T, json: object) {
  const r = encodeResourceJson(URLS[type] as ResourceTypeUrl, json);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return { type_url: URLS[type], value: Buffer.from(r.value) };
}

let nonces = 0;
const response = (type: T, version: string, resources: { type_url: string; value: Buffer }[]) => ({ version_info: version, resources, type_url: URLS[type], nonce: `n${++nonces}` });

interface Harness {
  state: AdsState;
  clock: FakeClock;
  sent: DiscoveryRequestMsg[];
  updates: ResourceUpdate[];
  missing: string[];
  /** Issues the watcher answers with next (then back to none). */
  refuse: FieldIssue[] | Error | undefined;
  last(type: T): DiscoveryRequestMsg | undefined;
}

function harness(o: Partial<AdsStateOptions> = {}, start = true): Harness {
  const clock = new FakeClock();
  const h: Harness = {
    clock,
    sent: [],
    updates: [],
    missing: [],
    refuse: undefined,
    state: undefined as unknown as AdsState,
    last: (type) => [...h.sent].reverse().find((r) => r.type_url === URLS[type]),
  };
  h.state = new AdsState({
    watcher: {
      apply(u) {
        const r = h.refuse;
        h.refuse = undefined;
        if (r instanceof Error) throw r;
        if (!r) h.updates.push(u);
        return r ?? [];
      },
      missing: (type, name) => h.missing.push(`${type.slice(type.lastIndexOf('.') + 1)}/${name}`),
    },
    clock,
    logger: silentLogger(),
    node: nodeMessage({ id: 'n1', cluster: 'c', metadata: { A: 1, B: [true, null], C: { d: 'x' } } }),
    setNodeOnFirstMessageOnly: true,
    staticListeners: [],
    staticClusters: [],
    cdsInitialFetchTimeoutMs: 15_000,
    ldsInitialFetchTimeoutMs: 15_000,
    ...o,
  });
  if (start) h.state.streamStarted((r) => h.sent.push(structuredClone(r)));
  return h;
}

t.test('the first request carries the node (metadata as a Struct); CDS is wildcard; LDS waits for CDS and its EDS', (t) => {
  const h = harness();
  t.equal(h.sent.length, 1);
  t.match(h.sent[0], { type_url: CLUSTER_TYPE_URL, version_info: '', resource_names: [], response_nonce: '' });
  t.strictSame(h.sent[0]!.node!.metadata, {
    fields: { A: { numberValue: 1 }, B: { listValue: { values: [{ boolValue: true }, { nullValue: 'NULL_VALUE' }] } }, C: { structValue: { fields: { d: { stringValue: 'x' } } } } },
  });
  h.state.handle(response('cds', 'c1', [any('cds', edsCluster('a')), any('cds', edsCluster('b', { serviceName: 'svc-b', initialFetchTimeout: '0s' }))]));
  t.match(h.last('cds'), { version_info: 'c1', response_nonce: `n${nonces}` });
  t.equal(h.last('cds')!.node, undefined, 'node only on the first request of the stream');
  t.strictSame(h.last('eds')!.resource_names, ['a', 'svc-b']);
  t.notOk(h.last('lds'), 'no LDS while EDS is outstanding');
  h.state.handle(response('eds', 'e1', [any('eds', assignment('a', [1]))]));
  t.notOk(h.last('lds'), 'svc-b still outstanding (and has no timeout: initial_fetch_timeout 0s)');
  h.clock.advance(60_000);
  t.strictSame(h.missing, [], 'initial_fetch_timeout 0 waits forever');
  h.state.handle(response('eds', 'e2', [any('eds', assignment('svc-b', [2]))]));
  t.match(h.last('lds'), { resource_names: [], version_info: '' });
  t.strictSame([...h.updates[2]!.resources.keys()], ['a', 'svc-b'], 'EDS: the held set plus the response');
  t.strictSame([...h.updates[2]!.changed], ['svc-b']);
  t.equal(h.state.initialized, false);
  h.state.handle(response('lds', 'l1', [any('lds', httpListener('l', 0, { cluster: 'a' }))]));
  t.equal(h.state.initialized, true, 'no RDS needed: initialized after LDS');
  t.end();
});

t.test('does-not-exist: a named resource missing after initial_fetch_timeout; absence from a response alone proves nothing', (t) => {
  const h = harness();
  h.state.handle(response('cds', 'c1', [any('cds', edsCluster('a')), any('cds', edsCluster('b'))]));
  h.state.handle(response('eds', 'e1', [any('eds', assignment('a', [1]))]));
  const b = () => h.state.status()[1]!.resources.find((r) => r.name === 'b');
  t.equal(b()?.status, 'requested', 'a response without it leaves it requested (the server may send it separately)');
  h.clock.advance(14_999);
  t.strictSame(h.missing, []);
  h.clock.advance(1);
  t.strictSame(h.missing, ['ClusterLoadAssignment/b']);
  t.equal(b()?.status, 'does-not-exist');
  t.ok(h.last('lds'), 'initialization goes on');
  // It may still appear later.
  h.state.handle(response('eds', 'e2', [any('eds', assignment('b', [2]))]));
  t.equal(b()?.status, 'acked');
  t.end();
});

t.test('initial_fetch_timeout of CDS and LDS lets initialization go on; RDS does-not-exist too', (t) => {
  const h = harness({ cdsInitialFetchTimeoutMs: 1000, ldsInitialFetchTimeoutMs: 2000 });
  h.clock.advance(1000);
  t.ok(h.last('lds'), 'LDS after the CDS initial fetch timed out');
  h.clock.advance(2000);
  t.equal(h.state.initialized, true);
  const h2 = harness();
  h2.state.handle(response('cds', 'c1', []));
  h2.state.handle(response('lds', 'l1', [any('lds', httpListener('l', 0, { rds: 'r', initialFetchTimeout: '2s' }))]));
  t.strictSame(h2.last('rds')!.resource_names, ['r']);
  h2.clock.advance(2000);
  t.strictSame(h2.missing, ['RouteConfiguration/r']);
  t.equal(h2.state.initialized, true);
  t.end();
});

t.test('static EDS clusters and rds listeners are subscribed from the start', (t) => {
  const b = decodeBootstrap({
    dynamic_resources: { ads_config: { api_type: 'GRPC', grpc_services: [{ envoy_grpc: { cluster_name: 'x' } }] }, lds_config: { ads: {} }, cds_config: { ads: {} } },
    static_resources: {
      clusters: [{ name: 'x', type: 'STATIC', load_assignment: assignment('x', [9]) }, edsCluster('s')],
      listeners: [httpListener('l', 0, { rds: 'static-routes' })],
    },
  });
  const h = harness({ staticClusters: b.clusters, staticListeners: b.listeners });
  t.strictSame(h.sent.map((r) => [r.type_url.split('.').pop(), r.resource_names]), [
    ['Cluster', []],
    ['ClusterLoadAssignment', ['s']],
    ['RouteConfiguration', ['static-routes']],
  ]);
  t.end();
});

t.test('NACK: malformed, mistyped, nameless or duplicate resources; refused by the data plane; a bug while applying', (t) => {
  const h = harness();
  h.state.handle(response('cds', 'c1', [any('cds', edsCluster('a'))]));
  const bad = (resources: { type_url: string; value: Buffer }[], version = 'c2') => {
    h.state.handle(response('cds', version, resources));
    const r = h.last('cds')!;
    t.equal(r.version_info, 'c1', 'NACK carries the last good version');
    t.equal(r.error_detail?.code, 3);
    return r.error_detail!.message;
  };
  t.match(bad([{ type_url: CLUSTER_TYPE_URL, value: Buffer.from([0xff, 0xff, 0xff]) }]), /^resources\[0\]: malformed Cluster/);
  t.match(bad([any('lds', httpListener('l', 0, { cluster: 'a' }))]), /^resources\[0\]: a type\.googleapis\.com\/envoy\.config\.listener\.v3\.Listener in a CDS response$/);
  t.equal(bad([any('cds', { ...edsCluster('a'), name: undefined })]), 'resources[0]: name: is required');
  t.match(bad([any('cds', edsCluster('a')), any('cds', edsCluster('a'))]), /^a: the response holds it twice/);
  h.refuse = [{ path: 'a: transport_socket', message: 'no such secret' }];
  t.equal(bad([any('cds', edsCluster('a', { connectTimeout: '2s' }))]), 'a: transport_socket: no such secret');
  t.match(h.state.status()[0], { version: 'c1', rejected: { version: 'c2', details: 'a: transport_socket: no such secret' }, resources: [{ name: 'a', status: 'nacked', version: 'c1' }] });
  h.refuse = new Error('boom');
  t.match(bad([any('cds', edsCluster('a', { connectTimeout: '3s' }))]), /internal error while applying: boom/);
  t.equal(h.updates.length, 1, 'nothing refused reached the data plane as applied');
  h.state.handle(response('cds', 'c3', [any('cds', edsCluster('a', { connectTimeout: '3s' }))]));
  t.match(h.last('cds'), { version_info: 'c3' });
  t.notOk(h.last('cds')!.error_detail);
  t.match(h.state.status()[0], { version: 'c3', rejected: undefined, resources: [{ name: 'a', status: 'acked', version: 'c3' }] });
  t.end();
});

t.test('wildcard responses remove what they no longer hold; unchanged bytes keep their version', (t) => {
  const h = harness();
  h.state.handle(response('cds', 'c1', [any('cds', edsCluster('a')), any('cds', edsCluster('b'))]));
  h.state.handle(response('cds', 'c2', [any('cds', edsCluster('a'))]));
  const u = h.updates[1]!;
  t.strictSame([...u.resources.keys()], ['a']);
  t.strictSame([...u.changed], [], 'a did not change');
  t.strictSame(h.state.status()[0]!.resources.map((r) => [r.name, r.version]), [['a', 'c1']]);
  t.strictSame(h.last('eds')!.resource_names, ['a'], 'b is unsubscribed from EDS');
  // EDS for a name nobody asked for is ignored, not NACKed.
  h.state.handle(response('eds', 'e1', [any('eds', assignment('a', [1])), any('eds', assignment('zzz', [2]))]));
  t.strictSame([...h.updates[2]!.resources.keys()], ['a']);
  t.match(h.last('eds'), { version_info: 'e1', resource_names: ['a'] });
  t.notOk(h.last('eds')!.error_detail, 'ACKed');
  // Dropping every EDS cluster unsubscribes with an empty list (after names were sent on this stream)...
  h.state.handle(response('cds', 'c3', []));
  t.strictSame(h.last('eds')!.resource_names, []);
  // ...and a new stream does not send it at all (an empty list would be a wildcard there).
  const sent: DiscoveryRequestMsg[] = [];
  h.state.streamEnded();
  h.state.streamStarted((r) => sent.push(r));
  t.strictSame(sent.map((r) => [r.type_url.split('.').pop(), r.version_info]), [
    ['Cluster', 'c3'],
    ['Listener', ''],
  ]);
  t.end();
});

t.test('a response of a type never subscribed is ignored; set_node_on_first_message_only false sends the node each time', (t) => {
  const { logger, logs } = memoryLogger();
  const h = harness({ setNodeOnFirstMessageOnly: false, logger });
  h.state.handle({ version_info: '1', resources: [], type_url: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret', nonce: 'x' });
  t.equal(h.sent.length, 1, 'no answer');
  t.ok(logs.some((l) => l.includes('does not subscribe')));
  h.state.handle(response('cds', 'c1', []));
  t.ok(h.last('cds')!.node, 'node again');
  h.state.close();
  t.end();
});

t.test('RDS resources accumulate across responses and follow the listeners that name them', (t) => {
  const h = harness();
  h.state.handle(response('cds', 'c1', []));
  h.state.handle(response('lds', 'l1', [any('lds', httpListener('x', 0, { rds: 'rx' })), any('lds', httpListener('y', 0, { rds: 'ry' }))]));
  t.strictSame(h.last('rds')!.resource_names, ['rx', 'ry']);
  h.state.handle(response('rds', 'r1', [any('rds', routeConfig('rx', [['/', 'a']]))]));
  t.equal(h.state.initialized, false, 'ry outstanding');
  h.state.handle(response('rds', 'r2', [any('rds', routeConfig('ry', [['/', 'a']]))]));
  t.strictSame([...h.updates.at(-1)!.resources.keys()].sort(), ['rx', 'ry']);
  t.equal(h.state.initialized, true);
  h.state.handle(response('lds', 'l2', [any('lds', httpListener('x', 0, { rds: 'rx' }))]));
  t.strictSame(h.last('rds')!.resource_names, ['rx']);
  t.strictSame(h.state.status()[3]!.resources.map((r) => r.name), ['rx']);
  t.end();
});

t.test('requests wait for a stream; nothing is sent while disconnected', (t) => {
  const h = harness({}, false);
  t.equal(h.sent.length, 0);
  h.state.streamStarted((r) => h.sent.push(r));
  t.equal(h.sent.length, 1);
  h.state.streamEnded();
  h.clock.advance(20_000);
  t.equal(h.sent.length, 1, 'the CDS initial-fetch timeout subscribes LDS, but only on the next stream');
  h.state.streamStarted((r) => h.sent.push(r));
  t.strictSame(h.sent.slice(1).map((r) => r.type_url), [CLUSTER_TYPE_URL, LISTENER_TYPE_URL]);
  t.end();
});
