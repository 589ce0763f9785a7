// SIGTERM-style drain: stop accepting, GOAWAY, in-flight requests finish, then stop; a stuck request is cut at the drain time.
import t from 'tap';
import http2 from 'node:http2';
import net from 'node:net';
import { request, startTwoHop } from '../helpers/two-hop.js';
import { waitFor } from '../helpers/tools.js';

t.test('in-flight requests finish; new connections are refused; HTTP/2 clients get GOAWAY', async (t) => {
  const m = await startTwoHop({ drainMs: 5000 });
  t.teardown(() => m.close());
  const h2 = http2.connect(`http://127.0.0.1:${m.outPort}`);
  t.teardown(() => h2.destroy());
  let goaway = false;
  h2.on('goaway', () => (goaway = true));
  const h2done = new Promise<number>((resolve, reject) => {
    const s = h2.request({ ':authority': 'reviews', ':path': '/slow?ms=400' });
    s.on('response', (h) => resolve(Number(h[':status'])));
    s.on('error', reject);
    s.resume();
  });
  const inflight = Array.from({ length: 4 }, () => request(m.outPort, { path: '/slow?ms=400' }));
  await waitFor(() => m.app.seen.length === 5, 'five requests at the app');

  const drained = m.a.shutdown();
  await waitFor(() => goaway, 'GOAWAY on the HTTP/2 connection');
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect(m.outPort, '127.0.0.1');
    s.once('connect', () => resolve('connected'));
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  t.equal(refused, 'ECONNREFUSED', 'no new connections while draining');
  const statuses = await Promise.all(inflight);
  t.same(statuses.map((r) => r.status), [200, 200, 200, 200], 'every in-flight HTTP/1.1 request finished');
  t.equal(await h2done, 200, 'the in-flight HTTP/2 stream finished');
  t.equal(await drained, true, 'drain completed within the drain time');
});

t.test('a request that outlives the drain time is cut and drain reports it', async (t) => {
  const m = await startTwoHop({ drainMs: 200 });
  t.teardown(() => m.close());
  const stuck = request(m.outPort, { path: '/hang' }).then(
    (r) => r.status,
    (e: NodeJS.ErrnoException) => e.code ?? 'error',
  );
  await waitFor(() => m.app.seen.length === 1, 'the request at the app');
  t.equal(await m.a.shutdown(), false, 'drain timed out');
  t.equal(await stuck, 'ECONNRESET', 'the stuck request was cut, not left hanging');
});
