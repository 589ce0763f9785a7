// Tallies: hot-path counting without prom-client's per-inc label hashing, caught up when the counter is collected.
import t from 'tap';
import { Registry } from 'prom-client';
import { Tallies } from '../../src/telemetry/metrics.js';

t.test('Tallies: plain numbers on the hot path, added to the counter when it is collected, per label tuple', async (t) => {
  const registry = new Registry();
  const c = new Tallies({ name: 'x_total', help: 'x', labelNames: ['a', 'b'] as const, registers: [registry] });
  const one = c.tally({ a: '1', b: 'x' });
  t.equal(c.tally({ a: '1', b: 'x' }), one, 'the same tally for the same labels');
  const two = c.tally({ a: '2', b: 'x' });
  one.n += 3;
  two.n++;
  const values = async () => Object.fromEntries((await c.counter.get()).values.map((v) => [String(v.labels.a), v.value]));
  t.strictSame(await values(), { 1: 3, 2: 1 });
  one.n++;
  t.strictSame(await values(), { 1: 4, 2: 1 }, 'each collection adds only what came since the last');
  t.match(await registry.metrics(), /x_total\{a="1",b="x"\} 4/, 'a scrape collects too');
});
