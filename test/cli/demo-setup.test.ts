// The demo when things go wrong: a busy address stops setup with a message that says what to do and leaves
// nothing running; the canary step when there is nothing to shift, the change is rejected, or a sidecar lags.
import t, { type Test } from 'tap';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { canaryStep, runDemo, type DemoContext, type ShiftReport } from '../../src/cli/demo.js';
import { LoadStats, type LoadDriver } from '../../src/cli/demo-load.js';
import { BUNDLED_MESH, copyMesh } from '../../src/cli/demo-mesh.js';
import type { ControlServer, ControlStatus } from '../../src/control/server.js';
import { tempDir } from '../helpers/mesh.js';

const MINI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/demo-mesh');

/** Holds host:port with a plain TCP listener, as another program would. */
async function occupy(t: Test, host: string, port: number): Promise<void> {
  const s = net.createServer((c) => c.destroy());
  await new Promise<void>((resolve, reject) => s.once('error', reject).listen(port, host, resolve));
  t.teardown(() => new Promise<void>((r) => s.close(() => r())));
}

const refused = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const c = net.connect(port, host);
    c.once('connect', () => (c.destroy(), resolve(false)));
    c.once('error', () => resolve(true));
  });

t.test('the control server address is taken: a message naming it and --ip-offset; the working directory is gone', async (t) => {
  await occupy(t, '127.120.0.2', 15012);
  let text = '';
  await t.rejects(runDemo({ rate: 1, durationMs: 0, shiftAfterMs: 0, inProcess: true, ipOffset: 120, meshDir: MINI, write: (s) => (text += s) }), {
    message: /^demo setup failed: the control server could not start on 127\.120\.0\.2 \(ports 15010, 15012, 15014\): .*move the demo with --ip-offset N\.$/,
  });
  t.equal(text, '', 'nothing was started, so nothing was said');
});

t.test('an app port is taken: setup stops, every pod started so far is stopped, the control server closed', async (t) => {
  await occupy(t, '127.220.2.2', 9080);
  let text = '';
  await t.rejects(runDemo({ rate: 1, durationMs: 0, shiftAfterMs: 0, inProcess: true, ipOffset: 130, meshDir: MINI, write: (s) => (text += s) }), {
    message: /the app of reviews-v2-west could not listen on 127\.220\.2\.2: .*EADDRINUSE/,
  });
  const dir = /Working directory (\S+)/.exec(text)?.[1];
  t.ok(dir && !existsSync(dir), 'the working directory is gone');
  for (const [host, port] of [
    ['127.130.0.2', 15012],
    ['127.220.1.1', 15000],
    ['127.220.1.1', 9080],
    ['127.220.2.1', 15006],
  ] as const) {
    t.ok(await refused(host, port), `nothing listens on ${host}:${port}`);
  }
});

t.test('a mesh without a frontend: nothing for the load driver to call, said before any pod starts', async (t) => {
  const tmp = tempDir('outrigger-demo-nofe-');
  t.teardown(() => tmp.cleanup());
  writeFileSync(
    path.join(tmp.dir, 'api.yaml'),
    'kind: ServiceEntry\napiVersion: networking.istio.io/v1\nmetadata: { name: api }\nspec:\n  hosts: [api.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{ number: 80, name: http, protocol: HTTP }]\n',
  );
  await t.rejects(runDemo({ rate: 1, durationMs: 0, shiftAfterMs: 0, inProcess: true, ipOffset: 140, meshDir: tmp.dir, write: () => {} }), {
    code: 'USAGE',
    message: /has no WorkloadEntry labelled app: frontend/,
  });
  t.ok(await refused('127.140.0.2', 15012), 'the control server is closed again');
});

/** A control server as the step sees it: status() answers from `states` in turn, reloads resolve at once. */
function fakeControl(states: Partial<ControlStatus>[]): ControlServer {
  let i = 0;
  return {
    status: () => states[Math.min(i++, states.length - 1)] as ControlStatus,
    nextConfigReload: () => Promise.resolve(),
  } as unknown as ControlServer;
}

const node = (acked: string, state = 'SYNCED') => ({ connection_id: 'c1', types: { rds: { state, acked_version: acked } } });

function context(t: Test, control: ControlServer, meshDir?: string) {
  const events: string[] = [];
  let dir = meshDir;
  if (!dir) {
    const tmp = tempDir('outrigger-demo-step-');
    t.teardown(() => tmp.cleanup());
    dir = tmp.dir;
    copyMesh(BUNDLED_MESH, dir, 0);
  }
  const load = { phase: 'before' } as LoadDriver;
  const ctx: DemoContext = { pods: [], control, meshDir: dir, load, stats: new LoadStats(), event: (l) => events.push(l), elapsedMs: () => 1000, now: () => 1000, signal: new AbortController().signal };
  return { ctx, events, load, dir };
}

t.test('the canary step: written, accepted, every sidecar ACKed; the report has the weights', async (t) => {
  const control = fakeControl([
    { config: { generation: 1 } as ControlStatus['config'], xds: { connected: 1, nodes: [node('old')] } as never },
    { config: { generation: 2 } as ControlStatus['config'] },
    { xds: { connected: 1, nodes: [node('old', 'STALE')] } as never },
    { xds: { connected: 1, nodes: [node('new')] } as never },
  ]);
  const { ctx, events, load, dir } = context(t, control);
  let report: ShiftReport | undefined;
  await canaryStep(0, (r) => (report = r)).run(ctx);
  t.equal(load.phase, 'after');
  t.match(events, [/wrote VirtualService reviews \(reviews\.yaml, route canary\): v1 90 → 50, v2 10 → 50/, /control server accepted it \(config generation 2\)/, /every sidecar ACKed the new routes/]);
  t.match(report, { writtenAtMs: 1000, acceptedAtMs: 1000, syncedAtMs: 1000, weights: [{ subset: 'v1', after: 50 }, { subset: 'v2', after: 50 }] });
  t.match(readFileSync(path.join(dir, 'reviews.yaml'), 'utf8'), /weight: 50[\s\S]*weight: 50/);
});

t.test('the canary step: rejected (the generation did not move), a sidecar that never ACKs, nothing to shift', async (t) => {
  const rejected = context(t, fakeControl([{ config: { generation: 3 } as ControlStatus['config'] }, { config: { generation: 3, rejected: { at: 'now', issues: ['reviews.yaml:160 VirtualService reviews: bad'] } } as unknown as ControlStatus['config'] }]));
  let report: ShiftReport | undefined;
  await canaryStep(0, (r) => (report = r)).run(rejected.ctx);
  t.match(rejected.events[1], /REJECTED it and keeps serving the previous config: reviews\.yaml:160 VirtualService reviews: bad/);
  t.equal(rejected.load.phase, 'before', 'nothing changed: the split stays "before"');
  t.equal(report?.acceptedAtMs, undefined);

  const lagging = context(t, fakeControl([{ config: { generation: 1 } as ControlStatus['config'], xds: { connected: 1, nodes: [node('old')] } as never }, { config: { generation: 2 } as ControlStatus['config'], xds: { connected: 1, nodes: [node('old', 'STALE')] } as never }]));
  await canaryStep(0, () => {}, 60).run(lagging.ctx);
  t.match(lagging.events[2], /not every sidecar ACKed the new routes within 0\.06 s; `outrigger status` shows which/);

  const empty = tempDir('outrigger-demo-step-');
  t.teardown(() => empty.cleanup());
  writeFileSync(path.join(empty.dir, 'x.yaml'), 'kind: ServiceEntry\n');
  const none = context(t, fakeControl([{}]), empty.dir);
  let called = false;
  await canaryStep(0, () => (called = true)).run(none.ctx);
  t.match(none.events, [/no VirtualService reviews with a weighted route in .*; nothing to shift/]);
  t.equal(none.load.phase, 'before');
  t.notOk(called);
});
