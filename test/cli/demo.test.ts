// `npm start`'s demo, in-process on its own loopback addresses: certificates minted, both hops mTLS, caller identity shown.
import t from 'tap';
import { runDemo } from '../../src/cli/demo.js';

t.test('the demo walks through HTTP/1.1, h2c, gRPC and a local reply, then drives load with no failures', async (t) => {
  const lines: string[] = [];
  const demo = await runDemo({ frontendIp: '127.0.11.1', reviewsIp: '127.0.11.2', controlIp: '127.0.11.3', rate: 100, durationMs: 1500, inProcess: true, out: (l) => lines.push(l) });
  const result = await demo.done;
  const text = lines.join('\n');
  t.match(text, /control server \(mesh CA\) on 127\.0\.11\.3:15012/);
  t.match(text, /frontend sidecar ready with its SVID from the CA \(serial [0-9A-F]{12}…/);
  t.match(text, /HTTP\/1\.1 {2}GET http:\/\/reviews:9080\/hello → 200, served by reviews/);
  t.match(text, /reviews saw caller spiffe:\/\/cluster\.local\/ns\/default\/sa\/frontend/);
  t.match(text, /x-forwarded-client-cert: By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews;Hash=[0-9a-f]{64};URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/frontend/);
  t.match(text, /h2c {7}GET http:\/\/reviews\/h2c → 200/);
  t.match(text, /gRPC {6}Echo\.Unary → "hello over gRPC" from reviews, caller spiffe:\/\/cluster\.local\/ns\/default\/sa\/frontend/);
  t.match(text, /no route {2}GET http:\/\/ratings:9080\/ → 404 \{"code":"no_route"/);
  t.ok(result.sent > 50, `${result.sent} requests sent`);
  t.equal(result.failed, 0);
  t.match(text, /Stopped: \d+ requests sent, 0 failed\./);
});
