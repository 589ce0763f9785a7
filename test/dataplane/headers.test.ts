import t from 'tap';
import type { OutgoingHttpHeaders } from 'node:http';
import { forwardRequestHeaders, forwardResponseHeaders, forwardTrailers, xfccFor, type ForwardingContext } from '../../src/dataplane/headers.js';
import { Replies, grpcStatusForHttp, renderLocalReply } from '../../src/dataplane/local-reply.js';

const base: ForwardingContext = {
  remoteIp: '10.0.0.9',
  tls: true,
  peer: { uri: 'spiffe://td/ns/a/sa/b', hash: 'abc', dns: ['b.example'], subject: 'CN=b' },
  localUri: 'spiffe://td/ns/x/sa/y',
  fcc: 'SANITIZE_SET',
  setCurrent: { uri: true, subject: false, dns: false, cert: false, chain: false },
  appendXff: true,
};

t.test('hop-by-hop and Connection-nominated headers are dropped; end-to-end ones kept', (t) => {
  const out: OutgoingHttpHeaders = {};
  forwardRequestHeaders(
    {
      connection: 'keep-alive, x-secret',
      'keep-alive': 'timeout=5',
      'proxy-connection': 'x',
      'transfer-encoding': 'chunked',
      upgrade: 'h2c',
      te: 'trailers, deflate',
      host: 'reviews',
      expect: '100-continue',
      'x-secret': 'hop',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      tracestate: 'a=b',
      'x-request-id': 'will-be-replaced-by-argument',
      'x-forwarded-for': '1.2.3.4',
      'x-forwarded-client-cert': 'By=spoofed;URI=spiffe://evil/ns/x/sa/y',
      'content-type': 'text/plain',
    },
    out,
    base,
    'rid-1',
  );
  for (const h of ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'expect', 'x-secret']) t.notOk(h in out, `${h} removed`);
  t.equal(out.te, 'trailers', 'te survives only as trailers');
  t.equal(out.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  t.equal(out.tracestate, 'a=b');
  t.equal(out['x-request-id'], 'rid-1');
  t.equal(out['x-forwarded-for'], '1.2.3.4, 10.0.0.9');
  t.equal(out['x-forwarded-proto'], 'https');
  t.equal(out['x-forwarded-client-cert'], 'By=spiffe://td/ns/x/sa/y;Hash=abc;URI=spiffe://td/ns/a/sa/b', 'spoofed XFCC replaced');
  t.equal(out['content-type'], 'text/plain');
  t.end();
});

t.test('XFCC modes follow Envoy', (t) => {
  const prior = 'By=a;URI=spiffe://td/ns/p/sa/q';
  t.equal(xfccFor(prior, { ...base, fcc: 'SANITIZE' }), undefined);
  t.equal(xfccFor(prior, { ...base, fcc: 'FORWARD_ONLY' }), prior);
  t.equal(xfccFor(prior, { ...base, fcc: 'FORWARD_ONLY', tls: false }), undefined);
  t.equal(xfccFor(prior, { ...base, fcc: 'ALWAYS_FORWARD_ONLY', tls: false }), prior);
  t.equal(xfccFor(prior, { ...base, fcc: 'APPEND_FORWARD' }), `${prior},By=spiffe://td/ns/x/sa/y;Hash=abc;URI=spiffe://td/ns/a/sa/b`);
  t.equal(xfccFor(undefined, { ...base, fcc: 'APPEND_FORWARD' }), 'By=spiffe://td/ns/x/sa/y;Hash=abc;URI=spiffe://td/ns/a/sa/b');
  t.equal(xfccFor(prior, { ...base, fcc: 'SANITIZE_SET', tls: false, peer: undefined }), undefined);
  t.equal(
    xfccFor(undefined, { ...base, setCurrent: { uri: true, subject: true, dns: true, cert: false, chain: false } }),
    'By=spiffe://td/ns/x/sa/y;Hash=abc;Subject="CN=b";URI=spiffe://td/ns/a/sa/b;DNS=b.example',
  );
  t.end();
});

t.test('plaintext hop: x-forwarded-proto http, no XFCC', (t) => {
  const out: OutgoingHttpHeaders = {};
  forwardRequestHeaders({ 'x-forwarded-client-cert': 'spoof' }, out, { ...base, tls: false, peer: undefined, fcc: 'SANITIZE' }, 'r');
  t.equal(out['x-forwarded-proto'], 'http');
  t.notOk('x-forwarded-client-cert' in out);
  t.equal(out['x-forwarded-for'], '10.0.0.9');
  t.end();
});

t.test('response headers and trailers lose connection-specific fields', (t) => {
  const out: OutgoingHttpHeaders = {};
  forwardResponseHeaders({ ':status': '200', connection: 'close', 'keep-alive': 'x', 'content-type': 'a/b', 'transfer-encoding': 'chunked' } as never, out);
  t.same(out, { 'content-type': 'a/b' });
  t.same(forwardTrailers({ 'grpc-status': '0', 'grpc-message': 'ok', connection: 'x' }), { 'grpc-status': '0', 'grpc-message': 'ok' });
  t.end();
});

t.test('local replies: JSON for HTTP callers, trailers-only status for gRPC', (t) => {
  const j = renderLocalReply(Replies.noRoute(), 'rid', false);
  t.equal(j.status, 404);
  t.same(JSON.parse(j.body), { code: 'no_route', message: 'no route matched the request', request_id: 'rid' });
  t.equal(j.headers['content-type'], 'application/json');
  const g = renderLocalReply(Replies.timeout(), 'rid', true);
  t.equal(g.status, 200);
  t.equal(g.headers['grpc-status'], '4');
  t.equal(g.headers['grpc-message'], 'upstream%20request%20timeout');
  t.equal(renderLocalReply(Replies.connectFailure('connection_refused'), 'r', true).headers['grpc-status'], '14');
  t.equal(renderLocalReply(Replies.noRoute(), 'r', true).headers['grpc-status'], '12');
  const d = renderLocalReply(Replies.direct(418, 'teapot'), 'r', false);
  t.equal(d.body, 'teapot');
  t.same([400, 401, 403, 404, 429, 503, 500].map(grpcStatusForHttp), [13, 16, 7, 12, 14, 14, 2]);
  t.end();
});
