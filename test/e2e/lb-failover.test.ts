// The balancer across "clouds" on real sockets: a caller in aws/us-east-1a with endpoints in its own zone (P0),
// the other zone of its region (P1) and another cloud (P2), each behind a relay that adds that distance.
// Steady state stays in the zone; a dying zone is ejected and traffic fails over zone → region → cloud, with
// no failed request when one retry may go to another priority; ejected hosts come back after
// base_ejection_time; max_ejection_percent and panic behave as Envoy documents.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { seededRng } from '../../src/core/rng.js';
import { AccessLog } from '../../src/telemetry/access-log.js';
import { drive, startFaultyUpstream, startLatencyRelay, startLocalitySidecar, type FaultyUpstream, type LocalityGroup } from '../helpers/lb-harness.js';
import { waitFor } from '../helpers/tools.js';

const PREVIOUS_HOSTS = { name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } };
const PREVIOUS_PRIORITIES = { name: 'envoy.retry_priorities.previous_priorities', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig', update_frequency: 1 } };

interface Cloud {
  zoneA: FaultyUpstream[];
  zoneB: FaultyUpstream[];
  other: FaultyUpstream[];
  groups: LocalityGroup[];
}

/** Two hosts per locality; distance: 0 in-zone (one loop turn), 2 ms cross-zone, 30 ms cross-cloud. */
async function cloud(t: Test): Promise<Cloud> {
  const make = (prefix: string) => Promise.all([1, 2].map((i) => startFaultyUpstream(`${prefix}${i}`)));
  const [zoneA, zoneB, other] = await Promise.all([make('a'), make('b'), make('g')]);
  const all = [...zoneA, ...zoneB, ...other];
  t.teardown(() => Promise.all(all.map((u) => u.close())));
  const relays = async (ups: FaultyUpstream[], ms: number) => {
    const rs = await Promise.all(ups.map((u) => startLatencyRelay(u.port, ms)));
    t.teardown(() => Promise.all(rs.map((r) => r.close())));
    return rs.map((r) => r.port);
  };
  const groups: LocalityGroup[] = [
    { region: 'aws-us-east-1', zone: 'us-east-1a', priority: 0, ports: await relays(zoneA, 0) },
    { region: 'aws-us-east-1', zone: 'us-east-1b', priority: 1, ports: await relays(zoneB, 2) },
    { region: 'gcp-us-east4', zone: 'us-east4-a', priority: 2, ports: await relays(other, 30) },
  ];
  return { zoneA, zoneB, other, groups };
}

const OUTLIER = { consecutive_5xx: 3, interval: '0.1s', base_ejection_time: '0.5s', max_ejection_percent: 100 };
const served = (r: { byServer: Record<string, number> }, prefix: string) => Object.entries(r.byServer).reduce((n, [k, v]) => n + (k.startsWith(prefix) ? v : 0), 0);

t.test('steady state: with everything healthy every request stays in the caller zone; the access log names it', async (t) => {
  const c = await cloud(t);
  const file = path.join(t.testdir(), 'access.log');
  const log = new AccessLog({ target: file, sampleRate: 1 }, seededRng(1));
  const s = await startLocalitySidecar(c.groups, { outlier_detection: OUTLIER }, {}, log);
  t.teardown(() => s.shutdown());
  const r = await drive(s.port('outbound'), 500, { concurrency: 4 });
  t.strictSame(r.failures, []);
  t.ok(served(r, 'a') / 500 >= 0.99, `${served(r, 'a')} of 500 in zone`);
  await log.flush();
  const entries = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { upstream_locality: string; upstream_cluster: string });
  t.equal(entries.length, 500);
  t.ok(entries.every((e) => e.upstream_locality === 'aws-us-east-1/us-east-1a/' && e.upstream_cluster === 'backend'), 'every line names the chosen host locality');
});

t.test('the local zone stops accepting connections: connect failures eject it (local origin) and the region takes over', async (t) => {
  const c = await cloud(t);
  const s = await startLocalitySidecar(c.groups, { outlier_detection: { ...OUTLIER, base_ejection_time: '60s' } });
  t.teardown(() => s.shutdown());
  await Promise.all(c.zoneA.map((u) => u.stopAccepting()));
  const r = await drive(s.port('outbound'), 100, { concurrency: 1 });
  t.equal(r.failures.length, 6, 'consecutive_5xx x 2 endpoints: connect failures count as 5xx when origins are not split');
  t.ok(r.failures.every((f) => f.startsWith('503')), 'each a 503 from the sidecar (UF)');
  t.equal(served(r, 'b'), 94, 'the rest went to the other zone of the region');
});

t.test('the local zone fails: ejected after consecutive_5xx each, traffic moves to the region, then to the other cloud', async (t) => {
  const c = await cloud(t);
  // Ejections outlast the test here, so every failure counted is part of a switch.
  const s = await startLocalitySidecar(c.groups, { outlier_detection: { ...OUTLIER, base_ejection_time: '60s' } });
  t.teardown(() => s.shutdown());
  const port = s.port('outbound');
  for (const u of c.zoneA) u.mode = 'fail';
  // One request at a time, so the count is exact: each failing host answers consecutive_5xx = 3 errors,
  // then it is ejected; the bound is consecutive_5xx × endpoints.
  const zoneDown = await drive(port, 200, { concurrency: 1 });
  t.equal(zoneDown.failures.length, 6, 'exactly consecutive_5xx x 2 endpoints failed');
  t.ok(served(zoneDown, 'b') >= 190, `then the other zone of the region answered (${served(zoneDown, 'b')})`);
  t.equal(served(zoneDown, 'g'), 0, 'nothing crossed clouds while the region could answer');

  for (const u of c.zoneB) u.mode = 'fail';
  const regionDown = await drive(port, 60, { concurrency: 1 });
  t.equal(regionDown.failures.length, 6, 'the second zone cost consecutive_5xx x 2 endpoints too');
  t.equal(served(regionDown, 'g'), 54, 'then the other cloud answered the rest');
  const text = await (await fetch(`${s.adminUrl}/clusters`)).text();
  t.match(text, /backend::priority_2::load::100\n/, '/clusters shows all load on P2');
  t.match(text, /::health_flags::\/failed_outlier_check\n/, 'and the ejected hosts');
  const metrics = await (await fetch(`${s.adminUrl}/stats/prometheus`)).text();
  t.match(metrics, /outrigger_outlier_ejections_total\{cluster="backend",detector="consecutive_5xx"\} 4/);
  t.match(metrics, /outrigger_upstream_requests_total\{cluster="backend",locality="gcp-us-east4\/us-east4-a\/",priority="2"\} \d+/);
});

t.test('with one retry that may go to another priority, the zone failure costs no request; recovery brings traffic home', async (t) => {
  const c = await cloud(t);
  const retry = { retry_on: '5xx,connect-failure', num_retries: 1, retry_host_predicate: [PREVIOUS_HOSTS], host_selection_retry_max_attempts: 5, retry_priority: PREVIOUS_PRIORITIES, retry_back_off: { base_interval: '0.001s' } };
  // istiod's retry limit (uint32 max): Envoy's default max_retries of 3 concurrent retries would, at concurrency 4,
  // forward the fourth 503 as a retry overflow, as Envoy does.
  const s = await startLocalitySidecar(c.groups, { outlier_detection: OUTLIER, circuit_breakers: { thresholds: [{ max_retries: 4294967295 }] } }, { retry_policy: retry });
  t.teardown(() => s.shutdown());
  const port = s.port('outbound');
  for (const u of c.zoneA) u.mode = 'fail';
  const r = await drive(port, 300, { concurrency: 4 });
  t.strictSame(r.failures, [], 'no failed request while the zone failed');
  t.ok(served(r, 'b') > 250, `the region answered (${served(r, 'b')}), cross-cloud ${served(r, 'g')}`);

  // Recovery: the zone answers again; once base_ejection_time has passed the hosts return and take the traffic back.
  for (const u of c.zoneA) u.mode = 'ok';
  await waitFor(async () => served(await drive(port, 20, { concurrency: 1 }), 'a') === 20, 'traffic to return to the caller zone');
  const back = await drive(port, 200, { concurrency: 4 });
  t.strictSame(back.failures, []);
  t.equal(served(back, 'a'), 200, 'after recovery every request stays in the zone again');
});

t.test('max_ejection_percent caps ejections; when too few hosts are left a priority panics and uses all of them', async (t) => {
  const ups = await Promise.all(['h1', 'h2', 'h3', 'h4'].map((n) => startFaultyUpstream(n)));
  t.teardown(() => Promise.all(ups.map((u) => u.close())));
  for (const u of ups.slice(0, 3)) u.mode = 'fail';
  const groups: LocalityGroup[] = [{ region: 'r', zone: 'z', priority: 0, ports: ups.map((u) => u.port) }];

  // 50 %: two of the three failing hosts can be ejected. 2 of 4 available → health 70 % ≥ 50 %: no panic,
  // the two hosts left (one healthy, one failing but not ejectable) share the traffic.
  const capped = await startLocalitySidecar(groups, { outlier_detection: { ...OUTLIER, base_ejection_time: '60s', max_ejection_percent: 50 } });
  t.teardown(() => capped.shutdown());
  await drive(capped.port('outbound'), 60, { concurrency: 1 });
  const after = await drive(capped.port('outbound'), 100, { concurrency: 1 });
  const answered = Object.keys(after.byServer).concat(after.failures.map((f) => f.split(' ')[1]!));
  t.equal(new Set(answered).size, 2, 'two hosts left in service');
  t.equal(after.byServer.h4, 50, 'the healthy one takes half');
  const cappedMetrics = await (await fetch(`${capped.adminUrl}/stats/prometheus`)).text();
  t.match(cappedMetrics, /outrigger_outlier_ejections_active\{cluster="backend"\} 2/);
  t.match(cappedMetrics, /outrigger_outlier_ejections_overflow_total\{cluster="backend"\} [1-9]/);

  // 100 %: all three failing hosts are ejected, 1 of 4 available → health 35 % < panic threshold 50 %:
  // Envoy routes to every host of the level, ejected or not.
  const panicking = await startLocalitySidecar(groups, { outlier_detection: { ...OUTLIER, base_ejection_time: '60s' } });
  t.teardown(() => panicking.shutdown());
  await drive(panicking.port('outbound'), 60, { concurrency: 1 });
  const panic = await drive(panicking.port('outbound'), 100, { concurrency: 1 });
  t.equal(panic.byServer.h4, 25, 'panic: the healthy host gets only its quarter');
  t.equal(panic.failures.length, 75, 'the ejected hosts get traffic again');
  const text = await (await fetch(`${panicking.adminUrl}/clusters`)).text();
  t.match(text, /backend::priority_0::panic::true\n/);
  t.match(await (await fetch(`${panicking.adminUrl}/stats/prometheus`)).text(), /outrigger_lb_healthy_panic_total\{cluster="backend"\} [1-9]\d*/);

  // Panic threshold 0 disables panic: only the healthy host is used.
  const noPanic = await startLocalitySidecar(groups, { outlier_detection: { ...OUTLIER, base_ejection_time: '60s' }, common_lb_config: { healthy_panic_threshold: { value: 0 } } });
  t.teardown(() => noPanic.shutdown());
  await drive(noPanic.port('outbound'), 60, { concurrency: 1 });
  const healthyOnly = await drive(noPanic.port('outbound'), 100, { concurrency: 1 });
  t.equal(healthyOnly.byServer.h4, 100);
});
