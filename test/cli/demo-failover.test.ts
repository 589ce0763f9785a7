// The demo's locality-failure step on a scripted context: which pods it kills, how it measures the switch (failed
// requests, time to the first answer from elsewhere and to the last failure), the restart, the return home, and the summary lines; plus the edge cases.
import t from 'tap';
import { failoverStep, failoverSummary, switchedAt, type DemoContext, type FailoverReport, type Pod } from '../../src/cli/demo.js';
import type { AppAnswer } from '../../src/cli/demo-apps.js';
import { LoadStats, type LoadDriver, type Outcome } from '../../src/cli/demo-load.js';
import type { PodPlan } from '../../src/cli/demo-mesh.js';
import type { ControlServer } from '../../src/control/server.js';

const answer = (region: string, calls: Record<string, AppAnswer> = {}): AppAnswer => ({ pod: `p-${region}`, app: 'x', version: 'v1', region, zone: `${region}-a`, caller: '', calls });
/** A frontend's page: reviews and ratings answered from `region` (the frontend itself in `home`). */
const page = (home: string, region: string) => answer(home, { reviews: answer(region, { ratings: answer(region) }), ratings: answer(region) });

interface Script {
  /** What happens while the pods are killed / restarted: outcomes to record, on the step's clock. */
  onKill?: (feed: Feed) => void;
  onRestart?: (feed: Feed) => void;
}
type Feed = (o: Partial<Outcome> & { at: number }) => void;

function setup(s: Script, regions = { east: ['frontend', 'reviews', 'ratings'], west: ['frontend', 'reviews'] }) {
  let now = 10_000;
  const events: string[] = [];
  const log: string[] = [];
  const stats = new LoadStats();
  const feed: Feed = (o) => stats.record({ ok: true, ms: 1, phase: 'before', host: '10.0.0.1', sentAtMs: o.at, ...o });
  const pods: Pod[] = Object.entries(regions).flatMap(([region, apps], r) =>
    apps.map((app, i): Pod => {
      const plan = { name: `${app}-${region}`, app, ip: `10.0.${r}.${i + 1}`, locality: { region, zone: `${region}-a`, subZone: '' } } as unknown as PodPlan;
      return {
        plan,
        stop: async () => void log.push(`stop ${plan.name}`),
        kill: async () => {
          log.push(`kill ${plan.name}`);
          if (app === 'ratings') s.onKill?.(feed);
          // The region stays down for a second of the step's clock.
          if (app === 'ratings') now += 1000;
        },
        restart: async () => {
          log.push(`restart ${plan.name}`);
          now += 500;
          if (app === 'ratings') s.onRestart?.(feed);
        },
      };
    }),
  );
  const aborted = new AbortController();
  const ctx: DemoContext = {
    pods,
    control: {} as ControlServer,
    meshDir: '',
    load: {} as LoadDriver,
    stats,
    event: (l) => void events.push(l),
    elapsedMs: () => now - 5000,
    now: () => now,
    signal: aborted.signal,
  };
  return { ctx, events, log, stats, abort: () => aborted.abort(), advance: (ms: number) => (now += ms) };
}

t.test('kill the backends of the first frontend\'s region, measure the switch, restart them, see traffic come home', async (t) => {
  let r: FailoverReport | undefined;
  const { ctx, events, log, stats } = setup({
    onKill: (feed) => {
      // In flight at the kill, and the first try on the dead hosts before they are ejected: failed.
      feed({ at: 9_990, ok: false, error: 'sent before the kill' });
      feed({ at: 10_001, ok: false, error: '503' });
      for (let i = 0; i < 200; i++) feed({ at: 10_010 + i, answer: page('east', 'west') });
      // The canary subset's detector sees the dead host only when its first request comes, later.
      feed({ at: 10_500, ok: false, error: '503 (canary)' });
      // Another region's frontend is not the affected caller.
      feed({ at: 10_050, host: '10.0.1.1', answer: page('west', 'west') });
    },
    onRestart: (feed) => {
      feed({ at: 11_600, answer: page('east', 'west') });
      for (let i = 0; i < 25; i++) feed({ at: 11_700 + i, answer: page('east', 'east') });
    },
  });
  stats.record({ ok: true, ms: 1, phase: 'before', host: '10.0.0.1', sentAtMs: 9000, answer: page('east', 'east') });
  await failoverStep({ atMs: 0, downMs: 1, report: (x) => (r = x) }).run(ctx);
  t.strictSame(log, ['kill reviews-east', 'kill ratings-east', 'restart reviews-east', 'restart ratings-east'], 'the backends of east, not its frontend nor the west');
  t.match(r, { region: 'east', pods: ['reviews-east', 'ratings-east'], killedAtMs: 5000, failed: 3, affectedSent: 202, switchMs: 10, lastFailureMs: 500, restartedAtMs: 7000, returnedAtMs: 6700 });
  t.match(events, [
    /^\[t=5\.00 s\] killed the 2 backend pods of east \(reviews-east, ratings-east\): app and sidecar, no drain\. Its frontend must fail over to another cloud\.$/,
    /^\[t=6\.00 s\] failover: east's frontend was first served from other clouds 10 ms after the kill; 3 requests failed during the switch, the last sent 500 ms after the kill \(its frontend was sent 202 while east was down\)$/,
    /^\[t=7\.00 s\] restarted them on the same addresses \(new keys, SVIDs from the CA, config over ADS\) in 1\.00 s; traffic returns when/,
    /^\[t=6\.70 s\] traffic is home: east's frontend served from east again \(20 answers in a row\), 1\.70 s after the kill$/,
  ]);
  t.equal(stats.period, 'after');
  t.match(stats.crossByPeriod.get('before'), { cross: 0, total: 3 });
  t.match(stats.crossByPeriod.get('during'), { cross: 400, total: 603 }, 'east\'s hops went west; the west frontend stayed home');
  t.equal(stats.observers.size, 0, 'the step stops watching');
  const lines = failoverSummary(r!, stats.crossByPeriod);
  t.match(lines[0], /^Failover: east lost its 2 backend pods at t=5\.00 s, back at t=7\.00 s; 3 requests failed from the kill until traffic was home; the switch took 10 ms; traffic home at t=6\.70 s\.$/);
  t.match(lines[1], /^Cross-cloud answers \(reviews\/ratings answered from another region than their caller's\): before 0 % \(0 of 3\); during 66 % \(400 of 603\); after \(no answers\)$/);
});

t.test('no switch seen, stopped while down: no restart; a return that never comes; nothing to kill', async (t) => {
  const down = setup({});
  let r: FailoverReport | undefined;
  const step = failoverStep({ atMs: 0, downMs: 60_000, report: (x) => (r = x) }).run(down.ctx);
  await new Promise((res) => setImmediate(res));
  down.abort();
  await step;
  t.notOk(down.log.some((l) => l.startsWith('restart')), 'stopped while down: not restarted');
  t.match(down.events[1], /east's frontend was never served elsewhere; 0 requests failed during the switch/);
  t.match(r, { failed: 0, affectedSent: 0 });
  t.equal(r!.switchMs, undefined);
  t.match(failoverSummary(r!, new Map()), [/the switch took \(no switch seen\); traffic not home yet\.$/, /before \(no answers\); during \(no answers\); after \(no answers\)$/]);

  const stuck = setup({ onRestart: (feed) => feed({ at: 11_600, answer: page('east', 'west') }) });
  await failoverStep({ atMs: 0, downMs: 0, returnTimeoutMs: 5, report: (x) => (r = x) }).run(stuck.ctx);
  t.match(stuck.events.at(-1), /^\[failover\] traffic had not returned to east when the demo gave up waiting \(0\.01 s\)$/);
  t.equal(r!.returnedAtMs, undefined);
  t.equal(stuck.stats.period, 'recovering');

  const lonely = setup({}, { east: ['frontend'], west: ['reviews'] } as never);
  await failoverStep({ atMs: 0, downMs: 0, report: () => t.fail('no report without a failure') }).run(lonely.ctx);
  t.strictSame(lonely.events, ['[failover] no region with both a frontend and backends to kill; skipped']);
  t.strictSame(lonely.log, []);
  t.end();
});

t.test('switchedAt: the send time of the first request served elsewhere, whatever failed around it', (t) => {
  const xs = (pattern: string) => [...pattern].map((c, i) => ({ at: i, away: c === '+' }));
  t.equal(switchedAt([]), undefined);
  t.equal(switchedAt(xs('---')), undefined);
  t.equal(switchedAt(xs('--+++')), 2);
  t.equal(switchedAt(xs('-+--+-')), 1, 'a later failure (another subset finding the dead host) does not undo the switch');
  t.equal(switchedAt([{ at: 7, away: true }, { at: 3, away: true }]), 3, 'in send order, not answer order');
  t.end();
});
