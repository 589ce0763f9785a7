// PeakEwma: peak on slower samples, time-weighted decay towards faster ones, decay on read, unobserved cost.
import t from 'tap';
import { PeakEwma, UNOBSERVED_PENALTY } from '../../../src/upstream/lb/peak-ewma.js';

const close = (a: number, b: number) => Math.abs(a - b) < 1e-9;

t.test('the first sample sets the estimate; a slower one replaces it at once', async (t) => {
  const e = new PeakEwma();
  t.equal(e.observed, false);
  t.equal(e.estimate(0), 0);
  e.observe(10, 0);
  t.equal(e.estimate(0), 10);
  e.observe(200, 1);
  t.equal(e.estimate(1), 200, 'the peak, no averaging');
});

t.test('faster samples pull it down with w = exp(-Δt/τ)', async (t) => {
  const e = new PeakEwma(10_000);
  e.observe(100, 0);
  e.observe(10, 10_000); // Δt = τ: w = 1/e
  const w = Math.exp(-1);
  t.ok(close(e.estimate(10_000), 100 * w + 10 * (1 - w)), `${e.estimate(10_000)}`);
  const quick = new PeakEwma(10_000);
  quick.observe(100, 0);
  quick.observe(10, 1); // 1 ms later: the fast sample barely counts
  t.ok(quick.estimate(1) > 99.9);
  const back = new PeakEwma(10_000);
  back.observe(100, 5);
  back.observe(50, 0); // a clock that went backwards counts as Δt = 0
  t.equal(back.estimate(0), 100);
});

t.test('reads decay towards zero without changing the state', async (t) => {
  const e = new PeakEwma(1000);
  e.observe(50, 0);
  t.ok(close(e.estimate(1000), 50 * Math.exp(-1)));
  t.ok(close(e.estimate(1000), 50 * Math.exp(-1)), 'reading twice sees the same value');
  t.ok(close(e.estimate(3000), 50 * Math.exp(-3)));
  t.ok(close(e.cost(3, 1000), 4 * 50 * Math.exp(-1)), 'cost = estimate × (pending + 1)');
});

t.test('unobserved: free while idle (probe it), penalised while a request is in flight', async (t) => {
  const e = new PeakEwma();
  t.equal(e.cost(0, 0), 0);
  t.equal(e.cost(2, 0), UNOBSERVED_PENALTY + 2);
});
