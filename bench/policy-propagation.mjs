#!/usr/bin/env node
// Policy propagation benchmark (issue 7): a policy change in the mesh YAML, timed until each of 100 sidecars in three clouds enforces it. Writes the "policy propagation" section of bench/RESULTS.md.
//
// It runs the e2e harness itself (test/e2e/policy-consistency.test.ts, through tap) with 100 sidecars instead of
// CI's 12, so the bench and the test measure exactly the same thing: one control server (100 ms debounce, as
// istiod) watching a mesh dir; N in-process sidecars with real apps, SVIDs from the mesh CA and mTLS ADS
// streams, round-robin over aws-us-east-1, gcp-europe-west1 and azure-eastus; one unmeasured warm-up change;
// then per round two DENY AuthorizationPolicies (/a, /b) added in one atomic write, every sidecar probed over
// HTTP/2 mTLS (at most 8 probes in flight) until both paths answer 403, and the policies removed again
// (unmeasured). Per sidecar: write -> first probe answered by the new policy, and write -> the LDS ACK the
// control server received; atomicity (no probe answered by the old set after one answered by the new set)
// is asserted on every sidecar in every round.
//
// Usage: node bench/policy-propagation.mjs [--sidecars 100] [--rounds 5] [--no-write] (leave RESULTS.md alone)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { replaceSection, table } from './lib/report.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS = path.join(ROOT, 'bench', 'RESULTS.md');
const TARGET_P99_MS = 1000;

const { values } = parseArgs({ options: { sidecars: { type: 'string', default: '100' }, rounds: { type: 'string', default: '5' }, 'no-write': { type: 'boolean', default: false } } });
const sidecars = Number(values.sidecars);
const rounds = Number(values.rounds);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'outrigger-propagation-bench-'));
const reportFile = path.join(tmp, 'report.json');
const loadBefore = os.loadavg()[0];
const startedAt = new Date();

console.log(`policy propagation: ${sidecars} sidecars x ${rounds} rounds (load average ${loadBefore.toFixed(2)} on ${os.cpus().length} CPUs)`);
const run = spawnSync('npx', ['tap', 'test/e2e/policy-consistency.test.ts', '--disable-coverage', '-R', 'tap', '--timeout', String(Math.max(300, sidecars * 6))], {
  cwd: ROOT,
  env: { ...process.env, OUTRIGGER_PROPAGATION_SIDECARS: String(sidecars), OUTRIGGER_PROPAGATION_ROUNDS: String(rounds), OUTRIGGER_PROPAGATION_REPORT: reportFile },
  encoding: 'utf8',
  maxBuffer: 256 * 2 ** 20,
});
const comments = (run.stdout ?? '').split('\n').filter((l) => /^\s*# (two|event|write|\s+\S+:)/.test(l) || /not ok/.test(l));
console.log(comments.join('\n'));
let r;
try {
  r = JSON.parse(readFileSync(reportFile, 'utf8'));
} catch {
  console.error(`the harness wrote no report (exit ${run.status}):\n${(run.stdout ?? '').slice(-4000)}\n${run.stderr ?? ''}`);
  process.exit(1);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

const ms = (x) => x.toFixed(0);
const row = (what, s) => [what, s.n, ms(s.p50), ms(s.p99), ms(s.max)];
const met = r.flip.p99 < TARGET_P99_MS;
const md = `## Policy propagation across clouds (issue 7)

- command: \`npm run bench:propagation\` (\`node bench/policy-propagation.mjs --sidecars ${sidecars} --rounds ${rounds}\`); ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC;
  ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), node ${process.version}; load average ${loadBefore.toFixed(2)} before, ${r.loadavg[0].toFixed(2)} after
  (the machine is shared: a load above the CPU count means this run waited for a CPU much of the time).
- what: ${r.scenario}; ${r.sidecars} sidecars round-robin over aws-us-east-1, gcp-europe-west1, azure-eastus, all in one
  process with the control server (real apps, SVIDs, mTLS ADS streams, mTLS probes); fleet started in ${(r.startMs / 1000).toFixed(1)} s,
  RSS ${r.rssMiB.toFixed(0)} MiB. The time includes the watcher's 100 ms debounce. Event-loop delay during the changes:
  p50 ${ms(r.loopLag.p50)} ms, p99 ${ms(r.loopLag.p99)} ms, max ${ms(r.loopLag.max)} ms.
- atomicity (per sidecar, no probe answered by the old set after one answered by the new set): ${r.violations === 0 ? 'held' : `**${r.violations} violations**`} over ${r.probes} probes during the changes.

${table(['from the file write to', 'samples', 'p50 ms', 'p99 ms', 'max ms'], [row('the sidecar enforcing it (first probe answered 403)', r.flip), row('its LDS ACK at the control server', r.ack), ...r.perCloud.map((c) => row(`  enforced, ${c.region}`, c))])}

Target (< ${TARGET_P99_MS} ms p99 with 100 sidecars): **${met ? 'met' : 'not met'}** (p99 ${ms(r.flip.p99)} ms).

Reading it: here the control server, all the sidecars, their apps and the prober share one Node.js event loop, so
the work of ${r.sidecars + 1} processes runs one piece after another (the event-loop delay above), on a machine
other programs share. Per change a CPU profile shows ~300 ms of translation for 100 sidecars on the control
server (each sidecar's own listeners carry its address, so each is encoded; proto encoding is half of it),
~3.5 ms per sidecar to decode and apply its LDS and RDS (350 ms for 100, in series here, in parallel in a real
mesh where each sidecar is its own process), garbage collection, and the probes themselves. The LDS ACK row is
the control server's view, free of the probes' sampling interval.
`;
if (!values['no-write']) {
  let text = '';
  try {
    text = readFileSync(RESULTS, 'utf8');
  } catch {}
  writeFileSync(RESULTS, replaceSection(text, 'propagation', md));
  console.log(`wrote the propagation section of ${path.relative(ROOT, RESULTS)}`);
}
process.exit(run.status === 0 ? 0 : 1);
