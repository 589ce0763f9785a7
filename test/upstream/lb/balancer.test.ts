// The balancer tree end to end: priority spill-over and panic as picks, locality-weighted EDF, refresh after
// ejection, no host (503 UH), the view and the panic counter.
import t from 'tap';
import { createBalancer } from '../../../src/upstream/lb/balancer.js';
import { binomial, countBy, deps, hostsIn, lbConfig, sicken } from './helpers.js';

const N = 20_000;

t.test('P0 at 50 % healthy sends 70 % of picks to P0 and the rest to P1, only to available hosts', async (t) => {
  const p0 = sicken(hostsIn(10, 0), 5);
  const p1 = hostsIn(10, 1);
  const b = createBalancer(lbConfig('ROUND_ROBIN'), 140, [...p0, ...p1], deps());
  const c = countBy(N, () => b.pick()!, (h) => h.priority);
  binomial(t, c.get(0) ?? 0, N, 0.7, 'P0 share');
  t.equal(countBy(N, () => b.pick()!, (h) => h.healthy).get(false), undefined, 'no unhealthy host picked');
  t.equal(b.stats.healthyPanic, 0);
});

t.test('Envoy doc: P0 at 72/71/50/25 % healthy with P1 healthy → 100/99/70/35 % of picks', async (t) => {
  for (const [healthy, share] of [
    [72, 1],
    [71, 0.99],
    [50, 0.7],
    [25, 0.35],
  ] as const) {
    const b = createBalancer(lbConfig('RANDOM'), 140, [...sicken(hostsIn(100, 0), 100 - healthy), ...hostsIn(10, 1)], deps(healthy));
    t.equal(b.view().priorities[0]!.load, Math.round(share * 100));
    const c = countBy(N, () => b.pick()!, (h) => h.priority);
    if (share === 1) t.equal(c.get(0), N, `${healthy} %: every pick in P0`);
    else binomial(t, c.get(0) ?? 0, N, share, `${healthy} % healthy: P0 share`);
  }
});

t.test('ejection + refresh(): traffic leaves an ejected host and fails over to P1; un-ejection brings it back', async (t) => {
  const p0 = hostsIn(2, 0);
  const p1 = hostsIn(2, 1);
  const b = createBalancer(lbConfig('ROUND_ROBIN'), 140, [...p0, ...p1], deps());
  t.equal(countBy(100, () => b.pick()!, (h) => h.priority).get(0), 100);
  p0[0]!.ejected = true;
  p0[1]!.ejected = true;
  b.refresh();
  t.strictSame([...countBy(100, () => b.pick()!, (h) => h.hostPort).keys()].sort(), p1.map((h) => h.hostPort).sort(), 'all traffic on P1');
  p0[0]!.ejected = false;
  p0[1]!.ejected = false;
  b.refresh();
  t.equal(countBy(100, () => b.pick()!, (h) => h.priority).get(0), 100, 'back on P0');
});

t.test('panic: below the threshold with nothing to spill to, the level routes to all its hosts and counts it', async (t) => {
  const hosts = sicken(hostsIn(10, 0), 8); // 20 % healthy < 50 %
  const b = createBalancer(lbConfig('ROUND_ROBIN'), 140, hosts, deps());
  const v = b.view();
  t.strictSame([v.priorities[0]!.panic, v.normalizedTotalHealth, v.priorities[0]!.load], [true, 28, 100]);
  const c = countBy(1000, () => b.pick()!, (h) => h.hostPort);
  t.equal(c.size, 10, 'every host, healthy or not');
  t.equal(b.stats.healthyPanic, 1000);
});

t.test('all hosts down: panic threshold 0 answers no host (503 UH); the default threshold routes to all', async (t) => {
  const hosts = sicken(hostsIn(4, 0), 4);
  const off = createBalancer(lbConfig('LEAST_REQUEST', { healthyPanicThresholdPercent: 0 }), 140, hosts, deps());
  t.equal(off.pick(), undefined);
  t.equal(off.stats.healthyPanic, 0);
  const on = createBalancer(lbConfig('LEAST_REQUEST'), 140, hosts, deps());
  t.ok(on.pick());
  t.equal(on.stats.healthyPanic, 1);
  t.equal(createBalancer(lbConfig('RANDOM'), 140, [], deps()).pick(), undefined, 'an empty cluster has no host');
});

t.test('a gap in priorities is an empty level that takes no load', async (t) => {
  const b = createBalancer(lbConfig('ROUND_ROBIN'), 140, [...sicken(hostsIn(2, 0), 2), ...hostsIn(2, 2)], deps());
  const v = b.view();
  t.strictSame(
    v.priorities.map((p) => [p.priority, p.hosts, p.load]),
    [
      [0, 2, 0],
      [1, 0, 0],
      [2, 2, 100],
    ],
  );
  t.equal(b.pick()!.priority, 2);
});

t.test('locality weighted: X (weight 1) at 50 % available, Y (weight 2) → 26 % / 74 % of picks, smooth', async (t) => {
  const x = sicken(hostsIn(10, 0, 'x', 1), 5);
  const y = hostsIn(10, 0, 'y', 2);
  const b = createBalancer(lbConfig('ROUND_ROBIN', { localityWeighted: true }), 140, [...x, ...y], deps());
  const v = b.view().priorities[0]!;
  t.strictSame(
    v.localities.map((l) => [l.locality.zone, l.weight, l.effectiveWeight, l.available]),
    [
      ['x', 1, 70, 5],
      ['y', 2, 200, 10],
    ],
  );
  // EDF is deterministic: in any prefix of k picks, X's count is within one of k × 70/270.
  let toX = 0;
  for (let k = 1; k <= 2700; k++) {
    if (b.pick()!.locality.zone === 'x') toX++;
    if (Math.abs(toX - (k * 70) / 270) > 1) {
      t.fail(`after ${k} picks X had ${toX}`);
      return;
    }
  }
  t.equal(toX, 700, '26 % (70/270) to X exactly over a full cycle');
  t.equal(Math.round((100 * toX) / 2700), 26);
});

t.test('locality weighted: a locality with no available hosts or weight 0 gets nothing; all weight 0 falls back to one pool', async (t) => {
  const x = sicken(hostsIn(3, 0, 'x', 1), 3);
  const y = hostsIn(3, 0, 'y', 1);
  const z = hostsIn(3, 0, 'z', 0);
  const b = createBalancer(lbConfig('RANDOM', { localityWeighted: true }), 140, [...x, ...y, ...z], deps());
  t.strictSame([...countBy(300, () => b.pick()!, (h) => h.locality.zone).keys()], ['y']);
  const unweighted = createBalancer(lbConfig('RANDOM', { localityWeighted: true }), 140, hostsIn(3, 0, 'z', 0), deps());
  t.equal(countBy(300, () => unweighted.pick()!, (h) => h.hostPort).size, 3);
});

t.test('not locality weighted: all localities of a priority are one pool', async (t) => {
  const b = createBalancer(lbConfig('ROUND_ROBIN'), 140, [...hostsIn(1, 0, 'x', 1), ...hostsIn(3, 0, 'y', 9)], deps());
  const c = countBy(400, () => b.pick()!, (h) => h.locality.zone);
  t.strictSame([c.get('x'), c.get('y')], [100, 300], 'per host, locality weights ignored');
});

t.test('view(): per priority health/load/panic, per host availability and EWMA estimate', async (t) => {
  const d = deps();
  const hosts = hostsIn(2, 0);
  hosts[1]!.ejected = true;
  hosts[0]!.ewma.observe(20, 0);
  const b = createBalancer(lbConfig('PEAK_EWMA'), 140, hosts, d);
  d.clock.advance(10_000);
  const v = b.view();
  t.strictSame([v.policy, v.overprovisioningFactor, v.panicThreshold, v.normalizedTotalHealth], ['PEAK_EWMA', 140, 50, 70]);
  t.strictSame(v.priorities[0]!.available, 1);
  t.strictSame(
    v.hosts.map((h) => [h.hostPort, h.available, h.ewmaMs === null ? null : Math.round(h.ewmaMs * 1000) / 1000]),
    [
      ['10.0.z.0:80', true, Math.round(20 * Math.exp(-1) * 1000) / 1000],
      ['10.0.z.1:80', false, null],
    ],
  );
});

t.test('RING_HASH: the request hash picks the priority (hash mod 100) and the host, consistently', async (t) => {
  const p0 = sicken(hostsIn(10, 0), 5);
  const p1 = hostsIn(10, 1);
  const b = createBalancer(lbConfig('RING_HASH'), 140, [...p0, ...p1], deps());
  t.equal(b.pick(69)!.priority, 0, 'hash mod 100 = 69 < 70');
  t.equal(b.pick(70)!.priority, 1);
  t.equal(b.pick(169)!.priority, 0);
  const key = 123_456_789_012;
  const first = b.pick(key);
  for (let i = 0; i < 20; i++) t.equal(b.pick(key), first);
  // No hash: a random one, so picks spread over the hosts (Envoy's behaviour without a hash policy).
  t.ok(countBy(200, () => b.pick()!, (h) => h.hostPort).size > 5);
});

t.test('MAGLEV with locality weighting folds locality shares into the table', async (t) => {
  const x = hostsIn(2, 0, 'x', 1);
  const y = hostsIn(2, 0, 'y', 3);
  const b = createBalancer(lbConfig('MAGLEV', { localityWeighted: true, maglev: { tableSize: 65537 } }), 140, [...x, ...y], deps());
  const c = countBy(65537, (() => {
    let h = 0;
    return () => b.pick(h++)!;
  })(), (h) => h.locality.zone);
  t.ok(Math.abs(c.get('x')! / 65537 - 0.25) < 0.001, `x slots ${c.get('x')}`);
});

t.test("previous_priorities: excluded levels count as unhealthy; all excluded falls back to the original load", async (t) => {
  const b = createBalancer(lbConfig('ROUND_ROBIN'), 140, [...hostsIn(4, 0), ...hostsIn(4, 1), ...hostsIn(4, 2)], deps());
  t.equal(countBy(300, () => b.pick()!, (h) => h.priority).get(0), 300, 'P0 takes everything');
  t.equal(countBy(300, () => b.pick(undefined, 0b001)!, (h) => h.priority).get(1), 300, 'P0 excluded: P1 takes everything');
  t.equal(countBy(300, () => b.pick(undefined, 0b011)!, (h) => h.priority).get(2), 300, 'P0 and P1 excluded: P2');
  t.equal(countBy(300, () => b.pick(undefined, 0b111)!, (h) => h.priority).get(0), 300, 'everything excluded: the original load again');
  const half = createBalancer(lbConfig('RANDOM'), 140, [...hostsIn(4, 0), ...sicken(hostsIn(10, 1), 5), ...hostsIn(4, 2)], deps(3));
  const c = countBy(N, () => half.pick(undefined, 0b001)!, (h) => h.priority);
  binomial(t, c.get(1) ?? 0, N, 0.7, 'P0 excluded, P1 at 50 % available: 70 % to P1, the rest spills to P2');
});
