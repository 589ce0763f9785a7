// `outrigger certs renew` against a real CA (first by token, then by SVID; atomic files a watcher picks up) and `status`.
import t from 'tap';
import { once } from 'node:events';
import { copyFileSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { renewMain } from '../../src/cli/certs-ops.js';
import { main } from '../../src/cli/main.js';
import { statusMain } from '../../src/cli/control.js';
import { systemClock } from '../../src/core/clock.js';
import { CertificateSource } from '../../src/identity/cert-source.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { startControl } from '../helpers/mesh-ca.js';

/** Runs a CLI entry point with stdout and stderr captured. */
async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const w1 = process.stdout.write.bind(process.stdout);
  const w2 = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
  try {
    return { code: await fn(), out: out.join(''), err: err.join('') };
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
}

t.test('certs renew: token first, then not needed, then by SVID; a watcher picks the files up', async (t) => {
  const ca = await startControl();
  t.teardown(() => ca.close());
  const dir = path.join(ca.dir, 'vm1');
  const base = ['--dir', dir, '--identity', 'default/reviews', '--ca', ca.address, '--ca-root', ca.rootFile];

  const none = await capture(() => renewMain(base));
  t.equal(none.code, 1);
  t.match(none.err, /no valid SVID to renew with .* and no --token/);

  const first = await capture(async () => renewMain([...base, '--token', await ca.token('default/reviews')]));
  t.equal(first.code, 0, first.err);
  t.match(first.out, /^renewed: spiffe:\/\/cluster.local\/ns\/default\/sa\/reviews, serial/);
  for (const f of ['cert-chain.pem', 'key.pem', 'root-cert.pem']) t.ok(existsSync(path.join(dir, f)), f);
  t.equal(statSync(path.join(dir, 'key.pem')).mode & 0o777, 0o600, 'the key is private');

  const again = await capture(() => renewMain(base));
  t.equal(again.code, 0);
  t.match(again.out, /^not needed: .* valid for \d+s more/);

  const source = new CertificateSource(
    { certificateChain: { kind: 'file', path: path.join(dir, 'cert-chain.pem') }, privateKey: { kind: 'file', path: path.join(dir, 'key.pem') }, trustedCa: { kind: 'file', path: path.join(dir, 'root-cert.pem') } },
    { clock: systemClock, logger: silentLogger(), debounceMs: 20 },
  );
  const before = source.load();
  source.start();
  t.teardown(() => source.close());
  const updated = once(source, 'update');
  // Due now: less than 2 h left of a 1 h certificate. Renewed with the SVID itself (no token given).
  const due = await capture(() => renewMain([...base, '--renew-before', '2h']));
  t.equal(due.code, 0, due.err);
  t.match(due.out, /^renewed/);
  const [m] = (await updated) as [{ serial: string }];
  t.not(m.serial, before.serial, 'the watching source adopted the renewed pair');
  t.match(await ca.registry.getSingleMetricAsString('citadel_server_success_cert_issuance_count'), /auth="svid"} 1/);
  t.notOk(readFileSync(path.join(dir, 'key.pem'), 'utf8').includes(before.keyPem), 'a new key');

  const down = await capture(() => renewMain(['--dir', dir, '--identity', 'default/reviews', '--ca', '127.0.0.1:1', '--ca-root', ca.rootFile, '--force']));
  t.equal(down.code, 1);
  t.match(down.err, /renew failed: CA 127\.0\.0\.1:1 unreachable/);

  const wrong = await capture(() => main(['certs', 'renew', '--dir', dir, '--identity', 'default/Bad Name']));
  t.equal(wrong.code, 2);
  t.match(wrong.err, /may only contain letters, digits/);
});

t.test('status prints the CA, its sidecars and the rotation; an unreachable control server is named', async (t) => {
  const ca = await startControl();
  t.teardown(() => ca.close());
  const s = await capture(() => statusMain(['--control', ca.monitoringUrl]));
  t.equal(s.code, 0);
  t.match(s.out, /CA\s+self-signed, trust domain cluster.local/);
  t.match(s.out, /root rotation idle, phase idle/);
  const j = await capture(() => statusMain(['--control', ca.monitoringUrl, '--json']));
  t.equal(JSON.parse(j.out).ca.roots.length, 1);
  const gone = await capture(() => main(['status', '--control', 'http://127.0.0.1:1']));
  t.equal(gone.code, 1);
  t.match(gone.err, /cannot reach the control server at http:\/\/127.0.0.1:1/);
  const notLocal = await fetch(`${ca.monitoringUrl}/ca/rotate-root`);
  t.equal(notLocal.status, 405, 'rotate-root is POST only');
  const plainPost = await fetch(`${ca.monitoringUrl}/ca/rotate-root`, { method: 'POST' });
  t.equal(plainPost.status, 403, 'a POST without the admin header (what a cross-site form can send) is refused');
  t.equal(ca.server.status().root_rotation.state, 'idle');
  t.equal((await fetch(`${ca.monitoringUrl}/nope`)).status, 404);
  t.match(await (await fetch(`${ca.monitoringUrl}/metrics`)).text(), /citadel_server_root_cert_expiry_timestamp/);
});

t.test('control refuses a CA directory whose key does not match, naming the file (exit 2)', async (t) => {
  const ca = await startControl();
  const dir = ca.caDir;
  await ca.server.close();
  // Another valid EC key in the right format: only the pairing is wrong.
  copyFileSync(path.join(dir, 'token-key.pem'), path.join(dir, 'ca-key.pem'));
  const r = await capture(() => main(['control', '--ca-dir', dir, '--grpc-address', '127.0.0.1:0', '--monitoring-address', '127.0.0.1:0']));
  t.equal(r.code, 2);
  t.match(r.err, /ca-key\.pem/);
  t.match(r.err, /does not match|mismatch/i);
  rmSync(ca.dir, { recursive: true, force: true });
  const help = await capture(() => main(['control', '--help']));
  t.equal(help.code, 0);
  t.match(help.out, /--ca-dir DIR/);
  const bad = await capture(() => main(['control', '--grpc-address', 'nowhere']));
  t.equal(bad.code, 2);
  t.match(bad.err, /--grpc-address must be HOST:PORT/);
  const ttl = await capture(() => main(['control', '--default-ttl', '2h', '--max-ttl', '1h']));
  t.equal(ttl.code, 2);
  t.match(ttl.err, /--default-ttl .* is above --max-ttl/);
});
