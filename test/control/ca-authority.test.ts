// The CA directory through a root rotation: the record on disk, resuming after a restart, extra roots kept, bad --new-ca refused, foreign SVIDs refused.
import t from 'tap';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { Registry } from 'prom-client';
import { systemClock } from '../../src/core/clock.js';
import { CaAuthority, NEXT_DIR } from '../../src/control/ca-authority.js';
import { createIntermediateCa, createRootCa, issueSvid } from '../../src/identity/ca.js';
import { CaClient } from '../../src/identity/ca-client.js';
import { IdentityError } from '../../src/identity/errors.js';
import { requestSvid } from '../../src/identity/workload-identity.js';
import { createCaMetrics } from '../../src/telemetry/metrics.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { TD } from '../helpers/mesh.js';
import { startControl } from '../helpers/mesh-ca.js';

const opts = () => ({ trustDomain: TD, clock: systemClock, logger: silentLogger(), metrics: createCaMetrics(new Registry()), serverNames: ['127.0.0.1'] });
const open = (dir: string) => CaAuthority.open(dir, opts());

t.test('a rotation survives restarts at every phase and keeps a root the user added', async (t) => {
  const dir = t.testdir();
  const first = await open(dir);
  first.close();
  // The user's second root (say, a federated one) is in the bundle before any rotation.
  const extra = await createRootCa({ trustDomain: TD, commonName: 'extra root', clock: systemClock });
  writeFileSync(path.join(dir, 'root-cert.pem'), readFileSync(path.join(dir, 'root-cert.pem'), 'utf8') + extra.certPem);
  const a = await open(dir);
  t.equal(a.storedPhase, 'idle', 'two roots in the bundle are not a rotation');
  const oldSigner = a.issuerFingerprint;
  await a.addIncoming();
  a.close();

  const b = await open(dir);
  t.equal(b.storedPhase, 'bundle_added', 'resumed after a restart in step 1');
  t.equal(b.roots.length, 3);
  t.equal(b.issuerFingerprint, oldSigner, 'still signing with the old CA');
  t.equal(b.signers().length, 2, 'old and incoming signers are both ours');
  await b.switchIssuer();
  b.close();

  const c = await open(dir);
  t.equal(c.storedPhase, 'issuer_switched');
  t.not(c.issuerFingerprint, oldSigner);
  t.notOk(existsSync(path.join(dir, NEXT_DIR)));
  t.ok(c.signers().some((s) => s.fingerprint256 === oldSigner), 'SVIDs of the old signer still prove identity until step 5');
  await c.removeOldRoots();
  c.close();

  const d = await open(dir);
  t.equal(d.storedPhase, 'idle');
  t.equal(d.roots.length, 2, 'the old root is gone, the extra root stays');
  t.ok(d.roots.some((r) => r.subject.includes('extra root')));
  t.equal(d.signers().length, 1);
  d.close();
});

t.test('--new-ca: a broken directory is refused before anything changes; a good one becomes the signer', async (t) => {
  const dir = t.testdir({ bad: { 'ca-cert.pem': '-----BEGIN CERTIFICATE-----\nAAAA\n', 'ca-key.pem': 'x' }, empty: {} });
  const caDir = path.join(dir, 'ca');
  const a = await open(caDir);
  t.teardown(() => a.close());
  const before = a.bundleVersion;
  for (const src of ['bad', 'empty']) {
    const err = await a.addIncoming(path.join(dir, src)).then(() => undefined, (e: unknown) => e);
    t.ok(err instanceof IdentityError && err.code === 'CA_DIR_INVALID', `${src}: ${String(err)}`);
    t.equal(a.storedPhase, 'idle', `${src}: no rotation started`);
    t.notOk(existsSync(path.join(caDir, NEXT_DIR)));
    t.equal(a.bundleVersion, before);
  }
  t.notOk(existsSync(path.join(dir, 'empty', 'ca-cert.pem')), 'nothing generated in the user\'s directory');
  const reopened = await open(caDir);
  reopened.close();

  // A plugged-in replacement: a new enterprise root and an intermediate under it, in Istio's files.
  const root = await createRootCa({ trustDomain: TD, commonName: 'new enterprise root', clock: systemClock });
  const inter = await createIntermediateCa(root, { commonName: 'new intermediate', clock: systemClock });
  const src = path.join(dir, 'new-ca');
  mkdirSync(src);
  writeFileSync(path.join(src, 'ca-cert.pem'), inter.certPem);
  writeFileSync(path.join(src, 'ca-key.pem'), inter.keyPem);
  writeFileSync(path.join(src, 'root-cert.pem'), root.certPem);
  await a.addIncoming(src);
  await a.switchIssuer();
  t.equal(a.signer.certPem, inter.certPem, 'the plugged-in intermediate signs now');
  t.ok(readFileSync(path.join(caDir, 'cert-chain.pem'), 'utf8').startsWith(inter.certPem.trim().slice(0, 40)), 'cert-chain.pem written for the new signer');
  await a.removeOldRoots();
  t.equal(a.roots.length, 1);
  t.equal(a.roots[0]!.subject.includes('new enterprise root'), true);
});

t.test('an SVID from another CA under the same root proves nothing to this CA', async (t) => {
  const root = await createRootCa({ trustDomain: TD, commonName: 'enterprise root', clock: systemClock });
  const ours = await createIntermediateCa(root, { commonName: 'mesh intermediate', clock: systemClock });
  const theirs = await createIntermediateCa(root, { commonName: 'another team', clock: systemClock });
  const dir = t.testdir();
  writeFileSync(path.join(dir, 'ca-cert.pem'), ours.certPem);
  writeFileSync(path.join(dir, 'ca-key.pem'), ours.keyPem);
  writeFileSync(path.join(dir, 'root-cert.pem'), root.certPem);
  const ca = await startControl({ caDir: dir });
  t.teardown(() => ca.close());
  const client = new CaClient({ address: ca.address, roots: () => root.certPem, clock: systemClock, trustDomain: TD });
  const forged = await issueSvid(theirs, { spiffeIds: [`spiffe://${TD}/ns/default/sa/reviews`], clock: systemClock });
  await t.rejects(
    requestSvid(client, { spiffeId: `spiffe://${TD}/ns/default/sa/reviews`, ttlMs: 600_000, instance: 'x', credential: { certChainPem: forged.chainPem, keyPem: forged.keyPem } }),
    /UNAUTHENTICATED.*not issued by this CA/,
  );
  t.match(await ca.registry.getSingleMetricAsString('outrigger_ca_refusals_total'), /reason="svid_foreign"} 1/);
});

t.test('rotation steps wait out the reconnect grace, then for every watcher; a timeout stops safely in its phase', async (t) => {
  const { FakeClock } = await import('../../src/core/clock.js');
  const { RootRotation } = await import('../../src/control/root-rotation.js');
  const { waitFor } = await import('../helpers/tools.js');
  const clock = new FakeClock(Date.now());
  const metrics = createCaMetrics(new Registry());
  const a = await CaAuthority.open(t.testdir(), { ...opts(), clock, metrics });
  t.teardown(() => a.close());
  const watchers: { spiffeId: string; instance: string; bundleVersion: string; issuerFingerprint: string }[] = [];
  const r = new RootRotation(a, () => watchers, { clock, logger: silentLogger(), metrics, stepTimeoutMs: 60_000, reconnectGraceMs: 30_000 });

  // A sidecar that never acknowledges: the distribution wait times out and the rotation stops in step 1.
  watchers.push({ spiffeId: 'spiffe://cluster.local/ns/default/sa/slow', instance: 'slow', bundleVersion: '', issuerFingerprint: '' });
  const failed = r.start().then(() => 'done', (e: Error) => e.message);
  await waitFor(() => r.status().phase === 'bundle_added', 'step 1');
  await t.rejects(r.start('/elsewhere'), /already running with a new self-signed root/, 'another --new-ca while one runs is refused');
  t.equal(r.conflict(undefined), undefined, 'asking again without a source joins the running one');
  clock.advance(30_000);
  t.equal(r.status().waiting?.behind[0]?.instance, 'slow', 'status names who is behind');
  clock.advance(31_000);
  t.match(await failed, /timed out waiting for every sidecar to trust the new root: 0\/1 caught up; behind: .*sa\/slow/);
  t.equal(r.status().state, 'failed');
  t.equal(a.storedPhase, 'bundle_added', 'the mesh stays in the phase reached');

  // Resumed with no watcher left: it still waits out the grace (here: already past), then completes.
  watchers.length = 0;
  await r.start();
  t.equal(r.status().phase, 'old_root_removed');
  t.equal(a.storedPhase, 'idle');
  t.equal(a.roots.length, 1);
});
