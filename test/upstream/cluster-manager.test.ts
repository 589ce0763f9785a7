// The cluster manager's host pick per Cluster.lb_policy: ROUND_ROBIN, RANDOM and LEAST_REQUEST (power of two choices).
import t, { type Test } from 'tap';
import { Registry } from 'prom-client';
import { systemClock } from '../../src/core/clock.js';
import { seededRng, systemRng } from '../../src/core/rng.js';
import type { Cluster } from '../../src/model/types.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { ClusterManager } from '../../src/upstream/cluster-manager.js';
import { CLUSTER_TYPE_URL } from '../../src/xds/protos.js';
import { addr, cluster, viaJson } from '../xds/helpers.js';

const PORTS = [9001, 9002, 9003];

function manager(t: Test, lbPolicy?: string) {
  const r = viaJson(CLUSTER_TYPE_URL, cluster({ ...(lbPolicy && { lb_policy: lbPolicy }), load_assignment: { cluster_name: 'backend', endpoints: [{ lb_endpoints: PORTS.map((p) => ({ endpoint: { address: addr('127.0.0.1', p) } })) }] } }));
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  const rng = seededRng(11);
  const m = new ClusterManager([r.value as Cluster], { clock: systemClock, metrics: createMetrics(new Registry()), materialFor: () => undefined, rng });
  t.teardown(() => m.destroy());
  return m.get('backend')!;
}

const counts = (pick: () => { endpoint: { address: { port: number } } } | undefined, n: number) => {
  const c = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const p = pick()!.endpoint.address.port;
    c.set(p, (c.get(p) ?? 0) + 1);
  }
  return c;
};

t.test('ROUND_ROBIN (the default) takes the hosts in turn', async (t) => {
  const c = manager(t);
  t.equal(c.cluster.lbPolicy, 'ROUND_ROBIN');
  const seq = [0, 1, 2, 3, 4, 5].map(() => c.pick()!.endpoint.address.port);
  t.strictSame(seq.slice(3), seq.slice(0, 3), 'the same cycle repeats');
  t.strictSame([...new Set(seq)].sort(), PORTS);
});

t.test('RANDOM draws each host from the injected rng, about equally', async (t) => {
  const c = manager(t, 'RANDOM');
  t.equal(c.cluster.lbPolicy, 'RANDOM');
  const n = counts(() => c.pick(), 3000);
  for (const p of PORTS) t.ok(Math.abs(n.get(p)! - 1000) < 150, `${p}: ${n.get(p)}`);
});

t.test('LEAST_REQUEST: of two random hosts, the one with fewer active requests', async (t) => {
  const c = manager(t, 'LEAST_REQUEST');
  t.equal(c.cluster.lbPolicy, 'LEAST_REQUEST');
  const busy = c.endpoints.find((e) => e.endpoint.address.port === 9001)!;
  busy.rqActive = 5;
  const n = counts(() => c.pick(), 3000);
  // 9001 wins only when both draws are 9001 (1/9); the other two split the rest.
  t.ok(n.get(9001)! < 450, `the busy host is picked rarely: ${n.get(9001)}`);
  t.ok(n.get(9002)! > 1200 && n.get(9003)! > 1200, `${n.get(9002)} / ${n.get(9003)}`);
  busy.rqActive = 0;
  const even = counts(() => c.pick(), 3000);
  for (const p of PORTS) t.ok(even.get(p)! > 700, `idle hosts share: ${p} ${even.get(p)}`);
});

t.test('no healthy host: undefined (503 UH)', async (t) => {
  const r = viaJson(CLUSTER_TYPE_URL, cluster({ lb_policy: 'LEAST_REQUEST', load_assignment: { cluster_name: 'backend', endpoints: [] } }));
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  const m = new ClusterManager([r.value as Cluster], { clock: systemClock, metrics: createMetrics(new Registry()), materialFor: () => undefined, rng: systemRng });
  t.teardown(() => m.destroy());
  t.equal(m.get('backend')!.pick(), undefined);
});
