// The sidecar's identity manager against a real CA on a fake clock: first SVID by token, rotation at half-life, an unreachable CA, recovery.
import t from 'tap';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { FakeClock } from '../../src/core/clock.js';
import { seededRng } from '../../src/core/rng.js';
import { CaClient } from '../../src/identity/ca-client.js';
import type { TlsMaterial } from '../../src/identity/cert-source.js';
import { WorkloadIdentity } from '../../src/identity/workload-identity.js';
import { TD } from '../helpers/mesh.js';
import { memoryLogger, startControl } from '../helpers/mesh-ca.js';
import { waitFor } from '../helpers/tools.js';

const ID = `spiffe://${TD}/ns/default/sa/reviews`;
const HOUR = 3600_000;

t.test('rotates at half-life with jitter, keeps serving through a CA outage, warns loudly, recovers', async (t) => {
  // Certificates are checked by TLS against the real time; start the fake clock there and move it
  // forward no further than the first SVID's lifetime, so every certificate presented stays valid.
  const clock = new FakeClock(Date.now());
  let ca = await startControl({ clock });
  const port = ca.server.grpcPort;
  const caDir = ca.caDir;
  const { logger, logs } = memoryLogger();
  let identity: WorkloadIdentity | undefined;
  const client = new CaClient({ address: ca.address, roots: () => readFileSync(ca.rootFile, 'utf8') + (identity?.hasSvid ? identity.current().caPem : ''), clock });
  identity = new WorkloadIdentity({ spiffeId: ID, ttlMs: HOUR, client, tokenFile: await ca.token('default/reviews'), instance: 'test', clock, rng: seededRng(7), logger, retryBaseMs: 1000, retryMaxMs: 60_000 });
  t.teardown(() => identity!.close());
  const first = await identity.start();
  t.equal(first.spiffeId, ID);
  t.ok(first.caCerts.length >= 1, 'ROOTCA bundle delivered with the SVID');
  t.match(logs.join(''), /SVID issued/);

  // Rotation is due in 45–55 % of the lifetime: nothing before 0.44 h.
  clock.advance(0.44 * HOUR);
  t.equal(identity.current().serial, first.serial, 'not rotated before 45 % of the lifetime');

  // The CA goes away (same port, same directory when it comes back).
  await ca.server.close();
  clock.advance(0.12 * HOUR);
  await waitFor(() => logs.some((l) => l.includes('SVID renewal failed')), 'a failed renewal');
  t.equal(identity.current().serial, first.serial, 'keeps serving the current SVID while the CA is down');
  t.match(logs.join(''), /unreachable|UNAVAILABLE/);

  // Near expiry the warning turns into an error.
  for (let i = 0; i < 40 && !logs.some((l) => l.includes('SVID expires soon')); i++) {
    clock.advance(60_000);
    await new Promise((r) => setImmediate(r));
  }
  await waitFor(() => logs.some((l) => l.includes('SVID expires soon')), 'the loud warning as expiry nears', 20_000);
  t.ok(clock.now() - Date.parse(first.leaf.validFrom) < HOUR, 'still within the lifetime');

  // The restarted CA runs on the real clock: its serving certificate must be valid for TLS now.
  ca = await startControl({ caDir, port });
  t.teardown(() => ca.close());
  const next = once(identity, 'update') as Promise<[TlsMaterial]>;
  // The backoff timer is pending on the fake clock; move past its longest possible wait.
  clock.advance(HOUR / 20);
  const [m] = await next;
  t.not(m.serial, first.serial, 'renewed once the CA is back');
  t.equal(m.spiffeId, ID);
  t.ok(m.notAfter >= first.notAfter, 'a full new lifetime');
  t.not(m.keyPem, first.keyPem, 'a new key per rotation');
});

t.test('no SVID yet: start() retries until the CA issues one', async (t) => {
  const clock = new FakeClock(Date.now());
  const ca = await startControl({ clock });
  t.teardown(() => ca.close());
  const { logger, logs } = memoryLogger();
  // The first attempt has no token file; it appears while start() is retrying.
  const tokenFile = `${ca.dir}/late-token`;
  const client = new CaClient({ address: ca.address, roots: () => readFileSync(ca.rootFile, 'utf8'), clock });
  const identity = new WorkloadIdentity({ spiffeId: ID, ttlMs: HOUR, client, tokenFile, instance: 't2', clock, rng: seededRng(1), logger, retryBaseMs: 1000, retryMaxMs: 2000 });
  t.teardown(() => identity.close());
  t.equal(identity.hasSvid, false);
  const started = identity.start();
  await waitFor(() => logs.some((l) => l.includes('no SVID yet')), 'a failed first attempt');
  t.throws(() => identity.current(), /no SVID yet/);
  const { renameSync } = await import('node:fs');
  renameSync(await ca.token('default/reviews'), tokenFile);
  clock.advance(2000);
  const m = await started;
  t.equal(m.spiffeId, ID);
  t.equal(identity.hasSvid, true);
});
