#!/usr/bin/env node
// The upstreams and latency relays of bench/lb-scenarios.mjs, in a process of their own so the load generator,
// the sidecar and the upstreams do not share an event loop. Driven over Node's IPC channel by lb-world.mjs:
// every message { id, type, ... } gets one answer { id, ... } (or { id, error }).
//
//   start   { endpoints: [{ name, delayMs, relayMs }] } -> { ports: { name: port the sidecar dials } }
//           (relayMs null: the sidecar dials the upstream itself; a number: a relay in front adds that delay)
//   set     { names, mode: 'ok' | 'fail', delayMs? }   -> { at }   fail = every answer is a 503
//   refuse  { names }                                  -> { at }   close the listener and every connection
//   counts  { since }                                  -> { counts: { name: { served, after, lastAt } } }
//
// Times (`at`, `since`, `lastAt`) are CLOCK_MONOTONIC milliseconds (process.hrtime), comparable across processes.
import http from 'node:http';
import net from 'node:net';

const now = () => Number(process.hrtime.bigint()) / 1e6;
const upstreams = new Map();

/** An HTTP/1.1 upstream that answers after delayMs with 200 or, in mode 'fail', 503; x-served-by names it. */
async function startUpstream(name, delayMs) {
  const sockets = new Set();
  const u = { name, port: 0, mode: 'ok', delayMs, arrivals: [] };
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    u.arrivals.push(now());
    req.resume();
    const answer = () => {
      const status = u.mode === 'ok' ? 200 : 503;
      res.writeHead(status, { 'content-type': 'text/plain', 'content-length': 2, 'x-served-by': name });
      res.end(status === 200 ? 'ok' : 'no');
    };
    if (u.delayMs > 0) setTimeout(answer, u.delayMs);
    else answer();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  u.port = server.address().port;
  // A dead host: new connections are refused by the kernel, open ones are reset.
  u.refuse = () => {
    server.close();
    for (const s of sockets) s.destroy();
  };
  upstreams.set(name, u);
  return u;
}

/**
 * A TCP relay that delays every chunk by delayMs in each direction (distance between localities). Chunks keep
 * their order: timers of one duration fire in the order they were set.
 */
async function startRelay(targetPort, delayMs) {
  const later = delayMs > 0 ? (fn) => setTimeout(fn, delayMs) : (fn) => setImmediate(fn);
  const forward = (from, to) => {
    from.on('data', (c) => later(() => to.destroyed || to.write(c)));
    from.on('end', () => later(() => to.end()));
    from.on('error', () => to.destroy());
    from.on('close', () => later(() => to.destroy()));
  };
  const server = net.createServer((down) => {
    down.setNoDelay(true);
    const up = net.connect(targetPort, '127.0.0.1');
    up.setNoDelay(true);
    forward(down, up);
    forward(up, down);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server.address().port;
}

const pick = (names) => names.map((n) => {
  const u = upstreams.get(n);
  if (!u) throw new Error(`no upstream ${n}`);
  return u;
});

const handlers = {
  async start({ endpoints }) {
    const ports = {};
    for (const e of endpoints) {
      const u = await startUpstream(e.name, e.delayMs ?? 0);
      ports[e.name] = e.relayMs == null ? u.port : await startRelay(u.port, e.relayMs);
    }
    return { ports };
  },
  set({ names, mode, delayMs }) {
    for (const u of pick(names)) {
      if (mode) u.mode = mode;
      if (delayMs !== undefined) u.delayMs = delayMs;
    }
    return { at: now() };
  },
  refuse({ names }) {
    for (const u of pick(names)) u.refuse();
    return { at: now() };
  },
  counts({ since = 0 }) {
    const counts = {};
    for (const [name, u] of upstreams) {
      counts[name] = { served: u.arrivals.length, after: u.arrivals.filter((t) => t >= since).length, lastAt: u.arrivals.at(-1) ?? null };
    }
    return { counts };
  },
};

process.on('message', async (m) => {
  try {
    process.send({ id: m.id, ...(await handlers[m.type](m)) });
  } catch (e) {
    process.send({ id: m.id, error: e.stack ?? String(e) });
  }
});
// The harness is gone (or done): so are we.
process.on('disconnect', () => process.exit(0));
