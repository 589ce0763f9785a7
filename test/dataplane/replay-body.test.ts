// The request body read once and fanned out: replayed whole to each attempt within the limit, streamed on past
// it (and then no longer replayable), paused while no attempt takes it, taps fed without backpressure.
import { PassThrough, Writable } from 'node:stream';
import t from 'tap';
import { ReplayableBody, type BodyTap } from '../../src/dataplane/replay-body.js';

/** A sink that collects what it is given; with `stall`, it stops accepting (write returns false) until `release()`. */
function sink(o: { highWaterMark?: number } = {}) {
  const got: Buffer[] = [];
  let pending: (() => void)[] = [];
  let stalled = false;
  const w = new Writable({
    highWaterMark: o.highWaterMark ?? 16,
    write(c: Buffer, _e, cb) {
      got.push(c);
      if (stalled) pending.push(cb);
      else cb();
    },
  });
  let ended = false;
  w.on('finish', () => (ended = true));
  return {
    w,
    text: () => Buffer.concat(got).toString(),
    get ended() {
      return ended;
    },
    stall: () => (stalled = true),
    release: () => {
      stalled = false;
      const p = pending;
      pending = [];
      for (const cb of p) cb();
    },
  };
}

const tick = () => new Promise((r) => setImmediate(r));

function tapRecorder(): BodyTap & { log: string[] } {
  const log: string[] = [];
  return { log, data: (c) => log.push(c.toString()), end: () => log.push('END'), abort: () => log.push('ABORT') };
}

/** A body with a 100-byte limit, a recording tap, and the count of bytes read from the caller. */
function tapped() {
  const src = new PassThrough();
  let n = 0;
  const body = new ReplayableBody(src, 100, (k) => (n += k));
  const tap = tapRecorder();
  body.tap(tap);
  return { src, body, tap, counted: () => n };
}

/** A body with this limit, already streaming into a first attempt `a`. */
function attached(limit: number) {
  const src = new PassThrough();
  const body = new ReplayableBody(src, limit, () => {});
  const a = sink();
  body.attach(a.w);
  return { src, body, a };
}

t.test('within the limit: the first attempt streams, a second gets every byte from the start, taps see each once', async (t) => {
  const { src, body, tap, counted } = tapped();
  src.write('hello ');
  await tick();
  t.equal(counted(), 0, 'nothing is read before an attempt takes the body');
  const a = sink();
  body.attach(a.w);
  await tick();
  t.equal(a.text(), 'hello ');
  src.write('world');
  await tick();
  body.detach();
  src.write('!');
  await tick();
  t.equal(a.text(), 'hello world', 'a detached attempt gets nothing more');
  const b = sink();
  body.attach(b.w);
  src.end();
  await tick();
  await tick();
  t.equal(b.text(), 'hello world!', 'the retry has all of it');
  t.ok(b.ended, 'and its end');
  t.ok(body.replayable);
  t.equal(counted(), 12, 'bytes counted once');
  t.strictSame(tap.log, ['hello ', 'world', '!', 'END']);
});

t.test('past the limit: the attempt in flight keeps streaming everything, and the body is no longer replayable', async (t) => {
  const { src, body, a } = attached(8);
  src.write('12345');
  src.write('67890');
  src.end('abc');
  await tick();
  await tick();
  t.notOk(body.replayable);
  t.equal(a.text(), '1234567890abc', 'nothing lost');
  t.ok(a.ended);
});

t.test('backpressure from the attempt pauses the caller; queued chunks go in order once it drains', async (t) => {
  const src = new PassThrough({ highWaterMark: 4 });
  const body = new ReplayableBody(src, 1000, () => {});
  const a = sink({ highWaterMark: 2 });
  a.stall();
  body.attach(a.w);
  for (const c of ['aa', 'bb', 'cc', 'dd']) src.write(c);
  await tick();
  t.ok(src.isPaused(), 'the caller is paused while the attempt is full');
  a.release();
  await tick();
  src.end('ee');
  for (let i = 0; i < 5; i++) {
    a.release();
    await tick();
  }
  t.equal(a.text(), 'aabbccddee');
  t.ok(a.ended);

  // A replay into a sink that stalls at once: the prefix is queued and given in order.
  const b = sink({ highWaterMark: 1 });
  b.stall();
  body.attach(b.w);
  for (let i = 0; i < 6; i++) {
    b.release();
    await tick();
  }
  t.equal(b.text(), 'aabbccddee');
  t.ok(b.ended, 'ended after the queued prefix');

  // A chunk that arrives while the attempt is still full (the source had it already) waits its turn.
  const src2 = new PassThrough();
  const body2 = new ReplayableBody(src2, 1000, () => {});
  const c = sink({ highWaterMark: 1 });
  c.stall();
  body2.attach(c.w);
  src2.emit('data', Buffer.from('x1'));
  src2.emit('data', Buffer.from('x2'));
  src2.emit('data', Buffer.from('x3'));
  for (let i = 0; i < 4; i++) {
    c.release();
    await tick();
  }
  t.equal(c.text(), 'x1x2x3');
});

t.test('the body ended before the attempt attached: the attempt gets it all and its end', async (t) => {
  const { src, body } = attached(100);
  src.end('all of it');
  await tick();
  await tick();
  body.detach();
  const b = sink();
  body.attach(b.w);
  await tick();
  t.equal(b.text(), 'all of it');
  t.ok(b.ended);
});

t.test('discard: the rest is read and dropped, taps of an unfinished body are told', async (t) => {
  const { src, body, tap, counted } = tapped();
  const a = sink();
  body.attach(a.w);
  src.write('part');
  await tick();
  body.discard();
  body.discard();
  src.end('rest');
  await tick();
  await tick();
  t.equal(a.text(), 'part', 'the attempt gets nothing after the discard');
  t.strictSame(tap.log, ['part', 'ABORT'], 'told once; no END for a body it never saw whole');
  t.equal(counted(), 8, 'the rest is still read and counted');

  // Data arriving with no attempt attached (a paused source can still emit what it already had) is kept.
  const src2 = new PassThrough();
  const body2 = new ReplayableBody(src2, 100, () => {});
  src2.emit('data', Buffer.from('early'));
  const c = sink();
  body2.attach(c.w);
  src2.end();
  await tick();
  await tick();
  t.equal(c.text(), 'early');
});
