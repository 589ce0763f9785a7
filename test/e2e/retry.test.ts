// Route retry_policy through a real sidecar to real upstreams: a failing host costs no request when one retry
// is configured, connect failures and per-try timeouts move to another host, and an exhausted policy hands
// the caller the upstream's own answer marked URX.
import t, { type Test } from 'tap';
import { drive, startFaultyUpstream, startLocalitySidecar, type FaultyUpstream } from '../helpers/lb-harness.js';

const PREVIOUS_HOSTS = { name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } };

const PREVIOUS_PRIORITIES = {
  name: 'envoy.retry_priorities.previous_priorities',
  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig', update_frequency: 1 },
};

async function three(t: Test): Promise<FaultyUpstream[]> {
  const ups = await Promise.all(['a', 'b', 'c'].map((n) => startFaultyUpstream(n)));
  t.teardown(() => Promise.all(ups.map((u) => u.close())));
  return ups;
}

async function sidecar(t: Test, ups: FaultyUpstream[], retry?: object) {
  const s = await startLocalitySidecar([{ region: 'r', zone: 'z', priority: 0, ports: ups.map((u) => u.port) }], {}, retry ? { retry_policy: retry } : {});
  t.teardown(() => s.shutdown());
  return s;
}

t.test('an upstream answering 503: one retry on another host hides it; without a policy a third of requests fail', async (t) => {
  const ups = await three(t);
  ups[1]!.mode = 'fail';
  const plain = await sidecar(t, ups);
  const without = await drive(plain.port('outbound'), 90, { concurrency: 1 });
  t.equal(without.failures.length, 30, 'round robin: every third request lands on the failing host');
  t.ok(without.failures.every((f) => f === '503 b'), 'and gets its 503');

  const s = await sidecar(t, ups, { retry_on: '5xx', num_retries: 1, retry_host_predicate: [PREVIOUS_HOSTS], host_selection_retry_max_attempts: 3, retry_back_off: { base_interval: '0.001s' } });
  const before = ups[1]!.served;
  const r = await drive(s.port('outbound'), 300, { concurrency: 4 });
  t.strictSame(r.failures, [], 'no request failed');
  t.equal((r.byServer.a ?? 0) + (r.byServer.c ?? 0), 300, 'the healthy hosts answered everything');
  t.ok(ups[1]!.served - before > 50, `the failing host was still tried (${ups[1]!.served - before} times): it is the retry that hid it`);
});

t.test('connect failures: retry_on connect-failure moves to a host that accepts', async (t) => {
  const ups = await three(t);
  await ups[2]!.stopAccepting();
  const s = await sidecar(t, ups, { retry_on: 'connect-failure', num_retries: 2, retry_host_predicate: [PREVIOUS_HOSTS], host_selection_retry_max_attempts: 3, retry_back_off: { base_interval: '0.001s' } });
  const r = await drive(s.port('outbound'), 120, { concurrency: 2 });
  t.strictSame(r.failures, []);
  t.equal(r.byServer.c, undefined, 'the dead host answered nothing');
});

t.test('a per-try timeout abandons a slow host and the retry answers in time', async (t) => {
  const ups = await three(t);
  ups[0]!.delayMs = 2000;
  const s = await sidecar(t, ups, { retry_on: '5xx', num_retries: 1, per_try_timeout: '0.15s', retry_host_predicate: [PREVIOUS_HOSTS], host_selection_retry_max_attempts: 3, retry_back_off: { base_interval: '0.001s' } });
  const r = await drive(s.port('outbound'), 30, { concurrency: 3 });
  t.strictSame(r.failures, []);
  t.equal(r.byServer.a, undefined, 'the slow host never answered in time');
  t.ok(Math.max(...r.latencies) < 1500, `every request finished well before the slow host would have answered (max ${Math.max(...r.latencies).toFixed(0)} ms)`);
});

t.test('when every try fails the caller gets the last upstream answer, flagged URX; a per-try timeout on the last try is a 504', async (t) => {
  const ups = await three(t);
  for (const u of ups) u.mode = 'fail';
  const s = await sidecar(t, ups, { retry_on: 'gateway-error', num_retries: 2, retry_back_off: { base_interval: '0.001s' } });
  const before = ups.reduce((n, u) => n + u.served, 0);
  const r = await drive(s.port('outbound'), 10, { concurrency: 1 });
  t.equal(r.failures.length, 10);
  t.ok(r.failures.every((f) => /^503 [abc]$/.test(f)), 'the upstream 503 is forwarded as it is');
  t.equal(ups.reduce((n, u) => n + u.served, 0) - before, 30, 'three tries each: the first and num_retries = 2');

  for (const u of ups) {
    u.mode = 'ok';
    u.delayMs = 1000;
  }
  const slow = await sidecar(t, ups, { retry_on: 'reset', num_retries: 1, per_try_timeout: '0.05s', retry_back_off: { base_interval: '0.001s' } });
  const timedOut = await drive(slow.port('outbound'), 2, { concurrency: 1 });
  t.strictSame(timedOut.failures, ['504', '504']);
});

t.test('a per-try timeout followed by a retry that succeeds on another locality (retry_priority previous_priorities)', async (t) => {
  const ups = await three(t);
  // The local zone's only host hangs; the other zones are priority 1 and 2, reached only by a retry.
  ups[0]!.delayMs = 3000;
  const s = await startLocalitySidecar(
    [
      { region: 'r', zone: 'near', priority: 0, ports: [ups[0]!.port] },
      { region: 'r', zone: 'far', priority: 1, ports: [ups[1]!.port] },
      { region: 'other', zone: 'farther', priority: 2, ports: [ups[2]!.port] },
    ],
    {},
    { retry_policy: { retry_on: 'reset', num_retries: 1, per_try_timeout: '0.1s', retry_priority: PREVIOUS_PRIORITIES, retry_back_off: { base_interval: '0.001s' } } },
  );
  t.teardown(() => s.shutdown());
  const r = await drive(s.port('outbound'), 10, { concurrency: 2 });
  t.strictSame(r.failures, [], 'every request was answered');
  t.strictSame(r.byServer, { b: 10 }, 'by the next priority: the retry left the priority that timed out');
  t.ok(Math.max(...r.latencies) < 1500, `in about one per-try timeout (max ${Math.max(...r.latencies).toFixed(0)} ms), not the slow host's 3 s`);
});
