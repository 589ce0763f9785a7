// The real `outrigger sidecar` process: bad bootstraps exit 2 naming file, line and field; SIGTERM drains and exits 0.
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { FRONTEND_ID, REVIEWS_ID, inboundBootstrap, tempDir, writeCertFiles } from '../helpers/mesh.js';
import { makePki } from '../helpers/pki.js';
import { startEchoApp } from '../helpers/apps.js';
import { runCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/tools.js';

const MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.ts');

/** A real `outrigger` process: for what only a process shows (its exit code, signals); the rest runs in-process. */
function spawnCli(args: string[]): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; kill: (sig: NodeJS.Signals) => void; stderr: () => string } {
  const child = spawn(process.execPath, [...process.execArgv, MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((r) => child.on('exit', (code) => r({ code, stdout, stderr })));
  return { done, kill: (s) => child.kill(s), stderr: () => stderr };
}

t.test('usage errors exit 2; --help exits 0', async (t) => {
  const none = await spawnCli(['sidecar']).done;
  t.equal(none.code, 2);
  t.match(none.stderr, /--config FILE is required/);
  const help = await runCli(['sidecar', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: outrigger sidecar --config FILE/);
  const unknown = await runCli(['frobnicate']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown command "frobnicate"/);
  const badFlag = await runCli(['sidecar', '--config', 'x', '--drain-time', 'soon']);
  t.equal(badFlag.code, 2);
  t.match(badFlag.stderr, /--drain-time: invalid duration/);
});

t.test('bootstraps with unsupported or unknown fields, wrong types, missing files: exit 2 with file:line and field path', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const base = inboundBootstrap({ appPort: 9, files: { chain: 'c.pem', key: 'k.pem', root: 'r.pem' } }) as Record<string, any>;
  const cases: [string, (b: any) => void, RegExp][] = [
    ['cluster-provided', (b) => (b.static_resources.clusters[0].lb_policy = 'CLUSTER_PROVIDED'), /bootstrap\.yaml:\d+ static_resources\.clusters\[0\]\.lb_policy: .*CLUSTER_PROVIDED.*not supported/],
    ['unknown field', (b) => (b.static_resources.clusters[0].colour = 'blue'), /bootstrap\.yaml:\d+ static_resources\.clusters\[0\]\.colour: .*unknown field/],
    ['wrong type', (b) => (b.static_resources.listeners[0].address.socket_address.port_value = 'eighty'), /static_resources\.listeners\[0\]\.address\.socket_address\.port_value: /],
    ['missing file', () => {}, /file not found/],
  ];
  for (const [name, mutate, expect] of cases) {
    const b = structuredClone(base);
    mutate(b);
    const file = path.join(tmp.dir, 'bootstrap.yaml');
    writeFileSync(file, stringify(b));
    const r = await runCli(['sidecar', '--config', file]);
    t.equal(r.code, 2, `${name}: exit 2`);
    t.match(r.stderr, expect, `${name}: names the field`);
  }
  const garbled = path.join(tmp.dir, 'garbled.yaml');
  writeFileSync(garbled, 'static_resources:\n  listeners: [\n');
  const g = await spawnCli(['sidecar', '--config', garbled]).done;
  t.equal(g.code, 2);
  t.match(g.stderr, /garbled\.yaml:\d+/);
});

t.test('a real sidecar process: ready, serves, SIGTERM drains and exits 0', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const pki = await makePki();
  const rv = await pki.issue(REVIEWS_ID);
  const files = writeCertFiles(tmp.dir, 'reviews', { chainPem: rv.chainPem, keyPem: rv.keyPem, rootPem: pki.rootPem });
  const app = await startEchoApp();
  t.teardown(() => app.close());
  const b = inboundBootstrap({ appPort: app.port, files }) as Record<string, any>;
  // The admin port must be known to probe it; take a free one the way a user would pick 15000.
  const net = await import('node:net');
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const adminPort = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  b.admin.address.socket_address.port_value = adminPort;
  const file = path.join(tmp.dir, 'b.yaml');
  writeFileSync(file, stringify(b));
  const proc = spawnCli(['sidecar', '--config', file, '--access-log', 'off', '--drain-time', '1s']);
  await waitFor(async () => {
    try {
      return (await fetch(`http://127.0.0.1:${adminPort}/ready`)).status === 200;
    } catch {
      return false;
    }
  }, 'the sidecar to report ready', 20_000);
  const certs = (await (await fetch(`http://127.0.0.1:${adminPort}/certs`)).json()) as { certificates: { spiffe_id: string }[] };
  t.equal(certs.certificates[0]!.spiffe_id, REVIEWS_ID);
  const dump = await (await fetch(`http://127.0.0.1:${adminPort}/config_dump`)).text();
  t.match(dump, /inbound\|9080\|\|/);
  t.notMatch(dump, /BEGIN (EC |)PRIVATE KEY/, 'no key material in config_dump');
  const stats = await (await fetch(`http://127.0.0.1:${adminPort}/stats/prometheus`)).text();
  t.match(stats, /outrigger_cert_expiry_timestamp_seconds\{secret=".*cert-chain\.pem",spiffe_id="spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews"\}/);
  const clusters = await (await fetch(`http://127.0.0.1:${adminPort}/clusters`)).text();
  t.match(clusters, new RegExp(`inbound\\|9080\\|\\|::127\\.0\\.0\\.1:${app.port}::health_flags::healthy`));
  void FRONTEND_ID;
  proc.kill('SIGTERM');
  const r = await proc.done;
  t.equal(r.code, 0, 'clean exit after drain');
  t.match(r.stderr, /draining/);
});
