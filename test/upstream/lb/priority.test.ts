// Envoy's priority load, panic and locality effective weight, against the tables in Envoy's architecture docs
// (priority levels, panic threshold, locality weighted load balancing) and Envoy's own unit tests.
import t from 'tap';
import { levelHealth, localityEffectiveWeight, priorityLoad } from '../../../src/upstream/lb/priority.js';

/** A level with `pct` % of 100 hosts available (or explicit counts). */
const lvl = (available: number, total = 100) => ({ total, available });
const loads = (levels: { total: number; available: number }[], panic = 50) => priorityLoad(levels, 140, panic).load;

t.test('health = min(100, 1.4 × available %), in whole percent', async (t) => {
  t.equal(levelHealth(lvl(80), 140), 100);
  t.equal(levelHealth(lvl(72), 140), 100);
  t.equal(levelHealth(lvl(71), 140), 99, '71 × 1.4 = 99.4');
  t.equal(levelHealth(lvl(50), 140), 70);
  t.equal(levelHealth(lvl(0), 140), 0);
  t.equal(levelHealth(lvl(0, 0), 140), 0, 'an empty level has no health');
  t.equal(levelHealth(lvl(50), 100), 50, 'overprovisioning factor 1.0');
});

t.test('priority levels doc: P0 at 100/72/71/50/25/0 % healthy, P1 healthy', async (t) => {
  const rows: [number, number, number][] = [
    [100, 100, 0],
    [72, 100, 0],
    [71, 99, 1],
    [50, 70, 30],
    [25, 35, 65],
    [0, 0, 100],
  ];
  for (const [p0, to0, to1] of rows) t.strictSame(loads([lvl(p0), lvl(100)]), [to0, to1], `P0 ${p0}% healthy`);
});

t.test('priority levels doc: both levels degrade (normalized total health)', async (t) => {
  t.strictSame(loads([lvl(100), lvl(100)]), [100, 0]);
  t.strictSame(loads([lvl(72), lvl(72)]), [100, 0]);
  t.strictSame(loads([lvl(71), lvl(71)]), [99, 1]);
  t.strictSame(loads([lvl(50), lvl(50)]), [70, 30]);
  t.strictSame(loads([lvl(25), lvl(100)]), [35, 65]);
  t.strictSame(loads([lvl(25), lvl(25)]), [50, 50], 'health {35, 35} normalized by 70');
});

t.test('priority levels doc: three levels', async (t) => {
  t.strictSame(loads([lvl(100), lvl(100), lvl(100)]), [100, 0, 0]);
  t.strictSame(loads([lvl(72), lvl(72), lvl(100)]), [100, 0, 0]);
  t.strictSame(loads([lvl(71), lvl(71), lvl(100)]), [99, 1, 0]);
  t.strictSame(loads([lvl(50), lvl(50), lvl(100)]), [70, 30, 0]);
  t.strictSame(loads([lvl(25), lvl(100), lvl(100)]), [35, 65, 0]);
  t.strictSame(loads([lvl(25), lvl(25), lvl(100)]), [35, 35, 30]);
  // The doc's last row (25/25/20 → 36/36/28) rounds each share; Envoy's code floors each share and gives the
  // integer remainder to the first healthy level: health {35, 35, 28}, total 98 → ⌊35.7⌋, ⌊35.7⌋, ⌊28.6⌋ + 2
  // to P0. With panic on (default 50 %) all three are in panic instead (next test).
  t.strictSame(loads([lvl(25), lvl(25), lvl(20)], 0), [37, 35, 28]);
});

t.test('panic threshold doc: panic only below a 100 % normalized total, per level', async (t) => {
  const row = (p0: number, p1: number) => priorityLoad([lvl(p0), lvl(p1)], 140, 50);
  for (const p0 of [72, 71, 50, 25, 0]) {
    const r = row(p0, 100);
    t.equal(r.normalizedTotalHealth, 100, `P1 healthy covers P0 at ${p0}%`);
    t.strictSame(r.panic, [false, false], `no panic with P0 at ${p0}%`);
  }
  t.strictSame(row(72, 72).panic, [false, false]);
  t.strictSame(row(71, 71).load, [99, 1]);
  const both = row(25, 25);
  t.strictSame([both.load, both.panic, both.normalizedTotalHealth], [[50, 50], [true, true], 70], '25 % / 25 %: 50/50, both in panic, total 70');
  const five = row(5, 65);
  t.strictSame([five.panic, five.normalizedTotalHealth], [[true, false], 98], '5 % / 65 %: P0 panics, P1 does not, total 98');
  // The doc prints 7/93; Envoy's code floors 7·100/98 = 7 and 91·100/98 = 92 and gives the remainder 1 to P0.
  t.strictSame(five.load, [8, 92]);
});

t.test("Envoy's GentleFailoverWithExtraLevels: total panic follows host counts", async (t) => {
  t.strictSame(priorityLoad([lvl(1, 5), lvl(1, 5), lvl(1, 5)], 140, 50), { health: [28, 28, 28], load: [34, 33, 33], panic: [true, true, true], normalizedTotalHealth: 84 });
  t.strictSame(loads([lvl(0, 5), lvl(0, 5), lvl(5, 5)]), [0, 0, 100]);
  t.strictSame(priorityLoad([lvl(0, 5), lvl(0, 5), lvl(4, 5)], 140, 50).panic, [false, false, false]);
  t.strictSame(loads([lvl(0, 5), lvl(0, 5), lvl(2, 5)]), [34, 33, 33], 'all in panic: by host count');
  t.strictSame(loads([lvl(0, 5), lvl(0, 3), lvl(0, 2)]), [50, 30, 20], 'nothing available: by host count');
  t.strictSame(loads([lvl(0, 5), lvl(2, 6), lvl(1, 3)]), [37, 42, 21], 'remainder to P0');
  t.strictSame(loads([lvl(0, 0), lvl(0, 6), lvl(0, 3)]), [0, 67, 33], 'remainder to the first non-empty level');
});

t.test('panic threshold 0: never panic; nothing available puts the load on P0 (no host to pick)', async (t) => {
  t.strictSame(priorityLoad([lvl(0, 5), lvl(0, 5)], 140, 0), { health: [0, 0], load: [100, 0], panic: [false, false], normalizedTotalHealth: 0 });
  t.strictSame(priorityLoad([lvl(1, 5), lvl(1, 5)], 140, 0).panic, [false, false]);
  t.strictSame(priorityLoad([], 140, 50).load, [], 'no levels');
  t.strictSame(priorityLoad([lvl(0, 0)], 140, 50).load, [100], 'one empty level');
});

t.test('locality weight doc: X weight 1, Y weight 2 (Y fully available)', async (t) => {
  const share = (xAvailable: number) => {
    const x = localityEffectiveWeight(1, lvl(xAvailable), 140);
    const y = localityEffectiveWeight(2, lvl(100), 140);
    return Math.round((100 * x) / (x + y));
  };
  const rows: [number, number][] = [
    [100, 33],
    [70, 33],
    [69, 32],
    [50, 26],
    [25, 15],
    [0, 0],
  ];
  for (const [avail, toX] of rows) t.equal(share(avail), toX, `X ${avail}% available → ${toX}% (Y ${100 - toX}%)`);
});
