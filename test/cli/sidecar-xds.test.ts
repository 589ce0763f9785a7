// `outrigger sidecar --xds URL`: grpc:// is plaintext, grpcs:// is mTLS with the SVID; anything else exits 2 with a clear message.
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../../src/cli/args.js';
import { main } from '../../src/cli/main.js';
import { parseXdsUrl } from '../../src/cli/sidecar.js';
import { startAdsServer, typeOf } from '../helpers/ads-server.js';
import { startEchoApp } from '../helpers/apps.js';
import { tempDir } from '../helpers/mesh.js';
import { waitFor } from '../helpers/tools.js';
import { request } from '../helpers/two-hop.js';
import { assignment, edsCluster, httpListener } from '../helpers/xds-resources.js';

const MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.ts');

function runCli(args: string[]) {
  const child = spawn(process.execPath, [...process.execArgv, MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stdout.resume();
  child.stderr.on('data', (c) => (stderr += c));
  const done = new Promise<{ code: number | null; stderr: string }>((r) => child.on('exit', (code) => r({ code, stderr })));
  return { done, kill: (s: NodeJS.Signals) => child.kill(s) };
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

t.test('parseXdsUrl: the scheme decides plaintext or TLS; nothing is guessed', (t) => {
  t.strictSame(parseXdsUrl('grpc://127.0.0.1:15010'), { host: '127.0.0.1', port: 15010, tls: false });
  t.strictSame(parseXdsUrl('grpcs://istiod.istio-system.svc:15012'), { host: 'istiod.istio-system.svc', port: 15012, tls: true });
  t.strictSame(parseXdsUrl('grpcs://[::1]:15012/'), { host: '::1', port: 15012, tls: true });
  const bad: [string, RegExp][] = [
    ['127.0.0.1:15010', /"127\.0\.0\.1:15010" is not a URL; use grpc:\/\/HOST:PORT .* or grpcs:\/\/HOST:PORT/],
    ['h2://127.0.0.1:15010', /scheme "h2" is not supported/],
    ['http://127.0.0.1:15010', /scheme "http" is not supported/],
    ['grpc://127.0.0.1', /needs a host and a port/],
    ['grpc://:15010', /is not a URL/],
    ['grpc://h:1/envoy.service', /must be only scheme:\/\/host:port/],
    ['grpc://u:p@h:1', /must be only scheme:\/\/host:port/],
  ];
  for (const [v, re] of bad) {
    t.throws(() => parseXdsUrl(v), UsageError, v);
    try {
      parseXdsUrl(v);
    } catch (e) {
      t.match((e as Error).message, re, v);
    }
  }
  t.end();
});

/** `outrigger …` in this process (main() is what the binary runs): exit code and what it wrote to stderr. */
async function runMain(argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((c: string | Uint8Array) => {
    stderr += String(c);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await main(argv), stderr };
  } finally {
    process.stderr.write = write;
  }
}

t.test('a bad --xds exits 2 naming the problem; grpcs without the mesh CA in node metadata too', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const file = path.join(tmp.dir, 'b.json');
  writeFileSync(file, JSON.stringify({ node: { id: 'n', cluster: 'c' } }));
  const bad = await runMain(['sidecar', '--config', file, '--xds', 'https://127.0.0.1:15012']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--xds: scheme "https" is not supported; use grpc:\/\/HOST:PORT/);
  const noCa = await runMain(['sidecar', '--config', file, '--xds', 'grpcs://127.0.0.1:15012']);
  t.equal(noCa.code, 2);
  t.match(noCa.stderr, /b\.json:1 node\.metadata\.CA_ADDR: is required: --xds grpcs:\/\/ authenticates to the control server with the workload SVID/);
});

t.test('a real sidecar process configured only by --xds grpc://: ready, serves, exits 0 on SIGTERM', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const ads = await startAdsServer();
  const app = await startEchoApp('app');
  t.teardown(async () => {
    await ads.stop();
    await app.close();
  });
  const adminPort = await freePort();
  const listenPort = await freePort();
  const file = path.join(tmp.dir, 'b.json');
  writeFileSync(file, JSON.stringify({ node: { id: 'app-1', cluster: 'app' }, admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } } }));
  const proc = runCli(['sidecar', '--config', file, '--xds', `grpc://127.0.0.1:${ads.port}`, '--access-log', 'off', '--drain-time', '1s']);
  const cds = await ads.request((r) => typeOf(r) === 'cds', 0, 20_000);
  t.match(cds.node, { id: 'app-1' });
  ads.push('cds', '1', [edsCluster('app')]);
  await ads.request((r) => typeOf(r) === 'eds');
  ads.push('eds', '1', [assignment('app', [app.port])]);
  await ads.request((r) => typeOf(r) === 'lds');
  ads.push('lds', '1', [httpListener('out', listenPort, { cluster: 'app' })]);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${adminPort}/ready`).catch(() => ({ status: 0 }))).status === 200, 'ready', 20_000);
  const r = await request(listenPort, { path: '/echo' });
  t.equal(r.status, 200);
  t.equal(r.headers['x-served-by'], 'app');
  proc.kill('SIGTERM');
  t.equal((await proc.done).code, 0);
});
