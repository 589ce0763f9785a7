// Latency awareness on real sockets: eleven endpoints in the caller's zone, one turns 20x slower. PEAK_EWMA
// takes load off it within a second; round robin keeps feeding it its full share. (The p99 / p99.9 comparison
// of the pickers is a benchmark: bench/lb-scenarios.mjs.)
import t, { type Test } from 'tap';
import { TYPE_URL_PEAK_EWMA } from '../../src/model/types.js';
import { drive, startFaultyUpstream, startLocalitySidecar, type FaultyUpstream } from '../helpers/lb-harness.js';

const BASE_MS = 4;
const PEAK_EWMA_POLICY = {
  lb_policy: 'LOAD_BALANCING_POLICY_CONFIG',
  load_balancing_policy: {
    policies: [
      { typed_extension_config: { name: 'outrigger.peak_ewma', typed_config: { '@type': 'type.googleapis.com/xds.type.v3.TypedStruct', type_url: TYPE_URL_PEAK_EWMA, value: { decay_time: '10s' } } } },
      { typed_extension_config: { name: 'envoy.load_balancing_policies.round_robin', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin' } } },
    ],
  },
};

async function slowOneOfEleven(t: Test, cluster: Record<string, unknown>): Promise<{ slowShare: number; slow: FaultyUpstream; policy: string }> {
  const ups = await Promise.all(Array.from({ length: 11 }, (_, i) => startFaultyUpstream(`e${i}`)));
  t.teardown(() => Promise.all(ups.map((u) => u.close())));
  for (const u of ups) u.delayMs = BASE_MS;
  const s = await startLocalitySidecar([{ region: 'r', zone: 'z', priority: 0, ports: ups.map((u) => u.port) }], cluster);
  t.teardown(() => s.shutdown());
  const port = s.port('outbound');
  await drive(port, 220, { concurrency: 4 });
  const slow = ups[3]!;
  // In rotation before the slowdown (PEAK_EWMA's share of a fast host varies with the event-loop stalls its
  // estimates pick up, so only "some" is asserted here).
  t.ok(slow.served > 0, `before the slowdown the host was in rotation (${slow.served} of 220)`);
  slow.delayMs = BASE_MS * 20;
  // The first second after the slowdown is the picker's to learn; what counts is the share after it.
  await drive(port, Number.MAX_SAFE_INTEGER, { concurrency: 4, forMs: 1000 });
  const before = slow.served;
  const r = await drive(port, 400, { concurrency: 4 });
  const policy = (await (await fetch(`${s.adminUrl}/clusters`)).text()).match(/backend::lb_policy::(\w+)/)![1]!;
  return { slowShare: (slow.served - before) / 400, slow, policy: `${policy} (${r.failures.length} failed)` };
}

t.test('one endpoint 20x slower: PEAK_EWMA moves load off it within a second, round robin does not', async (t) => {
  const ewma = await slowOneOfEleven(t, PEAK_EWMA_POLICY);
  t.match(ewma.policy, /^PEAK_EWMA \(0 failed\)/);
  const rr = await slowOneOfEleven(t, { lb_policy: 'ROUND_ROBIN' });
  t.match(rr.policy, /^ROUND_ROBIN \(0 failed\)/);
  t.ok(rr.slowShare > 0.07, `round robin still sends the slow host ${(rr.slowShare * 100).toFixed(1)} % (1/11 = 9.1 %)`);
  // The estimate is measured inside the sidecar, so event-loop stalls (here the client, the sidecar and the
  // upstreams share one loop) inflate every host's; the bound leaves room for that and still asks for a
  // third of round robin's share at most (bench/RESULTS.md measures 0.3 % at this concurrency).
  t.ok(ewma.slowShare < rr.slowShare / 3, `PEAK_EWMA sends it ${(ewma.slowShare * 100).toFixed(1)} % after the first second`);
});
