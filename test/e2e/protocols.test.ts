// Two real sidecars on 127.0.0.1 carrying HTTP/1.1, h2c, gRPC (all four kinds) and WebSocket over SPIFFE mTLS.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { loadEchoService, startEchoGrpc } from '../../src/cli/demo-apps.js';
import { FRONTEND_ID, REVIEWS_ID } from '../helpers/mesh.js';
import { h2request, metricValue, request, startTwoHop } from '../helpers/two-hop.js';
import { hasCommand } from '../helpers/tools.js';

const run = promisify(execFile);

t.test('HTTP/1.1 and h2c through app → A → mTLS h2 → B → app', async (t) => {
  const m = await startTwoHop();
  t.teardown(() => m.close());

  const r = await request(m.outPort, {
    path: '/echo?x=1',
    headers: {
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      tracestate: 'vendor=1',
      'x-forwarded-client-cert': 'By=spiffe://evil/ns/x/sa/y;URI=spiffe://cluster.local/ns/default/sa/admin',
      connection: 'keep-alive, x-hop',
      'x-hop': 'must-not-pass',
    },
  });
  t.equal(r.status, 200);
  const seen = JSON.parse(r.body) as { headers: Record<string, string>; path: string };
  t.equal(seen.path, '/echo?x=1');
  const xfcc = seen.headers['x-forwarded-client-cert']!;
  t.match(xfcc, new RegExp(`^By=${REVIEWS_ID};Hash=[0-9a-f]{64};URI=${FRONTEND_ID}$`), 'the app learns the verified caller, in Envoy format');
  t.notMatch(xfcc, /evil|admin/, 'the spoofed XFCC never reaches the app');
  t.match(seen.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'x-request-id generated');
  t.equal(r.headers['x-request-id'], undefined, 'the app did not echo it as a response header');
  t.equal(seen.headers.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  t.equal(seen.headers.tracestate, 'vendor=1');
  t.equal(seen.headers['x-hop'], undefined, 'Connection-nominated header removed');
  t.equal(seen.headers['x-forwarded-proto'], 'https', 'the last hop was mTLS');
  t.match(seen.headers['x-forwarded-for'], /127\.0\.0\.1/);

  const kept = await request(m.outPort, { headers: { 'x-request-id': 'keep-me-42' } });
  t.equal((JSON.parse(kept.body) as { headers: Record<string, string> }).headers['x-request-id'], 'keep-me-42', 'an incoming request id is kept');

  // Keep-alive: several requests on one downstream connection; chunked request body.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const bodies: string[] = [];
  for (let i = 0; i < 5; i++) {
    const x = await request(m.outPort, { agent, method: 'POST', headers: { 'transfer-encoding': 'chunked' }, body: 'x'.repeat(1000 + i) });
    bodies.push(String((JSON.parse(x.body) as { bodyBytes: number }).bodyBytes));
  }
  t.same(bodies, ['1000', '1001', '1002', '1003', '1004']);
  t.equal(await metricValue(m.a, 'outrigger_downstream_connections_total', { listener: 'outbound' }) <= 4, true, 'keep-alive reused the connection');

  const h2 = await h2request(m.outPort, { ':path': '/echo', ':method': 'POST' }, 'h2c body');
  t.equal(h2.status, 200);
  t.equal((JSON.parse(h2.body) as { bodyBytes: number }).bodyBytes, 8);

  // Metrics carry Istio's names and both principals.
  t.ok(await metricValue(m.a, 'istio_requests_total', { reporter: 'source', source_principal: FRONTEND_ID, destination_principal: REVIEWS_ID, response_code: '200' }) >= 8);
  t.ok(await metricValue(m.b, 'istio_requests_total', { reporter: 'destination', source_principal: FRONTEND_ID, destination_principal: REVIEWS_ID, connection_security_policy: 'mutual_tls' }) >= 8);
});

t.test('Expect: 100-continue with a real curl client', { skip: !hasCommand('curl') && 'curl is not installed' }, async (t) => {
  const m = await startTwoHop();
  t.teardown(() => m.close());
  const { stdout } = await run('curl', ['-sS', '-H', 'Host: reviews', '-H', 'Expect: 100-continue', '--data-binary', 'x'.repeat(4096), `http://127.0.0.1:${m.outPort}/echo`]);
  const seen = JSON.parse(stdout) as { bodyBytes: number; headers: Record<string, string> };
  t.equal(seen.bodyBytes, 4096);
  t.equal(seen.headers.expect, undefined, 'the sidecar answered the expectation itself');
});

t.test('gRPC: unary, server, client and bidi streaming, with status and trailers end to end', async (t) => {
  const m = await startTwoHop({ appProtocol: 'HTTP2' });
  const g = await startEchoGrpc('reviews-grpc');
  await m.app.close();
  t.teardown(() => m.close());
  t.teardown(() => g.close());
  // Point B's app cluster at the gRPC server instead: restart B with the grpc port.
  const { runSidecar, inboundBootstrap, outboundBootstrap } = await import('../helpers/mesh.js');
  const b = await runSidecar(inboundBootstrap({ appPort: g.port, appProtocol: 'HTTP2', files: m.files.reviews }));
  const a = await runSidecar(outboundBootstrap({ peerPort: b.port('inbound'), files: m.files.frontend }));
  t.teardown(async () => {
    await a.shutdown();
    await b.shutdown();
  });
  const Echo = loadEchoService();
  const client = new Echo(`127.0.0.1:${a.port('outbound')}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'reviews:9080' }) as unknown as Record<string, (...args: unknown[]) => unknown> & grpc.Client;
  t.teardown(() => client.close());

  const unary = await new Promise<{ message: string; peer: string }>((res, rej) => client.Unary!({ message: 'hi' }, (e: Error | null, v: never) => (e ? rej(e) : res(v))));
  t.equal(unary.message, 'hi');
  t.equal(unary.peer, FRONTEND_ID, 'the gRPC server saw the verified caller');

  const failed = await new Promise<grpc.ServiceError>((res) => client.Unary!({ message: 'boom', fail_with_code: grpc.status.FAILED_PRECONDITION }, (e: grpc.ServiceError) => res(e)));
  t.equal(failed.code, grpc.status.FAILED_PRECONDITION, 'grpc-status carried end to end');
  t.equal(failed.details, 'asked to fail: boom', 'grpc-message carried end to end');

  const ss = client.ServerStream!({ message: 'n:4' }) as grpc.ClientReadableStream<{ message: string }>;
  const got: string[] = [];
  await new Promise<void>((res, rej) => {
    ss.on('data', (d: { message: string }) => got.push(d.message));
    ss.on('end', res);
    ss.on('error', rej);
  });
  t.same(got, ['n:4#0', 'n:4#1', 'n:4#2', 'n:4#3']);

  const cs = await new Promise<{ message: string }>((res, rej) => {
    const call = client.ClientStream!((e: Error | null, v: never) => (e ? rej(e) : res(v))) as grpc.ClientWritableStream<object>;
    for (const w of ['a', 'b', 'c']) call.write({ message: w });
    call.end();
  });
  t.equal(cs.message, 'a,b,c');

  const bidi = client.BidiStream!() as grpc.ClientDuplexStream<object, { message: string }>;
  const echoed: string[] = [];
  const doneBidi = new Promise<void>((res, rej) => {
    bidi.on('data', (d: { message: string }) => {
      echoed.push(d.message);
      if (echoed.length < 50) bidi.write({ message: `m${echoed.length}` });
      else bidi.end();
    });
    bidi.on('end', res);
    bidi.on('error', rej);
  });
  bidi.write({ message: 'm0' });
  await doneBidi;
  t.equal(echoed.length, 50);
  t.equal(echoed[49], 'm49', 'interleaved bidi messages in order');

  t.ok(await metricValue(a, 'istio_requests_total', { request_protocol: 'grpc', grpc_response_status: '9' }) >= 1, 'grpc status recorded in metrics');
});

t.test('WebSocket: HTTP/1.1 Upgrade → extended CONNECT between sidecars → Upgrade to the app', async (t) => {
  const m = await startTwoHop();
  t.teardown(() => m.close());
  const sock = net.connect(m.outPort, '127.0.0.1');
  t.teardown(() => sock.destroy());
  await new Promise((r) => sock.once('connect', r));
  const key = 'dGhlIHNhbXBsZSBub25jZQ==';
  sock.write(`GET /chat HTTP/1.1\r\nHost: reviews\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  let buf = '';
  await new Promise<void>((resolve) => {
    const onData = (c: Buffer) => {
      buf += c.toString('latin1');
      if (buf.includes('\r\n\r\n')) {
        sock.off('data', onData);
        resolve();
      }
    };
    sock.on('data', onData);
  });
  t.match(buf, /^HTTP\/1\.1 101 /);
  t.match(buf, /sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i, 'RFC 6455 accept key for the caller\'s key');
  const payload = Buffer.from([0x81, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]); // an unmasked text frame "hello": the app echoes bytes
  sock.write(payload);
  const echoed = await new Promise<Buffer>((r) => sock.once('data', r));
  t.same([...echoed], [...payload], 'bytes flow both ways through the tunnel');
  t.equal(m.app.seen.at(-1)?.headers['sec-websocket-key'], key, 'the app got the caller\'s own key');
});

t.test('WebSocket refused (403) when upgrade_configs does not enable it; other Upgrades are served as plain HTTP/1.1', async (t) => {
  const m = await startTwoHop({ outbound: { websocket: false } });
  t.teardown(() => m.close());
  const ws = await request(m.outPort, { path: '/x', headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' } });
  t.equal(ws.status, 403);
  t.equal((JSON.parse(ws.body) as { code: string }).code, 'upgrade_not_allowed');
  t.equal(m.app.seen.length, 0, 'nothing reached the app');
  const h2cUpgrade = await request(m.outPort, { path: '/echo', headers: { upgrade: 'h2c', connection: 'Upgrade, HTTP2-Settings', 'http2-settings': 'AAMAAABkAAQAoAAAAAIAAAAA' } });
  t.equal(h2cUpgrade.status, 200, 'curl --http2 style upgrade falls back to HTTP/1.1');
  t.equal((JSON.parse(h2cUpgrade.body) as { headers: Record<string, string> }).headers.upgrade, undefined);
});
