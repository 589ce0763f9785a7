// Circuit breakers through a real sidecar to a real slow upstream: tripping at exactly the limit (503 UO at once),
// the remaining-capacity gauges, capacity coming back, pending requests, and max_requests_per_connection.
import t, { type Test } from 'tap';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { outboundListener, runSidecar, type StartedSidecar } from '../helpers/mesh.js';
import { waitFor } from '../helpers/tools.js';
import { metricValue, request, type Reply } from '../helpers/two-hop.js';

const CLUSTER = 'slow';

/** An upstream that holds every /hold request until released, and notes the client port each request came from. */
async function slowApp(t: Test, h2 = false) {
  const held: (() => void)[] = [];
  const ports: number[] = [];
  const handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
    ports.push(req.socket.remotePort!);
    const answer = () => res.end('done');
    if (req.url === '/hold') held.push(answer);
    else answer();
  };
  const server = h2 ? http2.createServer(handler) : http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const f of held.splice(0)) f();
    if (server instanceof http.Server) server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as AddressInfo).port, held, ports, releaseAll: () => held.splice(0).forEach((f) => f()) };
}

/** A sidecar with one outbound route to the cluster `slow` at `port`: extra Cluster fields, `common` HttpProtocolOptions fields. */
async function sidecar(t: Test, port: number, { common, ...extra }: Record<string, unknown>, h2 = false): Promise<StartedSidecar> {
  const options = { '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions', explicit_http_config: h2 ? { http2_protocol_options: {} } : { http_protocol_options: {} } };
  const s = await runSidecar({
    node: { id: 'cb', cluster: 'cb' },
    static_resources: {
      listeners: [outboundListener({ name: 'r', virtual_hosts: [{ name: 'slow', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: CLUSTER, timeout: '10s' } }] }] })],
      clusters: [
        {
          name: CLUSTER,
          type: 'STATIC',
          connect_timeout: '1s',
          load_assignment: { cluster_name: CLUSTER, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
          ...extra,
          typed_extension_protocol_options: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { ...options, ...(common as object) } },
        },
      ],
    },
  });
  t.teardown(() => s.shutdown());
  return s;
}

const breakers = (thresholds: Record<string, unknown>) => ({ circuit_breakers: { thresholds: [{ track_remaining: true, ...thresholds }] } });
const gauge = (s: StartedSidecar, name: string, resource: string) => metricValue(s, name, { cluster: CLUSTER, resource });

t.test('max_requests 3: three requests go through, the fourth is 503 UO at once, capacity returns as they finish', async (t) => {
  const app = await slowApp(t);
  const s = await sidecar(t, app.port, breakers({ max_requests: 3 }));
  const port = s.port('outbound');
  t.equal(await gauge(s, 'outrigger_circuit_breaker_remaining', 'rq'), 3);
  const inFlight = [1, 2, 3].map(() => request(port, { path: '/hold' }));
  await waitFor(() => app.held.length === 3, 'three requests at the upstream');
  t.equal(await gauge(s, 'outrigger_circuit_breaker_remaining', 'rq'), 0, 'no request capacity left');
  t.equal(await gauge(s, 'outrigger_circuit_breaker_open', 'rq'), 1);
  const over = await request(port, { path: '/hold' });
  t.equal(over.status, 503, 'answered while the three still hang: nothing queued');
  t.match(JSON.parse(over.body), { code: 'upstream_overflow', message: /reset reason: overflow/ });
  t.equal(app.ports.length, 3, 'the overflowing request never reached the upstream');
  t.equal(await metricValue(s, 'istio_requests_total', { response_flags: 'UO', response_code: '503' }), 1);
  t.equal(await gauge(s, 'outrigger_circuit_breaker_overflows_total', 'rq'), 1);
  app.releaseAll();
  t.strictSame((await Promise.all(inFlight)).map((r: Reply) => r.status), [200, 200, 200]);
  await waitFor(async () => (await gauge(s, 'outrigger_circuit_breaker_remaining', 'rq')) === 3, 'capacity back');
  t.equal(await gauge(s, 'outrigger_circuit_breaker_open', 'rq'), 0);
  t.equal((await request(port, { path: '/now' })).status, 200, 'a new request passes');
});

t.test('max_connections 2 + max_pending_requests 1: the third waits as pending, the fourth overflows, the pending one takes a freed connection', async (t) => {
  const app = await slowApp(t);
  const s = await sidecar(t, app.port, breakers({ max_connections: 2, max_pending_requests: 1 }));
  const port = s.port('outbound');
  const first = [1, 2].map(() => request(port, { path: '/hold' }));
  await waitFor(() => app.held.length === 2, 'two requests at the upstream');
  const third = request(port, { path: '/hold' });
  await waitFor(async () => (await gauge(s, 'outrigger_circuit_breaker_remaining', 'pending')) === 0, 'the third parked');
  t.equal(await gauge(s, 'outrigger_circuit_breaker_remaining', 'cx'), 0);
  t.equal(await gauge(s, 'outrigger_circuit_breaker_open', 'pending'), 1);
  const over = await request(port, { path: '/hold' });
  t.equal(over.status, 503);
  t.match(JSON.parse(over.body), { code: 'upstream_overflow' });
  t.equal(app.held.length, 2, 'the pending request has not reached the upstream');
  app.held.shift()!();
  t.equal((await first[0])!.status, 200);
  await waitFor(() => app.held.length === 2, 'the pending request reached the upstream');
  t.equal(new Set(app.ports).size, 2, 'on one of the two connections: no third connection was opened');
  t.equal(await gauge(s, 'outrigger_circuit_breaker_remaining', 'pending'), 1);
  app.releaseAll();
  t.strictSame([(await first[1])!.status, (await third).status], [200, 200]);
  t.equal(await gauge(s, 'outrigger_circuit_breaker_overflows_total', 'pending'), 1);
});

t.test('max_requests_per_connection 2 (HTTP/1.1): the upstream sees a new connection after every two requests', async (t) => {
  const app = await slowApp(t);
  const s = await sidecar(t, app.port, { common: { common_http_protocol_options: { max_requests_per_connection: 2 } } });
  const port = s.port('outbound');
  for (let i = 0; i < 5; i++) t.equal((await request(port, { path: '/now' })).status, 200);
  const p = app.ports;
  t.equal(p.length, 5);
  t.ok(p[0] === p[1] && p[2] === p[3], `pairs share a connection: ${p.join(',')}`);
  t.equal(new Set(p).size, 3, 'three connections for five requests');
});

t.test('max_requests_per_connection 1 (HTTP/1.1): a connection per request', async (t) => {
  const app = await slowApp(t);
  const s = await sidecar(t, app.port, { common: { common_http_protocol_options: { max_requests_per_connection: 1 } } });
  for (let i = 0; i < 3; i++) t.equal((await request(s.port('outbound'), { path: '/now' })).status, 200);
  t.equal(new Set(app.ports).size, 3, app.ports.join(','));
});

t.test('HTTP/2 upstream: max_requests_per_connection 2 opens a new session every two streams; max_requests overflows', async (t) => {
  const app = await slowApp(t, true);
  const s = await sidecar(t, app.port, { ...breakers({ max_requests: 2 }), common: { common_http_protocol_options: { max_requests_per_connection: 2 } } }, true);
  const port = s.port('outbound');
  for (let i = 0; i < 4; i++) t.equal((await request(port, { path: '/now' })).status, 200);
  t.equal(new Set(app.ports).size, 2, `four streams, two sessions: ${app.ports.join(',')}`);
  t.equal(app.ports[0], app.ports[1]);
  const held = [1, 2].map(() => request(port, { path: '/hold' }));
  await waitFor(() => app.held.length === 2, 'two streams at the upstream');
  const over = await request(port, { path: '/hold' });
  t.equal(over.status, 503);
  t.equal(await gauge(s, 'outrigger_circuit_breaker_remaining', 'rq'), 0);
  app.releaseAll();
  t.strictSame((await Promise.all(held)).map((r) => r.status), [200, 200]);
});
