// `outrigger demo` as users run it: a process whose sidecars are `outrigger sidecar` child processes and that
// Ctrl-C stops cleanly (exit 0, sidecars drained and gone, working directory removed); on a four-pod mesh.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { demoMain } from '../../src/cli/demo.js';
import { DEMO_HELP } from '../../src/cli/demo-help.js';
import { waitFor } from '../helpers/tools.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MAIN = path.resolve(HERE, '../../src/cli/main.ts');
const MINI = path.resolve(HERE, '../fixtures/demo-mesh');

const gone = (pid: number) => {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
};

t.test('--help lists the options; bad values are usage errors', async (t) => {
  let out = '';
  const write = process.stdout.write;
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  let code: number;
  try {
    code = await demoMain(['--help']);
  } finally {
    process.stdout.write = write;
  }
  t.equal(code, 0);
  t.equal(out, DEMO_HELP);
  for (const flag of ['--rate', '--duration', '--shift-after', '--fail-after', '--recover-after', '--in-process', '--ip-offset', '--mesh']) t.match(DEMO_HELP, flag);
  await t.rejects(demoMain(['--rate', '0']), { code: 'USAGE', message: /--rate/ });
  await t.rejects(demoMain(['--duration', 'soon']), { code: 'USAGE', message: /--duration/ });
  await t.rejects(demoMain(['--ip-offset', '1.5']), { code: 'USAGE', message: /whole number/ });
  await t.rejects(demoMain(['--ip-offset', '240']), { code: 'USAGE' });
  await t.rejects(demoMain(['--mesh', path.join(HERE, 'no-such-dir')]), { code: 'USAGE', message: /--mesh: cannot read/ });
});

t.test('Ctrl-C: the load stops, every answer comes back, the sidecar processes drain, exit 0, nothing left behind', async (t) => {
  // As users run it: sidecars as `outrigger sidecar` child processes (each under the test's TypeScript loader
  // here, so startup is slow on a busy machine: the waits are generous, and they are waits for events).
  const child = spawn(process.execPath, [...process.execArgv, MAIN, 'demo', '--mesh', MINI, '--ip-offset', '100', '--rate', '20', '--shift-after', '1s'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.teardown(() => void child.kill('SIGKILL'));
  const afterShift = () => out.split('every sidecar ACKed the new routes')[1] ?? '';
  await waitFor(() => (afterShift().match(/^\[t=\d+s\] [1-9]/gm) ?? []).length >= 2, 'the shift and two seconds of answers after it', 100_000);
  const pids = [...out.matchAll(/ready in [\d.]+ s, pid (\d+)/g)].map((m) => Number(m[1]));
  t.equal(pids.length, 4, 'one sidecar process per pod');
  child.kill('SIGINT');
  const code = await exited;
  t.equal(code, 0, err);
  t.ok(pids.every(gone), 'no sidecar process left');
  t.match(out, /control server on 127\.100\.0\.2/);
  t.match(out, /frontend-east +127\.190\.1\.1 +east\/east-a +spiffe:\/\/cluster\.local\/ns\/default\/sa\/bookinfo-frontend +ready in/);
  t.match(out, /wrote VirtualService reviews \(bookinfo-mini\.yaml, route canary\): v1 90 → 50, v2 10 → 50/);
  t.match(out, /Stopping: \d+ requests sent, \d+ answered, 0 failed\./);
  t.match(out, /reviews split before the shift: .*; after: v1 \d+ % \(\d+\) {2}v2 \d+ % \(\d+\)/);
  t.match(out, /Stopped cleanly\./);
  t.notMatch(out, /\x1b\[/, 'not a terminal: plain lines, no cursor movement');
  const dir = /Working directory (\S+)/.exec(out)?.[1];
  t.ok(dir && !existsSync(dir), 'the working directory is gone');
});
