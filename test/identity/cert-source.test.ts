import t from 'tap';
import { throwsWhere } from '../helpers/tools.js';
import { renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { FakeClock, systemClock } from '../../src/core/clock.js';
import { CertificateSource, type TlsMaterial } from '../../src/identity/cert-source.js';
import { IdentityError } from '../../src/identity/errors.js';
import { makePki } from '../helpers/pki.js';
import { tempDir, writeCertFiles } from '../helpers/mesh.js';

const ID = 'spiffe://cluster.local/ns/default/sa/reviews';
const logger = { warnings: [] as string[], info() {}, warn(o: object) { this.warnings.push(JSON.stringify(o)); } };

/** A temp dir holding `count` SVIDs of one CA, with the first written out in Istio's layout. */
async function fixture(t: { teardown(fn: () => void): void }, count: number) {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const pki = await makePki();
  const svids = [];
  for (let i = 0; i < count; i++) svids.push(await pki.issue(ID));
  const files = writeCertFiles(tmp.dir, 'w', { chainPem: svids[0]!.chainPem, keyPem: svids[0]!.keyPem, rootPem: pki.rootPem });
  return { svids, files };
}

function source(files: { chain: string; key: string; root: string }, clock = systemClock) {
  return new CertificateSource(
    { certificateChain: { kind: 'file', path: files.chain }, privateKey: { kind: 'file', path: files.key }, trustedCa: { kind: 'file', path: files.root } },
    { clock, logger, pollIntervalMs: 1000, debounceMs: 20 },
  );
}

t.test('load validates and describes the material', async (t) => {
  const { files } = await fixture(t, 1);
  const m = source(files).load();
  t.equal(m.spiffeId, ID);
  t.equal(m.caCerts.length, 1);
  t.ok(m.notAfter > m.notBefore);
  t.equal(m.version, 1);
});

t.test('bad material is refused naming the file', async (t) => {
  const {
    svids: [a, b],
    files,
  } = await fixture(t, 2);
  writeFileSync(files.key, b!.keyPem);
  throwsWhere(t, () => source(files).load(), (e: unknown) => e instanceof IdentityError && e.code === 'KEY_MISMATCH' && e.message.includes(files.key));
  writeFileSync(files.key, a!.keyPem);
  writeFileSync(files.chain, a!.chainPem.slice(0, 200));
  throwsWhere(t, () => source(files).load(), (e: unknown) => e instanceof IdentityError && e.code === 'CERT_LOAD_FAILED' && e.message.includes(files.chain));
  writeFileSync(files.chain, a!.chainPem.replace(/[A-Za-z]{20}/, 'x'.repeat(20)));
  throwsWhere(t, () => source(files).load(), (e: unknown) => e instanceof IdentityError && /corrupt|truncated/.test(e.message));
  unlinkSync(files.root);
  writeFileSync(files.chain, a!.chainPem);
  throwsWhere(t, () => source(files).load(), (e: unknown) => e instanceof IdentityError && e.message.includes(files.root) && e.message.includes('ENOENT'));
  writeFileSync(files.root, 'not a pem');
  throwsWhere(t, () => source(files).load(), /holds no PEM certificate/);
});

t.test('atomic rotation is picked up; a half-rotated pair is held back until complete', async (t) => {
  const {
    svids: [, b],
    files,
  } = await fixture(t, 2);
  const src = source(files);
  const first = src.load();
  src.start();
  t.teardown(() => src.close());
  const next = new Promise<TlsMaterial>((r) => src.once('update', r));
  // Only the key first: the pair no longer matches, so nothing is adopted.
  writeFileSync(`${files.key}.tmp`, b!.keyPem);
  renameSync(`${files.key}.tmp`, files.key);
  src.check();
  t.equal(src.current().serial, first.serial, 'mismatched intermediate state keeps the old material');
  t.ok(logger.warnings.some((w) => w.includes('does not match')), 'and says why');
  writeFileSync(`${files.chain}.tmp`, b!.chainPem);
  renameSync(`${files.chain}.tmp`, files.chain);
  const m = await next;
  t.not(m.serial, first.serial);
  t.equal(m.version, 2);
  t.equal(src.current().serial, m.serial);
});

t.test('the content poll catches changes inotify missed (fake clock)', async (t) => {
  const {
    svids: [, b],
    files,
  } = await fixture(t, 2);
  const clock = new FakeClock();
  const src = source(files, clock);
  src.load();
  src.start();
  t.teardown(() => src.close());
  let updates = 0;
  src.on('update', () => updates++);
  writeFileSync(files.key, b!.keyPem);
  writeFileSync(files.chain, b!.chainPem);
  src.close(); // no inotify from here on: only the poll on the fake clock
  src.start();
  clock.advance(999);
  t.equal(updates, 0);
  clock.advance(1);
  t.equal(updates, 1, 'picked up on the poll tick');
});
