// The admin server on a real loopback socket: readiness, Envoy's /clusters formats, method checks, and
// POST /quitquitquit shutting a running sidecar down.
import t from 'tap';
import { Registry } from 'prom-client';
import { AdminServer, type ClusterView } from '../../src/admin/server.js';
import { request, startTwoHop } from '../helpers/two-hop.js';
import { waitFor } from '../helpers/tools.js';

const ENDPOINT_BASE: ClusterView['endpoints'][number] = {
  address: '10.0.0.7:15006',
  locality: { region: 'gcp-europe-west1', zone: 'b', sub_zone: '' },
  priority: 0,
  weight: 1,
  health_status: 'HEALTHY',
  rq_active: 1,
  rq_total: 9,
  rq_error: 2,
  cx_active: 1,
  cx_connect_fail: 0,
  ejected: true,
  times_ejected: 2,
  ejection_detector: 'consecutive_5xx',
  success_rate: 40,
  ewma_ms: 12.5,
};

const cluster: ClusterView = {
  name: 'outbound|9080||reviews',
  lb_policy: 'LEAST_REQUEST',
  healthy_panic: 3,
  priorities: [{ priority: 0, hosts: 1, available: 0, health: 0, load: 100, panic: true }],
  endpoints: [
    ENDPOINT_BASE,
    { ...ENDPOINT_BASE, address: '10.0.0.8:15006', ejected: false, ewma_ms: null },
  ],
};

t.test('readiness, clusters, 404 and 405 on a bare admin server', async (t) => {
  let ready = false;
  let quits = 0;
  const admin = new AdminServer({ ready: () => ready, registry: new Registry(), configDump: () => ({ ok: true }), clusters: () => [cluster], certs: () => [], quit: () => quits++ });
  const addr = await admin.start({ host: '127.0.0.1', port: 0 });
  t.teardown(() => admin.close());
  const base = `http://127.0.0.1:${addr.port}`;
  t.equal((await fetch(`${base}/ready`)).status, 503, 'not ready until the runtime says so');
  ready = true;
  t.equal(await (await fetch(`${base}/ready`)).text(), 'LIVE\n');
  const text = await (await fetch(`${base}/clusters`)).text();
  t.match(text, 'outbound|9080||reviews::10.0.0.7:15006::rq_error::2');
  t.match(text, 'outbound|9080||reviews::10.0.0.7:15006::region::gcp-europe-west1');
  t.match(text, 'outbound|9080||reviews::10.0.0.7:15006::health_flags::/failed_outlier_check\n');
  t.match(text, 'outbound|9080||reviews::10.0.0.7:15006::times_ejected::2\n');
  t.match(text, 'outbound|9080||reviews::10.0.0.7:15006::ewma_ms::12.500\n');
  t.match(text, 'outbound|9080||reviews::10.0.0.8:15006::health_flags::healthy\n');
  t.notMatch(text, '10.0.0.8:15006::ewma_ms', 'no estimate before the first answer');
  t.match(text, 'outbound|9080||reviews::lb_policy::LEAST_REQUEST\noutbound|9080||reviews::healthy_panic::3\n');
  t.match(text, 'outbound|9080||reviews::priority_0::load::100\noutbound|9080||reviews::priority_0::panic::true\n');
  const json = (await (await fetch(`${base}/clusters?format=json`)).json()) as { cluster_statuses: ClusterView[] };
  t.same(json.cluster_statuses, [cluster]);
  t.equal((await fetch(`${base}/quitquitquit`)).status, 405, 'GET does not quit');
  t.equal(quits, 0);
  const nf = await fetch(`${base}/nope`);
  t.equal(nf.status, 404);
  t.match(await nf.text(), /\/quitquitquit/);
  t.equal((await fetch(`${base}/quitquitquit`, { method: 'POST' })).status, 200);
  t.equal(quits, 1);
});

t.test('POST /quitquitquit drains and stops a running sidecar', async (t) => {
  const m = await startTwoHop();
  t.teardown(() => m.close());
  t.equal((await request(m.outPort)).status, 200);
  const r = await fetch(`${m.b.adminUrl}/quitquitquit`, { method: 'POST' });
  t.equal(r.status, 200);
  await waitFor(async () => {
    const reply = await request(m.outPort);
    return reply.status === 503;
  }, 'the inbound sidecar to be gone');
  t.equal(m.b.ready(), false, 'no longer ready');
});
