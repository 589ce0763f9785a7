// Request mirroring's own rules: Envoy's shadow authority, the runtime_fraction draw, and a shadow's bounded backlog.
import { Writable } from 'node:stream';
import t from 'tap';
import { FakeClock } from '../../src/core/clock.js';
import { seededRng } from '../../src/core/rng.js';
import { sampled, shadowAuthority, startMirrors } from '../../src/dataplane/mirror.js';
import type { ClusterManager } from '../../src/upstream/cluster-manager.js';

t.test('-shadow goes on the host, before a port', (t) => {
  t.equal(shadowAuthority('reviews'), 'reviews-shadow');
  t.equal(shadowAuthority('reviews:9080'), 'reviews-shadow:9080');
  t.equal(shadowAuthority('reviews.default.svc.cluster.local:80'), 'reviews.default.svc.cluster.local-shadow:80');
  t.equal(shadowAuthority('[::1]:8080'), '[::1]-shadow:8080');
  t.equal(shadowAuthority('[::1]'), '[::1]-shadow', "an IPv6 literal's colons are not a port");
  t.equal(shadowAuthority('a:b'), 'a:b-shadow', 'not a port');
  t.end();
});

t.test('sampled: numerator / denominator of requests; a numerator at or above the denominator is always', (t) => {
  const rng = seededRng(1);
  const n = 20_000;
  let hits = 0;
  for (let i = 0; i < n; i++) if (sampled({ cluster: 'm', numerator: 125_000, denominator: 1_000_000 }, rng)) hits++;
  t.ok(Math.abs(hits / n - 0.125) < 0.01, `12.5 % (got ${((100 * hits) / n).toFixed(2)} %)`);
  t.ok(sampled({ cluster: 'm', numerator: 1, denominator: 1 }, rng));
  t.ok(sampled({ cluster: 'm', numerator: 200, denominator: 100 }, rng), 'clamped, as Envoy');
  t.notOk(sampled({ cluster: 'm', numerator: 0, denominator: 100 }, rng));
  t.end();
});

/**
 * A shadow cluster of one host whose pool hands out a stream only when the test says so (`connect`), so the
 * backlog before the connection exists can be observed; or a cluster with no host at all.
 */
function shadowCluster(o: { hosts: number }) {
  const outcomes: string[] = [];
  const written: string[] = [];
  let aborted = 0;
  let connect: (() => void) | undefined;
  const ep = {
    rqActive: 0,
    rqTotal: 0,
    pool: {
      open: () =>
        new Promise((resolve) => {
          connect = () => resolve({ sink: new Writable({ write: (c: Buffer, _e, cb) => (written.push(c.toString()), cb()) }), peerUri: undefined, abort: () => aborted++ });
        }),
    },
  };
  const clusters = { get: () => ({ pick: () => (o.hosts ? ep : undefined) }) } as unknown as ClusterManager;
  const deps = { clusters, rng: seededRng(1), clock: new FakeClock(), count: (_c: string, outcome: string) => outcomes.push(outcome) };
  return { deps, ep, outcomes, written, connect: () => connect!(), aborted: () => aborted };
}
const REQ = { method: 'POST', authority: 'backend', path: '/', headers: {}, hasBody: true, timeoutMs: 0, maxBacklogBytes: 8 };
const ALWAYS = [{ cluster: 'shadow', numerator: 1, denominator: 1 }];

t.test('no host in the shadow cluster: skipped, and the request goes on without a tap', (t) => {
  const c = shadowCluster({ hosts: 0 });
  t.strictSame(startMirrors(ALWAYS, REQ, c.deps), []);
  t.strictSame(c.outcomes, ['skipped']);
  t.end();
});

t.test('a shadow still connecting holds at most the backlog bound, then is dropped and its stream aborted on arrival', async (t) => {
  const c = shadowCluster({ hosts: 1 });
  const [tap] = startMirrors(ALWAYS, REQ, c.deps);
  tap!.data(Buffer.from('12345'));
  tap!.data(Buffer.from('67890'));
  t.strictSame(c.outcomes, ['dropped'], 'past 8 bytes without a connection');
  t.equal(c.ep.rqActive, 0, 'the host is not left counting it');
  tap!.data(Buffer.from('more'));
  tap!.end();
  c.connect();
  await new Promise((r) => setImmediate(r));
  t.equal(c.aborted(), 1, 'the late stream is aborted');
  t.strictSame(c.written, [], 'and given nothing');
});

t.test('a shadow that connects after the body ended is given the backlog and its end', async (t) => {
  const c = shadowCluster({ hosts: 1 });
  const [tap] = startMirrors(ALWAYS, { ...REQ, maxBacklogBytes: 100 }, c.deps);
  tap!.data(Buffer.from('abc'));
  tap!.end();
  c.connect();
  await new Promise((r) => setImmediate(r));
  t.strictSame(c.written, ['abc']);
  t.strictSame(c.outcomes, [], 'sent only when the answer has been read');
  tap!.abort();
  t.strictSame(c.outcomes, ['failed']);
});
