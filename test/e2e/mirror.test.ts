// Request mirroring through a real sidecar: the shadow cluster gets a copy of each request (authority suffixed
// "-shadow", the body byte for byte) whose answer is thrown away; a mirror that refuses connections, fails, hangs
// or stops reading changes nothing for the caller, neither the answers nor the latency.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import t, { type Test } from 'tap';
import { seededRng } from '../../src/core/rng.js';
import { deadPort, serveHttp } from '../helpers/http-app.js';
import { outboundListener, runSidecar, type StartedSidecar } from '../helpers/mesh.js';
import { metricValue } from '../helpers/two-hop.js';

interface Seen {
  readonly host: string;
  readonly path: string;
  readonly sha: string;
}

interface App {
  readonly port: number;
  readonly seen: Seen[];
  /** ok: 200 after reading the body; fail: 500; hang: never reads, never answers. */
  mode: 'ok' | 'fail' | 'hang';
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function app(t: Test, name: string): Promise<App> {
  const a = { port: 0, seen: [] as Seen[], mode: 'ok' as App['mode'] };
  a.port = await serveHttp(t, (req, res) => {
    if (a.mode === 'hang') return;
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      a.seen.push({ host: req.headers.host ?? '', path: req.url ?? '', sha: sha(Buffer.concat(parts)) });
      res.writeHead(a.mode === 'ok' ? 200 : 500, { 'x-served-by': name });
      res.end(name);
    });
  });
  return a;
}

const cluster = (name: string, port: number) => ({
  name,
  type: 'STATIC',
  connect_timeout: '0.5s',
  load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
});

async function sidecar(t: Test, mainPort: number, shadowPort: number, mirror: Record<string, unknown> = {}): Promise<StartedSidecar> {
  const s = await runSidecar(
    {
      node: { id: 'caller-1', cluster: 'caller' },
      static_resources: {
        listeners: [
          outboundListener({
            name: 'outbound',
            virtual_hosts: [
              {
                name: 'backend',
                domains: ['backend', 'backend:8080'],
                routes: [{ match: { prefix: '/' }, per_request_buffer_limit_bytes: 64 * 1024, route: { cluster: 'backend', timeout: '5s', request_mirror_policies: [{ cluster: 'shadow', ...mirror }] } }],
              },
            ],
          }),
        ],
        clusters: [cluster('backend', mainPort), cluster('shadow', shadowPort)],
      },
    },
    { rng: seededRng(6) },
  );
  t.teardown(() => s.shutdown());
  return s;
}

/** One request through the sidecar; resolves with status, the answering app and the latency. */
function send(port: number, o: { body?: Buffer; host?: string; path?: string } = {}): Promise<{ status: number; by: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request(
      { host: '127.0.0.1', port, method: o.body ? 'POST' : 'GET', path: o.path ?? '/x', headers: { host: o.host ?? 'backend', ...(o.body && { 'content-length': o.body.length }) }, agent: false },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, by: String(res.headers['x-served-by'] ?? ''), ms: performance.now() - t0 }));
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Waits (polling the app's record, no fixed sleep) until the mirror has seen n requests. */
async function seenBy(a: App, n: number): Promise<void> {
  while (a.seen.length < n) await new Promise((r) => setImmediate(r));
}

t.test('the mirror gets a copy of every request, authority suffixed -shadow, bodies byte for byte; its answers are discarded', async (t) => {
  const main = await app(t, 'main');
  const shadow = await app(t, 'shadow');
  shadow.mode = 'fail';
  const s = await sidecar(t, main.port, shadow.port);
  const bodies = [randomBytes(10), randomBytes(40_000)];
  for (const body of bodies) t.match(await send(s.port('outbound'), { body }), { status: 200, by: 'main' }, "the caller gets the main cluster's answer, not the mirror's 500");
  t.match(await send(s.port('outbound'), { host: 'backend:8080', path: '/get?q=1' }), { status: 200, by: 'main' });
  await seenBy(shadow, 3);
  t.strictSame(shadow.seen, [
    { host: 'backend-shadow', path: '/x', sha: sha(bodies[0]!) },
    { host: 'backend-shadow', path: '/x', sha: sha(bodies[1]!) },
    { host: 'backend-shadow:8080', path: '/get?q=1', sha: sha(Buffer.alloc(0)) },
  ]);
  t.strictSame(main.seen.map((x) => [x.host, x.sha]), [['backend', sha(bodies[0]!)], ['backend', sha(bodies[1]!)], ['backend:8080', sha(Buffer.alloc(0))]], 'the main request is untouched');
  t.equal(await metricValue(s, 'outrigger_mirror_requests_total', { cluster: 'shadow', outcome: 'sent' }), 3);
});

t.test('a broken mirror never touches the caller: refused connections, a hung mirror, a mirror that stops reading', async (t) => {
  const main = await app(t, 'main');
  const shadow = await app(t, 'shadow');
  const dead = await deadPort();
  const refused = await sidecar(t, main.port, dead);
  for (let i = 0; i < 20; i++) t.equal((await send(refused.port('outbound'))).status, 200);
  t.equal(await metricValue(refused, 'outrigger_mirror_requests_total', { cluster: 'shadow', outcome: 'failed' }) > 0, true, 'the refused shadows are counted as failed');

  shadow.mode = 'hang';
  const hung = await sidecar(t, main.port, shadow.port);
  // Larger than what the kernel's socket buffers can take in for a peer that does not read (tcp_wmem max 4 MiB).
  const body = randomBytes(12 * 1024 * 1024);
  const before = main.seen.length;
  const results = [];
  for (let i = 0; i < 3; i++) results.push(await send(hung.port('outbound'), { body }));
  for (let i = 0; i < 20; i++) results.push(await send(hung.port('outbound')));
  t.ok(results.every((r) => r.status === 200 && r.by === 'main'), 'every answer is the main cluster\'s 200');
  // The GETs: a 12 MiB upload takes its own time on a busy machine; a GET that waited for the mirror would take 5 s.
  const slowest = Math.max(...results.slice(3).map((r) => r.ms));
  t.ok(slowest < 1000, `no request waited for the hung mirror (slowest GET ${slowest.toFixed(0)} ms; the route timeout is 5 s)`);
  t.strictSame(main.seen.slice(before).map((x) => x.sha).slice(0, 3), Array(3).fill(sha(body)), 'the main upstream got every 12 MiB body whole');
  t.equal(await metricValue(hung, 'outrigger_mirror_requests_total', { cluster: 'shadow', outcome: 'dropped' }), 3, 'the shadows that fell 64 KiB behind were dropped');
});

t.test('runtime_fraction: about the configured share of requests is mirrored', async (t) => {
  const main = await app(t, 'main');
  const shadow = await app(t, 'shadow');
  const s = await sidecar(t, main.port, shadow.port, { runtime_fraction: { default_value: { numerator: 250_000, denominator: 'MILLION' } } });
  for (let i = 0; i < 400; i++) await send(s.port('outbound'));
  const skipped = 400 - (await metricValue(s, 'outrigger_mirror_requests_total', { cluster: 'shadow' }));
  await seenBy(shadow, 400 - skipped);
  t.ok(shadow.seen.length >= 70 && shadow.seen.length <= 130, `25 % of 400 mirrored (got ${shadow.seen.length})`);
  t.equal(main.seen.length, 400);
});
