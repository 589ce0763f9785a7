// Retries of requests with a body, through a real sidecar to real upstreams: the body is kept for a replay up
// to per_request_buffer_limit_bytes, the upstream sees exactly the caller's bytes on every try, and past the
// limit the request gets one try that still carries the whole body. A response that has begun streaming to the
// caller is never retried.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import t, { type Test } from 'tap';
import { deadPort, serveHttp } from '../helpers/http-app.js';
import { outboundListener, runSidecar, type StartedSidecar } from '../helpers/mesh.js';
import { metricValue } from '../helpers/two-hop.js';

interface Recorder {
  readonly port: number;
  /** sha256 of every request body received, in arrival order. */
  readonly bodies: string[];
  /** Answers 503 to this many more requests (after reading their bodies), then 200. */
  failNext: number;
  /** 'partial': sends 200 headers and half a body, then cuts the connection. */
  mode: 'normal' | 'partial';
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function recorder(t: Test): Promise<Recorder> {
  const r = { port: 0, bodies: [] as string[], failNext: 0, mode: 'normal' as Recorder['mode'] };
  r.port = await serveHttp(t, (req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      r.bodies.push(sha(Buffer.concat(parts)));
      if (r.mode === 'partial') {
        res.writeHead(200, { 'content-length': 1000 });
        res.write(Buffer.alloc(500, 'x'));
        setImmediate(() => res.socket?.destroy());
        return;
      }
      const status = r.failNext > 0 ? 503 : 200;
      if (r.failNext > 0) r.failNext--;
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(String(status));
    });
  });
  return r;
}

async function sidecar(t: Test, ports: number[], retry: object, route: Record<string, unknown> = {}): Promise<StartedSidecar> {
  const s = await runSidecar({
    node: { id: 'caller-1', cluster: 'caller' },
    static_resources: {
      listeners: [
        outboundListener({
          name: 'outbound',
          virtual_hosts: [{ name: 'backend', domains: ['backend'], routes: [{ match: { prefix: '/' }, ...route, route: { cluster: 'backend', timeout: '5s', retry_policy: retry } }] }],
        }),
      ],
      clusters: [
        {
          name: 'backend',
          type: 'STATIC',
          connect_timeout: '0.5s',
          load_assignment: { cluster_name: 'backend', endpoints: [{ lb_endpoints: ports.map((p) => ({ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: p } } } })) }] },
        },
      ],
    },
  });
  t.teardown(() => s.shutdown());
  return s;
}

/** POSTs `body` in 16 KiB writes (a streamed upload, not one buffer); resolves with status and the response body. */
function post(port: number, body: Buffer): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/upload', headers: { host: 'backend', 'content-length': body.length }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    for (let i = 0; i < body.length; i += 16 * 1024) req.write(body.subarray(i, i + 16 * 1024));
    req.end();
  });
}

const RETRY = { retry_on: '5xx', num_retries: 2, retry_back_off: { base_interval: '0.001s' } };

/** A sidecar with a 64 KiB retry buffer in front of an upstream that fails `failNext` times; one POST of `size` random bytes. */
async function postThroughLimit(t: Test, size: number, failNext: number) {
  const up = await recorder(t);
  const s = await sidecar(t, [up.port], RETRY, { per_request_buffer_limit_bytes: 64 * 1024 });
  const body = randomBytes(size);
  up.failNext = failNext;
  return { up, s, body, r: await post(s.port('outbound'), body) };
}

t.test('a POST within the buffer limit is retried, and every try carries exactly the caller\'s bytes', async (t) => {
  const { up, s, body, r } = await postThroughLimit(t, 40 * 1024, 2);
  t.equal(r.status, 200, 'the third try answered');
  t.strictSame(up.bodies, [sha(body), sha(body), sha(body)], 'three tries, each with the whole body, byte for byte');
  t.equal(await metricValue(s, 'outrigger_upstream_retries_total', { outcome: 'retried' }), 2);
});

t.test('past the buffer limit the one try streams the whole body and its 503 is the answer: no retry, nothing sent twice', async (t) => {
  const { up, s, body, r } = await postThroughLimit(t, 256 * 1024, 5);
  t.equal(r.status, 503);
  t.equal(r.text, '503', "the upstream's own answer");
  t.strictSame(up.bodies, [sha(body)], 'one try, with all of the body');
  t.equal(await metricValue(s, 'outrigger_upstream_retries_total', { outcome: 'not_buffered' }), 1);

  // Without per_request_buffer_limit_bytes the 1 MiB default holds, and the same body is kept for a retry.
  up.failNext = 1;
  const big = await sidecar(t, [up.port], RETRY);
  const ok = await post(big.port('outbound'), body);
  t.equal(ok.status, 200, 'under the 1 MiB default the same body is retried');
  t.strictSame(up.bodies.slice(1), [sha(body), sha(body)]);
});

t.test('a connect failure before the body went anywhere: the retry on another host gets all of it', async (t) => {
  const up = await recorder(t);
  const dead = await deadPort();
  const s = await sidecar(t, [up.port, dead], { ...RETRY, retry_on: 'connect-failure' });
  const bodies = [randomBytes(30_000), randomBytes(50_000), randomBytes(10), randomBytes(70_000)];
  for (const b of bodies) t.equal((await post(s.port('outbound'), b)).status, 200);
  t.strictSame(up.bodies.slice(-4), bodies.map(sha), 'every body arrived whole, once');
  t.equal(up.bodies.length, 4);
});

t.test('a response that has started streaming to the caller is never retried', async (t) => {
  const up = await recorder(t);
  up.mode = 'partial';
  const s = await sidecar(t, [up.port], { retry_on: '5xx,reset,connect-failure', num_retries: 3, retry_back_off: { base_interval: '0.001s' } });
  const outcome = await new Promise<string>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: s.port('outbound'), path: '/', headers: { host: 'backend' }, agent: false }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('error', () => resolve(`${res.statusCode} then cut after ${n} bytes`));
      res.on('aborted', () => resolve(`${res.statusCode} then cut after ${n} bytes`));
      res.on('end', () => resolve(`${res.statusCode} complete with ${n} bytes`));
    });
    req.on('error', (e) => resolve(`error ${e.message}`));
  });
  t.equal(outcome, '200 then cut after 500 bytes', 'the caller saw the start of the answer, then the cut');
  t.equal(up.bodies.length, 1, 'the upstream was asked once');
});
