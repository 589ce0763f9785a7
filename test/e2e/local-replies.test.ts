// Replies the sidecar makes itself (NR, UF, UC, UT, identity mismatch), for HTTP and gRPC callers.
import t from 'tap';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { REVIEWS_ID } from '../helpers/mesh.js';
import { waitFor } from '../helpers/tools.js';
import { h2request, metricValue, request, startTwoHop } from '../helpers/two-hop.js';

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Jsonish {
  code: string;
  message: string;
  request_id: string;
}

t.test('no route: 404 NR as JSON, nothing forwarded; gRPC callers get UNIMPLEMENTED', async (t) => {
  const m = await startTwoHop();
  t.teardown(() => m.close());
  const r = await request(m.outPort, { host: 'ratings' });
  t.equal(r.status, 404);
  const b = JSON.parse(r.body) as Jsonish;
  t.equal(b.code, 'no_route');
  t.match(b.request_id, /^[0-9a-f-]{36}$/);
  t.equal(r.headers['x-request-id'], b.request_id);
  t.equal(m.app.seen.length, 0);
  const g = await h2request(m.outPort, { ':authority': 'ratings', ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' }, '');
  t.equal(g.status, 200);
  t.equal(g.headers['grpc-status'], '12');
  t.equal(await metricValue(m.a, 'outrigger_local_replies_total', { response_flags: 'NR' }), 2);
});

t.test('upstream connect failure: 503 UF; gRPC gets UNAVAILABLE', async (t) => {
  const m = await startTwoHop({ outbound: { peerPort: await closedPort() } });
  t.teardown(() => m.close());
  const r = await request(m.outPort);
  t.equal(r.status, 503);
  const b = JSON.parse(r.body) as Jsonish;
  t.equal(b.code, 'upstream_connect_failure');
  t.match(b.message, /connection failure/);
  const g = await h2request(m.outPort, { ':method': 'POST', 'content-type': 'application/grpc' }, '');
  t.equal(g.headers['grpc-status'], '14');
  t.match(decodeURIComponent(String(g.headers['grpc-message'])), /connection failure/);
  t.equal(await metricValue(m.a, 'istio_requests_total', { response_flags: 'UF' }), 2);
  t.equal(await metricValue(m.a, 'outrigger_upstream_connect_failures_total', { reason: 'connection_refused' }), 2);
});

t.test('a peer whose SPIFFE ID does not match the cluster: 503 UF, logged with both identities', async (t) => {
  const m = await startTwoHop({ outbound: { peerMatcher: { exact: 'spiffe://cluster.local/ns/default/sa/ratings' } } });
  t.teardown(() => m.close());
  const r = await request(m.outPort);
  t.equal(r.status, 503);
  t.equal((JSON.parse(r.body) as Jsonish).code, 'upstream_connect_failure');
  t.equal(m.app.seen.length, 0, 'nothing was sent to the impostor');
  const line = m.a.logs.find((l) => l.includes('upstream peer identity rejected'));
  t.ok(line, 'logged');
  t.match(line, /spiffe:\/\/cluster\.local\/ns\/default\/sa\/ratings/, 'expected identity in the log');
  t.match(line, new RegExp(REVIEWS_ID.replace(/\//g, '\\/')), 'presented identity in the log');
  t.equal(await metricValue(m.a, 'outrigger_upstream_connect_failures_total', { reason: 'peer_identity' }), 1);
});

t.test('route timeout: 504 UT; gRPC gets DEADLINE_EXCEEDED', async (t) => {
  const m = await startTwoHop({ outbound: { timeout: '0.2s' } });
  t.teardown(() => m.close());
  const r = await request(m.outPort, { path: '/hang' });
  t.equal(r.status, 504);
  t.equal((JSON.parse(r.body) as Jsonish).code, 'upstream_timeout');
  const g = await h2request(m.outPort, { ':path': '/hang', ':method': 'POST', 'content-type': 'application/grpc' }, '');
  t.equal(g.status, 200);
  t.equal(g.headers['grpc-status'], '4');
  t.equal(await metricValue(m.a, 'istio_requests_total', { response_flags: 'UT' }), 2);
});

t.test('upstream reset before response: 503 UC', async (t) => {
  const m = await startTwoHop();
  t.teardown(() => m.close());
  const pending = request(m.outPort, { path: '/hang' });
  // Once the request reached the app, the reviews sidecar dies: A's HTTP/2 session goes away under the stream.
  await waitFor(() => m.app.seen.length > 0, 'the request to reach the app');
  m.b.runtime.close();
  const r = await pending;
  t.equal(r.status, 503);
  t.equal((JSON.parse(r.body) as Jsonish).code, 'upstream_reset');
  t.equal(await metricValue(m.a, 'istio_requests_total', { response_flags: 'UC' }), 1);
});
