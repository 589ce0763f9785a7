// The EDF scheduler (weight shares, ties, zero weights) and the 53-bit hash (range, spread, request hashing).
import t from 'tap';
import { EdfScheduler } from '../../../src/upstream/lb/edf.js';
import { hash53, randomHash, requestHash } from '../../../src/upstream/lb/hash.js';
import { seededRng } from '../../../src/core/rng.js';

t.test('EDF: shares follow weights, ties go in insertion order, zero weights never come up', async (t) => {
  const w = [3, 1, 0, 2];
  const edf = new EdfScheduler(w.length, (i) => w[i]!);
  const seq = Array.from({ length: 12 }, () => edf.pick());
  t.strictSame([0, 1, 2, 3].map((i) => seq.filter((x) => x === i).length), [6, 2, 0, 4]);
  t.equal(seq[0], 0, 'the heaviest entry is due first');
  const eq = new EdfScheduler(3, () => 1);
  t.strictSame(Array.from({ length: 6 }, () => eq.pick()), [0, 1, 2, 0, 1, 2], 'equal weights: insertion order');
  t.equal(new EdfScheduler(2, () => 0).empty, true);
  t.equal(eq.empty, false);
});

t.test('hash53: integers in [0, 2^53), seeds give independent functions, bits spread', async (t) => {
  const hs = Array.from({ length: 2000 }, (_, i) => hash53(`10.0.0.${i}:80`));
  t.ok(hs.every((h) => Number.isInteger(h) && h >= 0 && h < 2 ** 53));
  t.equal(new Set(hs).size, hs.length, 'no collisions');
  t.not(hash53('a', 0), hash53('a', 1));
  t.equal(hash53('a'), hash53('a'), 'deterministic');
  // Top bit set about half the time: the high lane is mixed, not just the low 32 bits.
  const top = hs.filter((h) => h >= 2 ** 52).length;
  t.ok(Math.abs(top - 1000) < 5 * Math.sqrt(500), `top bit set ${top} of 2000`);
  // Mod 100 (the priority choice) is uniform enough: every bucket within 5σ.
  const buckets = new Array(100).fill(0);
  for (let i = 0; i < 100_000; i++) buckets[hash53(`k${i}`) % 100]++;
  t.ok(buckets.every((b) => Math.abs(b - 1000) < 5 * Math.sqrt(990)), 'hash mod 100 is uniform');
});

t.test('requestHash: stable per values, order and boundaries matter, nothing extracted = no hash', async (t) => {
  t.equal(requestHash([]), undefined);
  t.equal(requestHash(['user-1']), requestHash(['user-1']));
  t.not(requestHash(['a', 'b']), requestHash(['b', 'a']));
  t.not(requestHash(['ab', 'c']), requestHash(['a', 'bc']));
  t.not(requestHash(['x']), hash53('x'), 'a separate seed from host positions');
  const r = randomHash(seededRng(1).next);
  t.ok(Number.isInteger(r) && r >= 0 && r < 2 ** 53);
});
