// Dev certificates: Istio's layout, valid X509-SVIDs that chain to the written root, bad workloads refused.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { systemClock } from '../../src/core/clock.js';
import { writeDevCerts } from '../../src/identity/dev-certs.js';
import { checkX509Svid } from '../../src/identity/svid.js';
import { tempDir } from '../helpers/mesh.js';

t.test('writes a root and one SVID per workload in the Istio file layout', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.cleanup());
  const r = await writeDevCerts({ dir: tmp.dir, trustDomain: 'dev.example', workloads: ['default/frontend', 'shop/reviews'], ttlMs: 3600_000, clock: systemClock });
  const root = new X509Certificate(readFileSync(r.rootCert));
  t.same(r.workloads.map((w) => w.spiffeId), ['spiffe://dev.example/ns/default/sa/frontend', 'spiffe://dev.example/ns/shop/sa/reviews']);
  for (const w of r.workloads) {
    const leaf = new X509Certificate(readFileSync(path.join(w.dir, 'cert-chain.pem')));
    t.ok(leaf.verify(root.publicKey), `${w.spiffeId} is signed by the root`);
    t.match(checkX509Svid(leaf, { trustDomain: 'dev.example' }), { ok: true, id: { uri: w.spiffeId } });
    t.equal(statSync(path.join(w.dir, 'key.pem')).mode & 0o777, 0o600, 'key readable by its owner only');
    t.ok(existsSync(path.join(w.dir, 'root-cert.pem')));
  }
});

t.test('refuses a workload that is not namespace/serviceaccount, or an invalid SPIFFE segment, before writing', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.cleanup());
  await t.rejects(writeDevCerts({ dir: path.join(tmp.dir, 'x'), trustDomain: 'td', workloads: ['frontend'], ttlMs: 1000, clock: systemClock }), /expected namespace\/serviceaccount/);
  await t.rejects(writeDevCerts({ dir: path.join(tmp.dir, 'y'), trustDomain: 'td', workloads: ['default/a b'], ttlMs: 1000, clock: systemClock }));
  t.notOk(existsSync(path.join(tmp.dir, 'x')));
  t.notOk(existsSync(path.join(tmp.dir, 'y')));
});
