// Load tools and their parsers: wrk (closed-loop throughput), h2load (fixed-rate latency, percentiles from its
// per-request log) and the grpc-js client (bench/grpc/client.mjs). Each returns plain numbers, never throws
// on a bad run: failures come back as { error } so the report can say n/a with a reason.
import { readFileSync, existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './procs.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** "10s" | "500ms" | "2m" | "10" (seconds) -> seconds. */
export function seconds(s) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(s).trim());
  if (!m) throw new Error(`bad duration ${JSON.stringify(s)} (use e.g. 10s, 500ms, 1m)`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : n;
}

/** wrk's "1.23ms" / "456.00us" / "1.2s" -> milliseconds. */
function wrkMs(s) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s);
  if (!m) return null;
  const n = Number(m[1]);
  return { us: n / 1000, ms: n, s: n * 1000, m: n * 60000 }[m[2]];
}

export function parseWrk(out) {
  const r = {};
  const reqs = /(\d+) requests in ([\d.]+)(\w+),/.exec(out);
  if (reqs) r.requests = Number(reqs[1]);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (rps) r.rps = Number(rps[1]);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  r.non2xx = non2xx ? Number(non2xx[1]) : 0;
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  r.socketErrors = se ? se.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  for (const p of ['50', '99']) {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out);
    if (m) r[`p${p}_ms`] = wrkMs(m[1]);
  }
  return r;
}

/** wrk -t threads -c connections -d duration --latency, with a Host header for the routers. */
export async function wrk(url, { threads = 2, connections = 16, duration = '10s', host } = {}) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${duration}`, '--latency'];
  if (host) args.push('-H', `Host: ${host}`);
  args.push(url);
  const r = await run('wrk', args, { timeoutMs: (seconds(duration) + 30) * 1000 });
  const parsed = parseWrk(r.stdout);
  if (r.code !== 0 || parsed.rps === undefined) return { error: `wrk exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`, raw: r.stdout };
  return { ...parsed, raw: r.stdout };
}

/** Percentile by nearest rank over a sorted array. */
export function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function parseH2loadSummary(out) {
  const r = {};
  const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  if (m) Object.assign(r, { total: +m[1], done: +m[3], succeeded: +m[4], failed: +m[5], errored: +m[6], timeout: +m[7] });
  const s = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  if (s) Object.assign(r, { s2xx: +s[1], s4xx: +s[3], s5xx: +s[4] });
  const f = /finished in ([\d.]+)(s|ms)/.exec(out);
  if (f) r.finishedSec = f[2] === 'ms' ? +f[1] / 1000 : +f[1];
  return r;
}

/**
 * h2load at a fixed aggregate rate: `clients` connections, each sending rate/clients req/s (--rps), for
 * `duration` after `warmup`. h2load prints no percentiles, so we read its per-request log
 * (start µs, status, latency µs) and compute p50/p99 over the requests started after the warm-up.
 */
export async function h2loadFixedRate(url, { rate = 1000, clients = 20, duration = '10s', warmup = '2s', h1 = false, authority, logFile } = {}) {
  const perClient = Math.max(1, Math.round(rate / clients));
  const dur = seconds(duration);
  const warm = seconds(warmup);
  if (existsSync(logFile)) rmSync(logFile);
  const args = ['-c', String(clients), '-t', '1', '-m', '1', '--rps', String(perClient), '-D', String(dur), '--warm-up-time', String(warm), '--log-file', logFile];
  if (h1) args.push('--h1');
  if (authority) args.push('-H', `:authority: ${authority}`);
  args.push(url);
  const r = await run('h2load', args, { timeoutMs: (dur + warm + 30) * 1000 });
  const sum = parseH2loadSummary(r.stdout);
  if (r.code !== 0 || sum.total === undefined) return { error: `h2load exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(-300)}`, raw: r.stdout };
  let rows = [];
  try {
    rows = readFileSync(logFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => l.split('\t').map(Number));
  } catch (e) {
    return { ...sum, error: `no h2load log: ${e.message}`, raw: r.stdout };
  }
  // h2load 1.52 logs only the measured (-D) window, not the warm-up; should a version log the warm-up too
  // (span clearly longer than -D), drop the requests started during it.
  if (!rows.length) return { ...sum, error: 'h2load logged no request', raw: r.stdout };
  const t0 = rows.reduce((m, x) => Math.min(m, x[0]), Infinity);
  const span = (rows.reduce((m, x) => Math.max(m, x[0]), -Infinity) - t0) / 1e6;
  const window = span > dur + warm / 2 ? rows.filter((x) => x[0] >= t0 + warm * 1e6) : rows;
  // h2load does not record the :status of a response whose headers arrive during the warm-up (nghttp2
  // src/h2load.cc, Client::on_header returns early outside Phase::MAIN_DURATION and marks the stream a success);
  // when such a stream ends after the switch it is logged with status 0, yet counted "succeeded". Those rows, the
  // streams straddling the phase switch, are not failures: a status-0 row is a real one (reset, timeout) only as
  // many times as h2load's own errored + timeout counts say. The straddlers are the earliest-started rows.
  const zeros = window.filter((x) => x[1] === 0).sort((a, b) => a[0] - b[0]);
  const straddlers = new Set(zeros.slice(0, Math.max(0, zeros.length - (sum.errored ?? 0) - (sum.timeout ?? 0))));
  const measured = straddlers.size ? window.filter((x) => !straddlers.has(x)) : window;
  const ok = measured.filter((x) => x[1] >= 200 && x[1] < 300);
  const lat = ok.map((x) => x[2] / 1000).sort((a, b) => a - b);
  const badStatuses = {};
  for (const x of measured) if (!(x[1] >= 200 && x[1] < 300)) badStatuses[x[1]] = (badStatuses[x[1]] ?? 0) + 1;
  return {
    ...sum,
    measured: measured.length,
    ok: ok.length,
    bad: measured.length - ok.length,
    ...(straddlers.size && { warmupStraddlers: straddlers.size }),
    badStatuses: measured.length > ok.length ? badStatuses : undefined,
    achievedRps: measured.length / dur,
    p50_ms: percentile(lat, 50),
    p90_ms: percentile(lat, 90),
    p99_ms: percentile(lat, 99),
    raw: r.stdout,
  };
}

/** The gRPC unary client in a child process (so its CPU is not the harness's). */
export async function grpcUnary(target, { calls = 5000, concurrency = 16, warmup = 300, authority } = {}) {
  const args = [path.join(HERE, '..', 'grpc', 'client.mjs'), '--target', target, '--calls', String(calls), '--concurrency', String(concurrency), '--warmup', String(warmup)];
  if (authority) args.push('--authority', authority);
  const r = await run(process.execPath, args, { timeoutMs: 180000 });
  const line = r.stdout.trim().split('\n').pop();
  try {
    const j = JSON.parse(line);
    if (j.fatal) return { error: j.fatal };
    if (!j.ok) return { error: j.firstError ?? 'no successful call', ...j };
    return j;
  } catch {
    return { error: `grpc client exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(-300)}` };
  }
}
