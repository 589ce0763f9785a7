// Hostile and broken input: malformed HTTP, smuggling, oversized headers, bad client certificates, h2 rapid reset.
// Each is refused with a clear answer, nothing reaches the app, and the sidecar keeps serving.
import t from 'tap';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { systemClock } from '../../src/core/clock.js';
import { FRONTEND_ID } from '../helpers/mesh.js';
import { makePki } from '../helpers/pki.js';
import { hasCommand, waitFor } from '../helpers/tools.js';
import { metricValue, request, startTwoHop, type TwoHop } from '../helpers/two-hop.js';

const run = promisify(execFile);

/** Writes raw bytes to a port and returns everything the server sends before closing. */
function raw(port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(data));
    let out = '';
    s.setEncoding('latin1');
    s.on('data', (c: string) => (out += c));
    s.on('end', () => resolve(out));
    s.on('close', () => resolve(out));
    s.on('error', reject);
  });
}

t.test('malformed and smuggling HTTP/1.1 requests are refused and never forwarded', async (t) => {
  const m = await startTwoHop();
  t.teardown(() => m.close());
  const cases: [string, string, number][] = [
    ['malformed request line', 'GARBAGE\r\n\r\n', 400],
    ['bad header name', 'GET /echo HTTP/1.1\r\nHost: reviews\r\nBad Header: x\r\n\r\n', 400],
    ['Content-Length with Transfer-Encoding', 'POST /echo HTTP/1.1\r\nHost: reviews\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: reviews\r\n\r\n', 400],
    ['duplicate Content-Length', 'POST /echo HTTP/1.1\r\nHost: reviews\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc', 400],
    ['invalid chunk size', 'POST /echo HTTP/1.1\r\nHost: reviews\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n', 400],
    ['headers over 60 KiB', `GET /echo HTTP/1.1\r\nHost: reviews\r\nX-Big: ${'a'.repeat(61 * 1024)}\r\n\r\n`, 431],
  ];
  for (const [name, data, status] of cases) {
    const out = await raw(m.outPort, data);
    t.match(out, new RegExp(`^HTTP/1\\.1 ${status} `), `${name}: ${status}`);
    const body = out.slice(out.indexOf('\r\n\r\n') + 4);
    t.match(JSON.parse(body) as object, { code: status === 431 ? 'headers_too_large' : 'bad_request' }, `${name}: JSON error`);
  }
  t.equal(m.app.seen.length, 0, 'nothing reached the app, smuggled request included');
  t.ok(await metricValue(m.a, 'outrigger_protocol_errors_total') >= cases.length);
  const ok = await request(m.outPort);
  t.equal(ok.status, 200, 'still serving');
});

/** Tries one request over mTLS with the given client identity; resolves with the outcome. */
function mtlsRequest(m: TwoHop, cred: { certPem?: string; chainPem?: string; keyPem?: string } | undefined, ca: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: m.inPort,
      ca,
      cert: cred?.chainPem ?? cred?.certPem,
      key: cred?.keyPem,
      ALPNProtocols: ['h2'],
      checkServerIdentity: () => undefined,
    });
    socket.on('error', (e: NodeJS.ErrnoException) => resolve(`error:${e.code ?? e.message}`));
    socket.once('secureConnect', () => {
      const s = http2.connect(`https://127.0.0.1:${m.inPort}`, { createConnection: () => socket });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(`error:${e.code ?? e.message}`));
      const r = s.request({ ':path': '/echo', ':authority': 'reviews' });
      r.on('response', (h) => {
        resolve(`status:${h[':status']}`);
        s.close();
      });
      r.on('error', (e: NodeJS.ErrnoException) => resolve(`error:${e.code ?? e.message}`));
      r.on('close', () => resolve('closed'));
      r.end();
    });
  });
}

t.test('the inbound port refuses every client certificate that is not a valid SVID of our trust domain', async (t) => {
  const m = await startTwoHop();
  t.teardown(() => m.close());
  const now = systemClock.now();
  const foreign = await makePki({ trustDomain: 'cluster.local' });
  const good = await m.pki.issue(FRONTEND_ID);
  t.equal(await mtlsRequest(m, good, m.pki.rootPem), 'status:200', 'control: a valid SVID is served');

  const bad: [string, Promise<object> | undefined, string][] = [
    ['no client certificate', undefined, 'no_certificate'],
    ['another trust domain', m.pki.issue('spiffe://evil.example/ns/default/sa/frontend'), 'trust_domain_mismatch'],
    ['expired', m.pki.issue(FRONTEND_ID, { notBefore: now - 7200_000, notAfter: now - 3600_000 }), 'expired'],
    ['not yet valid', m.pki.issue(FRONTEND_ID, { notBefore: now + 3600_000, notAfter: now + 7200_000 }), 'not_yet_valid'],
    ['signed by an unknown CA', foreign.issue(FRONTEND_ID), 'untrusted_chain'],
    ['two URI SANs', m.pki.issue(FRONTEND_ID, { spiffeIds: [FRONTEND_ID, 'spiffe://cluster.local/ns/default/sa/admin'] }), 'svid_uri_san_count'],
    ['a CA certificate', m.pki.issue(FRONTEND_ID, { isCa: true }), 'svid_is_ca'],
    ['a non-SPIFFE URI', m.pki.issue(FRONTEND_ID, { spiffeIds: ['https://frontend.example.com/'] }), 'svid_not_spiffe'],
  ];
  for (const [name, credP, reason] of bad) {
    const before = await metricValue(m.b, 'outrigger_tls_handshake_failures_total', { reason });
    const outcome = await mtlsRequest(m, credP ? await credP : undefined, m.pki.rootPem);
    t.notOk(outcome.startsWith('status:'), `${name}: no HTTP answer (${outcome})`);
    await waitFor(async () => (await metricValue(m.b, 'outrigger_tls_handshake_failures_total', { reason })) === before + 1, `${name} counted as ${reason}`);
    t.pass(`${name}: counted as ${reason}`);
  }
  t.equal(m.app.seen.length, 1, 'only the valid caller reached the app');
  t.ok(m.b.logs.some((l) => l.includes('downstream peer refused') && l.includes('svid_uri_san_count')), 'refusals are logged with the reason');
});

t.test('plaintext HTTP to the mTLS port gets no HTTP service', async (t) => {
  const m = await startTwoHop();
  t.teardown(() => m.close());
  const out = await raw(m.inPort, 'GET /echo HTTP/1.1\r\nHost: reviews\r\n\r\n');
  t.notMatch(out, /^HTTP\/1\.1 200/, 'no plaintext fallback');
  t.equal(m.app.seen.length, 0);
  await waitFor(async () => (await metricValue(m.b, 'outrigger_tls_handshake_failures_total')) >= 1, 'the failed handshake counted');
});

t.test('real foreign clients: curl without a client certificate, openssl with a foreign one', { skip: !(hasCommand('curl') && hasCommand('openssl')) && 'curl/openssl not installed' }, async (t) => {
  const m = await startTwoHop();
  t.teardown(() => m.close());
  const curl = await run('curl', ['-sS', '--cacert', m.files.reviews.root, '-k', `https://127.0.0.1:${m.inPort}/echo`]).then(
    () => 'succeeded',
    (e: { code: number; stderr: string }) => `exit ${e.code}: ${e.stderr.trim()}`,
  );
  t.match(curl, /^exit \d+/, `curl without a client cert is refused (${curl})`);
  const foreign = await makePki();
  const other = await foreign.issue(FRONTEND_ID);
  const { writeFileSync } = await import('node:fs');
  const cert = `${m.dir}/foreign.pem`;
  const key = `${m.dir}/foreign-key.pem`;
  writeFileSync(cert, other.chainPem);
  writeFileSync(key, other.keyPem);
  const ossl = await run('sh', ['-c', `printf 'GET /echo HTTP/1.1\\r\\nHost: reviews\\r\\n\\r\\n' | openssl s_client -quiet -connect 127.0.0.1:${m.inPort} -cert ${cert} -key ${key} -alpn http/1.1 2>&1; true`]);
  t.notMatch(ossl.stdout, /HTTP\/1\.1 200/, 'openssl with a certificate from another CA gets no HTTP answer');
  t.equal(m.app.seen.length, 0);
});

t.test('HTTP/2 rapid-reset flood: the sidecar stays up and serves other clients', async (t) => {
  const m = await startTwoHop();
  t.teardown(() => m.close());
  const flood = http2.connect(`http://127.0.0.1:${m.outPort}`);
  flood.on('error', () => {});
  let opened = 0;
  await new Promise<void>((resolve) => {
    flood.on('close', resolve);
    flood.on('goaway', () => resolve());
    const burst = () => {
      for (let i = 0; i < 200 && !flood.destroyed && !flood.closed; i++) {
        try {
          const s = flood.request({ ':path': '/hang', ':authority': 'reviews' });
          s.on('error', () => {});
          s.close(http2.constants.NGHTTP2_CANCEL);
          opened++;
        } catch {
          return resolve();
        }
      }
      if (opened >= 20_000 || flood.destroyed || flood.closed) return resolve();
      setImmediate(burst);
    };
    burst();
  });
  flood.destroy();
  t.ok(opened > 0, `${opened} streams opened and reset`);
  // Streams the caller reset before the upstream connection was ready are never sent on.
  const hangs = m.app.seen.filter((r) => r.path === '/hang').length;
  t.ok(hangs < opened / 4, `${hangs} of ${opened} reset streams reached the app`);
  const ok = await request(m.outPort);
  t.equal(ok.status, 200, `a well-behaved client is still served (${ok.body})`);
  const h2ok = await new Promise<number>((resolve, reject) => {
    const s = http2.connect(`http://127.0.0.1:${m.outPort}`);
    const r = s.request({ ':path': '/echo', ':authority': 'reviews' });
    r.on('response', (h) => {
      resolve(Number(h[':status']));
      s.close();
    });
    r.on('error', reject);
    r.resume();
  });
  t.equal(h2ok, 200, 'and so is a new HTTP/2 client');
});
