import t from 'tap';
import { FakeClock } from '../../src/core/clock.js';
import { seededRng } from '../../src/core/rng.js';
import { OUTLIER_DEFAULTS } from '../../src/model/types.js';
import { OutlierDetector, httpStatusForGrpc } from '../../src/upstream/outlier.js';
import { respond, setup } from './outlier-fixture.js';

const C = { cluster: 'outbound|80||svc' };
const EJECTIONS = 'outrigger_outlier_ejections_total';
const DETECTED = 'outrigger_outlier_ejections_detected_total';
const ACTIVE = 'outrigger_outlier_ejections_active';
const OVERFLOW = 'outrigger_outlier_ejections_overflow_total';

t.test('consecutive_5xx ejects on exactly the 5th 5xx in a row, at once, and says so', async (t) => {
  const f = setup();
  const h = f.hosts[0]!;
  respond(f.d, h, 500, 4);
  t.equal(h.ejected, false, 'not on the 4th');
  t.equal(f.d.view(h)?.consecutive5xx, 4);
  respond(f.d, h, 501);
  t.equal(h.ejected, true, 'on the 5th, before any interval');
  t.equal(f.changes(), 1, 'balancer told');
  t.equal(f.d.ejectionsActive, 1);
  t.match(f.d.view(h), { ejected: true, detector: 'consecutive_5xx', timesEjected: 1, ejectionMs: 30_000, consecutive5xx: 0 });
  t.equal(await f.value(EJECTIONS, { ...C, detector: 'consecutive_5xx' }), 1);
  t.equal(await f.value(DETECTED, { ...C, detector: 'consecutive_5xx' }), 1);
  t.equal(await f.value(ACTIVE, C), 1);
  t.same(f.ejected(), [0], 'no other host touched');
});

t.test('a non-5xx in between resets the run (4xx included)', async (t) => {
  const f = setup();
  const h = f.hosts[1]!;
  respond(f.d, h, 503, 4);
  respond(f.d, h, 200);
  respond(f.d, h, 500, 4);
  respond(f.d, h, 404);
  respond(f.d, h, 500, 4);
  t.equal(h.ejected, false);
  respond(f.d, h, 500);
  t.equal(h.ejected, true);
});

t.test('consecutive_gateway_failure counts 502/503/504 only and is detect-only by default', async (t) => {
  const f = setup({ consecutive5xx: 0 });
  const h = f.hosts[0]!;
  respond(f.d, h, 502, 5);
  t.equal(h.ejected, false, 'enforcing_consecutive_gateway_failure defaults to 0');
  t.equal(await f.value(DETECTED, { ...C, detector: 'consecutive_gateway_failure' }), 1, 'but detected');
  t.equal(await f.value(EJECTIONS, { ...C, detector: 'consecutive_gateway_failure' }), 0);
  t.equal(f.changes(), 0);

  const g = setup({ consecutive5xx: 0, consecutiveGatewayFailure: 3, enforcingConsecutiveGatewayFailure: 100 });
  const x = g.hosts[0]!;
  respond(g.d, x, 503, 2);
  respond(g.d, x, 500); // a 5xx that is not a gateway error breaks the run
  respond(g.d, x, 504, 2);
  t.equal(x.ejected, false);
  respond(g.d, x, 502);
  t.match(g.d.view(x), { ejected: true, detector: 'consecutive_gateway_failure' });
});

t.test('with Envoy defaults a 503 storm is detected by both, ejected by consecutive_5xx', async (t) => {
  const f = setup();
  const h = f.hosts[0]!;
  respond(f.d, h, 503, 5);
  t.match(f.d.view(h), { ejected: true, detector: 'consecutive_5xx' });
  t.equal(await f.value(DETECTED, { ...C, detector: 'consecutive_gateway_failure' }), 1);
  t.equal(await f.value(EJECTIONS, { ...C, detector: 'consecutive_5xx' }), 1);
  respond(f.d, h, 503, 20);
  t.equal(await f.value(DETECTED, { ...C, detector: 'consecutive_5xx' }), 1, 'an ejected host is not judged again');
});

t.test('a threshold of 0 disables the detector, as in Envoy', async (t) => {
  const f = setup({ consecutive5xx: 0, consecutiveGatewayFailure: 0, enforcingConsecutiveGatewayFailure: 100 });
  respond(f.d, f.hosts[0]!, 503, 50);
  t.equal(f.hosts[0]!.ejected, false);
});

t.test('ejection time is base × times ejected, up to max; un-ejection happens at the interval sweep', async (t) => {
  const f = setup({ maxEjectionTimeMs: 70_000, maxEjectionPercent: 100 });
  const h = f.hosts[0]!;
  const ejectAndTime = (): number => {
    f.clock.advance(1_000); // one second after a sweep
    respond(f.d, h, 500, 5);
    t.equal(h.ejected, true);
    const start = f.clock.monotonic();
    while (h.ejected) f.clock.advance(1_000);
    return f.clock.monotonic() - start;
  };
  // Sweeps every 10 s: an ejection of 30 s starting 1 s after a sweep ends at the sweep 39 s later.
  t.equal(ejectAndTime(), 39_000, '1st: 30 s');
  t.equal(f.d.view(h)?.ejectionMultiplier, 1);
  t.equal(ejectAndTime(), 69_000, '2nd: 60 s');
  t.equal(ejectAndTime(), 79_000, '3rd: 90 s capped at 70 s');
  t.equal(ejectAndTime(), 79_000, '4th: still 70 s');
  t.equal(f.d.view(h)?.ejectionMultiplier, 4, 'the multiplier stops growing once base × it passes max + base');
  t.equal(f.d.view(h)?.timesEjected, 4);
  t.equal(f.changes(), 8, 'every ejection and every return reached the balancer');
  t.equal(f.d.view(h)?.consecutive5xx, 0);
});

t.test('the multiplier decays by one per interval the host stays healthy after its return', async (t) => {
  const f = setup();
  const h = f.hosts[0]!;
  const eject = (): void => respond(f.d, h, 500, 5);
  f.clock.advance(1_000);
  eject(); // 30 s, back at the 40 s sweep
  f.clock.advance(39_000);
  t.equal(h.ejected, false);
  f.clock.advance(1_000);
  eject(); // at 41 s: multiplier 2, 60 s, back at the 110 s sweep
  t.equal(f.d.view(h)?.ejectionMs, 60_000);
  f.clock.advance(69_000);
  t.equal(h.ejected, false, 'back at 110 s');
  t.equal(f.d.view(h)?.ejectionMultiplier, 2, 'no decay at the sweep that returned it');
  f.clock.advance(10_000);
  t.equal(f.d.view(h)?.ejectionMultiplier, 1, 'one healthy interval');
  f.clock.advance(1_000);
  eject(); // at 121 s: 1 → 2, 60 s again
  t.equal(f.d.view(h)?.ejectionMs, 60_000);
  f.clock.advance(69_000); // back at 190 s
  f.clock.advance(20_000);
  t.equal(f.d.view(h)?.ejectionMultiplier, 0, 'two healthy intervals');
  f.clock.advance(1_000);
  eject();
  t.equal(f.d.view(h)?.ejectionMs, 30_000, 'back to base_ejection_time');
});

t.test('max_ejection_time_jitter adds a seeded random delay of up to the jitter', async (t) => {
  const jitter = 5_000;
  const expected = seededRng(7).int(jitter + 1); // consecutive_5xx enforces at 100 %: no draw before the jitter's
  const f = setup({ intervalMs: 100, maxEjectionTimeJitterMs: jitter }, 10, 7);
  const h = f.hosts[0]!;
  respond(f.d, h, 500, 5);
  t.equal(f.d.view(h)?.ejectionMs, 30_000 + expected);
  t.ok(expected > 0 && expected <= jitter);
  const back = Math.ceil((30_000 + expected) / 100) * 100; // the first 100 ms sweep at or after base + jitter
  f.clock.advance(back - 1);
  t.equal(h.ejected, true);
  f.clock.advance(1);
  t.equal(h.ejected, false, 'returned at the first sweep after base + jitter');
});

t.test('max_ejection_percent with 10 hosts: 10 % is one host; overflow is counted and the run restarts', async (t) => {
  const f = setup();
  respond(f.d, f.hosts[0]!, 500, 5);
  respond(f.d, f.hosts[1]!, 500, 5);
  t.same(f.ejected(), [0]);
  t.equal(await f.value(OVERFLOW, C), 1);
  t.equal(await f.value(DETECTED, { ...C, detector: 'consecutive_5xx' }), 2);
  respond(f.d, f.hosts[1]!, 500, 4);
  t.equal(await f.value(OVERFLOW, C), 1, 'a refused host needs a fresh run of errors');
  respond(f.d, f.hosts[1]!, 500);
  t.equal(await f.value(OVERFLOW, C), 2);
  f.clock.advance(30_000); // host 0 returns
  t.same(f.ejected(), []);
  respond(f.d, f.hosts[1]!, 500, 5);
  t.same(f.ejected(), [1], 'room again once host 0 is back');

  const g = setup({ maxEjectionPercent: 30 });
  for (const h of g.hosts.slice(0, 5)) respond(g.d, h, 500, 5);
  t.same(g.ejected(), [0, 1, 2], '30 % of 10');
  t.equal(await g.value(ACTIVE, C), 3);
  t.equal(await g.value(OVERFLOW, C), 2);
});

t.test('max_ejection_percent with 3 hosts: one host is always ejectable, even at 0 %', async (t) => {
  for (const maxEjectionPercent of [10, 0]) {
    const f = setup({ maxEjectionPercent }, 3);
    for (const h of f.hosts) respond(f.d, h, 500, 5);
    t.same(f.ejected(), [0], `${maxEjectionPercent} %: the first outlier goes`);
    t.equal(await f.value(OVERFLOW, C), 2);
  }
  const g = setup({ maxEjectionPercent: 70 }, 3);
  for (const h of g.hosts) respond(g.d, h, 500, 5);
  t.same(g.ejected(), [0, 1], '2 of 3 is 66.7 % ≤ 70 %');
  const all = setup({ maxEjectionPercent: 200 }, 3);
  for (const h of all.hosts) respond(all.d, h, 500, 5);
  t.same(all.ejected(), [0, 1, 2], 'above 100 means 100');
});

t.test('enforcement: 0 detects without ejecting, 50 ejects as the seeded rng decides', async (t) => {
  const f = setup({ enforcingConsecutive5xx: 0 });
  respond(f.d, f.hosts[0]!, 500, 5);
  t.same(f.ejected(), []);
  t.equal(await f.value(DETECTED, { ...C, detector: 'consecutive_5xx' }), 1);
  t.equal(await f.value(EJECTIONS, { ...C, detector: 'consecutive_5xx' }), 0);
  t.equal(f.changes(), 0);

  const g = setup({ enforcingConsecutive5xx: 50, maxEjectionPercent: 100 }, 10, 42);
  const rng = seededRng(42);
  const expected = g.hosts.flatMap((_, i) => (rng.int(100) < 50 ? [i] : []));
  for (const h of g.hosts) respond(g.d, h, 500, 5);
  t.same(g.ejected(), expected, 'one draw per detection, in order');
  t.ok(expected.length > 0 && expected.length < 10, 'the seed gives a mix');
  t.equal(await g.value(EJECTIONS, { ...C, detector: 'consecutive_5xx' }), expected.length);
});

t.test('local origin, not split: failures count as 5xx (timeout 504, connect failure/reset 503), connect success does not reset', async (t) => {
  const f = setup();
  const h = f.hosts[0]!;
  f.d.putLocalOrigin(h, 'connect_failed');
  f.d.putLocalOrigin(h, 'timeout');
  f.d.putLocalOrigin(h, 'success'); // Envoy ignores LOCAL_ORIGIN_CONNECT_SUCCESS here: the response reports the outcome
  f.d.putLocalOrigin(h, 'reset');
  respond(f.d, h, 500);
  t.equal(h.ejected, false);
  t.equal(f.d.view(h)?.consecutiveGatewayFailure, 0, 'the 500 broke the gateway run');
  f.d.putLocalOrigin(h, 'timeout');
  t.match(f.d.view(h), { ejected: true, detector: 'consecutive_5xx', consecutiveLocalOriginFailure: 0 });

  const g = setup({ consecutive5xx: 0, enforcingConsecutiveGatewayFailure: 100 });
  for (let i = 0; i < 5; i++) g.d.putLocalOrigin(g.hosts[0]!, i % 2 ? 'timeout' : 'connect_failed');
  t.match(g.d.view(g.hosts[0]!), { ejected: true, detector: 'consecutive_gateway_failure' }, 'local failures are gateway errors');
});

t.test('local origin, split: own counter and detector; HTTP status and local outcomes do not mix', async (t) => {
  const f = setup({ splitExternalLocalOriginErrors: true });
  const h = f.hosts[0]!;
  for (let i = 0; i < 4; i++) f.d.putLocalOrigin(h, 'connect_failed');
  respond(f.d, h, 200); // an external success does not reset the local run
  respond(f.d, h, 500, 4); // nor do external errors add to it
  t.equal(h.ejected, false);
  t.equal(f.d.view(h)?.consecutiveLocalOriginFailure, 4);
  f.d.putLocalOrigin(h, 'timeout');
  t.match(f.d.view(h), { ejected: true, detector: 'consecutive_local_origin_failure', consecutive5xx: 4 });
  t.equal(await f.value(EJECTIONS, { ...C, detector: 'consecutive_local_origin_failure' }), 1);

  const x = f.hosts[1]!;
  for (let i = 0; i < 4; i++) f.d.putLocalOrigin(x, 'reset');
  f.d.putLocalOrigin(x, 'success'); // the connection worked: the local run restarts
  for (let i = 0; i < 4; i++) f.d.putLocalOrigin(x, 'reset');
  t.equal(x.ejected, false);
  t.equal(f.d.view(x)?.consecutive5xx, 0, 'local failures are not 5xx in split mode');

  const g = setup({ splitExternalLocalOriginErrors: true, enforcingConsecutiveLocalOriginFailure: 0 });
  for (let i = 0; i < 5; i++) g.d.putLocalOrigin(g.hosts[0]!, 'connect_failed');
  t.equal(g.hosts[0]!.ejected, false);
  t.equal(await g.value(DETECTED, { ...C, detector: 'consecutive_local_origin_failure' }), 1);
});

t.test('hosts outlive config versions: state follows the host object; removed hosts are forgotten', async (t) => {
  const f = setup({ maxEjectionPercent: 100 }, 3);
  const [a, b, c] = f.hosts as [(typeof f.hosts)[0], (typeof f.hosts)[0], (typeof f.hosts)[0]];
  respond(f.d, a, 500, 4);
  respond(f.d, b, 500, 5);
  const d = { hostPort: '10.0.0.9:80', ejected: true }; // a stale flag on a newcomer is cleared
  f.d.setHosts([a, b, d]);
  t.equal(d.ejected, false);
  t.equal(f.d.view(c), undefined, 'c is gone');
  f.d.putHttpStatus(c, 500); // a late answer from a removed host is ignored
  f.d.putLocalOrigin(c, 'timeout');
  respond(f.d, a, 500);
  t.equal(a.ejected, true, 'a kept its run of 4 across the update');
  t.equal(f.d.ejectionsActive, 2);
  f.d.setHosts([a, d]);
  t.equal(b.ejected, false, 'a removed ejected host loses its flag');
  t.equal(f.d.ejectionsActive, 1);
  t.equal(await f.value(ACTIVE, C), 1);
});

t.test('update(): new thresholds apply to runs in progress; a new interval re-arms the sweep', async (t) => {
  const f = setup();
  const h = f.hosts[0]!;
  respond(f.d, h, 500, 4);
  f.d.update({ ...OUTLIER_DEFAULTS, consecutive5xx: 3 });
  respond(f.d, h, 500);
  t.equal(h.ejected, true, 'the 5th error is past the new threshold of 3');
  f.d.update({ ...OUTLIER_DEFAULTS, consecutive5xx: 3, intervalMs: 1_000, baseEjectionTimeMs: 2_000 });
  f.clock.advance(2_000);
  t.equal(h.ejected, false, 'the 1 s sweep returned it after the new 2 s base');
  t.equal(f.clock.pending(), 1, 'one timer');
});

t.test('destroy(): timer stopped, hosts back in service, gauge gone', async (t) => {
  const f = setup();
  respond(f.d, f.hosts[0]!, 500, 5);
  f.d.destroy();
  t.equal(f.hosts[0]!.ejected, false);
  t.equal(f.clock.pending(), 0);
  t.equal(f.d.view(f.hosts[0]!), undefined);
  t.equal(f.d.ejectionsActive, 0);
  t.notMatch(await f.registry.metrics(), /outrigger_outlier_ejections_active\{/);
  f.d.destroy(); // idempotent
});

t.test('a detector without metrics works the same', async (t) => {
  let changes = 0;
  const d = new OutlierDetector('c', OUTLIER_DEFAULTS, { clock: new FakeClock(), rng: seededRng(1), onChange: () => changes++ });
  const h = { hostPort: 'a:1', ejected: false };
  const other = { hostPort: 'b:1', ejected: false };
  d.setHosts([h, other]);
  respond(d, h, 500, 5);
  respond(d, other, 500, 5);
  t.equal(h.ejected, true);
  t.equal(other.ejected, false, 'overflow without a counter');
  t.equal(changes, 1);
  d.destroy();
});

t.test('gRPC statuses map to the HTTP codes Envoy reports for them', async (t) => {
  t.equal(httpStatusForGrpc(0), 200);
  t.equal(httpStatusForGrpc(4), 504, 'DEADLINE_EXCEEDED is a gateway error');
  t.equal(httpStatusForGrpc(14), 503, 'UNAVAILABLE is a gateway error');
  t.equal(httpStatusForGrpc(13), 500);
  t.equal(httpStatusForGrpc(5), 404);
  t.equal(httpStatusForGrpc(16), 401);
  t.equal(httpStatusForGrpc(99), 500, 'unknown codes are 500');
});
