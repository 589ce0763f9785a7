// A sidecar configured over ADS by a test control server: initial sync in Envoy's order, NACKs that keep the
// last good config, live route/endpoint/cluster/listener changes, reconnects, zero failed requests meanwhile.
import t, { type Test } from 'tap';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { seededRng } from '../../src/core/rng.js';
import { startEchoApp, type EchoApp } from '../helpers/apps.js';
import { startAdsServer, typeOf, type AdsServerForTest } from '../helpers/ads-server.js';
import { runSidecar, type StartedSidecar } from '../helpers/mesh.js';
import { waitFor } from '../helpers/tools.js';
import { metricValue, request } from '../helpers/two-hop.js';
import { adsBootstrap, assignment, edsCluster, httpListener, routeConfig } from '../helpers/xds-resources.js';

interface World {
  ads: AdsServerForTest;
  a: EchoApp;
  b: EchoApp;
  sc: StartedSidecar;
  /** The bound port of a listener the sidecar got over LDS. */
  port(name?: string): number;
  servedBy(path?: string, port?: number): Promise<string>;
  dump(): Promise<{ configs: Record<string, any>[] }>;
}

async function world(t: Test, bootstrap?: (adsPort: number) => object): Promise<World> {
  const ads = await startAdsServer();
  const a = await startEchoApp('a');
  const b = await startEchoApp('b');
  const sc = await runSidecar(bootstrap ? bootstrap(ads.port) : adsBootstrap(ads.port), { drainMs: 1000, rng: seededRng(7), adsBackoffMs: { base: 20, max: 200 } });
  t.teardown(async () => {
    await sc.shutdown();
    await ads.stop();
    await a.close();
    await b.close();
  });
  const port = (name = 'outbound') => sc.port(name);
  return {
    ads,
    a,
    b,
    sc,
    port,
    async servedBy(path = '/echo', p = port()) {
      const r = await request(p, { path });
      return r.status === 200 ? String(r.headers['x-served-by']) : `${r.status} ${r.body}`;
    },
    async dump() {
      return (await (await fetch(`${sc.adminUrl}/config_dump`)).json()) as { configs: Record<string, any>[] };
    },
  };
}

const section = (d: { configs: Record<string, any>[] }, type: string) => d.configs.find((c) => String(c['@type']).endsWith(type))!;
const isType = (type: string, nonce?: string) => (r: { type_url: string; response_nonce: string }) => typeOf(r as never) === type && (nonce === undefined || r.response_nonce === nonce);

/** Serves the initial config as Envoy's init order asks for it: CDS, then EDS, then LDS, then RDS. */
async function initialSync(w: World): Promise<void> {
  const { ads } = w;
  await ads.request(isType('cds'));
  const c1 = ads.push('cds', 'c1', [edsCluster('backend'), edsCluster('other')]);
  await ads.request(isType('cds', c1));
  await ads.request((r) => isType('eds')(r) && r.resource_names.join() === 'backend,other');
  const e1 = ads.push('eds', 'e1', [assignment('backend', [w.a.port]), assignment('other', [w.b.port])]);
  await ads.request(isType('eds', e1));
  await ads.request(isType('lds'));
  const l1 = ads.push('lds', 'l1', [httpListener('outbound', 0, { rds: 'routes' })]);
  await ads.request(isType('lds', l1));
  await ads.request((r) => isType('rds')(r) && r.resource_names.join() === 'routes');
  const r1 = ads.push('rds', 'r1', [routeConfig('routes', [['/', 'backend']])]);
  await ads.request(isType('rds', r1));
  await waitFor(() => w.sc.ready(), 'the sidecar to be ready');
}

async function ready(w: World): Promise<number> {
  return (await fetch(`${w.sc.adminUrl}/ready`)).status;
}

t.test('initial sync: CDS, EDS, LDS, RDS in order, ACKed with version and nonce; then a request flows to the app', async (t) => {
  const w = await world(t);
  const { ads } = w;
  const first = await ads.request(isType('cds'));
  t.equal(first.version_info, '', 'the first request has no version');
  t.strictSame(first.resource_names ?? [], [], 'CDS is a wildcard subscription (no names)');
  t.match(first.node, { id: 'sidecar~127.0.0.1~app-1.default~default.svc.cluster.local', cluster: 'app', locality: { region: 'r1', zone: 'z1' }, user_agent_name: 'outrigger' });
  t.strictSame(first.node?.metadata, { fields: { NAMESPACE: { stringValue: 'default' } } }, 'node metadata is a Struct');
  t.equal(ads.requests.filter(isType('lds')).length, 0, 'no LDS before the clusters are known');
  t.equal(await ready(w), 503, 'not ready before any config');

  const c1 = ads.push('cds', 'c1', [edsCluster('backend'), edsCluster('other')]);
  const ack = await ads.request(isType('cds', c1));
  t.equal(ack.version_info, 'c1', 'ACK: the version of the response');
  t.equal(ack.node, undefined, 'set_node_on_first_message_only: the node went with the first request only');
  t.notOk(ack.error_detail);
  const edsReq = await ads.request(isType('eds'));
  t.strictSame(edsReq.resource_names, ['backend', 'other'], 'EDS asks for the service names of the EDS clusters');
  t.equal(edsReq.version_info, '');
  // Requests on one stream arrive in order: an LDS request sent before warming finished would be here already.
  t.equal(ads.requests.filter(isType('lds')).length, 0, 'LDS waits while clusters warm (no EDS yet)');
  t.equal(w.sc.runtime.clusters.get('backend'), undefined, 'a warming cluster is not used');

  const e1 = ads.push('eds', 'e1', [assignment('backend', [w.a.port]), assignment('other', [w.b.port])]);
  t.equal((await ads.request(isType('eds', e1))).version_info, 'e1');
  const ldsReq = await ads.request(isType('lds'));
  t.ok(ads.requests.indexOf(ldsReq) > ads.requests.findIndex(isType('eds', e1)), 'LDS is asked for after EDS was applied');
  const l1 = ads.push('lds', 'l1', [httpListener('outbound', 0, { rds: 'routes' })]);
  await ads.request(isType('lds', l1));
  const rdsReq = await ads.request(isType('rds'));
  t.strictSame(rdsReq.resource_names, ['routes']);
  t.equal(w.sc.runtime.listeners.length, 0, 'the listener warms until its routes arrive: nothing bound');
  t.equal(await ready(w), 503, 'not ready while the listener warms');

  const r1 = ads.push('rds', 'r1', [routeConfig('routes', [['/', 'backend']])]);
  t.equal((await ads.request(isType('rds', r1))).version_info, 'r1');
  await waitFor(() => w.sc.ready(), 'ready');
  t.equal(await ready(w), 200, '/ready once CDS, EDS, LDS and RDS are applied');
  t.equal(await w.servedBy(), 'a', 'a real request goes through the listener to the app');
  t.equal(await metricValue(w.sc, 'outrigger_xds_updates_total', { type: 'cds', result: 'ack' }), 1);
  t.equal(await metricValue(w.sc, 'outrigger_xds_connected'), 1);
  t.equal(ads.requests.filter((r) => r.error_detail).length, 0, 'no NACK');
});

t.test('a bad resource is NACKed with its field path; the last good config keeps serving', async (t) => {
  const w = await world(t);
  await initialSync(w);
  const { ads } = w;
  const bad = ads.push('cds', 'c2', [edsCluster('backend', { connectTimeout: '-1s' }), edsCluster('other', { extra: { upstream_connection_options: {} } })]);
  const nack = await ads.request(isType('cds', bad));
  t.equal(nack.version_info, 'c1', 'NACK: the previous version');
  t.equal(nack.error_detail?.code, 3, 'INVALID_ARGUMENT');
  t.match(nack.error_detail?.message, /^backend: connect_timeout: must not be negative$/m);
  t.match(nack.error_detail?.message, /^other: upstream_connection_options: field 'upstream_connection_options' is not supported$/m);
  t.equal(await w.servedBy(), 'a', 'traffic still flows on the old config');
  t.equal(w.sc.runtime.clusters.get('backend')?.cluster.connectTimeoutMs, 1000, 'the cluster kept its last good version');
  t.ok(w.sc.logs.some((l) => l.includes('NACK') && l.includes('connect_timeout')), 'the NACK is logged with its issues');
  t.equal(await metricValue(w.sc, 'outrigger_xds_updates_total', { type: 'cds', result: 'nack' }), 1);

  // The same for a listener whose address another listener holds (a data-plane refusal) and a duplicate name.
  const dup = ads.push('rds', 'r2', [routeConfig('routes', [['/', 'other']]), routeConfig('routes', [['/', 'other']])]);
  t.match((await ads.request(isType('rds', dup))).error_detail?.message, /routes: the response holds it twice/);
  const clash = ads.push('lds', 'l2', [httpListener('outbound', 0, { rds: 'routes' }), httpListener('x', 18_080, { cluster: 'backend' }), httpListener('y', 18_080, { cluster: 'backend' })]);
  const clashNack = await ads.request(isType('lds', clash));
  t.equal(clashNack.version_info, 'l1');
  t.match(clashNack.error_detail?.message, /y: address\.socket_address: 127\.0\.0\.1:18080 is also the address of listener "x"/);
  t.equal(await w.servedBy(), 'a');


  const dump = await w.dump();
  const cds = section(dump, 'ClustersConfigDump');
  t.equal(cds.version_info, 'c1', 'config_dump: the ACKed CDS version');
  t.match(cds.error_state, { version_info: 'c2', details: /connect_timeout/ }, 'and the rejected one, with why');
  t.match(cds.dynamic_active_clusters.find((c: any) => c.cluster.name === 'backend'), { version_info: 'c1', client_status: 'NACKED', error_state: { version_info: 'c2' } });
  t.match(section(dump, 'ListenersConfigDump'), { version_info: 'l1', error_state: { version_info: 'l2' } });
  t.match(section(dump, 'RoutesConfigDump'), { version_info: 'r1', dynamic_route_configs: [{ version_info: 'r1', route_config: { name: 'routes' }, client_status: 'ACKED' }] });
  t.match(section(dump, 'EndpointsConfigDump').dynamic_endpoint_configs, [{ version_info: 'e1', client_status: 'ACKED' }, { version_info: 'e1' }]);

  // A good update after a NACK is applied and ACKed.
  const c3 = ads.push('cds', 'c3', [edsCluster('backend', { connectTimeout: '2s' }), edsCluster('other')]);
  const ack = await ads.request(isType('cds', c3));
  t.equal(ack.version_info, 'c3');
  t.notOk(ack.error_detail);
  t.equal(w.sc.runtime.clusters.get('backend')?.cluster.connectTimeoutMs, 2000);
  t.equal(section(await w.dump(), 'ClustersConfigDump').error_state, undefined, 'the error state clears with the next ACK');
  t.equal(await w.servedBy(), 'a');

  // An HTTP filter the sidecar does not have: required, the listener is NACKed (Envoy refuses it too); marked
  // is_optional, it is skipped and the listener is ACKed and serves (HttpFilter.is_optional).
  const cors = (optional: boolean) => ({ http_filters: [{ name: 'envoy.filters.http.cors', ...(optional && { is_optional: true }), typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors' } }, { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }] });
  const required = ads.push('lds', 'l3', [httpListener('outbound', 0, { rds: 'routes' }, cors(false))]);
  const filterNack = await ads.request(isType('lds', required));
  t.equal(filterNack.version_info, 'l1', 'an unknown required filter: NACK');
  t.match(filterNack.error_detail?.message, /outbound: .*http_filters\[0\]\.typed_config: HTTP filter type\.googleapis\.com\/envoy\.extensions\.filters\.http\.cors\.v3\.Cors is not supported \(set is_optional: true to skip it\)/);
  t.equal(await w.servedBy(), 'a');
  const optional = ads.push('lds', 'l4', [httpListener('outbound', 0, { rds: 'routes' }, cors(true))]);
  const filterAck = await ads.request(isType('lds', optional));
  t.equal(filterAck.version_info, 'l4', 'an unknown optional filter: skipped, ACK');
  t.notOk(filterAck.error_detail);
  t.equal(await w.servedBy(), 'a', 'and the listener serves without it');
});

t.test('route change, endpoints added and removed in place: observed by the next requests', async (t) => {
  const w = await world(t);
  await initialSync(w);
  const { ads } = w;
  t.equal(await w.servedBy(), 'a');
  ads.push('rds', 'r2', [routeConfig('routes', [['/b', 'other'], ['/', 'backend']])]);
  await waitFor(async () => (await w.servedBy('/b')) === 'b', 'the new route');
  t.equal(await w.servedBy('/x'), 'a');

  const before = w.sc.runtime.clusters.get('backend')!.endpoints[0]!;
  const connsA = w.a.connections;
  ads.push('eds', 'e2', [assignment('backend', [w.a.port, w.b.port]), assignment('other', [w.b.port])]);
  await waitFor(() => w.sc.runtime.clusters.get('backend')!.endpoints.length === 2, 'two endpoints');
  const after = w.sc.runtime.clusters.get('backend')!;
  t.equal(after.endpoints[0], before, 'the unchanged endpoint keeps its host (pool and counters)');
  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) seen.add(await w.servedBy('/x'));
  t.strictSame([...seen].sort(), ['a', 'b'], 'both endpoints serve');
  t.ok(before.rqTotal >= 4, 'its request counter continued across the update');

  ads.push('eds', 'e3', [assignment('backend', [w.a.port]), assignment('other', [w.b.port])]);
  await waitFor(() => w.sc.runtime.clusters.get('backend')!.endpoints.length === 1, 'one endpoint');
  for (let i = 0; i < 4; i++) t.equal(await w.servedBy('/x'), 'a');
  t.equal(w.a.connections, connsA, 'no reconnect to the endpoint that stayed');
});

t.test('cluster warming: a new cluster is used only after its EDS arrives; a changed one serves its old version until then', async (t) => {
  const w = await world(t);
  await initialSync(w);
  const { ads } = w;
  const c2 = ads.push('cds', 'c2', [edsCluster('backend'), edsCluster('other'), edsCluster('fresh')]);
  await ads.request(isType('cds', c2));
  await ads.request((r) => isType('eds')(r) && r.resource_names.includes('fresh'));
  t.equal(w.sc.runtime.clusters.get('fresh'), undefined, 'warming: not active');
  t.match(section(await w.dump(), 'ClustersConfigDump').dynamic_warming_clusters, [{ cluster: { name: 'fresh' }, version_info: 'c2' }]);
  t.equal(await ready(w), 200, 'readiness is about the initial config only');
  ads.push('rds', 'r2', [routeConfig('routes', [['/fresh', 'fresh'], ['/', 'backend']])]);
  await waitFor(async () => (await w.servedBy('/fresh')).startsWith('503'), 'the route to the warming cluster');
  const nc = await request(w.port(), { path: '/fresh' });
  t.equal(nc.status, 503);
  t.match(JSON.parse(nc.body), { code: 'no_cluster' });
  t.equal(await metricValue(w.sc, 'outrigger_local_replies_total', { response_flags: 'NC' }), 2, 'counted with flag NC');
  ads.push('eds', 'e2', [assignment('backend', [w.a.port]), assignment('other', [w.b.port]), assignment('fresh', [w.b.port])]);
  await waitFor(async () => (await w.servedBy('/fresh')) === 'b', 'the cluster after its EDS');

  // backend moves to a new EDS name: it keeps serving endpoints of its old version until the new ones arrive.
  const c3 = ads.push('cds', 'c3', [edsCluster('backend', { serviceName: 'backend-v2' }), edsCluster('other'), edsCluster('fresh')]);
  await ads.request(isType('cds', c3));
  await ads.request((r) => isType('eds')(r) && r.resource_names.includes('backend-v2'));
  t.equal(await w.servedBy('/x'), 'a', 'the old version serves while the new one warms');
  t.equal(w.sc.runtime.clusters.get('backend')?.cluster.eds?.serviceName, 'backend', 'active is still the old version');
  ads.push('eds', 'e3', [assignment('backend-v2', [w.b.port]), assignment('other', [w.b.port]), assignment('fresh', [w.b.port])]);
  await waitFor(async () => (await w.servedBy('/x')) === 'b', 'the new version once warm');
});

t.test('listener address change: the new address is bound before the old drains; in-flight requests finish', async (t) => {
  const w = await world(t);
  await initialSync(w);
  const { ads } = w;
  const oldPort = w.port();
  const slow = request(oldPort, { path: '/slow?ms=300' });
  await waitFor(() => w.a.seen.some((s) => s.path.startsWith('/slow')), 'the slow request at the app');
  ads.push('lds', 'l2', [httpListener('outbound', 0, { rds: 'routes' }, { stat_prefix: 'moved' }) as object].map((l: any) => ({ ...l, address: { socket_address: { address: '127.0.0.2', port_value: 0 } } })));
  await waitFor(() => w.sc.runtime.listeners[0]?.address()?.host === '127.0.0.2', 'the new address bound');
  const newPort = w.port();
  t.equal((await request(newPort, { path: '/echo', host: 'x' }).catch(() => ({ status: 0 })) as { status: number }).status, 0, 'not reachable on 127.0.0.1 (it listens on 127.0.0.2)');
  const viaNew = await new Promise<number>((resolve, reject) => {
    http.get({ host: '127.0.0.2', port: newPort, path: '/echo', agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
  t.equal(viaNew, 200, 'the new address serves');
  t.equal((await slow).status, 200, 'the request in flight on the old address finished');
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(oldPort, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          resolve(false);
        });
        s.once('error', () => resolve(true));
      }),
    'the old address closed',
  );
  t.match(section(await w.dump(), 'ListenersConfigDump').dynamic_listeners, [{ name: 'outbound', active_state: { version_info: 'l2', address: { host: '127.0.0.2' } } }]);
});

t.test('control server killed mid-stream: the sidecar keeps serving, reconnects with backoff and resyncs from its ACKed versions', async (t) => {
  const w = await world(t);
  await initialSync(w);
  const { ads } = w;
  const client = w.sc.ads!;
  const backoffs: number[] = [];
  client.on('backoff', (ms: number) => backoffs.push(ms));
  const disconnected = new Promise((r) => client.once('disconnected', r));
  await ads.stop();
  await disconnected;
  t.equal(client.connected, false);
  t.equal(await metricValue(w.sc, 'outrigger_xds_connected'), 0);
  t.equal(await w.servedBy(), 'a', 'serving on the last good config while disconnected');
  await waitFor(() => backoffs.length >= 2, 'a few failed reconnects');
  t.ok(backoffs.every((ms, i) => ms >= 0 && ms <= Math.min(200, 20 * 2 ** i)), `jittered exponential backoff, capped: ${backoffs.map(Math.round).join(', ')}`);
  const from = ads.requests.length;
  const connected = new Promise((r) => client.once('connected', r));
  await ads.restart();
  await connected;
  const cds = await ads.request(isType('cds'), from);
  t.equal(cds.version_info, 'c1', 'CDS resubscribed with the last ACKed version');
  t.equal(cds.response_nonce, '', 'nonces do not survive the stream');
  t.ok(cds.node, 'the node goes with the first request of the new stream');
  t.match(await ads.request(isType('eds'), from), { version_info: 'e1', resource_names: ['backend', 'other'] });
  t.match(await ads.request(isType('lds'), from), { version_info: 'l1' });
  t.match(await ads.request(isType('rds'), from), { version_info: 'r1', resource_names: ['routes'] });
  // The server resends the same config: applied without errors, nothing changes.
  const port = w.port();
  const n = ads.push('cds', 'c1', [edsCluster('backend'), edsCluster('other')]);
  t.notOk((await ads.request(isType('cds', n), from)).error_detail);
  const n2 = ads.push('lds', 'l1', [httpListener('outbound', 0, { rds: 'routes' })]);
  t.notOk((await ads.request(isType('lds', n2), from)).error_detail);
  t.equal(w.port(), port, 'same listener, same socket');
  t.equal(await w.servedBy(), 'a');
  t.equal(await metricValue(w.sc, 'outrigger_xds_updates_total', { result: 'nack' }), 0);
  t.equal(await metricValue(w.sc, 'outrigger_xds_connected'), 1);
});

t.test('1000 requests over keep-alive HTTP/1.1 and HTTP/2 with route and endpoint changes in the middle: none fails', async (t) => {
  const w = await world(t);
  await initialSync(w);
  const { ads } = w;
  const port = w.port();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const session = http2.connect(`http://127.0.0.1:${port}`);
  t.teardown(() => {
    agent.destroy();
    session.close();
  });
  const failures: string[] = [];
  const served: Record<string, number> = {};
  let done = 0;
  const one = async (i: number) => {
    try {
      let status: number;
      let by: string;
      if (i % 2) {
        const r = await request(port, { path: '/echo', agent });
        status = r.status;
        by = String(r.headers['x-served-by']);
      } else {
        [status, by] = await new Promise<[number, string]>((resolve, reject) => {
          const s = session.request({ ':path': '/echo', ':authority': 'x' });
          s.on('response', (h) => resolve([Number(h[':status']), String(h['x-served-by'])]));
          s.on('error', reject);
          s.resume();
        });
      }
      if (status !== 200) failures.push(`${i}: ${status}`);
      served[by] = (served[by] ?? 0) + 1;
    } catch (e) {
      failures.push(`${i}: ${(e as Error).message}`);
    }
    done++;
  };
  const workers = Array.from({ length: 16 }, async (_, k) => {
    for (let i = k; i < 1000; i += 16) await one(i);
  });
  await waitFor(() => done >= 300, '300 requests');
  ads.push('rds', 'r2', [routeConfig('routes', [['/', 'other']])]);
  ads.push('eds', 'e2', [assignment('backend', [w.a.port]), assignment('other', [w.b.port, w.a.port])]);
  await waitFor(() => done >= 600, '600 requests');
  ads.push('cds', 'c2', [edsCluster('backend', { connectTimeout: '3s' }), edsCluster('other', { connectTimeout: '3s' })]);
  await Promise.all(workers);
  t.strictSame(failures, [], 'zero failed requests');
  t.equal(done, 1000);
  t.ok((served.a ?? 0) > 0 && (served.b ?? 0) > 0, `both configs served: ${JSON.stringify(served)}`);
});

t.test('resources that never arrive: after initial_fetch_timeout the cluster starts empty (503 UH), the listener with no routes (404)', async (t) => {
  const w = await world(t);
  const { ads } = w;
  await ads.request(isType('cds'));
  ads.push('cds', 'c1', [edsCluster('backend', { initialFetchTimeout: '0.2s' })]);
  await ads.request(isType('lds'));
  t.match(w.sc.ads!.status().types[1], { type: 'eds', resources: [{ name: 'backend', status: 'does-not-exist' }] });
  ads.push('lds', 'l1', [httpListener('outbound', 0, { rds: 'routes', initialFetchTimeout: '0.2s' })]);
  await waitFor(() => w.sc.ready(), 'ready without the RDS resource');
  t.equal((await request(w.port())).status, 404, 'no routes');
  ads.push('rds', 'r1', [routeConfig('routes', [['/', 'backend']])]);
  await waitFor(async () => (await request(w.port())).status === 503, 'the route, to a cluster with no endpoints');
  t.match(JSON.parse((await request(w.port())).body), { code: 'no_healthy_upstream' });
  ads.push('eds', 'e1', [assignment('backend', [w.a.port])]);
  await waitFor(async () => (await w.servedBy()) === 'a', 'endpoints that arrive late are used');
});
