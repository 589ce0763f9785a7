// Consistent hashing through a real sidecar: RING_HASH and MAGLEV keyed by the route's hash_policy send every
// request of one user to one host, and different users over all of them.
import t from 'tap';
import { drive, startFaultyUpstream, startLocalitySidecar } from '../helpers/lb-harness.js';

for (const policy of ['RING_HASH', 'MAGLEV'] as const) {
  t.test(`${policy} on the x-user header: one host per user, users spread over every host`, async (t) => {
    const ups = await Promise.all(['h1', 'h2', 'h3', 'h4'].map((n) => startFaultyUpstream(n)));
    t.teardown(() => Promise.all(ups.map((u) => u.close())));
    const s = await startLocalitySidecar([{ region: 'r', zone: 'z', priority: 0, ports: ups.map((u) => u.port) }], { lb_policy: policy }, { hash_policy: [{ header: { header_name: 'x-user' } }] });
    t.teardown(() => s.shutdown());
    const hostOf = new Map<string, string>();
    for (let u = 0; u < 40; u++) {
      const r = await drive(s.port('outbound'), 10, { concurrency: 2, headers: { 'x-user': `user-${u}` } });
      t.strictSame(r.failures, []);
      const hosts = Object.keys(r.byServer);
      if (hosts.length !== 1) t.fail(`user-${u} went to ${hosts.join(', ')}`);
      hostOf.set(`user-${u}`, hosts[0]!);
    }
    t.equal(new Set(hostOf.values()).size, 4, 'forty users land on all four hosts');
    const anon = await drive(s.port('outbound'), 80, { concurrency: 2 });
    t.ok(Object.keys(anon.byServer).length > 1, 'without the header the pick is random');
  });
}
