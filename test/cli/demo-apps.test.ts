// The demo's bookinfo apps: each calls what it calls through its sidecar's outbound port (here a stand-in on
// 127.0.0.1 that answers per Host header), passes the user and trace headers on, and says who called it.
import t, { type Test } from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { callEcho, startBookinfoApp, startEchoGrpc, upstreamsOf, type AppAnswer, type AppIdentity } from '../../src/cli/demo-apps.js';

const ID = (pod: string, app: string, version = 'v1'): AppIdentity => ({ pod, app, version, region: 'aws-us-east-1', zone: 'us-east-1a' });
const XFCC = 'By=spiffe://cluster.local/ns/default/sa/bookinfo-reviews;Hash=ab;URI=spiffe://cluster.local/ns/default/sa/bookinfo-frontend';

async function listen(t: Test, s: http.Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    s.closeAllConnections();
    s.close();
  });
  return (s.address() as AddressInfo).port;
}

/** The sidecar's outbound listener, played by a server that routes on Host like the outbound route table. */
async function fakeOutbound(t: Test, answers: Record<string, (req: http.IncomingMessage, res: http.ServerResponse) => void>) {
  const seen: http.IncomingHttpHeaders[] = [];
  const port = await listen(
    t,
    http.createServer((req, res) => {
      seen.push(req.headers);
      const h = answers[req.headers.host ?? ''];
      if (h) h(req, res);
      else res.writeHead(404).end('{"code":"no_route"}');
    }),
  );
  return { port, seen };
}

async function app(t: Test, id: AppIdentity, outboundPort: number, upstreams: readonly string[]) {
  const a = await startBookinfoApp({ id, host: '127.0.0.1', port: 0, outbound: { host: '127.0.0.1', port: outboundPort }, upstreams });
  t.teardown(() => a.close());
  return a;
}

function get(port: number, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/productpage', headers, agent: false }, (res) => {
        let b = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (b += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(b) }));
      })
      .on('error', reject);
  });
}

t.test('what each app calls: the frontend reviews and ratings, reviews v2/v3 ratings, the rest nothing', (t) => {
  t.strictSame(upstreamsOf('frontend', 'v1'), ['reviews', 'ratings']);
  t.strictSame(upstreamsOf('reviews', 'v1'), []);
  t.strictSame(upstreamsOf('reviews', 'v2'), ['ratings']);
  t.strictSame(upstreamsOf('reviews', 'v3'), ['ratings']);
  t.strictSame(upstreamsOf('ratings', 'v1'), []);
  t.strictSame(upstreamsOf('details', 'v1'), []);
  t.end();
});

t.test('an app answers who it is and who called it (the verified SPIFFE ID in x-forwarded-client-cert)', async (t) => {
  const out = await fakeOutbound(t, {});
  // An app with no upstreams never touches its sidecar's outbound port.
  const leaf = await app(t, ID('ratings-aws', 'ratings'), out.port, []);
  const port = leaf.port;
  const r = await get(port, { 'x-forwarded-client-cert': XFCC });
  t.equal(r.status, 200);
  t.strictSame(r.body, { pod: 'ratings-aws', app: 'ratings', version: 'v1', region: 'aws-us-east-1', zone: 'us-east-1a', caller: 'spiffe://cluster.local/ns/default/sa/bookinfo-frontend', calls: {} });
  t.equal((await get(port)).body.caller, '', 'called from outside the mesh: no caller');
  t.equal(out.seen.length, 0);
});

t.test('the frontend calls every upstream through its sidecar with host:port, passing end-user and tracing on', async (t) => {
  const answer = (a: AppAnswer) => (_req: http.IncomingMessage, res: http.ServerResponse) => res.end(JSON.stringify(a));
  const out = await fakeOutbound(t, {
    'reviews:9080': answer({ ...ID('reviews-v2-gcp', 'reviews', 'v2'), caller: 'fe', calls: {} }),
    'ratings:9080': answer({ ...ID('ratings-azure', 'ratings'), caller: 'fe', calls: {} }),
  });
  const fe = await app(t, ID('frontend-aws', 'frontend'), out.port, upstreamsOf('frontend', 'v1'));
  const r = await get(fe.port, { 'end-user': 'jason', 'x-request-id': 'req-1', traceparent: '00-abc-def-01', 'x-other': 'not passed' });
  t.equal(r.status, 200);
  t.match(r.body, { pod: 'frontend-aws', caller: '', calls: { reviews: { pod: 'reviews-v2-gcp', version: 'v2' }, ratings: { pod: 'ratings-azure' } } });
  t.strictSame(out.seen.map((h) => h.host).sort(), ['ratings:9080', 'reviews:9080']);
  for (const h of out.seen) {
    t.match(h, { 'end-user': 'jason', 'x-request-id': 'req-1', traceparent: '00-abc-def-01' });
    t.equal(h['x-other'], undefined);
  }
});

t.test('a failed call is a 502 naming the service and what came back, or why nothing did', async (t) => {
  const out = await fakeOutbound(t, {
    'reviews:9080': (_req, res) => res.writeHead(503).end('{"code":"no_healthy_upstream"}'),
    'ratings:9080': (_req, res) => res.end('{}'),
  });
  const fe = await app(t, ID('frontend-aws', 'frontend'), out.port, ['reviews', 'ratings']);
  const r = await get(fe.port);
  t.equal(r.status, 502);
  t.strictSame(r.body, { pod: 'frontend-aws', error: 'reviews: 503 {"code":"no_healthy_upstream"}' });
  // No sidecar at all: the connection is refused.
  const lone = await app(t, ID('reviews-v3', 'reviews', 'v3'), 1, ['ratings']);
  const r2 = await get(lone.port);
  t.equal(r2.status, 502);
  t.match(r2.body.error, /^ratings: connect ECONNREFUSED 127\.0\.0\.1:1$/);
});


t.test('callEcho: one Echo.Unary with the service authority; a failure rejects', async (t) => {
  const g = await startEchoGrpc('reviews-v1', '127.0.0.1', 0);
  t.teardown(() => g.close());
  t.match(await callEcho(`127.0.0.1:${g.port}`, 'reviews:9081', 'hi'), { message: 'hi', peer: '', served_by: 'reviews-v1' }, 'no sidecar in between: no caller');
  await t.rejects(callEcho('127.0.0.1:1', 'reviews:9081', 'hi'), { code: 14 }, 'UNAVAILABLE');
});
