// gRPC load client for the benchmark: N unary Echo calls at fixed concurrency over one channel (one HTTP/2
// connection, as a grpc-js app would have), after a short warm-up. Prints one JSON line with the results.
// Usage: node bench/grpc/client.mjs --target HOST:PORT [--calls N] [--concurrency C] [--warmup W]
//        [--authority NAME] [--deadline-ms MS]
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { loadEcho } from './proto.mjs';

const { values } = parseArgs({
  options: {
    target: { type: 'string' },
    calls: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '16' },
    warmup: { type: 'string', default: '300' },
    authority: { type: 'string' },
    'deadline-ms': { type: 'string', default: '5000' },
  },
});
if (!values.target) {
  console.error('usage: client.mjs --target HOST:PORT [--calls N] [--concurrency C]');
  process.exit(2);
}
const calls = Number(values.calls);
const conc = Number(values.concurrency);
const warm = Number(values.warmup);
const deadlineMs = Number(values['deadline-ms']);

const Echo = loadEcho();
const opts = values.authority ? { 'grpc.default_authority': values.authority } : {};
const client = new Echo(values.target, grpc.credentials.createInsecure(), opts);

function one() {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    client.Unary({ message: 'bench-ping-0123456789', pad_bytes: 0 }, { deadline: Date.now() + deadlineMs }, (err) => {
      const us = Number(process.hrtime.bigint() - t0) / 1000;
      resolve({ us, err });
    });
  });
}

/** Run `total` calls with `conc` workers; record latencies and errors. */
async function phase(total, record) {
  let next = 0;
  const lat = [];
  const errors = {};
  let firstError;
  const worker = async () => {
    while (next < total) {
      next++;
      const r = await one();
      if (r.err) {
        const k = grpc.status[r.err.code] ?? String(r.err.code);
        errors[k] = (errors[k] ?? 0) + 1;
        firstError ??= `${k}: ${r.err.details ?? r.err.message}`;
      } else if (record) lat.push(r.us);
    }
  };
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: conc }, worker));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return { lat, errors, firstError, secs };
}

const pct = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : null);

const result = { target: values.target, calls, concurrency: conc };
try {
  await new Promise((res, rej) => client.waitForReady(Date.now() + 5000, (e) => (e ? rej(e) : res())));
  await phase(warm, false);
  const r = await phase(calls, true);
  r.lat.sort((a, b) => a - b);
  Object.assign(result, {
    ok: r.lat.length,
    errors: r.errors,
    firstError: r.firstError,
    seconds: r.secs,
    rps: r.lat.length / r.secs,
    p50_ms: pct(r.lat, 50) / 1000,
    p99_ms: pct(r.lat, 99) / 1000,
  });
} catch (e) {
  Object.assign(result, { ok: 0, fatal: e.message });
}
client.close();
console.log(JSON.stringify(result));
process.exit(0);
