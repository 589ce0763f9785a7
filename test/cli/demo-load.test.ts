// The demo's load driver against a real HTTP server on 127.0.0.1, what its stats make of answers, and the live view.
import t, { type Test } from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AppAnswer } from '../../src/cli/demo-apps.js';
import { LoadDriver, LoadStats, View, percentile, renderLine, renderTable, splitText, type Outcome, type ViewHeader } from '../../src/cli/demo-load.js';
import { waitFor } from '../helpers/tools.js';

const who = (pod: string, region: string, version = 'v1', caller = '', calls: Record<string, AppAnswer> = {}): AppAnswer => ({ pod, app: pod.split('-')[0]!, version, region, zone: `${region}-a`, caller, calls });
const FE = 'spiffe://td/ns/default/sa/fe';
const RV = 'spiffe://td/ns/default/sa/rv';

/** A page as the frontend in `region` answers it: reviews `version` in `rr`, ratings in `ra`. */
const page = (region: string, version: string, rr: string, ra: string) =>
  who(`frontend-${region}`, region, 'v1', '', {
    reviews: who(`reviews-${rr}`, rr, version, FE, version === 'v1' ? {} : { ratings: who(`ratings-${ra}`, ra, 'v1', RV) }),
    ratings: who(`ratings-${ra}`, ra, 'v1', FE),
  });

async function server(t: Test, handler: http.RequestListener) {
  const s = http.createServer(handler);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    s.closeAllConnections();
    s.close();
  });
  return { host: '127.0.0.1', port: (s.address() as AddressInfo).port };
}

t.test('the driver sends at the rate, tags each answer with its phase, and stop() waits for every answer', async (t) => {
  const seen: http.IncomingHttpHeaders[] = [];
  const target = await server(t, (req, res) => {
    seen.push(req.headers);
    res.end(JSON.stringify(page('east', 'v2', 'west', 'east')));
  });
  const outcomes: Outcome[] = [];
  const d = new LoadDriver({ targets: [target], rate: 200, now: () => performance.now(), onOutcome: (o) => outcomes.push(o) });
  const one = await d.request(target, { 'end-user': 'jason' });
  t.match(one, { ok: true, phase: 'start', answer: { pod: 'frontend-east', calls: { reviews: { version: 'v2' } } } });
  t.equal(seen[0]!['end-user'], 'jason', 'headers go with the request');
  t.equal(seen[0]!.host, `127.0.0.1:${target.port}`);
  d.phase = 'before';
  const t0 = performance.now();
  d.start();
  await waitFor(() => outcomes.length >= 40, '40 answers');
  d.phase = 'after';
  await waitFor(() => outcomes.some((o) => o.phase === 'after'), 'an answer of the new phase');
  await d.stop();
  const elapsed = performance.now() - t0;
  t.ok(d.sent <= Math.ceil((elapsed / 1000) * 200) + 1, `no more than the rate: ${d.sent} in ${elapsed.toFixed(0)} ms`);
  t.equal(outcomes.length, d.sent, 'stop() resolved after every answer');
  t.ok(outcomes.every((o) => o.ok && o.ms >= 0));
  t.ok(outcomes.every((o) => ['before', 'after', 'transition'].includes(o.phase)));
  const sent = d.sent;
  await new Promise((r) => setTimeout(r, 50));
  t.equal(d.sent, sent, 'nothing is sent after stop()');
});

t.test('failures carry their cause: an error status, an unreadable body, a refused connection', async (t) => {
  const bad = await server(t, (req, res) => {
    if (req.headers['x-case'] === 'garbage') return res.end('not json');
    res.writeHead(502).end('{"pod":"frontend-east","error":"reviews: 503 no healthy upstream"}');
  });
  const d = new LoadDriver({ targets: [bad], rate: 1, now: () => performance.now(), onOutcome: () => {} });
  t.match(await d.request(bad), { ok: false, error: /^127\.0\.0\.1: 502 .*reviews: 503 no healthy upstream/ });
  t.match(await d.request(bad, { 'x-case': 'garbage' }), { ok: false, error: /unreadable answer/ });
  // Nothing listens on port 1.
  const refused = await new LoadDriver({ targets: [], rate: 1, now: () => performance.now(), onOutcome: () => {} }).request({ host: '127.0.0.2', port: 1 });
  t.match(refused, { ok: false, error: /^127\.0\.0\.2: connect ECONNREFUSED/ });
});

t.test('above maxInFlight, due requests are skipped and counted instead of queued', async (t) => {
  const held: http.ServerResponse[] = [];
  const target = await server(t, (_req, res) => void held.push(res));
  const outcomes: Outcome[] = [];
  const d = new LoadDriver({ targets: [target], rate: 500, maxInFlight: 3, now: () => performance.now(), onOutcome: (o) => outcomes.push(o) });
  d.start();
  await waitFor(() => d.skipped >= 10 && held.length === 3, 'skipped requests');
  t.equal(d.sent, 3, 'three in flight, no more');
  for (const r of held) r.end(JSON.stringify(page('east', 'v1', 'east', 'east')));
  await d.stop();
  t.ok(outcomes.length >= 3 && outcomes.every((o) => o.ok));
});

t.test('stats: windows, versions per phase, regions and same-region share, callers, first failure', (t) => {
  const s = new LoadStats();
  const ok = (answer: AppAnswer, phase = 'before', ms = 10): Outcome => ({ ok: true, ms, phase, answer });
  s.record(ok(page('east', 'v1', 'east', 'west'), 'before', 5));
  s.record(ok(page('east', 'v2', 'west', 'east'), 'before', 50));
  s.record(ok(page('west', 'v2', 'west', 'west'), 'after', 20));
  s.record({ ok: false, ms: 3, phase: 'after', error: 'first' });
  s.record({ ok: false, ms: 3, phase: 'after', error: 'second' });
  const w = s.roll();
  t.equal(w.ok, 3);
  t.equal(w.failed, 2);
  t.equal(s.firstFailure, 'first');
  t.equal(w.p50, 20);
  t.equal(w.p99, 50);
  t.strictSame([...w.versions], [['v1', 1], ['v2', 2]]);
  t.strictSame([...w.regions.get('frontend')!], [['east', 2], ['west', 1]]);
  t.strictSame([...w.regions.get('reviews')!], [['east', 1], ['west', 2]]);
  t.strictSame([...w.regions.get('ratings')!], [['west', 3], ['east', 2]], 'ratings as called by the frontends and by reviews v2');
  t.equal(w.sameRegion.get('reviews'), 2, 'frontend east -> reviews east, west -> west');
  t.equal(w.sameRegion.get('ratings'), 3, 'frontend east -> east, frontend west -> west, reviews west -> west');
  t.strictSame([...s.versionsByPhase.get('before')!], [['v1', 1], ['v2', 1]]);
  t.strictSame([...s.versionsByPhase.get('after')!], [['v2', 1]]);
  t.strictSame([...s.peers].sort(), [`${FE} -> ratings`, `${FE} -> reviews`, `${RV} -> ratings`]);
  const empty = s.roll();
  t.match(empty, { ok: 0, failed: 0, p50: 0, p99: 0 });
  t.equal(empty.versions.size, 0, 'a fresh window');
  t.equal(s.ok, 3, 'totals stay');
  t.end();
});

t.test('percentile and split text', (t) => {
  t.equal(percentile([], 50), 0);
  t.equal(percentile([1, 2, 3, 4], 50), 3);
  t.equal(percentile([1, 2, 3, 4], 99), 4);
  t.equal(splitText(undefined), '(no answers)');
  t.equal(splitText(new Map([['v2', 1], ['v1', 3]])), 'v1 75 %  v2 25 %');
  t.equal(splitText(new Map([['v2', 1], ['v1', 3]]), true), 'v1 75 % (3)  v2 25 % (1)');
  t.end();
});

const HEADER: ViewHeader = { elapsedS: 12, sent: 600, failed: 1, skipped: 0, regions: ['east', 'west'], services: ['frontend', 'reviews', 'ratings'], versions: ['v1', 'v2', 'v3'] };

t.test('the table and the plain line show one second: rate, success, latency, versions, regions', (t) => {
  const s = new LoadStats();
  for (let i = 0; i < 9; i++) s.record({ ok: true, ms: 4, phase: 'before', answer: page('east', 'v1', 'east', 'west') });
  s.record({ ok: true, ms: 30, phase: 'before', answer: page('west', 'v2', 'east', 'west') });
  const w = s.roll();
  const table = renderTable(HEADER, w);
  t.equal(table.length, 6, 'a fixed height: the rate line, versions, column heads, one row per service');
  t.match(table[0], /^t= +12s +10 req\/s +ok 100\.0 % +p50 4\.0 ms +p99 30\.0 ms +cross-cloud 52 % +sent 600 +failed 1$/, '11 of the 21 hops answered from another region than their caller');
  t.match(table[1], /^reviews version +v1 +9 +90 % +v2 +1 +10 % +v3 +0 +0 %$/, 'a version nobody answered from shows 0');
  t.match(table[2], /^answered from +east +west +same region$/);
  t.match(table[3], /^frontend +9 +1$/);
  t.match(table[4], /^reviews +10 +0 +90 %$/);
  t.match(table[5], /^ratings +0 +11 +9 %$/);
  t.match(renderTable({ ...HEADER, skipped: 4 }, w)[0], /skipped 4 \(too many in flight\)$/);
  const withSplit = renderTable({ ...HEADER, split: { before: new Map([['v1', 9], ['v2', 1]]), after: undefined } }, w);
  t.equal(withSplit.length, 7, 'after a change, one more line');
  t.match(withSplit[6], /^canary split +before: v1 90 % \(9\) {2}v2 10 % \(1\) +after: \(no answers\)$/);
  const line = renderLine(HEADER, w);
  t.match(line, /^\[t=12s\] 10 req\/s ok 100\.0% p50 4\.0ms p99 30\.0ms cross-cloud 52% sent 600 failed 1 \| reviews v1 9 v2 1 v3 0 \| reviews east 10 west 0 \(same region 90 %\) \| ratings east 0 west 11 \(same region 9 %\)$/);
  t.notMatch(line, /\n/);
  t.match(renderLine({ ...HEADER, skipped: 2 }, s.roll()), /0 req\/s ok -% .* skipped 2/);
  t.end();
});

t.test('the view: events and plain lines off a terminal; on one, the table is redrawn in place below the events', (t) => {
  let plain = '';
  const p = new View((s) => (plain += s), false);
  p.event('hello');
  p.show(['a', 'b'], 'a b');
  p.show(['c', 'd'], 'c d');
  t.equal(plain, 'hello\na b\nc d\n');

  let tty = '';
  const v = new View((s) => (tty += s), true, 10);
  v.show(['row one', 'a much longer row than the terminal'], 'unused');
  t.equal(tty, 'row one\na much lo\n', 'lines cut to the width, so the redraw counts right');
  tty = '';
  v.show(['r1', 'r2'], 'unused');
  t.equal(tty, '\x1b[2A\x1b[Jr1\nr2\n', 'up two lines, erase, redraw');
  tty = '';
  v.event('[t=1s] something happened');
  t.equal(tty, '\x1b[2A\x1b[J[t=1s] something happened\nr1\nr2\n', 'the event goes above, the table is drawn again');
  tty = '';
  v.end();
  v.event('after');
  t.equal(tty, 'after\n', 'after end() the table stays where it is');
  t.end();
});
