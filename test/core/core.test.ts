import t from 'tap';
import { FakeClock } from '../../src/core/clock.js';
import { parseDurationMs, durationMsgToMs } from '../../src/core/duration.js';
import { seededRng, uuid4 } from '../../src/core/rng.js';
import { exponentialBackoff } from '../../src/core/backoff.js';
import { ConfigError, OutriggerError, formatIssue } from '../../src/core/errors.js';

t.test('FakeClock fires timers in deadline order and only when advanced', (t) => {
  const c = new FakeClock(1000);
  const fired: string[] = [];
  c.setTimeout(() => fired.push('b'), 20);
  c.setTimeout(() => fired.push('a'), 10);
  const cancelled = c.setTimeout(() => fired.push('never'), 5);
  c.clearTimeout(cancelled);
  const iv = c.setInterval(() => fired.push('tick'), 15);
  c.advance(9);
  t.same(fired, []);
  c.advance(21);
  t.same(fired, ['a', 'tick', 'b', 'tick']);
  t.equal(c.now(), 1030);
  t.equal(c.monotonic(), 30);
  c.clearInterval(iv);
  c.advance(100);
  t.equal(fired.length, 4);
  t.equal(c.pending(), 0);
  t.end();
});

t.test('durations: proto3 JSON and Go-style, negatives and junk refused', (t) => {
  t.equal(parseDurationMs('1.5s'), 1500);
  t.equal(parseDurationMs('100ms'), 100);
  t.equal(parseDurationMs('1m30s'), 90000);
  t.equal(parseDurationMs('0s'), 0);
  t.equal(parseDurationMs('-1s'), undefined);
  t.equal(parseDurationMs('5'), undefined);
  t.equal(parseDurationMs('1s junk'), undefined);
  t.equal(parseDurationMs(''), undefined);
  t.equal(durationMsgToMs({ seconds: '2', nanos: 500_000_000 }), 2500);
  t.equal(durationMsgToMs({ seconds: { toNumber: () => 3 } }), 3000);
  t.equal(durationMsgToMs({}), 0);
  t.end();
});

t.test('seeded rng is reproducible and in range', (t) => {
  const a = seededRng(42);
  const b = seededRng(42);
  const xs = Array.from({ length: 100 }, () => a.next());
  t.same(xs, Array.from({ length: 100 }, () => b.next()));
  t.ok(xs.every((x) => x >= 0 && x < 1));
  const r = seededRng(1);
  const counts = [0, 0, 0];
  for (let i = 0; i < 3000; i++) counts[r.int(3)]!++;
  t.ok(counts.every((n) => n > 900 && n < 1100), `roughly uniform: ${counts}`);
  t.end();
});

t.test('uuid4 has the v4 shape and does not repeat', (t) => {
  const ids = new Set(Array.from({ length: 1000 }, uuid4));
  t.equal(ids.size, 1000);
  for (const id of [...ids].slice(0, 10)) t.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.end();
});

t.test('backoff grows to its cap with full jitter and resets', (t) => {
  const b = exponentialBackoff({ next: () => 0.999999, int: () => 0 }, 100, 1000);
  const xs = Array.from({ length: 6 }, () => Math.round(b.next()));
  t.same(xs, [100, 200, 400, 800, 1000, 1000]);
  b.reset();
  t.equal(Math.round(b.next()), 100);
  t.end();
});

t.test('errors carry stable codes and every issue', (t) => {
  const e = new ConfigError([
    { path: 'a.b', message: 'bad', file: 'f.yaml', line: 3 },
    { path: 'c', message: 'worse' },
  ]);
  t.equal(e.code, 'CONFIG_INVALID');
  t.equal(e.issues.length, 2);
  t.equal(e.message, 'f.yaml:3 a.b: bad\nc: worse');
  t.equal(formatIssue({ path: 'x', message: 'y', file: 'g' }), 'g x: y');
  const o = new OutriggerError('X', 'msg', { cause: new Error('root'), details: { k: 1 } });
  t.equal(o.code, 'X');
  t.equal((o.cause as Error).message, 'root');
  t.ok(Object.isFrozen(o.details));
  t.end();
});
