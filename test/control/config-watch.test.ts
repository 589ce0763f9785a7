// The mesh config watcher: debounce (100 ms quiet, 10 s max), all-or-nothing acceptance, real fs.watch.
import t from 'tap';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { FakeClock, systemClock } from '../../src/core/clock.js';
import { ConfigWatcher, type MeshLoad } from '../../src/control/config-watch.js';
import type { MeshConfig } from '../../src/control/mesh/types.js';
import { createConfigMetrics } from '../../src/telemetry/metrics.js';
import { memoryLogger } from '../helpers/mesh.js';

const config = (n: number): MeshConfig => ({ serviceEntries: [], workloadEntries: new Array(n).fill(null), virtualServices: [], destinationRules: [], domainSuffix: 'cluster.local' }) as unknown as MeshConfig;
const bad = (message: string): MeshLoad => ({ ok: false, issues: [{ file: 'mesh/r.yaml', line: 3, kind: 'VirtualService', name: 'reviews', path: 'spec.http[0].route[0].weight', message }] });

async function metric(registry: Registry, name: string): Promise<number> {
  const m = await registry.getSingleMetric(name)!.get();
  return m.values.reduce((s, v) => s + v.value, 0);
}

function setup(loads: MeshLoad[]) {
  const clock = new FakeClock();
  const registry = new Registry();
  const { logger, logs } = memoryLogger();
  const seen: MeshConfig[] = [];
  let calls = 0;
  const w = new ConfigWatcher({
    dir: mkdtempSync(path.join(os.tmpdir(), 'cw-')),
    load: async () => loads[Math.min(calls++, loads.length - 1)]!,
    onConfig: (c) => seen.push(c),
    clock,
    logger,
    metrics: createConfigMetrics(registry),
  });
  t.teardown(() => {
    w.close();
    rmSync(w.status().dir, { recursive: true, force: true });
  });
  return { w, clock, registry, logs, seen, calls: () => calls };
}

t.test('an invalid directory at startup is returned, nothing is accepted', async (t) => {
  const s = setup([bad('must be 0..100')]);
  const r = await s.w.start();
  t.equal(r.ok, false);
  t.same(s.seen, []);
  t.equal(s.w.status().generation, 0);
});

t.test('a burst of changes is one reload, 100 ms after the last one', async (t) => {
  const s = setup([{ ok: true, config: config(1) }, { ok: true, config: config(2) }]);
  await s.w.start();
  t.equal(s.seen.length, 1);
  for (let i = 0; i < 5; i++) {
    s.w.changed();
    s.clock.advance(60);
  }
  t.equal(s.calls(), 1, 'still quiet-waiting: every change re-arms the 100 ms timer');
  s.clock.advance(40);
  await s.w.settled();
  t.equal(s.calls(), 2);
  t.equal(s.seen.length, 2);
  t.equal(s.w.status().generation, 2);
  t.equal(s.w.status().resources.WorkloadEntry, 2);
});

t.test('a directory that never goes quiet is still reloaded after 10 s', async (t) => {
  const s = setup([{ ok: true, config: config(1) }]);
  await s.w.start();
  for (let i = 0; i < 200; i++) {
    s.w.changed();
    s.clock.advance(50);
    if (s.calls() > 1) break;
  }
  t.equal(s.calls(), 2);
  t.equal(s.clock.monotonic(), 10_000, 'the max timer fired exactly at 10 s');
});

t.test('a rejected change keeps the previous config, shows in status, logs and metrics; a fix clears it', async (t) => {
  const s = setup([{ ok: true, config: config(1) }, bad('must be 0..100'), { ok: true, config: config(3) }]);
  await s.w.start();
  s.w.changed();
  s.clock.advance(100);
  await s.w.settled();
  t.equal(s.seen.length, 1, 'the rejected config never reached the snapshot source');
  const st = s.w.status();
  t.equal(st.generation, 1);
  t.same(st.rejected?.issues, ['mesh/r.yaml:3 VirtualService reviews: spec.http[0].route[0].weight: must be 0..100']);
  t.equal(await metric(s.registry, 'outrigger_config_last_reload_successful'), 0);
  t.equal(await metric(s.registry, 'outrigger_config_issues'), 1);
  t.match(s.logs.join('\n'), /must be 0\.\.100.*mesh config change rejected/);
  s.w.changed();
  s.clock.advance(100);
  await s.w.settled();
  t.equal(s.seen.length, 2);
  t.equal(s.w.status().rejected, undefined);
  t.equal(await metric(s.registry, 'outrigger_config_last_reload_successful'), 1);
});

t.test('a loader that throws is a rejection, not a crash', async (t) => {
  const clock = new FakeClock();
  let n = 0;
  const w = new ConfigWatcher({
    dir: '/nonexistent-outrigger-test',
    load: async () => {
      if (n++ === 0) return { ok: true, config: config(1) };
      throw new Error('EIO');
    },
    onConfig: () => {},
    clock,
    logger: memoryLogger().logger,
    metrics: createConfigMetrics(new Registry()),
  });
  t.teardown(() => w.close());
  await w.start();
  w.changed();
  clock.advance(100);
  await w.settled();
  t.match(w.status().rejected?.issues[0], /cannot load: EIO/);
});

t.test('a change during a reload is loaded again afterwards, never concurrently', async (t) => {
  const clock = new FakeClock();
  let release!: () => void;
  let active = 0;
  let max = 0;
  let calls = 0;
  const w = new ConfigWatcher({
    dir: '/nonexistent-outrigger-test',
    load: async () => {
      calls++;
      active++;
      max = Math.max(max, active);
      if (calls === 2) await new Promise<void>((r) => (release = r));
      active--;
      return { ok: true, config: config(calls) };
    },
    onConfig: () => {},
    clock,
    logger: memoryLogger().logger,
    metrics: createConfigMetrics(new Registry()),
  });
  t.teardown(() => w.close());
  await w.start();
  w.changed();
  clock.advance(100);
  w.changed();
  clock.advance(100);
  release();
  await w.settled();
  t.equal(calls, 3);
  t.equal(max, 1);
  t.equal(w.status().generation, 3);
});

t.test('real changes through fs.watch: repeated atomic replaces, and a directory created later', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cw-real-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'a.yaml'), 'x: 0\n');
  let n = 0;
  const w = new ConfigWatcher({
    dir,
    load: async () => ({ ok: true, config: config(++n) }),
    onConfig: () => {},
    clock: systemClock,
    logger: memoryLogger().logger,
    metrics: createConfigMetrics(new Registry()),
    debounceMs: 10,
  });
  t.teardown(() => w.close());
  await w.start();
  // Editors and config tools save by writing a temp file and renaming it over the old one; Node 20's
  // recursive fs.watch on Linux sees only the first such replace. Every one must be a reload.
  for (let i = 1; i <= 3; i++) {
    const reloaded = w.nextReload();
    writeFileSync(path.join(dir, '.a.yaml.tmp'), `x: ${i}\n`);
    renameSync(path.join(dir, '.a.yaml.tmp'), path.join(dir, 'a.yaml'));
    await reloaded;
    t.equal(w.status().generation, 1 + i, `replace ${i} reloaded`);
  }
  const sub = path.join(dir, 'team-a');
  let reloaded = w.nextReload();
  mkdirSync(sub);
  await reloaded;
  reloaded = w.nextReload();
  writeFileSync(path.join(sub, 'b.yaml'), 'x: 1\n');
  await reloaded;
  t.equal(w.status().generation, 6, 'a file in a new sub-directory is seen');
});
