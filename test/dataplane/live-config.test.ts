// The data plane applying xDS updates directly (no ADS stream): warming, missing resources, listener swaps on
// one socket, bind failures, removals and drains, refusals that leave everything as it was.
import t, { type Test } from 'tap';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { Registry } from 'prom-client';
import { systemClock } from '../../src/core/clock.js';
import { seededRng } from '../../src/core/rng.js';
import { SidecarRuntime } from '../../src/dataplane/sidecar.js';
import { SecretStore } from '../../src/identity/secret-store.js';
import type { Cluster, ClusterLoadAssignment, Listener, RouteConfiguration } from '../../src/model/types.js';
import { AccessLog } from '../../src/telemetry/access-log.js';
import { decodeBootstrap } from '../../src/xds/bootstrap.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL } from '../../src/xds/protos.js';
import { startEchoApp, type EchoApp } from '../helpers/apps.js';
import { memoryLogger, tempDir, writeCertFiles } from '../helpers/mesh.js';
import { makePki } from '../helpers/pki.js';
import { waitFor } from '../helpers/tools.js';
import { request } from '../helpers/two-hop.js';
import { assignment, edsCluster, httpListener, routeConfig } from '../helpers/xds-resources.js';
import { viaJson } from '../xds/helpers.js';

function model<T>(r: { ok: true; value: T } | { ok: false; errors: unknown[] }): T {
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}
const cluster = (j: object) => model(viaJson(CLUSTER_TYPE_URL, j)) as Cluster;
const cla = (j: object) => model(viaJson(CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, j)) as ClusterLoadAssignment;
const listener = (j: object) => model(viaJson(LISTENER_TYPE_URL, j)) as Listener;
const routes = (j: object) => model(viaJson(ROUTE_CONFIGURATION_TYPE_URL, j)) as RouteConfiguration;
const byName = <T extends { name: string } | { clusterName: string }>(...xs: T[]) => new Map(xs.map((x) => ['name' in x ? x.name : x.clusterName, x]));

interface Rig {
  rt: SidecarRuntime;
  app: EchoApp;
  logs: string[];
  port(name: string): number;
}

async function rig(t: Test, staticJson: object = {}): Promise<Rig> {
  const { logger, logs } = memoryLogger();
  const secrets = new SecretStore({ clock: systemClock, logger });
  const rt = new SidecarRuntime(decodeBootstrap(staticJson), {
    clock: systemClock,
    rng: seededRng(1),
    logger,
    registry: new Registry(),
    accessLog: new AccessLog({ target: 'off', sampleRate: 1 }, seededRng(1)),
    materialFor: (c) => secrets.sourceFor(c),
    drainMs: 500,
  });
  await rt.start();
  const app = await startEchoApp('app');
  t.teardown(async () => {
    await rt.drain(200);
    secrets.close();
    await app.close();
  });
  return {
    rt,
    app,
    logs,
    port(name) {
      const a = rt.listeners.find((l) => l.name === name)?.address();
      if (!a) throw new Error(`${name} is not bound`);
      return a.port;
    },
  };
}

async function refused(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

t.test('missing EDS: the warming cluster starts with no endpoints (503 UH); missing RDS: the listener starts with no routes (404 NR)', async (t) => {
  const r = await rig(t);
  const c = cluster(edsCluster('c'));
  t.same(r.rt.applyClusters(byName(c), new Set(['c']), 'v1'), []);
  t.equal(r.rt.settled, false, 'a cluster warms');
  r.rt.endpointsMissing('c');
  t.equal(r.rt.settled, true);
  t.equal(r.rt.clusters.get('c')?.endpoints.length, 0);
  const l = listener(httpListener('l', 0, { rds: 'r' }));
  r.rt.applyListeners(byName(l), new Set(['l']), 'l1');
  t.equal(r.rt.listeners.length, 0, 'warming for its routes');
  r.rt.routesMissing('r');
  await waitFor(() => r.rt.settled, 'bound');
  t.equal((await request(r.port('l'))).status, 404);
  r.rt.applyRoutes(byName(routes(routeConfig('r', [['/', 'c']]))), new Set(['r']), 'r1');
  const uh = await request(r.port('l'));
  t.equal(uh.status, 503);
  t.match(JSON.parse(uh.body), { code: 'no_healthy_upstream' });
  r.rt.applyEndpoints(byName(cla(assignment('c', [r.app.port]))), new Set(['c']), 'e1');
  t.equal((await request(r.port('l'))).status, 200, 'endpoints arriving later are used');
});

t.test('refusals: static names, address clashes with static listeners, TLS material that does not load; nothing changes', async (t) => {
  const staticB = {
    static_resources: {
      clusters: [{ name: 'static-c', type: 'STATIC', load_assignment: assignment('static-c', [9]) }],
      listeners: [httpListener('static-l', 0, { cluster: 'static-c' })],
    },
  };
  const r = await rig(t, staticB);
  t.match(r.rt.applyClusters(byName(cluster(edsCluster('static-c'))), new Set(['static-c']), 'v1'), [{ path: 'static-c', message: /static cluster/ }]);
  const brokenTls = cluster({
    ...edsCluster('tls'),
    transport_socket: {
      name: 'tls',
      typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', common_tls_context: { tls_certificate_sds_secret_configs: [{ name: 'default' }] } },
    },
  });
  t.match(r.rt.applyClusters(byName(brokenTls), new Set(['tls']), 'v1'), [{ path: 'tls: transport_socket', message: /mesh CA/ }]);
  t.equal(r.rt.clusters.views().active.length, 0, 'nothing applied');
  const staticPort = r.port('static-l');
  t.match(r.rt.applyListeners(byName(listener(httpListener('static-l', 0, { cluster: 'x' }))), new Set(['static-l']), 'l1'), [{ path: 'static-l', message: /static listener/ }]);
  t.match(r.rt.applyListeners(byName(listener(httpListener('dyn', staticPort, { cluster: 'x' }))), new Set(['dyn']), 'l1'), [{ path: 'dyn: address.socket_address', message: /is also the address of listener "static-l"/ }]);
  const sdsListener = listener({
    ...httpListener('sds', 0, { cluster: 'x' }),
    filter_chains: [
      {
        ...(httpListener('sds', 0, { cluster: 'x' }).filter_chains[0] as object),
        transport_socket: {
          name: 'tls',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
            common_tls_context: { tls_certificate_sds_secret_configs: [{ name: 'default' }], validation_context_sds_secret_config: { name: 'ROOTCA' } },
          },
        },
      },
    ],
  });
  t.match(r.rt.applyListeners(byName(sdsListener), new Set(['sds']), 'l1'), [{ path: 'sds: filter_chains[0].transport_socket', message: /mesh CA/ }]);
  t.equal(r.rt.listenerManager.views().dynamic.length, 0);
});

t.test('same address: the socket stays; an HCM change applies to the next request on open connections, in-flight ones finish on the old', async (t) => {
  const r = await rig(t);
  const other = await startEchoApp('other');
  t.teardown(() => other.close());
  r.rt.applyClusters(byName(cluster(edsCluster('a')), cluster(edsCluster('b'))), new Set(['a', 'b']), 'c1');
  r.rt.applyEndpoints(byName(cla(assignment('a', [r.app.port])), cla(assignment('b', [other.port]))), new Set(['a', 'b']), 'e1');
  r.rt.applyListeners(byName(listener(httpListener('l', 0, { cluster: 'a' }))), new Set(['l']), 'l1');
  await waitFor(() => r.rt.settled, 'bound');
  const port = r.port('l');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const h2 = http2.connect(`http://127.0.0.1:${port}`);
  t.teardown(() => {
    agent.destroy();
    h2.close();
  });
  t.equal((await request(port, { agent })).headers['x-served-by'], 'app');
  const inflight = new Promise<string>((resolve) => {
    const s = h2.request({ ':path': '/slow?ms=300', ':authority': 'x' });
    s.on('response', (h) => resolve(String(h['x-served-by'])));
    s.resume();
  });
  await waitFor(() => r.app.seen.some((s) => s.path.startsWith('/slow')), 'the slow stream at the app');
  r.rt.applyListeners(byName(listener(httpListener('l', 0, { cluster: 'b' }))), new Set(['l']), 'l2');
  t.equal(r.port('l'), port, 'same socket');
  t.equal((await request(port, { agent })).headers['x-served-by'], 'other', 'the next request on the same keep-alive connection uses the new HCM');
  t.equal(await inflight, 'app', 'the HTTP/2 stream in flight finished on the config it started with');
  const h2next = await new Promise<string>((resolve) => {
    const s = h2.request({ ':path': '/echo', ':authority': 'x' });
    s.on('response', (h) => resolve(String(h['x-served-by'])));
    s.resume();
  });
  t.equal(h2next, 'other', 'a new stream on the same HTTP/2 connection uses the new HCM');
  t.equal(r.app.connections + other.connections >= 2, true);
  // Connection settings change (HTTP/1.1 only now): new connections get the new chain, the old connections drain.
  r.rt.applyListeners(byName(listener(httpListener('l', 0, { cluster: 'b' }, { codec_type: 'HTTP1' }))), new Set(['l']), 'l3');
  t.equal(r.port('l'), port, 'still the same socket');
  const goaway = new Promise<void>((resolve) => h2.once('goaway', () => resolve()));
  await goaway;
  t.pass('the HTTP/2 connection of the old chain got GOAWAY');
  const fresh = await request(port);
  t.equal(fresh.status, 200, 'new connections are served by the new chain');
  const h2c = await new Promise<string>((resolve) => {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    s.on('error', (e) => resolve(`error ${e.message}`));
    s.on('close', () => resolve('closed'));
  });
  t.match(h2c, /closed|error/, 'codec HTTP1: prior-knowledge HTTP/2 is not spoken any more');
});

t.test('TLS listener from LDS with file certificates; an unchanged TLS context keeps connections across an HCM change', async (t) => {
  const r = await rig(t);
  const pki = await makePki();
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const server = await pki.issue('ns/default/sa/app');
  const client = await pki.issue('ns/default/sa/caller');
  const files = writeCertFiles(tmp.dir, 'app', { chainPem: server.chainPem, keyPem: server.keyPem, rootPem: pki.rootPem });
  const tlsListener = (cluster: string, san = 'spiffe://cluster.local/') => ({
    ...httpListener('in', 0, { cluster }),
    traffic_direction: 'INBOUND',
    filter_chains: [
      {
        ...(httpListener('in', 0, { cluster }).filter_chains[0] as object),
        transport_socket: {
          name: 'tls',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
            require_client_certificate: true,
            common_tls_context: {
              tls_certificates: [{ certificate_chain: { filename: files.chain }, private_key: { filename: files.key } }],
              validation_context: { trusted_ca: { filename: files.root }, match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { prefix: san } }] },
            },
          },
        },
      },
    ],
  });
  r.rt.applyClusters(byName(cluster(edsCluster('a'))), new Set(['a']), 'c1');
  r.rt.applyEndpoints(byName(cla(assignment('a', [r.app.port]))), new Set(['a']), 'e1');
  t.same(r.rt.applyListeners(byName(listener(tlsListener('a'))), new Set(['in']), 'l1'), []);
  await waitFor(() => r.rt.settled, 'bound');
  const port = r.port('in');
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: pki.rootPem, cert: client.chainPem, key: client.keyPem, servername: 'localhost', checkServerIdentity: () => undefined });
  t.teardown(() => session.close());
  const get = () =>
    new Promise<number>((resolve, reject) => {
      const s = session.request({ ':path': '/echo' });
      s.on('response', (h) => resolve(Number(h[':status'])));
      s.on('error', reject);
      s.resume();
    });
  t.equal(await get(), 200);
  r.rt.applyListeners(byName(listener({ ...tlsListener('a'), filter_chains: tlsListener('a').filter_chains.map((fc) => ({ ...fc, name: 'renamed' })) })), new Set(['in']), 'l2');
  t.equal(await get(), 200, 'same TLS context: the mTLS connection carries on');
  // A different SAN rule is a different connection setting: the old connection drains, new handshakes apply it.
  let closed = false;
  session.once('goaway', () => (closed = true));
  r.rt.applyListeners(byName(listener(tlsListener('a', 'spiffe://cluster.local/ns/other/'))), new Set(['in']), 'l3');
  await waitFor(() => closed, 'GOAWAY on the old chain');
  const again = http2.connect(`https://127.0.0.1:${port}`, { ca: pki.rootPem, cert: client.chainPem, key: client.keyPem, servername: 'localhost', checkServerIdentity: () => undefined });
  const outcome = await new Promise<string>((resolve) => {
    again.on('error', () => resolve('refused'));
    again.on('close', () => resolve('refused'));
    const s = again.request({ ':path': '/echo' });
    s.on('response', () => resolve('served'));
    s.on('error', () => resolve('refused'));
  });
  again.destroy();
  t.equal(outcome, 'refused', 'the caller no longer matches the new SAN rule');
  t.ok(r.logs.some((l) => l.includes('san_mismatch')));
});

t.test('a listener that cannot bind its new address reports error_state; the old version keeps serving; removal drains', async (t) => {
  const r = await rig(t);
  const blocker = net.createServer();
  await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', res));
  const taken = (blocker.address() as net.AddressInfo).port;
  t.teardown(() => new Promise<void>((res) => blocker.close(() => res())));
  r.rt.applyClusters(byName(cluster(edsCluster('a'))), new Set(['a']), 'c1');
  r.rt.applyEndpoints(byName(cla(assignment('a', [r.app.port]))), new Set(['a']), 'e1');
  r.rt.applyListeners(byName(listener(httpListener('l', 0, { cluster: 'a' }))), new Set(['l']), 'l1');
  await waitFor(() => r.rt.settled, 'bound');
  const port = r.port('l');
  r.rt.applyListeners(byName(listener(httpListener('l', taken, { cluster: 'a' }))), new Set(['l']), 'l2');
  await waitFor(() => r.rt.listenerManager.views().dynamic[0]?.error !== undefined, 'the bind error');
  const v = r.rt.listenerManager.views().dynamic[0]!;
  t.match(v, { active: { version: 'l1' }, error: { version: 'l2', details: /cannot bind 127\.0\.0\.1:\d+: .*EADDRINUSE/ } });
  t.ok(r.rt.settled, 'a failed bind does not hold readiness');
  t.equal((await request(port)).status, 200, 'the old version serves');
  t.ok(r.logs.some((l) => l.includes('could not bind')));
  // A version superseded while it binds is dropped; the newest wins.
  r.rt.applyListeners(byName(listener(httpListener('l', 0, { cluster: 'a' }, { stat_prefix: 'x' }))), new Set(['l']), 'l3');
  t.equal(r.port('l'), port, 'same address again: updated in place, error cleared');
  t.equal(r.rt.listenerManager.views().dynamic[0]!.error, undefined);
  // Removed: stops accepting, in-flight requests finish, then the slot is gone.
  const slow = request(port, { path: '/slow?ms=200' });
  await waitFor(() => r.app.seen.some((s) => s.path.startsWith('/slow')), 'in flight');
  r.rt.applyListeners(new Map(), new Set(), 'l4');
  t.equal(r.rt.listeners.length, 0);
  t.ok(await refused(port), 'no new connections');
  t.match(r.rt.listenerManager.views().dynamic, [{ name: 'l', draining: [{ version: 'l3' }] }]);
  t.equal((await slow).status, 200, 'the request in flight finished');
  await waitFor(() => r.rt.listenerManager.views().dynamic.length === 0, 'the drained listener forgotten');
});

t.test('clusters: STATIC ones from CDS apply at once; new connection settings mean new pools (old ones drain); removal closes pools', async (t) => {
  const r = await rig(t);
  const st = cluster({ name: 's', type: 'STATIC', connect_timeout: '1s', load_assignment: assignment('s', [r.app.port]) });
  r.rt.applyClusters(byName(st), new Set(['s']), 'c1');
  t.equal(r.rt.clusters.get('s')?.endpoints.length, 1, 'no warming for STATIC');
  r.rt.applyListeners(byName(listener(httpListener('l', 0, { cluster: 's' }))), new Set(['l']), 'l1');
  await waitFor(() => r.rt.settled, 'bound');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  t.equal((await request(r.port('l'), { agent })).status, 200);
  const first = r.rt.clusters.get('s')!.endpoints[0]!;
  const conns = r.app.connections;
  r.rt.applyClusters(byName(cluster({ name: 's', type: 'STATIC', connect_timeout: '2s', load_assignment: assignment('s', [r.app.port]) })), new Set(['s']), 'c2');
  const second = r.rt.clusters.get('s')!.endpoints[0]!;
  t.not(second, first, 'a new connect_timeout is a new pool');
  t.equal((await request(r.port('l'), { agent })).status, 200);
  t.equal(r.app.connections, conns + 1, 'the new pool connected');
  r.rt.applyClusters(new Map(), new Set(), 'c3');
  t.equal(r.rt.clusters.get('s'), undefined);
  const nc = await request(r.port('l'));
  t.equal(nc.status, 503);
  t.match(JSON.parse(nc.body), { code: 'no_cluster' });
  t.strictSame(r.rt.clusters.views(), { static: [], active: [], warming: [], assignments: [] });
});
