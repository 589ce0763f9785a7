// Endpoint pickers, each over one pool of hosts: rotation and EDF weights, uniform draws, least request,
// ring hash consistency, Maglev's weighted table, and PEAK_EWMA's cost comparison.
import t from 'tap';
import { hash53 } from '../../../src/upstream/lb/hash.js';
import { leastRequest } from '../../../src/upstream/lb/pickers/least-request.js';
import { isPrime, maglev } from '../../../src/upstream/lb/pickers/maglev.js';
import { peakEwma } from '../../../src/upstream/lb/pickers/peak-ewma.js';
import { random } from '../../../src/upstream/lb/pickers/random.js';
import { ringHash } from '../../../src/upstream/lb/pickers/ring-hash.js';
import { roundRobin } from '../../../src/upstream/lb/pickers/round-robin.js';
import type { LbHost, WeightedHost } from '../../../src/upstream/lb/types.js';
import { binomial, countBy, deps, hostsIn, lbConfig, TestHost } from './helpers.js';

const W = (hosts: LbHost[]): WeightedHost[] => hosts.map((host) => ({ host, weight: host.weight }));
const weighted = (...weights: number[]) => weights.map((w, i) => new TestHost(`10.0.0.${i}:80`, 0, undefined, w));
const N = 20_000;

t.test('ROUND_ROBIN, equal weights: a rotation from a random start', async (t) => {
  const hosts = hostsIn(5);
  const a = roundRobin(W(hosts), lbConfig('ROUND_ROBIN'), deps(1));
  const seq = Array.from({ length: 10 }, () => hosts.indexOf(a.pick(0) as never));
  t.strictSame(seq.slice(5), seq.slice(0, 5), 'the cycle repeats');
  t.strictSame([...seq.slice(0, 5)].sort(), [0, 1, 2, 3, 4]);
  t.ok(seq.every((v, i) => i === 0 || v === (seq[i - 1]! + 1) % 5), 'in order');
  const starts = new Set([1, 2, 3, 4, 5, 6, 7, 8].map((s) => roundRobin(W(hosts), lbConfig('ROUND_ROBIN'), deps(s)).pick(0)));
  t.ok(starts.size > 1, 'the start depends on the rng');
});

t.test('ROUND_ROBIN, unequal weights: EDF gives each host its weight share, within one pick of exact', async (t) => {
  const hosts = weighted(1, 2, 5);
  const p = roundRobin(W(hosts), lbConfig('ROUND_ROBIN'), deps(3));
  const c = new Map<LbHost, number>();
  for (let k = 1; k <= 800; k++) {
    const h = p.pick(0);
    c.set(h, (c.get(h) ?? 0) + 1);
  }
  t.strictSame(hosts.map((h) => c.get(h)), [100, 200, 500]);
});

t.test('RANDOM: uniform over the hosts, weights ignored (as Envoy)', async (t) => {
  const hosts = weighted(1, 1, 8, 1);
  const p = random(W(hosts), lbConfig('RANDOM'), deps());
  const c = countBy(N, () => p.pick(0), (h) => h);
  for (const h of hosts) binomial(t, c.get(h) ?? 0, N, 0.25, h.hostPort);
});

t.test('LEAST_REQUEST, equal weights: power of two choices never picks the busiest of two', async (t) => {
  const hosts = hostsIn(2);
  hosts[0]!.rqActive = 3;
  const p = leastRequest(W(hosts), lbConfig('LEAST_REQUEST'), deps());
  // Two draws from two hosts: host 0 only when both draws are host 0 (p = 1/4).
  const c = countBy(N, () => p.pick(0), (h) => h);
  binomial(t, c.get(hosts[0]!) ?? 0, N, 0.25, 'busy host');
  const three = leastRequest(W(hosts), lbConfig('LEAST_REQUEST', { leastRequest: { choiceCount: 3, activeRequestBias: 1 } }), deps());
  binomial(t, countBy(N, () => three.pick(0), (h) => h).get(hosts[0]!) ?? 0, N, 0.125, 'busy host with choice_count 3');
});

t.test('LEAST_REQUEST, unequal weights: weight / (active + 1)^bias', async (t) => {
  const hosts = weighted(1, 2);
  // Host 1 has twice the weight but 3 in flight: 2/4 = 0.5 against 1/1 → host 0 gets 2/3 of picks.
  hosts[1]!.rqActive = 3;
  const p = leastRequest(W(hosts), lbConfig('LEAST_REQUEST'), deps());
  t.equal(countBy(300, () => p.pick(0), (h) => h).get(hosts[0]!), 200);
  const squared = leastRequest(W(hosts), lbConfig('LEAST_REQUEST', { leastRequest: { choiceCount: 2, activeRequestBias: 2 } }), deps());
  // 2/16 against 1 → host 0 gets 8/9.
  t.equal(countBy(900, () => squared.pick(0), (h) => h).get(hosts[0]!), 800);
  const rr = leastRequest(W(hosts), lbConfig('LEAST_REQUEST', { leastRequest: { choiceCount: 2, activeRequestBias: 0 } }), deps());
  t.equal(countBy(300, () => rr.pick(0), (h) => h).get(hosts[0]!), 100, 'bias 0: plain weights');
});

t.test('RING_HASH: keys spread by weight over a large ring', async (t) => {
  const hosts = weighted(1, 3);
  const p = ringHash(W(hosts), lbConfig('RING_HASH', { ringHash: { minimumRingSize: 65536, maximumRingSize: 8 << 20, hashFunction: 'XX_HASH' } }), deps());
  const c = countBy(N, (() => {
    let i = 0;
    return () => p.pick(hash53(`key-${i++}`));
  })(), (h) => h);
  // Sampling error (binomial) plus the ring's own arc imbalance: 16384 entries give ~1/√16384 ≈ 0.8 % relative.
  t.ok(Math.abs(c.get(hosts[0]!)! / N - 0.25) < 5 * Math.sqrt((0.25 * 0.75) / N) + 0.25 * 0.04, `share ${c.get(hosts[0]!)! / N}`);
});

t.test('RING_HASH: removing a host moves only the keys whose ring neighbour it was', async (t) => {
  // minimum_ring_size 81: 10 hosts get 9 entries each, and 9 hosts still 9 each, so the surviving entries are
  // exactly the old ones and no key may move between survivors.
  const cfg = lbConfig('RING_HASH', { ringHash: { minimumRingSize: 81, maximumRingSize: 1 << 20, hashFunction: 'XX_HASH' } });
  const hosts = hostsIn(10);
  const before = ringHash(W(hosts), cfg, deps());
  const removed = hosts[3]!;
  const after = ringHash(W(hosts.filter((h) => h !== removed)), cfg, deps());
  let moved = 0;
  let fromRemoved = 0;
  let stillOnRemoved = 0;
  for (let i = 0; i < 5000; i++) {
    const k = hash53(`user-${i}`);
    const a = before.pick(k);
    const b = after.pick(k);
    if (a === removed) fromRemoved++;
    else if (a !== b) moved++;
    if (b === removed) stillOnRemoved++;
  }
  t.equal(moved, 0, 'no key moved between surviving hosts');
  t.equal(stillOnRemoved, 0);
  t.ok(fromRemoved > 0, `${fromRemoved} keys were on the removed host and moved`);
  // With Envoy's default ring (1024) the survivors go from ⌈102.4⌉ = 103 to ⌈113.8⌉ = 114 entries each when the
  // ring is re-scaled; a key can then move only to one of those new entries in front of it, so the share
  // that moves is about the share of new entries, 9 × 11 / (9 × 114), plus sampling error.
  const dflt = lbConfig('RING_HASH');
  const b2 = ringHash(W(hosts), dflt, deps());
  const a2 = ringHash(W(hosts.filter((h) => h !== removed)), dflt, deps());
  let m2 = 0;
  for (let i = 0; i < 5000; i++) {
    const k = hash53(`user-${i}`);
    if (b2.pick(k) !== removed && b2.pick(k) !== a2.pick(k)) m2++;
  }
  const fresh = (9 * 11) / (9 * 114);
  t.ok(m2 / 4500 < fresh + 5 * Math.sqrt((fresh * (1 - fresh)) / 4500), `default ring: ${m2} of ~4500 survivor keys moved`);
});

t.test('MAGLEV: slots follow the weights; the table size must be prime', async (t) => {
  const hosts = weighted(1, 2, 3, 4);
  const size = 10007;
  const p = maglev(W(hosts), lbConfig('MAGLEV', { maglev: { tableSize: size } }), deps());
  const c = new Map<LbHost, number>();
  for (let s = 0; s < size; s++) c.set(p.pick(s), (c.get(p.pick(s)) ?? 0) + 1);
  hosts.forEach((h, i) => t.ok(Math.abs(c.get(h)! - (size * (i + 1)) / 10) <= 4, `${h.hostPort}: ${c.get(h)} slots`));
  t.equal(p.pick(size + 5), p.pick(5), 'hash mod table size');
  t.throws(() => maglev(W(hosts), lbConfig('MAGLEV', { maglev: { tableSize: 1000 } }), deps()), { code: 'LB_MAGLEV_TABLE_SIZE' });
  t.strictSame([isPrime(65537), isPrime(2), isPrime(1), isPrime(9), isPrime(2.5)], [true, true, false, false, false]);
});

t.test('MAGLEV: removing a host keeps most keys of the survivors in place', async (t) => {
  const hosts = hostsIn(10);
  const cfg = lbConfig('MAGLEV');
  const before = maglev(W(hosts), cfg, deps());
  const after = maglev(W(hosts.slice(1)), cfg, deps());
  let moved = 0;
  let survivors = 0;
  for (let s = 0; s < 65537; s++) {
    if (before.pick(s) === hosts[0]) continue;
    survivors++;
    if (before.pick(s) !== after.pick(s)) moved++;
  }
  t.ok(moved / survivors < 0.05, `${moved} of ${survivors} survivor slots moved`);
});

t.test('PEAK_EWMA: of two random hosts the lower estimate × (in-flight + 1) / weight wins', async (t) => {
  const d = deps();
  const hosts = hostsIn(2);
  hosts[0]!.ewma.observe(10, 0);
  hosts[1]!.ewma.observe(200, 0);
  const p = peakEwma(W(hosts), lbConfig('PEAK_EWMA'), d);
  t.equal(countBy(100, () => p.pick(0), (h) => h).get(hosts[0]!), 100, 'the fast host always wins a pair');
  hosts[0]!.rqActive = 30; // 10 × 31 = 310 > 200 × 1
  t.equal(countBy(100, () => p.pick(0), (h) => h).get(hosts[1]!), 100, 'until its queue makes it dearer');
  const heavy = [new TestHost('a:1', 0, undefined, 4), new TestHost('b:1', 0, undefined, 1)];
  heavy[0]!.ewma.observe(30, 0);
  heavy[1]!.ewma.observe(10, 0);
  t.equal(peakEwma(W(heavy), lbConfig('PEAK_EWMA'), d).pick(0), heavy[0], 'weight 4 divides the cost: 30/4 < 10');
  const one = peakEwma(W(hostsIn(1)), lbConfig('PEAK_EWMA'), d);
  t.equal(one.pick(0).hostPort, '10.0.z.0:80');
});

t.test('PEAK_EWMA: a slow host loses its traffic; a new host is probed, one request at a time', async (t) => {
  const d = deps(5);
  const hosts = hostsIn(11);
  hosts.forEach((h, i) => h.ewma.observe(i === 0 ? 200 : 10, 0));
  const p = peakEwma(W(hosts), lbConfig('PEAK_EWMA'), d);
  const c = countBy(N, () => p.pick(0), (h) => h);
  t.equal(c.get(hosts[0]!), undefined, 'the 20× slower host is never picked while idle peers are faster');
  const fresh = new TestHost('new:80');
  const withNew = peakEwma(W([...hosts.slice(1), fresh]), lbConfig('PEAK_EWMA'), d);
  let probes = 0;
  for (let i = 0; i < 200; i++) if (withNew.pick(0) === fresh) probes++;
  t.ok(probes > 0, `new host probed ${probes} times while idle`);
  fresh.rqActive = 1;
  t.equal(countBy(200, () => withNew.pick(0), (h) => h).get(fresh), undefined, 'not flooded while its first request is in flight');
});
