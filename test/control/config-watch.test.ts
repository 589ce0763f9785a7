// The mesh config watcher: debounce (100 ms quiet, 10 s max), all-or-nothing acceptance, real fs.watch.
import t, { type Test } from 'tap';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

t.test('a real file change is picked up through fs.watch', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cw-real-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  let onSecond!: (c: MeshConfig) => void;
  const second = new Promise<MeshConfig>((r) => (onSecond = r));
  const w = new ConfigWatcher({
    dir,
    load: async () => ({ ok: true, config: config(++n) }),
    onConfig: (c) => {
      if (n === 2) onSecond(c);
    },
    clock: systemClock,
    logger: memoryLogger().logger,
    metrics: createConfigMetrics(new Registry()),
    debounceMs: 10,
  });
  t.teardown(() => w.close());
  await w.start();
  writeFileSync(path.join(dir, 'a.yaml'), 'kind: x\n');
  const c = await second;
  t.equal(c.workloadEntries.length, 2);
});

/**
 * A watcher on a real directory with a 10 ms debounce whose loads read every file (relative path -> text),
 * and until(pred): resolves once a reload has loaded files that satisfy pred; it waits on reloads, never
 * on time, so a change the watcher misses fails the test by its timeout.
 */
function realDir(t: Test) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cw-atomic-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'a.yaml'), 'v: 0\n');
  let files: Record<string, string> = {};
  let n = 0;
  const load = async (): Promise<MeshLoad> => {
    files = {};
    for (const rel of readdirSync(dir, { recursive: true }) as string[]) {
      const f = path.join(dir, rel);
      if (statSync(f, { throwIfNoEntry: false })?.isFile()) files[rel] = readFileSync(f, 'utf8');
    }
    return { ok: true, config: config(++n) };
  };
  const w = new ConfigWatcher({ dir, load, onConfig: () => {}, clock: systemClock, logger: memoryLogger().logger, metrics: createConfigMetrics(new Registry()), debounceMs: 10 });
  t.teardown(() => w.close());
  const until = async (pred: (files: Record<string, string>) => boolean) => {
    while (!pred(files)) await w.nextReload();
  };
  return { dir, w, until };
}

t.test('a file replaced by rename (an atomic save) is picked up every time, not only the first', async (t) => {
  const { dir, w, until } = realDir(t);
  await w.start();
  for (let i = 1; i <= 3; i++) {
    writeFileSync(path.join(dir, `.a.yaml.${i}.tmp`), `v: ${i}\n`);
    renameSync(path.join(dir, `.a.yaml.${i}.tmp`), path.join(dir, 'a.yaml'));
    await until((f) => f['a.yaml'] === `v: ${i}\n`);
    t.pass(`save ${i} reloaded`);
  }
});

t.test('a subdirectory made after start is watched; after it is removed the root still is', async (t) => {
  const { dir, w, until } = realDir(t);
  await w.start();
  const made = w.nextReload();
  mkdirSync(path.join(dir, 'team'));
  await made;
  // Written after the reload that followed mkdir: only a watcher on team/ itself can see these.
  writeFileSync(path.join(dir, 'team', 'b.yaml'), 'v: 1\n');
  await until((f) => f[path.join('team', 'b.yaml')] === 'v: 1\n');
  writeFileSync(path.join(dir, 'team', 'b.yaml'), 'v: 2\n');
  await until((f) => f[path.join('team', 'b.yaml')] === 'v: 2\n');
  rmSync(path.join(dir, 'team'), { recursive: true });
  await until((f) => !(path.join('team', 'b.yaml') in f));
  writeFileSync(path.join(dir, 'a.yaml'), 'v: 3\n');
  await until((f) => f['a.yaml'] === 'v: 3\n');
  t.pass('every change was loaded');
});
