// A mesh on 2-minute SVIDs under steady load: both sidecars rotate several times (at half-life) and no request fails.
import t from 'tap';
import { startCaMesh } from '../helpers/mesh-ca.js';
import { steadyLoad } from '../helpers/load.js';
import { waitFor } from '../helpers/tools.js';

// Three rotations at ~60 s each take a little over three minutes of real time: certificates expire by the wall clock.
t.setTimeout(330_000);

t.test('2-minute TTL: three rotations per sidecar, zero failed requests', async (t) => {
  const m = await startCaMesh({ ttl: '2m' });
  t.teardown(() => m.close());
  const issued = (logs: string[]) => logs.filter((l) => l.includes('"SVID issued"')).length;
  const serials = { a: new Set<string>(), b: new Set<string>() };
  // Paced (8 keep-alive workers, each 100 ms between requests: ~75 req/s, ~14,000 requests over the run):
  // three minutes of flat-out load would take a core from every other test file running beside this one.
  const load = steadyLoad(m.outPort, 8, 100);
  await waitFor(() => load.ok > 100, 'steady load');
  const sample = async () => {
    for (const [k, s] of [['a', m.a], ['b', m.b]] as const) {
      const r = (await (await fetch(`${s.adminUrl}/certs`)).json()) as { certificates: { name: string; serial_number: string }[] };
      serials[k].add(r.certificates.find((c) => c.name === 'default')!.serial_number);
    }
  };
  await waitFor(
    async () => {
      const done = issued(m.a.logs) >= 4 && issued(m.b.logs) >= 4;
      await sample();
      return done;
    },
    'three rotations on each sidecar',
    300_000,
  );
  const atEnd = load.ok;
  await waitFor(() => load.ok > atEnd + 100, 'load after the last rotation');
  await load.stop();
  t.same(load.failures, [], `zero failed requests out of ${load.ok}`);
  t.ok(serials.a.size >= 4 && serials.b.size >= 4, `/certs showed each new SVID (A ${serials.a.size}, B ${serials.b.size})`);
  t.match(await m.a.registry.getSingleMetricAsString('outrigger_svid_renewals_total'), /result="ok"} [4-9]/);
});
