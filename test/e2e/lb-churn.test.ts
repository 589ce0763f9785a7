// Endpoint churn under load: EDS adds and removes endpoints (and moves them between priorities) twenty times
// while 16 keep-alive workers send requests through the sidecar. No request fails: removed hosts drain what
// they have in flight, and the balancer is rebuilt before the next pick.
import http from 'node:http';
import t from 'tap';
import { seededRng } from '../../src/core/rng.js';
import { startEchoApp } from '../helpers/apps.js';
import { startAdsServer, typeOf } from '../helpers/ads-server.js';
import { runSidecar } from '../helpers/mesh.js';
import { waitFor } from '../helpers/tools.js';
import { request } from '../helpers/two-hop.js';
import { adsBootstrap, edsCluster, httpListener, routeConfig } from '../helpers/xds-resources.js';

const address = (port: number) => ({ socket_address: { address: '127.0.0.1', port_value: port } });
/** A ClusterLoadAssignment with a priority per group of ports. */
const prioritized = (name: string, groups: readonly (readonly number[])[]) => ({
  cluster_name: name,
  endpoints: groups.map((ports, priority) => ({ priority, locality: { region: 'r1', zone: `z${priority}` }, lb_endpoints: ports.map((p) => ({ endpoint: { address: address(p) } })) })),
});

t.test('twenty EDS changes under load: endpoints added, removed and moved between priorities, zero failed requests', async (t) => {
  const apps = await Promise.all(['a', 'b', 'c', 'd'].map((n) => startEchoApp(n)));
  const ads = await startAdsServer();
  const sc = await runSidecar(adsBootstrap(ads.port), { drainMs: 1000, rng: seededRng(11), adsBackoffMs: { base: 20, max: 200 } });
  t.teardown(async () => {
    await sc.shutdown();
    await ads.stop();
    await Promise.all(apps.map((a) => a.close()));
  });
  const is = (type: string, nonce?: string) => (r: { type_url: string; response_nonce: string }) => typeOf(r as never) === type && (nonce === undefined || r.response_nonce === nonce);
  await ads.request(is('cds'));
  const c1 = ads.push('cds', 'c1', [edsCluster('backend', { extra: { lb_policy: 'LEAST_REQUEST' } })]);
  await ads.request(is('cds', c1));
  await ads.request(is('eds'));
  const [a, b, c, d] = apps.map((x) => x.port) as [number, number, number, number];
  const sets: (readonly (readonly number[])[])[] = [[[a, b]], [[b, c]], [[c], [d]], [[a, b, c, d]], [[d], [a]], [[b], [c, d]]];
  let version = 0;
  const pushEds = async () => {
    const nonce = ads.push('eds', `e${++version}`, [prioritized('backend', sets[version % sets.length]!)]);
    await ads.request(is('eds', nonce));
  };
  await pushEds();
  await ads.request(is('lds'));
  const l1 = ads.push('lds', 'l1', [httpListener('outbound', 0, { rds: 'routes' })]);
  await ads.request(is('lds', l1));
  await ads.request(is('rds'));
  const r1 = ads.push('rds', 'r1', [routeConfig('routes', [['/', 'backend']])]);
  await ads.request(is('rds', r1));
  await waitFor(() => sc.ready(), 'the sidecar to be ready');

  const port = sc.port('outbound');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  t.teardown(() => agent.destroy());
  const failures: string[] = [];
  const served: Record<string, number> = {};
  let running = true;
  let done = 0;
  const workers = Array.from({ length: 16 }, async () => {
    while (running) {
      const r = await request(port, { path: '/echo', agent }).catch((e: Error) => ({ status: 0, body: e.message, headers: {} as http.IncomingHttpHeaders }));
      if (r.status !== 200) failures.push(`${r.status} ${r.body}`);
      else served[String(r.headers['x-served-by'])] = (served[String(r.headers['x-served-by'])] ?? 0) + 1;
      done++;
    }
  });
  for (let i = 0; i < 20; i++) {
    const at = done;
    await waitFor(() => done >= at + 25, '25 more requests');
    await pushEds();
  }
  running = false;
  await Promise.all(workers);
  t.strictSame(failures, [], `zero failed requests out of ${done}`);
  t.strictSame(Object.keys(served).sort(), ['a', 'b', 'c', 'd'], `every endpoint served at some point: ${JSON.stringify(served)}`);
});
