// Turns the measurements into the console table and bench/RESULTS.md: absolute numbers, ratios to HAProxy,
// and the Outrigger targets marked met / not met. Missing numbers are shown as "n/a" with the reason.
import { readFileSync, writeFileSync } from 'node:fs';

export const TARGETS = {
  throughputRatio: 0.4, // Outrigger req/s >= 0.4 x HAProxy
  addedP50Ratio: 1.5, // Outrigger added p50 at the fixed rate <= 1.5 x HAProxy's
  rssMBPerSidecar: 80, // per sidecar process, under the fixed-rate load
  chainRatio: 0.9, // issue 6: Outrigger with its policy chain >= 0.9 x Outrigger without it
  secureRatio: 0.85, // issue 7: Outrigger with jwt_authn + rbac >= 0.85 x Outrigger without them
};

const MB = (kib) => kib / 1024;
const f = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : Number(x).toFixed(d));
const fx = (x, d = 2) => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : `${Number(x).toFixed(d)}×`);

/** Markdown-safe cell: no pipes or line breaks inside. */
const cell = (c) => String(c ?? '').replaceAll('|', '\\|').replace(/\s*\n\s*/g, ' ');

export function table(head, rows) {
  const line = (cells) => `| ${cells.map(cell).join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Added p50 over the direct path, for one latency protocol. */
function added(res, direct, proto) {
  const p = res.latency?.[proto]?.p50_ms;
  const d = direct?.latency?.[proto]?.p50_ms;
  return p != null && d != null ? p - d : null;
}

/** " (a–b)" when several rounds were run. */
function rangeNote(range, d) {
  return range ? ` (${f(range[0], d)}–${f(range[1], d)})` : '';
}

/**
 * Throughput of path x relative to path base. With several rounds this is the median of the per-round ratios:
 * rounds interleave the paths, so round k of both ran under the same machine weather, and pairing them cancels
 * the drift that dominates a shared machine (one path's own rounds spread by ±25 %). Beside it: the CPU each
 * request costs both hops (on a CPU-bound machine, base's CPU ÷ x's CPU is the throughput ratio that other
 * programs' noise cannot move) and the same paired ratio for gRPC unary calls.
 */
export function relativeThroughput(x, base) {
  const paired = (key, single) => {
    const xs = x.perRound?.[key] ?? [single(x)];
    const bs = base.perRound?.[key] ?? [single(base)];
    const qs = xs.map((v, i) => v / bs[i]).filter((q) => Number.isFinite(q) && q > 0);
    return { qs, ratio: qs.length > 1 ? median(qs) : single(x) / single(base) };
  };
  const wrk = paired('wrkRps', (r) => r.wrk?.rps);
  const grpc = paired('grpcRps', (r) => r.grpc?.rps);
  const list = (qs) => qs.map((q) => q.toFixed(2)).join(', ');
  const bits = [];
  if (wrk.qs.length > 1) bits.push(`median of ${wrk.qs.length} paired rounds (${list(wrk.qs)})`);
  if (x.cpuPer1k > 0 && base.cpuPer1k > 0) bits.push(`CPU per request ${fx(x.cpuPer1k / base.cpuPer1k)} the base path's`);
  if (Number.isFinite(grpc.ratio)) bits.push(`gRPC calls/s ${fx(grpc.ratio)}${grpc.qs.length > 1 ? ` (${list(grpc.qs)})` : ''}`);
  return { ratio: wrk.ratio, detail: bits.length ? `; ${bits.join('; ')}` : '' };
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function errorNote(x) {
  if (!x) return '';
  const bits = [];
  if (x.non2xx) bits.push(`${x.non2xx} non-2xx`);
  if (x.socketErrors) bits.push(`${x.socketErrors} socket errors`);
  if (x.bad) bits.push(`${x.bad} failed${x.badStatuses ? ` [status ${Object.entries(x.badStatuses).map(([k, v]) => `${k === '0' ? 'none' : k}×${v}`).join(', ')}]` : ''}`);
  if (x.errors && Object.keys(x.errors).length) bits.push(Object.entries(x.errors).map(([k, v]) => `${v} ${k}`).join(', '));
  return bits.length ? ` (${bits.join('; ')})` : '';
}

export function buildReport({ results, cfg, facts, command, startedAt, finishedAt, latencyProtos, targetProto }) {
  const byName = Object.fromEntries(results.map((r) => [r.name, r]));
  const direct = byName.direct;
  const ha = byName.haproxy;
  const haRps = ha?.wrk?.rps;
  const haAdded = ha ? added(ha, direct, targetProto) : null;

  // A path that failed as a whole says so once, under Notes; its cells just point there.
  const na = (r, what) => (r.error ? 'n/a (failed, see Notes)' : `n/a${what ? `: ${what}` : ''}`);

  // 1. throughput and resources (wrk)
  const t1 = table(
    ['path', 'mTLS hop protocol', 'wrk req/s', '× HAProxy', 'wrk p50 / p99 ms', 'CPU-s per 1k req (both hops)', 'CPU % of a core @ fixed rate', 'VmRSS max under fixed-rate load, MB (A + B)', 'VmHWM peak, MB (A + B)', 'other programs\' CPU during wrk, cores'],
    results.map((r) => {
      if (r.error && !r.wrk) return [r.label, r.upstreamProto ?? '—', na(r), '', '', '', '', '', '', ''];
      const w = r.wrk ?? {};
      const hop = r.mem ? `${f(MB(r.mem.rssFixed.reduce((a, b) => a + b, 0)))} (${r.mem.rssFixed.map((k) => f(MB(k))).join(' + ')})` : '—';
      const hwm = r.mem ? `${f(MB(r.mem.hwm.reduce((a, b) => a + b, 0)))} (${r.mem.hwm.map((k) => f(MB(k))).join(' + ')})` : '—';
      return [
        r.label,
        r.upstreamProto ?? '—',
        w.error ? `n/a: ${w.error}` : `${f(w.rps, 0)}${rangeNote(r.range?.wrkRps, 0)}${errorNote(w)}`,
        r.name === 'direct' ? '—' : fx(w.rps / haRps),
        w.error ? '' : `${f(w.p50_ms, 2)} / ${f(w.p99_ms, 2)}`,
        r.cpuPer1k != null ? f(r.cpuPer1k, 3) : '—',
        r.cpuFixedPct != null ? f(r.cpuFixedPct, 0) : '—',
        hop,
        hwm,
        f(r.foreignCores, 2),
      ];
    }),
  );

  // 2. latency at a fixed rate (h2load), per entry protocol
  const latHead = ['path'];
  for (const p of latencyProtos) latHead.push(`${p} p50 ms`, `${p} p99 ms`, `${p} added p50 ms`, `${p} added p50 × HAProxy`, `${p} achieved req/s`);
  const t2 = table(
    latHead,
    results.map((r) => {
      const row = [r.label];
      for (const p of latencyProtos) {
        const l = r.latency?.[p];
        if (!l || l.error) {
          row.push(l?.error ? `n/a: ${l.error}` : na(r), '', '', '', '');
          continue;
        }
        const add = added(r, direct, p);
        const haAdd = ha ? added(ha, direct, p) : null;
        row.push(
          `${f(l.p50_ms, 3)}${rangeNote(r.range?.p50?.[p], 3)}${errorNote(l)}`,
          f(l.p99_ms, 3),
          r.name === 'direct' ? '—' : f(add, 3),
          r.name === 'direct' ? '—' : haAdd > 0 ? fx(add / haAdd) : 'n/a',
          f(l.achievedRps, 0),
        );
      }
      return row;
    }),
  );

  // 3. gRPC unary
  const t3 = table(
    ['path', 'gRPC unary calls/s', 'p50 ms', 'p99 ms', '× HAProxy calls/s'],
    results.map((r) => {
      const g = r.grpc;
      if (!g || g.error) return [r.label, g?.error ? `n/a: ${g.error}` : na(r), '', '', ''];
      return [r.label, `${f(g.rps, 0)}${errorNote(g)}`, f(g.p50_ms, 2), f(g.p99_ms, 2), r.name === 'direct' ? '—' : fx(g.rps / ha?.grpc?.rps)];
    }),
  );

  // 4. targets
  const o = byName.outrigger;
  const targetRows = [];
  const mark = (ok) => (ok === null ? 'n/a' : ok ? '**met**' : '**not met**');
  if (o && !o.error) {
    const tr = o.wrk?.rps / haRps;
    targetRows.push([`throughput ≥ ${TARGETS.throughputRatio}× HAProxy`, `${f(o.wrk?.rps, 0)} vs ${f(haRps, 0)} req/s = ${fx(tr)}`, mark(Number.isFinite(tr) ? tr >= TARGETS.throughputRatio : null)]);
    const oa = added(o, direct, targetProto);
    const ar = haAdded > 0 && oa != null ? oa / haAdded : null;
    targetRows.push([
      `added p50 at ${cfg.rate} req/s (${targetProto}) ≤ ${TARGETS.addedP50Ratio}× HAProxy's`,
      `${f(oa, 3)} ms vs ${f(haAdded, 3)} ms = ${fx(ar)}`,
      mark(ar === null ? null : ar <= TARGETS.addedP50Ratio),
    ]);
    const per = o.mem?.rssFixed.map(MB) ?? [];
    const hw = o.mem?.hwm.map(MB) ?? [];
    targetRows.push([
      `≤ ${TARGETS.rssMBPerSidecar} MB RSS per sidecar under the ${cfg.rate} req/s load`,
      `VmRSS max A ${f(per[0])} MB, B ${f(per[1])} MB (VmHWM over the whole run: A ${f(hw[0])}, B ${f(hw[1])})`,
      mark(per.length ? Math.max(...per) <= TARGETS.rssMBPerSidecar : null),
    ]);
    // Issue 6: the policy chain (routes, retries, rate limit, fault filter, metrics) keeps ≥ 90 % of the chain-less
    // throughput. Issue 7: authn + authz (jwt_authn, RBAC DENY + ALLOW) keep ≥ 85 % of it.
    for (const [name, what, target] of [
      ['outrigger-chain', `policy chain throughput ≥ ${TARGETS.chainRatio}× Outrigger's without it`, TARGETS.chainRatio],
      ['outrigger-secure', `authn + authz throughput ≥ ${TARGETS.secureRatio}× Outrigger's without them`, TARGETS.secureRatio],
    ]) {
      const x = byName[name];
      if (!x || x.error) continue;
      const r = relativeThroughput(x, o);
      targetRows.push([what, `${f(x.wrk?.rps, 0)} vs ${f(o.wrk?.rps, 0)} req/s = ${fx(r.ratio)}${r.detail}`, mark(Number.isFinite(r.ratio) ? r.ratio >= target : null)]);
    }
  } else {
    const why = o?.error ? 'Outrigger path failed (see Notes)' : 'Outrigger path not run';
    for (const t of ['throughput', 'added p50', 'RSS']) targetRows.push([t, `n/a: ${why}`, 'n/a']);
  }
  const t4 = table(['Outrigger target', 'measured', 'status'], targetRows);

  const notes = results.flatMap((r) => [
    // Latency at a fixed rate close to a path's own maximum is mostly queueing: say so next to the numbers.
    ...(r.name !== 'direct' && r.wrk?.rps && cfg.rate / r.wrk.rps > 0.5
      ? [`- ${r.label}: the fixed ${cfg.rate} req/s is ${Math.round((cfg.rate / r.wrk.rps) * 100)} % of its closed-loop throughput (wrk), so its fixed-rate latency is largely queueing`]
      : []),
    ...(r.error ? [`- **${r.label}**: failed: ${r.error.replaceAll('\n', ' ')}`] : []),
    ...(r.notes ?? []).map((n) => `- ${r.label}: ${n}`),
  ]);

  const md = `# Benchmark results

Generated by \`bench/run.mjs\`; see bench/README.md for what each path does. Numbers are ${cfg.rounds > 1 ? `medians of ${cfg.rounds} interleaved rounds (range in parentheses; memory is the maximum)` : 'from one round'} on a
shared 2-core machine: the load generators, both hops and the backend all compete for the same cores, so
run-to-run noise of ±10–20 % is normal. Rerun before drawing fine conclusions.

- command: \`${command}\`
- started: ${startedAt.toISOString()}, finished: ${finishedAt.toISOString()}
- machine: ${facts.nproc} CPUs (${facts.cpu}), ${facts.memGiB} GiB RAM, kernel ${facts.kernel}, load average ${facts.loadavg} at start, ${facts.loadavgEnd} at end; other programs used ${f(facts.foreignCores, 2)} of the ${facts.nproc} cores on average during the run (machine busy time minus the bench's own processes); before starting: ${facts.idle}
- node ${facts.node}; ${facts.nginx}; ${facts.haproxy}; ${facts.wrk}; ${facts.h2load}; ${facts.openssl}
- outrigger: ${facts.outrigger}
- settings: wrk ${cfg.wrkThreads} threads × ${cfg.wrkConnections} connections for ${cfg.duration} (after ${cfg.warmup} warm-up); h2load ${cfg.rate} req/s fixed rate (${cfg.h2loadClients} clients × ${Math.round(cfg.rate / cfg.h2loadClients)} req/s, one request in flight per client) for ${cfg.duration} after ${cfg.h2loadWarmup} warm-up; gRPC ${cfg.grpcCalls} unary calls at concurrency ${cfg.grpcConcurrency} on one channel; response body ${cfg.bodyBytes} B; one worker/thread/process per hop

## Throughput and resources (wrk, closed loop)

CPU-seconds are utime+stime of both hops (all processes of each hop) over the measured wrk run, divided by
requests/1000. VmRSS is the maximum sampled (every 250 ms) during the fixed-rate runs; VmHWM is the kernel's
peak over the path's whole run. nginx figures include the master process. The last column is the machine's
busy CPU during the wrk run minus everything the bench runs (hops, backend, wrk): anything well above 0
means another program competed for the 2 cores and that row is pessimistic.

${t1}

## Latency at a fixed ${cfg.rate} req/s (h2load)

"added p50" = path p50 − direct p50, for the same entry protocol. h2c: h2 prior knowledge into hop A (nginx on
a second listener); h1: \`h2load --h1\`.

${t2}

## gRPC unary (grpc-js client → hop A (h2c) → mTLS h2 → hop B → grpc-js echo server)

${t3}

## Targets for Outrigger

${t4}
${notes.length ? `\n## Notes\n\n${notes.join('\n')}\n` : ''}`;
  return { md, console: `${t1}\n\n${t2}\n\n${t3}\n\n${t4}\n${notes.length ? `\n${notes.join('\n')}\n` : ''}` };
}

/**
 * Replaces (or appends) the part of a results file between `<!-- name:start -->` and `<!-- name:end -->`,
 * so separate benchmarks (`npm run bench`, `npm run bench:identity`) share bench/RESULTS.md.
 */
export function replaceSection(text, name, md) {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${start}\n${md.trim()}\n${end}\n`;
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a >= 0 && b > a) return text.slice(0, a) + block + text.slice(b + end.length + 1);
  return `${text.trimEnd()}\n\n${block}`;
}

/** Writes the data-plane report, keeping the sections other benchmarks wrote (see replaceSection). */
export function writeReport(file, md) {
  let kept = '';
  try {
    const old = readFileSync(file, 'utf8');
    for (const m of old.matchAll(/<!-- (\w+):start -->[\s\S]*?<!-- \1:end -->\n?/g)) kept += `\n${m[0]}`;
  } catch {
    /* first run */
  }
  writeFileSync(file, md.trimEnd() + '\n' + kept);
}
