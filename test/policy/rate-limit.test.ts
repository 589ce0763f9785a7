// Envoy's token arithmetic on a fake clock: whole-interval fills, the cap at max_tokens, descriptor and per-value buckets.
import t from 'tap';
import { LocalRateLimiter, MAX_DYNAMIC_DESCRIPTORS, TokenBucket, type RequestDescriptor } from '../../src/policy/rate-limit.js';
import { FakeClock } from '../../src/core/clock.js';

const bucket = (maxTokens: number, tokensPerFill: number, fillIntervalMs: number) => ({ maxTokens, tokensPerFill, fillIntervalMs });
const UNLIMITED = bucket(2 ** 32 - 1, 2 ** 32 - 1, 1000);
const rule = (value: string, tb = bucket(3, 1, 1000)) => ({ entries: [{ key: 'rule', value }], tokenBucket: tb });
const user = (u: string): RequestDescriptor => [{ key: 'user', value: u }];

/** How many of n requests at `now` are allowed. */
function allowed(l: LocalRateLimiter, d: RequestDescriptor[], now: number, n: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (l.check(d, now).allowed) ok++;
  return ok;
}

t.test('a bucket starts full and refills tokens_per_fill at each whole fill interval, never above max_tokens', (t) => {
  const clock = new FakeClock();
  const epoch = clock.monotonic();
  const b = new TokenBucket(bucket(5, 2, 1000), epoch, epoch);
  for (let i = 0; i < 5; i++) t.ok(b.consume(epoch), `token ${i + 1} of 5`);
  t.notOk(b.consume(epoch), 'the sixth is refused');
  t.equal(b.resetSeconds(epoch), 1);
  clock.advance(999);
  t.notOk(b.consume(clock.monotonic()), 'nothing accrues between ticks (999 ms)');
  t.equal(b.resetSeconds(clock.monotonic()), 1, 'a partial second rounds up');
  clock.advance(1);
  t.equal(b.remaining(clock.monotonic()), 2, 'the tick at 1000 ms adds tokens_per_fill');
  clock.advance(1500);
  t.equal(b.remaining(clock.monotonic()), 4, 'one more tick by 2500 ms (ticks stay on the epoch grid)');
  t.equal(b.resetSeconds(clock.monotonic()), 1, '500 ms to the 3000 ms tick');
  clock.advance(10_000);
  t.equal(b.remaining(clock.monotonic()), 5, 'capped at max_tokens');
  t.equal(b.fillRate, 0.002);
  t.end();
});

t.test('a bucket made between ticks fills on the limiter grid, as under Envoy\'s one fill timer', (t) => {
  const b = new TokenBucket(bucket(1, 1, 1000), 0, 700);
  t.ok(b.consume(700));
  t.notOk(b.consume(999));
  t.ok(b.consume(1000), 'the tick is at 1000 ms from the epoch, not 1000 ms after creation');
  t.equal(new TokenBucket(bucket(1, 1, 60_000), 0, 0).resetSeconds(10_500), 50);
  t.end();
});

t.test('the default bucket limits requests that match no descriptor; exact descriptors have their own', (t) => {
  const l = new LocalRateLimiter({ tokenBucket: bucket(2, 2, 1000), descriptors: [rule('a'), rule('b', bucket(1, 1, 2000))], alwaysConsumeDefaultTokenBucket: false }, 0);
  t.equal(allowed(l, [], 0, 5), 2, 'no descriptor: the default bucket');
  t.equal(allowed(l, [[{ key: 'rule', value: 'a' }]], 0, 5), 3, 'rule a: its own 3, the default untouched');
  t.equal(allowed(l, [[{ key: 'rule', value: 'b' }]], 0, 5), 1);
  t.equal(allowed(l, [[{ key: 'rule', value: 'c' }]], 0, 5), 0, 'an unknown value falls to the (empty) default bucket');
  t.equal(allowed(l, [[{ key: 'rule', value: 'b' }]], 1000, 5), 0, 'rule b fills every 2000 ms only');
  t.equal(allowed(l, [[{ key: 'rule', value: 'b' }]], 2000, 5), 1);
  const d = l.check([[{ key: 'rule', value: 'a' }]], 2000);
  t.match(d, { allowed: true });
  t.equal(d.bucket.spec.maxTokens, 3, 'an admitted request reports its descriptor bucket');
  t.end();
});

t.test('several matched descriptors: the slowest-filling is charged first and the first empty one refuses', (t) => {
  const slow = rule('slow', bucket(1, 1, 10_000));
  const fast = rule('fast', bucket(5, 5, 1000));
  const l = new LocalRateLimiter({ tokenBucket: bucket(100, 100, 1000), descriptors: [fast, slow], alwaysConsumeDefaultTokenBucket: true }, 0);
  const both = [[{ key: 'rule', value: 'fast' }], [{ key: 'rule', value: 'slow' }]];
  t.match(l.check(both, 0), { allowed: true });
  const refused = l.check(both, 0);
  t.equal(refused.allowed, false);
  t.equal(refused.bucket.spec.fillIntervalMs, 10_000, 'refused by the slow bucket, checked first');
  t.equal(allowed(l, [[{ key: 'rule', value: 'fast' }]], 0, 10), 4, 'the fast bucket was charged once, by the first request only');
  t.end();
});

t.test('always_consume_default_token_bucket charges the default bucket too', (t) => {
  const l = new LocalRateLimiter({ tokenBucket: bucket(2, 1, 1000), descriptors: [rule('a')], alwaysConsumeDefaultTokenBucket: true }, 0);
  const a = [[{ key: 'rule', value: 'a' }]];
  t.equal(allowed(l, a, 0, 2), 2);
  const d = l.check(a, 0);
  t.equal(d.allowed, false, 'the default bucket (2) is the tighter one');
  t.equal(d.bucket.spec.maxTokens, 2, 'and is the one that refused');
  t.equal(l.check(a, 0).bucket.spec.maxTokens, 3, "rule a's bucket kept the refused request's charge (as Envoy does): now it refuses first");
  t.end();
});

t.test('wildcard descriptors: a bucket per value, capped, idle ones expiring, overflow sharing one bucket', (t) => {
  const perUser = { entries: [{ key: 'user', value: '' }], tokenBucket: bucket(2, 1, 1000) };
  const l = new LocalRateLimiter({ tokenBucket: UNLIMITED, descriptors: [perUser], alwaysConsumeDefaultTokenBucket: false, maxDynamicDescriptors: 3 }, 0);
  t.equal(allowed(l, [user('alice')], 0, 5), 2, 'alice: her own 2');
  t.equal(allowed(l, [user('bob')], 0, 5), 2, 'bob: his own 2');
  t.equal(allowed(l, [user('carol')], 0, 5), 2);
  t.equal(l.liveBuckets, 3);
  t.equal(allowed(l, [user('dave')], 0, 1), 1, 'at the cap a new value is charged to the overflow bucket');
  t.equal(allowed(l, [user('erin')], 0, 5), 1, 'which every new value shares (2 tokens for dave and erin together)');
  t.equal(l.liveBuckets, 3, 'no live bucket was evicted');
  t.equal(allowed(l, [user('alice')], 500, 1), 0, 'alice is still limited by her own bucket');
  // Alice uses her bucket at 1000 ms; bob and carol stay idle until 2000 ms, when they are full again.
  t.equal(allowed(l, [user('alice')], 1000, 1), 1);
  t.equal(allowed(l, [user('frank')], 1999, 1), 1, 'at 1999 ms nobody is idle long enough: overflow (refilled at 1000)');
  t.equal(allowed(l, [user('frank')], 2000, 2), 2, 'at 2000 ms bob and carol expire (idle 2 s = a full refill): frank gets his own');
  t.equal(l.liveBuckets, 2, 'alice and frank');
  t.equal(allowed(l, [user('bob')], 2000, 5), 2, 'bob comes back to a full bucket, as his old one would have been');
  t.equal(allowed(l, [[{ key: 'user', value: 'x' }, { key: 'other', value: 'y' }]], 2000, 3), 3, 'other keys do not match the wildcard: the default bucket');
  t.equal(allowed(l, [[{ key: 'other', value: 'y' }]], 2000, 3), 3);
  t.end();
});

t.test('an exact descriptor wins over a wildcard of the same keys; mixed entries match value by value', (t) => {
  const l = new LocalRateLimiter(
    {
      tokenBucket: UNLIMITED,
      descriptors: [
        { entries: [{ key: 'rule', value: 'r' }, { key: 'user', value: '' }], tokenBucket: bucket(2, 1, 1000) },
        { entries: [{ key: 'rule', value: 'r' }, { key: 'user', value: 'vip' }], tokenBucket: bucket(10, 1, 1000) },
      ],
      alwaysConsumeDefaultTokenBucket: false,
    },
    0,
  );
  const d = (u: string, r = 'r') => [[{ key: 'rule', value: r }, { key: 'user', value: u }]];
  t.equal(allowed(l, d('vip'), 0, 20), 10);
  t.equal(allowed(l, d('joe'), 0, 20), 2);
  t.equal(allowed(l, d('joe', 'other'), 0, 20), 20, 'another rule value: no match');
  t.equal(MAX_DYNAMIC_DESCRIPTORS, 20, "Envoy's default cap");
  t.end();
});
