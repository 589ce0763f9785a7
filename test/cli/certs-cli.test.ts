// The real `outrigger certs` process: token mints what the CA accepts, dev writes a PKI openssl verifies, bad usage exits 2.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { systemClock } from '../../src/core/clock.js';
import { checkX509Svid } from '../../src/identity/svid.js';
import { TokenVerifier, loadOrCreateTokenKey } from '../../src/identity/token.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/mesh.js';
import { hasCommand } from '../helpers/tools.js';

const MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.ts');

/** The real process, for what only a fresh process can show (which modules it loads). */
function spawnCli(args: string[], nodeArgs: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [...process.execArgv, ...nodeArgs, MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  return new Promise((r) => child.on('exit', (code) => r({ code, stdout, stderr })));
}

t.test('help and usage errors', async (t) => {
  const top = await runCli(['--help']);
  t.match(top.stdout, /certs <sub>\s+mesh certificates: token, dev, renew, rotate-root/);
  const help = await runCli(['certs', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: outrigger certs <subcommand>[\s\S]*\n  token\s+mint a single-use bootstrap token[\s\S]*\n  dev\s+write a dev root/);
  const none = await runCli(['certs']);
  t.equal(none.code, 2);
  t.match(none.stderr, /Usage: outrigger certs <subcommand>/);
  const unknown = await runCli(['certs', 'frobnicate']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown subcommand "frobnicate"/);
  const tokenHelp = await runCli(['certs', 'token', '-h']);
  t.equal(tokenHelp.code, 0);
  t.match(tokenHelp.stdout, /Usage: outrigger certs token --identity NS\/SA/);
  const devHelp = await runCli(['certs', 'dev', '--help']);
  t.equal(devHelp.code, 0);
  t.match(devHelp.stdout, /Usage: outrigger certs dev/);
});

t.test('certs token: prints a token the control server (same CA dir) accepts once', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const caDir = path.join(tmp.dir, 'ca');
  const r = await runCli(['certs', 'token', '--identity', 'default/frontend', '--ttl', '10m', '--ca-dir', caDir]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/, 'only the JWT on stdout');
  t.match(r.stderr, /created the token-signing key .*token-key\.pem/);
  t.match(r.stderr, /bootstrap token for spiffe:\/\/cluster\.local\/ns\/default\/sa\/frontend, usable once until/);
  t.equal(statSync(path.join(caDir, 'token-key.pem')).mode & 0o777, 0o600);
  const verifier = new TokenVerifier(await loadOrCreateTokenKey(caDir), { clock: systemClock });
  const ok = await verifier.verify(r.stdout.trim());
  t.equal(ok.spiffeId, 'spiffe://cluster.local/ns/default/sa/frontend');
  t.ok(Math.abs(ok.expiresAt - (Date.now() + 600_000)) < 30_000, 'expires in about 10 minutes');
  await t.rejects(verifier.verify(r.stdout.trim()), { code: 'TOKEN_INVALID', details: { reason: 'replayed' } });

  const out = path.join(tmp.dir, 'token');
  const w = await runCli(['certs', 'token', '--identity', 'shop/cart', '--trust-domain', 'prod.example', '--ca-dir', caDir, '--out', out]);
  t.equal(w.code, 0, w.stderr);
  t.equal(w.stdout, '');
  t.notMatch(w.stderr, /created the token-signing key/, 'the key is reused');
  t.match(w.stderr, `to ${out}`);
  t.equal(statSync(out).mode & 0o777, 0o600, 'token file is owner-only');
  t.equal((await verifier.verify(readFileSync(out, 'utf8').trim())).spiffeId, 'spiffe://prod.example/ns/shop/sa/cart');
});

t.test('certs token: bad usage exits 2 and says what is wrong', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const ca = ['--ca-dir', path.join(tmp.dir, 'ca')];
  const cases: [string[], RegExp][] = [
    [['--identity', 'default/a b'], /--identity default\/a b: invalid SPIFFE ID .*path segment "a b" may only contain letters, digits/],
    [['--identity', 'default/..'], /path segments must not be "\." or "\.\."/],
    [['--identity', 'frontend'], /--identity: expected NS\/SA/],
    [[], /--identity NS\/SA is required/],
    [['--identity', 'a/b', '--trust-domain', 'Bad.Domain'], /--trust-domain: .*trust domain may only contain lowercase letters/],
    [['--identity', 'a/b', '--ttl', '25h'], /--ttl: must be more than 0 and at most 24h/],
    [['--identity', 'a/b', '--ttl', 'soon'], /--ttl: invalid duration "soon"/],
    [['--identity', 'a/b', '--colour', 'blue'], /Unknown option '--colour'/],
  ];
  for (const [args, expect] of cases) {
    const r = await runCli(['certs', 'token', ...ca, ...args]);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
    t.match(r.stderr, expect, args.join(' '));
    t.match(r.stderr, /Usage: outrigger certs token/, 'followed by the subcommand help');
    t.equal(r.stdout, '');
  }
  t.notOk(existsSync(path.join(tmp.dir, 'ca')), 'nothing written on bad usage');
  writeFileSync(path.join(tmp.dir, 'ca'), '');
  const broken = await runCli(['certs', 'token', '--identity', 'a/b', ...ca]);
  t.equal(broken.code, 2, 'an unusable CA directory is a config error: exit 2, naming the file');
  t.match(broken.stderr, /outrigger certs: .*token-key\.pem/);
});

t.test('certs dev: root → intermediate → SVIDs that openssl and the X509-SVID check accept', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const dir = path.join(tmp.dir, 'out');
  const r = await runCli(['certs', 'dev', '--dir', dir, '--trust-domain', 'dev.example', '--workloads', 'default/frontend, shop/reviews', '--ttl', '1h']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /new root and intermediate/);
  t.match(r.stdout, /plugged-in CA dir: outrigger control --ca-dir .*\/out\/ca/);
  t.match(r.stdout, /spiffe:\/\/dev\.example\/ns\/default\/sa\/frontend\n\s+.*default\.frontend\/ cert-chain\.pem key\.pem root-cert\.pem, valid until/);
  t.match(r.stdout, /spiffe:\/\/dev\.example\/ns\/shop\/sa\/reviews/);
  const root = path.join(dir, 'root-cert.pem');
  const inter = path.join(dir, 'ca', 'ca-cert.pem');
  for (const w of ['default.frontend', 'shop.reviews']) {
    const chain = readFileSync(path.join(dir, w, 'cert-chain.pem'), 'utf8');
    const leaf = new X509Certificate(chain);
    t.ok(checkX509Svid(leaf, { trustDomain: 'dev.example' }).ok, `${w}: a valid X509-SVID`);
    t.ok(leaf.checkIssued(new X509Certificate(readFileSync(inter))), `${w}: issued by the intermediate`);
    t.equal(statSync(path.join(dir, w, 'key.pem')).mode & 0o777, 0o600);
  }
  const openssl = hasCommand('openssl');
  t.test('openssl verify', { skip: openssl ? false : 'openssl not installed' }, async (t) => {
    for (const w of ['default.frontend', 'shop.reviews']) {
      const v = spawnSync('openssl', ['verify', '-CAfile', root, '-untrusted', inter, path.join(dir, w, 'cert-chain.pem')], { encoding: 'utf8' });
      t.equal(v.status, 0, `${w}: ${v.stdout}${v.stderr}`);
      t.match(v.stdout, ': OK');
      const noInter = spawnSync('openssl', ['verify', '-CAfile', root, path.join(dir, w, 'cert-chain.pem')], { encoding: 'utf8' });
      t.not(noInter.status, 0, `${w}: does not verify without the intermediate (the leaf is not signed by the root)`);
    }
    // The plugged-in CA files are a consistent chain too.
    const ca = spawnSync('openssl', ['verify', '-CAfile', path.join(dir, 'ca', 'root-cert.pem'), inter], { encoding: 'utf8' });
    t.equal(ca.status, 0, ca.stdout + ca.stderr);
  });

  const again = await runCli(['certs', 'dev', '--dir', dir, '--trust-domain', 'dev.example', '--workloads', 'default/frontend']);
  t.equal(again.code, 0, again.stderr);
  t.match(again.stdout, /reused the root and intermediate, renewed the workload SVIDs/);
  const bad = await runCli(['certs', 'dev', '--dir', path.join(tmp.dir, 'bad'), '--workloads', 'default/frontend,frontend']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--workloads: expected NS\/SA .*"frontend"/);
  const badTtl = await runCli(['certs', 'dev', '--dir', path.join(tmp.dir, 'bad'), '--ttl', '0s']);
  t.equal(badTtl.code, 2);
  t.match(badTtl.stderr, /--ttl: must be positive/);
  t.notOk(existsSync(path.join(tmp.dir, 'bad')));
});

t.test('certs dev defaults: certs-dev/out, cluster.local, frontend and backend, 24h', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const r = await runCli(['certs', 'dev'], { cwd: tmp.dir });
  t.equal(r.code, 0, r.stderr);
  for (const w of ['default.frontend', 'default.backend']) {
    const leaf = new X509Certificate(readFileSync(path.join(tmp.dir, 'certs-dev', 'out', w, 'cert-chain.pem')));
    t.match(checkX509Svid(leaf, { trustDomain: 'cluster.local' }), { ok: true });
    const life = Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
    t.ok(Math.abs(life - (24 * 3600_000 + 60_000)) < 5000, `${w}: 24h (+1 min backdate)`);
  }
});

t.test('a sidecar process does not load the certs tooling (@peculiar/x509, tokens, dev certs)', async (t) => {
  // A resolve hook records every specifier the process resolves; `certs` is a lazy import in main.ts.
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const log = path.join(tmp.dir, 'resolved.txt');
  const hooks = path.join(tmp.dir, 'hooks.mjs');
  writeFileSync(hooks, `import { appendFileSync } from 'node:fs';\nexport async function resolve(s, c, next) { appendFileSync(${JSON.stringify(log)}, s + '\\n'); return next(s, c); }\n`);
  const register = path.join(tmp.dir, 'register.mjs');
  writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  const r = await spawnCli(['sidecar', '--help'], [`--import=${pathToFileURL(register).href}`]);
  t.equal(r.code, 0, r.stderr);
  const sidecar = readFileSync(log, 'utf8').split('\n');
  t.ok(sidecar.includes('./sidecar.js'), 'the hook sees the sidecar modules');
  // jose is the sidecar's own since issue 7 (jwt_authn parses tokens with it); the certificate tooling is not.
  for (const m of ['./certs.js', '../identity/token.js', '../identity/dev-certs.js', '@peculiar/x509']) t.notOk(sidecar.includes(m), `sidecar does not load ${m}`);
});
