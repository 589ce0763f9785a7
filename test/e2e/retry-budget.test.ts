// A retry storm prevented by the retry budget: one cluster answers 503 to everything; with a retry policy of five
// retries each failed request would cost six upstream requests, but the cluster's retry_budget (Envoy's
// circuit_breakers.thresholds.retry_budget: 20 % of the active requests, at least 3 concurrent retries) keeps the
// extra load to about a fifth, and the callers get the upstream's own 503 at once.
import t, { type Test } from 'tap';
import { drive, startFaultyUpstream, startLocalitySidecar, type FaultyUpstream } from '../helpers/lb-harness.js';
import { metricValue } from '../helpers/two-hop.js';

const REQUESTS = 300;
const CONCURRENCY = 50;
const RETRIES = 5;
const RETRY = { retry_policy: { retry_on: '5xx', num_retries: RETRIES, retry_back_off: { base_interval: '0.001s', max_interval: '0.002s' } } };

async function failing(t: Test): Promise<FaultyUpstream[]> {
  const ups = await Promise.all(['a', 'b', 'c'].map((n) => startFaultyUpstream(n)));
  t.teardown(() => Promise.all(ups.map((u) => u.close())));
  for (const u of ups) {
    u.mode = 'fail';
    // Slow enough that requests overlap: the budget is a share of the requests in flight.
    u.delayMs = 5;
  }
  return ups;
}

async function storm(t: Test, thresholds: Record<string, unknown>) {
  const ups = await failing(t);
  const s = await startLocalitySidecar([{ region: 'r', zone: 'z', priority: 0, ports: ups.map((u) => u.port) }], { circuit_breakers: { thresholds: [thresholds] } }, RETRY);
  t.teardown(() => s.shutdown());
  const r = await drive(s.port('outbound'), REQUESTS, { concurrency: CONCURRENCY });
  const attempts = ups.reduce((n, u) => n + u.served, 0);
  return { r, attempts, s };
}

t.test('without a budget (max_retries out of the way) every failed request costs 1 + num_retries upstream requests', async (t) => {
  const { r, attempts } = await storm(t, { max_retries: 100_000 });
  t.equal(r.failures.length, REQUESTS);
  t.equal(attempts, REQUESTS * (1 + RETRIES), `${attempts} upstream requests for ${REQUESTS} calls: the storm`);
});

t.test('with retry_budget 20 % the storm stays near requests x 1.2, and the refused retries answer with the 503 at hand', async (t) => {
  const { r, attempts, s } = await storm(t, { retry_budget: { budget_percent: { value: 20 }, min_retry_concurrency: 3 } });
  t.equal(r.failures.length, REQUESTS, 'every call fails: there is no healthy host');
  t.ok(r.failures.every((f) => /^503 [abc]$/.test(f)), "each with the upstream's own 503, not a local reply");
  const retries = attempts - REQUESTS;
  // At most 20 % of what is in flight is a retry, so retries are at most about a quarter of the first tries
  // (20 % of 50 first tries plus the retries themselves: 12.5 concurrent); allow for the 3-retry floor.
  t.ok(retries <= REQUESTS * 0.25 + 3, `${retries} retries for ${REQUESTS} calls (${attempts} upstream requests; without the budget ${REQUESTS * (1 + RETRIES)})`);
  t.ok(retries > 0, 'retries still happen within the budget');
  t.equal(await metricValue(s, 'outrigger_upstream_retries_total', { outcome: 'retried' }), retries, 'each retry the budget admitted was sent');
  t.ok((await metricValue(s, 'outrigger_upstream_retries_total', { outcome: 'overflow' })) > 0, 'the refused ones are counted as overflow');
});
