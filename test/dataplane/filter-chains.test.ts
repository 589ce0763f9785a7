// Listeners with several filter chains on a real sidecar: tls_inspector picks by transport and ALPN, the
// default chain, listener_filters_timeout (close, or continue as raw_buffer), and refusals when nothing matches.
import t from 'tap';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { clientHelloAlpn, looksLikeHttp1, selectFilterChain, verdict } from '../../src/dataplane/filter-chain-match.js';
import type { FilterChain } from '../../src/model/types.js';
import { FRONTEND_ID, REVIEWS_ID, TD, runSidecar, tempDir, tlsCommon, writeCertFiles, type CertFiles } from '../helpers/mesh.js';
import { makePki } from '../helpers/pki.js';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
const INSPECTOR = { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } };

/** A chain whose HCM answers every request with `says` (a direct response), behind mTLS when `files` is given. */
function chain(says: string, match?: object, files?: CertFiles) {
  return {
    name: says,
    ...(match && { filter_chain_match: match }),
    ...(files && {
      transport_socket: {
        name: 'envoy.transport_sockets.tls',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
          require_client_certificate: true,
          common_tls_context: tlsCommon(files, [{ prefix: `spiffe://${TD}/` }], ['h2', 'http/1.1']),
        },
      },
    }),
    filters: [
      {
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': HCM,
          stat_prefix: says,
          route_config: { name: says, virtual_hosts: [{ name: says, domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: says } } }] }] },
          http_filters: [ROUTER],
        },
      },
    ],
  };
}

function listener(name: string, chains: object[], extra: object = {}) {
  return { name, traffic_direction: 'INBOUND', address: { socket_address: { address: '127.0.0.1', port_value: 0 } }, listener_filters: [INSPECTOR], filter_chains: chains, ...extra };
}

function plainGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve(`${res.statusCode} ${body}`));
    }).on('error', reject);
  });
}

/** Connects, sends nothing (or `later` after `afterMs`), and reports how the connection ended and what came back. */
function silent(port: number, o: { later?: string; afterMs?: number; send?: string } = {}): Promise<{ ms: number; data: string }> {
  return new Promise((resolve) => {
    const start = performance.now();
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    s.on('data', (c: Buffer) => (data += c));
    s.on('error', () => {});
    s.on('close', () => resolve({ ms: performance.now() - start, data }));
    if (o.send) s.write(o.send);
    if (o.later) setTimeout(() => s.write(o.later!), o.afterMs ?? 0);
  });
}

t.test('tls_inspector picks chains by transport and ALPN; timeouts; default chain; refusals', async (t) => {
  const [pki, tmp] = [await makePki(), tempDir()];
  t.teardown(() => tmp.cleanup());
  const [rv, fe] = await Promise.all([pki.issue(REVIEWS_ID), pki.issue(FRONTEND_ID)]);
  const files = writeCertFiles(tmp.dir, 'reviews', { chainPem: rv.chainPem, keyPem: rv.keyPem, rootPem: pki.rootPem });
  const client = { ca: pki.rootPem, cert: fe.chainPem, key: fe.keyPem, checkServerIdentity: () => undefined };
  const sidecar = await runSidecar({
    node: { id: 'n', cluster: 'c' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      clusters: [],
      listeners: [
        listener('sniff', [chain('tls-h2', { transport_protocol: 'tls', application_protocols: ['h2'] }, files), chain('tls-any', { transport_protocol: 'tls' }, files), chain('plain', { transport_protocol: 'raw_buffer' })], {
          listener_filters_timeout: '0.3s',
        }),
        listener('fallback', [chain('tls-any', { transport_protocol: 'tls' }, files)], {
          default_filter_chain: chain('default'),
          listener_filters_timeout: '0.2s',
          continue_on_listener_filters_timeout: true,
        }),
        listener('strict', [chain('tls-any', { transport_protocol: 'tls' }, files)]),
        listener('plainonly', [chain('plain', { transport_protocol: 'raw_buffer' })]),
      ],
    },
  });
  t.teardown(() => sidecar.shutdown());
  const port = (n: string) => sidecar.port(n);

  t.equal(await plainGet(port('sniff')), '200 plain', 'plaintext HTTP/1.1 -> the raw_buffer chain');
  const viaTls = await new Promise<string>((resolve, reject) => {
    https.get({ host: '127.0.0.1', port: port('sniff'), path: '/', agent: false, ALPNProtocols: ['http/1.1'], ...client } as https.RequestOptions, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
  t.equal(viaTls, 'tls-any', 'TLS offering http/1.1 -> the tls chain without ALPN');
  const viaH2 = await new Promise<string>((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port('sniff')}`, client);
    session.on('error', reject);
    const s = session.request({ ':path': '/' });
    let body = '';
    s.on('data', (c: Buffer) => (body += c));
    s.on('end', () => {
      session.close();
      resolve(body);
    });
    s.end();
  });
  t.equal(viaH2, 'tls-h2', 'TLS offering h2 -> the chain matching ALPN h2');

  const quiet = await silent(port('sniff'));
  t.ok(quiet.ms >= 250 && quiet.ms < 5000, `a client that sends nothing is closed at listener_filters_timeout (${Math.round(quiet.ms)} ms)`);
  t.equal(quiet.data, '', 'and is sent nothing');
  await new Promise<void>((r) => {
    const s = net.connect(port('sniff'), '127.0.0.1', () => s.end());
    s.on('close', () => r());
    s.on('error', () => r());
  });
  t.equal(await plainGet(port('sniff')), '200 plain', 'a client that hangs up before its first byte leaves the listener serving');

  t.equal(await plainGet(port('fallback')), '200 default', 'no chain matches plaintext: the default chain serves it');
  const late = await silent(port('fallback'), { later: 'GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n', afterMs: 400 });
  t.match(late.data, /^HTTP\/1\.1 200[^]*default$/, 'continue_on_listener_filters_timeout: served as raw_buffer after the timeout');

  const refused = await silent(port('strict'), { send: 'GET / HTTP/1.1\r\nhost: x\r\n\r\n' });
  t.match(refused.data, /^HTTP\/1\.1 400 Bad Request\r\n[^]*connection: close\r\n\r\n\{"code":"mtls_required"/, 'plaintext HTTP/1.1 under a tls-only listener: one 400 saying why');
  const junk = await silent(port('strict'), { send: 'hello\r\n' });
  t.equal(junk.data, '', 'bytes that are not HTTP: closed without a reply');
  const tlsToPlain = await new Promise<string>((resolve) => {
    https.get({ host: '127.0.0.1', port: port('plainonly'), path: '/', agent: false, ...client }, () => resolve('answered')).on('error', (e) => resolve(e.message));
  });
  t.not(tlsToPlain, 'answered', 'TLS to a listener with only a raw_buffer chain matches nothing');
  t.ok(sidecar.logs.some((l) => l.includes('plaintext connection refused: mTLS is required (PeerAuthentication STRICT)') && l.includes('"listener":"strict"')));
  t.ok(sidecar.logs.some((l) => l.includes('connection refused: it matches no filter chain') && l.includes('"listener":"plainonly"')));
  // A scanner sending plaintext to a STRICT port: every refusal is counted, but the warning is rate-limited
  // (5 lines per listener and kind per minute), so it cannot flood the log.
  for (let i = 0; i < 20; i++) await silent(port('strict'), { send: 'GET / HTTP/1.1\r\nhost: x\r\n\r\n' });
  const warned = sidecar.logs.filter((l) => l.includes('plaintext connection refused') && l.includes('"listener":"strict"')).length;
  t.equal(warned, 5, `22 plaintext connections refused, ${warned} warning lines`);
  const stats = await (await fetch(`${sidecar.adminUrl}/stats/prometheus`)).text();
  t.match(stats, /outrigger_listener_no_filter_chain_match_total\{listener="strict"\} 22/);
  t.match(stats, /outrigger_inbound_connections_total\{listener="sniff",connection_security_policy="mutual_tls"\} 2/);
});

t.test("selectFilterChain: Envoy's order, most specific first, no backtracking", (t) => {
  const c = (name: string, match?: FilterChain['match']): FilterChain => ({ name, hcm: {} as FilterChain['hcm'], ...(match && { match }) });
  const m = (o: Partial<NonNullable<FilterChain['match']>>) => ({ applicationProtocols: [], ...o });
  const chains = [c('any'), c('p80', m({ destinationPort: 80 })), c('p80-tls', m({ destinationPort: 80, transportProtocol: 'tls' })), c('tls-h2', m({ transportProtocol: 'tls', applicationProtocols: ['h2'] }))];
  const pick = (destinationPort: number, transportProtocol: 'tls' | 'raw_buffer', alpn: string[] = []) => chains[selectFilterChain(chains, { destinationPort, transportProtocol, alpn })]?.name ?? 'none';
  t.equal(pick(80, 'tls'), 'p80-tls');
  t.equal(pick(80, 'raw_buffer'), 'p80', 'the port narrows first, then transport falls back to unset');
  t.equal(pick(81, 'tls', ['h2', 'http/1.1']), 'tls-h2');
  t.equal(pick(81, 'tls', ['http/1.1']), 'none', 'tls chains exist but none without ALPN: no backtracking to "any"');
  t.equal(pick(81, 'raw_buffer'), 'any');
  t.equal(selectFilterChain([c('tls', m({ transportProtocol: 'tls' }))], { destinationPort: 1, transportProtocol: 'raw_buffer', alpn: [] }), -1);
  t.end();
});

t.test('clientHelloAlpn and looksLikeHttp1', async (t) => {
  // A real ClientHello, captured from node's TLS client.
  const hello = await new Promise<Buffer>((resolve) => {
    const server = net.createServer((s) => {
      s.once('data', (b: Buffer) => {
        resolve(b);
        s.destroy();
        server.close();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      import('node:tls').then((tls) => tls.connect({ host: '127.0.0.1', port, ALPNProtocols: ['h2', 'http/1.1'], rejectUnauthorized: false }).on('error', () => {}));
    });
  });
  t.equal(hello[0], 0x16);
  const body = hello.subarray(5, 5 + hello.readUInt16BE(3));
  t.strictSame(clientHelloAlpn(body), ['h2', 'http/1.1']);
  t.strictSame(clientHelloAlpn(body.subarray(0, 60)), [], 'cut short: none');
  t.strictSame(clientHelloAlpn(Buffer.from([2, 0, 0, 0])), [], 'not a client_hello');
  const b = (...x: number[]) => Buffer.from(x);
  t.equal(verdict(b(0x16), false), undefined, 'one byte of a handshake record: read on');
  t.strictSame(verdict(b(0x16, 0x03, 0x01), false), { tls: true, alpn: [] });
  t.strictSame(verdict(b(0x16, 0x02, 0x00), false), { tls: false, alpn: [] }, 'not a TLS version: raw_buffer');
  t.strictSame(verdict(b(0x16, 0x03, 0x05), false), { tls: false, alpn: [] });
  t.strictSame(verdict(b(0x47, 0x45), true), { tls: false, alpn: [] });
  t.equal(verdict(b(0x16, 0x03, 0x01, 0x00), true), undefined, 'wanting ALPN: the record header first');
  t.equal(verdict(hello.subarray(0, 40), true), undefined, 'then the whole record');
  t.strictSame(verdict(hello, true), { tls: true, alpn: ['h2', 'http/1.1'] });
  t.strictSame(verdict(b(0x16, 0x03, 0x01, 0x50, 0x00), true), { tls: true, alpn: [] }, 'a record longer than TLS allows is not parsed');
  t.ok(looksLikeHttp1(Buffer.from('GET / HTTP/1.1\r\n')));
  t.notOk(looksLikeHttp1(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')));
  t.notOk(looksLikeHttp1(Buffer.from('hello')));
  t.end();
});
