// The HTTP/2 pool against a real h2c server: stream limits, GOAWAY, idle eviction on a fake clock, connect failures.
import t from 'tap';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { FakeClock } from '../../src/core/clock.js';
import { H2Pool, type H2PoolOptions } from '../../src/upstream/h2-pool.js';
import { UpstreamError } from '../../src/upstream/errors.js';
import type { UpstreamHandlers } from '../../src/upstream/pool.js';
import { waitFor } from '../helpers/tools.js';

async function server(maxConcurrentStreams: number) {
  const srv = http2.createServer({ settings: { maxConcurrentStreams } });
  const sessions = new Set<http2.ServerHttp2Session>();
  srv.on('session', (s) => sessions.add(s));
  srv.on('stream', (s, h) => {
    if (h[':path'] === '/hang') return;
    s.respond({ ':status': 200 });
    s.end('ok');
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { srv, sessions, port: (srv.address() as AddressInfo).port };
}

/** A plaintext pool to 127.0.0.1:port with small windows, a fake clock, and `o` on top. */
function h2Pool(port: number, o: Partial<H2PoolOptions> = {}): H2Pool {
  const http2 = { maxConcurrentStreams: 100, initialStreamWindowSize: 65535, initialConnectionWindowSize: 65535 };
  return new H2Pool({ endpoint: { host: '127.0.0.1', port }, tls: undefined, connectTimeoutMs: 1000, idleTimeoutMs: 30_000, http2, clock: new FakeClock(), ...o });
}

const quiet: UpstreamHandlers = { onResponse: (_s, _h, body) => body.resume(), onTrailers: () => {}, onError: () => {} };
const req = (path: string) => ({ method: 'GET', authority: 'x', path, scheme: 'http' as const, headers: {}, endStream: true });

t.test('fills sessions up to the peer\'s SETTINGS_MAX_CONCURRENT_STREAMS, then opens another', async (t) => {
  const s = await server(2);
  t.teardown(() => {
    for (const x of s.sessions) x.destroy();
    s.srv.close();
  });
  const clock = new FakeClock();
  let sessions = 0;
  const pool = h2Pool(s.port, { idleTimeoutMs: 60_000, clock, onSessionDelta: (d) => (sessions += d) });
  t.teardown(() => pool.destroy());
  const streams = await Promise.all(Array.from({ length: 5 }, () => pool.open(req('/hang'), quiet)));
  t.equal(pool.stats().activeStreams, 5);
  t.equal(pool.stats().connections, 3, '5 streams at 2 per session need 3 sessions');
  t.equal(sessions, 3);
  for (const st of streams) st.abort();
  await waitFor(() => pool.stats().activeStreams === 0, 'streams closed');
});

t.test('a session that received GOAWAY takes no new streams; idle sessions are evicted', async (t) => {
  const s = await server(100);
  t.teardown(() => {
    for (const x of s.sessions) x.destroy();
    s.srv.close();
  });
  const clock = new FakeClock();
  const pool = h2Pool(s.port, { http2: { maxConcurrentStreams: 100, initialStreamWindowSize: 1 << 20, initialConnectionWindowSize: 4 << 20 }, clock });
  t.teardown(() => pool.destroy());
  // A stream racing the GOAWAY is refused (REFUSED_STREAM, never processed): reported as -1 here.
  const done = () =>
    new Promise<number>((resolve) =>
      void pool.open(req('/'), { ...quiet, onResponse: (st, _h, body) => { body.resume(); resolve(st); }, onError: (e) => resolve(e.kind === 'refused_stream' ? -1 : -2) }).catch(() => resolve(-3)),
    );
  t.equal(await done(), 200);
  t.equal(pool.stats().connections, 1);
  for (const sess of s.sessions) sess.goaway();
  await waitFor(async () => (await done()) === 200 && s.sessions.size === 2, 'a second session after GOAWAY');
  await waitFor(() => pool.stats().connections === 1, 'the GOAWAY\'d session to go away once idle');
  // The idle timer is armed when the last stream closes, which can come a moment after its response.
  await waitFor(() => pool.stats().activeStreams === 0, 'the last stream to close');
  clock.advance(29_999);
  t.equal(pool.stats().connections, 1);
  clock.advance(1);
  await waitFor(() => pool.stats().connections === 0, 'idle eviction after idle_timeout');
});

t.test('connect failures are typed and counted', async (t) => {
  const s = await server(100);
  const port = s.port;
  await new Promise<void>((r) => s.srv.close(() => r()));
  const pool = h2Pool(port, { idleTimeoutMs: 1000 });
  const err = await pool.open(req('/'), quiet).catch((e: unknown) => e);
  t.ok(err instanceof UpstreamError);
  t.match(err, { kind: 'connect_failure', reason: 'connection_refused' });
  t.equal((err as UpstreamError).beforeRequestSent, true);
  t.equal(pool.stats().connectFailures, 1);
  pool.close();
  t.match(await pool.open(req('/'), quiet).catch((e: unknown) => e), { reason: 'pool_closed' });
});

/**
 * A minimal HTTP/2 peer on a raw socket: it answers the preface with SETTINGS and, as soon as a HEADERS
 * frame arrives, says GOAWAY with last-stream-id 0 (nothing processed) and closes its end. Node's own
 * server always reports the streams it has seen, so only raw frames can show this ordering.
 */
async function goawayPeer() {
  const frame = (type: number, flags: number, payload: Buffer) => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    return Buffer.concat([h, payload]);
  };
  const srv = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    let prefaceSeen = false;
    sock.write(frame(4, 0, Buffer.alloc(0)));
    sock.on('error', () => {});
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (!prefaceSeen) {
        if (buf.length < 24) return;
        buf = buf.subarray(24);
        prefaceSeen = true;
      }
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) return;
        const type = buf[3]!;
        const flags = buf[4]!;
        buf = buf.subarray(9 + len);
        if (type === 4 && (flags & 1) === 0) sock.write(frame(4, 1, Buffer.alloc(0)));
        if (type === 1) {
          const goaway = Buffer.alloc(8);
          sock.end(frame(7, 0, goaway));
          return;
        }
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { srv, port: (srv.address() as AddressInfo).port };
}

t.test('a stream above the last-stream-id of a GOAWAY is reported as refused (retryable), even when the peer then closes', async (t) => {
  const s = await goawayPeer();
  t.teardown(() => s.srv.close());
  const pool = h2Pool(s.port);
  t.teardown(() => pool.destroy());
  const outcome = new Promise<string>((resolve) => {
    void pool.open(req('/hang'), { ...quiet, onResponse: () => resolve('response'), onError: (e) => resolve(`${e.kind}/${e.reason}`) });
  });
  t.equal(await outcome, 'refused_stream/refused_stream');
  await waitFor(() => pool.stats().connections === 0, 'the session to leave the pool');
});
