import t from 'tap';
import { successRateThreshold } from '../../src/upstream/outlier.js';
import { setup, traffic, type Fixture } from './outlier-fixture.js';

const C = { cluster: 'outbound|80||svc' };
const EJECTIONS = 'outrigger_outlier_ejections_total';
const DETECTED = 'outrigger_outlier_ejections_detected_total';
// The consecutive detectors are off here (threshold 0) so that only the interval sweep judges.
const RATES_ONLY = { consecutive5xx: 0, consecutiveGatewayFailure: 0, consecutiveLocalOriginFailure: 0 };

/** One interval of traffic, `ok` successes out of `total` per host, then the sweep that judges it. */
function interval(f: Fixture, ok: readonly number[], total: readonly number[] | number): void {
  ok.forEach((n, i) => traffic(f.d, f.hosts[i]!, n, typeof total === 'number' ? total : total[i]!));
  f.clock.advance(10_000);
}

t.test("the threshold is mean − factor × stdev (Envoy's worked example)", async (t) => {
  t.same(successRateThreshold([50, 100, 100, 100, 100], 1.9), { average: 90, threshold: 52 });
  const r = successRateThreshold([60, 80, 100, 100, 100, 100, 100, 100, 100, 100], 1.9);
  // mean 94; squared deviations 1156 + 196 + 8 × 36 = 1640; variance 164; stdev 12.806…
  t.equal(r.average, 94);
  t.ok(Math.abs(r.threshold - (94 - 1.9 * Math.sqrt(164))) < 1e-9);
  t.ok(Math.abs(r.threshold - 69.668) < 1e-3);
});

t.test('success rate ejects the hosts below mean − 1.9 stdev at the sweep, not before', async (t) => {
  const f = setup({ ...RATES_ONLY }, 10);
  const ok = [60, 80, 100, 100, 100, 100, 100, 100, 100, 100];
  ok.forEach((n, i) => traffic(f.d, f.hosts[i]!, n, 100));
  f.clock.advance(9_999);
  t.same(f.ejected(), [], 'nothing until the interval ends');
  f.clock.advance(1);
  t.same(f.ejected(), [0], '60 % < 69.67 %; 80 % is not');
  t.match(f.d.view(f.hosts[0]!), { ejected: true, detector: 'success_rate', successRate: 60 });
  t.equal(f.d.view(f.hosts[1]!)?.successRate, 80);
  t.equal(f.d.clusterView().successRateAverage, 94);
  t.ok(Math.abs(f.d.clusterView().successRateEjectionThreshold! - 69.668) < 1e-3);
  t.equal(f.changes(), 1, 'one refresh for the sweep');
  t.equal(await f.value(EJECTIONS, { ...C, detector: 'success_rate' }), 1);
});

t.test('the stdev factor decides at the boundary: 50 vs mean 90 − 2.0 × 20 = 50 is not below', async (t) => {
  const cases: [number, number[]][] = [
    [1900, [0]],
    [2000, []],
    [2100, []],
  ];
  for (const [successRateStdevFactor, want] of cases) {
    const f = setup({ ...RATES_ONLY, successRateStdevFactor, maxEjectionPercent: 100 }, 5);
    interval(f, [50, 100, 100, 100, 100], 100);
    t.same(f.ejected(), want, `factor ${successRateStdevFactor}`);
    t.equal(f.d.clusterView().successRateEjectionThreshold, 90 - (successRateStdevFactor / 1000) * 20);
  }
});

t.test('success_rate_request_volume and success_rate_minimum_hosts gate the computation', async (t) => {
  const f = setup({ ...RATES_ONLY }, 5);
  interval(f, [0, 99, 99, 99, 99], [100, 99, 99, 99, 99]);
  t.same(f.ejected(), [], 'only one host with 100 requests: fewer than 5');
  t.equal(f.d.clusterView().successRateAverage, undefined);
  t.equal(f.d.view(f.hosts[1]!)?.successRate, 100, 'still shown: 99 ≥ failure_percentage_request_volume (50)');
  interval(f, [], 0);
  t.equal(f.d.view(f.hosts[1]!)?.successRate, undefined, 'a quiet interval clears it');

  const g = setup({ ...RATES_ONLY, successRateMinimumHosts: 3 }, 5);
  interval(g, [10, 100, 100, 100, 50], [100, 100, 100, 100, 10]);
  // Judged hosts: 10, 100, 100, 100 (host 4 has 10 requests): mean 77.5, stdev 38.97, threshold 3.46.
  t.same(g.ejected(), [], 'host 0 at 10 % is above 3.46 %');
  t.equal(g.d.clusterView().successRateAverage, 77.5);

  const few = setup({ ...RATES_ONLY }, 4);
  interval(few, [0, 100, 100, 100], 100);
  t.same(few.ejected(), [], 'a cluster smaller than both minimums is not judged');
});

t.test('only the last interval counts, and an ejected host is not judged', async (t) => {
  const f = setup({ ...RATES_ONLY, maxEjectionPercent: 100 }, 5);
  interval(f, [50, 100, 100, 100, 100], 100);
  t.same(f.ejected(), [0]);
  interval(f, [50, 100, 100, 100, 100], 100);
  t.same(f.ejected(), [0], 'still ejected, not judged again');
  t.equal(await f.value(DETECTED, { ...C, detector: 'success_rate' }), 1);
  t.equal(f.d.clusterView().successRateAverage, undefined, 'four judged hosts are fewer than the minimum of 5');
});

t.test('enforcing_success_rate 0 detects without ejecting', async (t) => {
  const f = setup({ ...RATES_ONLY, enforcingSuccessRate: 0 }, 5);
  interval(f, [50, 100, 100, 100, 100], 100);
  t.same(f.ejected(), []);
  t.equal(await f.value(DETECTED, { ...C, detector: 'success_rate' }), 1);
  t.equal(await f.value(EJECTIONS, { ...C, detector: 'success_rate' }), 0);
  t.equal(f.changes(), 0);
});

t.test('failure percentage: detect-only by default; ejects at ≥ threshold when enforced', async (t) => {
  // 50 requests each: failure_percentage_request_volume (50) is met, success_rate_request_volume (100) is not.
  const f = setup({ ...RATES_ONLY }, 5);
  interval(f, [7, 8, 50, 50, 50], 50);
  t.same(f.ejected(), [], 'enforcing_failure_percentage defaults to 0');
  t.equal(await f.value(DETECTED, { ...C, detector: 'failure_percentage' }), 1, '86 % failures detected, 84 % not');

  const g = setup({ ...RATES_ONLY, enforcingFailurePercentage: 100, maxEjectionPercent: 100 }, 5);
  interval(g, [7, 8, 50, 50, 50], 50);
  t.same(g.ejected(), [0]);
  t.match(g.d.view(g.hosts[0]!), { detector: 'failure_percentage', successRate: 14 });
  t.equal(g.d.clusterView().successRateAverage, undefined, 'success rate was not computed');

  const exact = setup({ ...RATES_ONLY, enforcingFailurePercentage: 100, failurePercentageThreshold: 50 }, 5);
  interval(exact, [25, 50, 50, 50, 50], 50);
  t.same(exact.ejected(), [0], 'exactly the threshold ejects');

  const few = setup({ ...RATES_ONLY, enforcingFailurePercentage: 100 }, 5);
  interval(few, [0, 50, 50, 50, 49], [50, 50, 50, 50, 49]);
  t.same(few.ejected(), [], 'four hosts with volume: fewer than failure_percentage_minimum_hosts');
});

t.test('success rate and failure percentage in one sweep: a host is ejected once', async (t) => {
  const f = setup({ ...RATES_ONLY, enforcingFailurePercentage: 100, maxEjectionPercent: 100 }, 5);
  interval(f, [0, 100, 100, 100, 100], 100);
  t.same(f.ejected(), [0]);
  t.equal(f.d.ejectionsActive, 1);
  t.equal(await f.value(EJECTIONS, { ...C, detector: 'success_rate' }), 1);
  t.equal(await f.value(EJECTIONS, { ...C, detector: 'failure_percentage' }), 0);
});

t.test('max_ejection_percent also bounds the sweep', async (t) => {
  const f = setup({ ...RATES_ONLY, enforcingFailurePercentage: 100 }, 10);
  interval(f, [0, 0, 0, 50, 50, 50, 50, 50, 50, 50], 50);
  t.same(f.ejected(), [0]);
  t.equal(await f.value('outrigger_outlier_ejections_overflow_total', C), 2);
});

/** `ok` local successes out of `total` outcomes per host (connect failures for the rest). */
function localInterval(f: Fixture, ok: readonly number[], total: number): void {
  ok.forEach((n, i) => {
    for (let k = 0; k < total; k++) f.d.putLocalOrigin(f.hosts[i]!, k < n ? 'success' : 'connect_failed');
  });
  f.clock.advance(10_000);
}

t.test('split: local-origin success rate and failure percentage, apart from the external ones', async (t) => {
  const f = setup({ ...RATES_ONLY, splitExternalLocalOriginErrors: true }, 5);
  localInterval(f, [50, 100, 100, 100, 100], 100);
  t.same(f.ejected(), [0]);
  t.match(f.d.view(f.hosts[0]!), { detector: 'success_rate_local_origin', localOriginSuccessRate: 50 });
  t.equal(f.d.view(f.hosts[0]!)?.successRate, undefined, 'no external traffic');
  t.match(f.d.clusterView(), { localOriginSuccessRateAverage: 90, localOriginSuccessRateEjectionThreshold: 52 });
  t.equal(await f.value(EJECTIONS, { ...C, detector: 'success_rate_local_origin' }), 1);

  const g = setup({ ...RATES_ONLY, splitExternalLocalOriginErrors: true, enforcingLocalOriginSuccessRate: 0, enforcingFailurePercentageLocalOrigin: 100 }, 5);
  localInterval(g, [5, 50, 50, 50, 50], 50);
  t.same(g.ejected(), [0]);
  t.match(g.d.view(g.hosts[0]!), { detector: 'failure_percentage_local_origin' });

  const notSplit = setup({ ...RATES_ONLY }, 5);
  localInterval(notSplit, [50, 100, 100, 100, 100], 100);
  t.same(notSplit.ejected(), [], 'without the split, connect successes are not counted: 50 of 50 external answers failed…');
  t.match(notSplit.d.view(notSplit.hosts[0]!), { successRate: 0 }, '…and judged as 503s');
  t.equal(notSplit.d.clusterView().localOriginSuccessRateAverage, undefined);
});
