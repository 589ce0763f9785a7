// The per-key log limiter (NACK storms on the control server, plaintext floods on a STRICT listener).
import t from 'tap';
import { FakeClock } from '../../src/core/clock.js';
import { LogLimiter } from '../../src/telemetry/log-limit.js';

t.test('LogLimiter: a burst per key per window, then the count of what was dropped', async (t) => {
  const clock = new FakeClock();
  const l = new LogLimiter(clock, 2, 1000, 3);
  t.strictSame(l.allow('a'), { suppressed: 0 });
  t.strictSame(l.allow('a'), { suppressed: 0 });
  t.equal(l.allow('a'), undefined);
  t.equal(l.allow('a'), undefined);
  t.strictSame(l.allow('b'), { suppressed: 0 }, 'keys are independent');
  clock.advance(1000);
  t.strictSame(l.allow('a'), { suppressed: 2 }, 'the next window reports the dropped lines');
  t.strictSame(l.allow('a'), { suppressed: 0 });
  // Past maxKeys the table starts over instead of growing.
  l.allow('c');
  t.strictSame(l.allow('d'), { suppressed: 0 });
  t.strictSame(l.allow('a'), { suppressed: 0 }, 'a was forgotten with the reset');
});
