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
  const client = new CaClient({ address: ca.address, roots: () => readFileSync(ca.rootFile, 'utf8') + (identity?.hasSvid ? identity.current().caPem : ''), clock, trustDomain: TD });
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
  const client = new CaClient({ address: ca.address, roots: () => readFileSync(ca.rootFile, 'utf8'), clock, trustDomain: TD });
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

  // Told to stop before it ever got an SVID (no token at all): start() ends instead of retrying forever.
  const never = new WorkloadIdentity({ spiffeId: ID, ttlMs: HOUR, client, tokenFile: `${ca.dir}/absent`, instance: 't3', clock, rng: seededRng(2), logger, retryBaseMs: 1000, retryMaxMs: 2000 });
  const pending = never.start();
  await waitFor(() => logs.some((l) => l.includes('no SVID yet') && l.includes('absent')), 'a failed attempt of the second manager');
  never.close();
  await t.rejects(pending, /closed before the first SVID/);
});

/**
 * The CA's side without the network: a real CA on its own (skewed) clock signing the real CSRs. gRPC and
 * TLS are covered above; here only the two clocks differ, which TLS on one machine cannot show.
 */
async function skewedCa(offsetMs: number, local: FakeClock) {
  const { createRootCa, signCsr } = await import('../../src/identity/ca.js');
  const { parseCsr } = await import('../../src/identity/csr.js');
  const caClock = { ...local, now: () => local.now() + offsetMs } as unknown as FakeClock;
  const root = await createRootCa({ trustDomain: TD, commonName: 'skewed', clock: caClock });
  return {
    createCertificate: async (req: { csrPem: string; ttlSeconds: number }) => {
      const c = await signCsr(root, await parseCsr(req.csrPem), { spiffeId: ID, ttlMs: req.ttlSeconds * 1000, clock: caClock });
      return { chainPem: c.chainPem, bundlePem: root.certPem };
    },
    watch: () => ({ ack() {}, close() {} }),
  } as unknown as CaClient;
}

t.test('clock skew of ±5 minutes to the CA is ridden out; beyond 10 minutes the SVID is refused', async (t) => {
  const clock = new FakeClock(Date.UTC(2026, 10, 23, 12));
  // The double ignores the credential; the manager still reads a token file for its first request.
  const tokenFile = `${t.testdir({ token: 'unused' })}/token`;
  const mk = async (offsetMs: number) => {
    const { logger, logs } = memoryLogger();
    const id = new WorkloadIdentity({ spiffeId: ID, ttlMs: HOUR, client: await skewedCa(offsetMs, clock), tokenFile, instance: 's', clock, rng: seededRng(3), logger, retryBaseMs: 1000, retryMaxMs: 1000 });
    t.teardown(() => id.close());
    return { id, logs };
  };

  // CA 5 minutes ahead: the SVID is valid from +4 min here; it is held back until then.
  const ahead = await mk(5 * 60_000);
  const started = ahead.id.start();
  await waitFor(() => ahead.logs.some((l) => l.includes('kept aside until it is valid here')), 'the skew warning');
  t.equal(ahead.id.hasSvid, false, 'not adopted while not yet valid here');
  clock.advance(4 * 60_000);
  const m = await started;
  t.ok(m.notBefore <= clock.now(), 'adopted once valid by the local clock');

  // CA 5 minutes behind: the SVID expires 5 minutes early by our clock, and is renewed before that.
  const behind = await mk(-5 * 60_000);
  const first = await behind.id.start();
  t.ok(first.notAfter - clock.now() <= 55 * 60_000 + 1000, 'expires in ~55 min by our clock');
  const next = once(behind.id, 'update');
  clock.advance(0.56 * (first.notAfter - clock.now()));
  const [renewed] = (await next) as [TlsMaterial];
  t.ok(renewed.notAfter > first.notAfter);
  t.ok(clock.now() < first.notAfter, 'renewed before the local expiry');

  // 15 minutes ahead: refused, with a message about the clocks; start() keeps retrying.
  const far = await mk(15 * 60_000);
  void far.id.start().catch(() => {});
  await waitFor(() => far.logs.some((l) => l.includes('clocks more than 10 minutes apart')), 'the refusal');
  t.equal(far.id.hasSvid, false);
});

t.test('what the CA returns is checked before it is adopted: the ID asked for, a chain to the bundle', async (t) => {
  const { makePki } = await import('../helpers/pki.js');
  const { verifyIssued } = await import('../../src/identity/workload-identity.js');
  const a = await makePki({ intermediate: true });
  const b = await makePki();
  const s = await a.issue(ID);
  t.doesNotThrow(() => verifyIssued(s.chainPem, a.rootPem, ID));
  t.throws(() => verifyIssued(s.chainPem, b.rootPem, ID), /does not lead to a root of its trust bundle/);
  t.throws(() => verifyIssued(s.certPem, a.rootPem, ID), /does not lead to a root/, 'the intermediate is missing');
  t.throws(() => verifyIssued(s.chainPem, a.rootPem, `spiffe://${TD}/ns/default/sa/other`), /issued .*reviews, expected .*other/);
  const ca = await a.issue(ID, { isCa: true });
  t.throws(() => verifyIssued(ca.chainPem, a.rootPem, ID), /not a valid X509-SVID/);
  t.throws(() => verifyIssued('', a.rootPem, ID), /no certificate/);
});
