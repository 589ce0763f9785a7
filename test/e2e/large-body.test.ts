// 100 MiB streamed each way through both sidecars; the process's memory stays flat (backpressure end to end).
import t from 'tap';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { startTwoHop } from '../helpers/two-hop.js';

const SIZE = 100 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x5a);

function bodyStream(total: number): Readable {
  let left = total;
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const c = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
      left -= c.length;
      this.push(c);
    },
  });
}

function expectedSha(total: number): string {
  const h = createHash('sha256');
  for (let left = total; left > 0; left -= CHUNK.length) h.update(left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left));
  return h.digest('hex');
}

t.test('100 MiB up and 100 MiB down with flat memory', async (t) => {
  // 200 MiB on a busy 2-core machine can outlast the default 15 s route timeout; the test is about memory.
  const m = await startTwoHop({ outbound: { timeout: '120s' } });
  t.teardown(() => m.close());
  // What must stay flat is live memory: buffers held by the proxies. Garbage is not growth, so every
  // sample is taken right after full collections (node --expose-gc, set in .taprc's node-arg). Two of
  // them: V8 releases dead ArrayBuffer backing stores lazily, so after one collection arrayBuffers can
  // still count up to a few hundred ms of already-forwarded chunks (measured: spikes of 20-34 MiB after
  // one collection, a flat 1.5 MiB after two).
  const live = () => {
    global.gc?.();
    global.gc?.();
    const mu = process.memoryUsage();
    return mu.heapUsed + mu.arrayBuffers;
  };
  const base = live();
  let peak = base;
  const sampler = setInterval(() => (peak = Math.max(peak, live())), 250);
  t.teardown(() => clearInterval(sampler));

  const up = await new Promise<{ bytes: number; sha256: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: m.outPort, method: 'POST', path: '/sink', headers: { host: 'reviews', 'content-length': SIZE } }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve(JSON.parse(b)));
    });
    req.on('error', reject);
    bodyStream(SIZE).pipe(req);
  });
  t.equal(up.bytes, SIZE, 'every byte arrived upstream');
  t.equal(up.sha256, expectedSha(SIZE), 'and in order');

  const down = await new Promise<number>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: m.outPort, path: `/bytes?n=${SIZE}`, headers: { host: 'reviews' } }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('end', () => resolve(n));
      res.on('error', reject);
    }).on('error', reject);
  });
  t.equal(down, SIZE, 'every byte arrived downstream');
  clearInterval(sampler);
  const growthMiB = (peak - base) / (1024 * 1024);
  t.ok(global.gc, 'measured after forced collections');
  t.ok(growthMiB < 16, `live memory grew ${growthMiB.toFixed(1)} MiB at most while 200 MiB moved through two sidecars, the app and the client`);
});
