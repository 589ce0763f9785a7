// The proxy-status table, the NACK log limiter and the shared response bodies, without a network.
import t from 'tap';
import { FakeClock } from '../../../src/core/clock.js';
import { LogLimiter } from '../../../src/control/ads/log-limit.js';
import { decodeResponse, withNonce } from '../../../src/control/ads/protocol.js';
import { ResponseCache } from '../../../src/control/ads/response-cache.js';
import { renderXdsStatus, type XdsNodeStatus, type XdsTypeStatus } from '../../../src/control/ads/status.js';
import { CDS, EDS } from '../../helpers/ads-client.js';

const type = (state: XdsTypeStatus['state'], extra: Partial<XdsTypeStatus> = {}): XdsTypeStatus => ({ type_url: CDS, state, current_version: 'v2', wildcard: true, subscribed_names: 0, ...extra });
const node = (id: string, types: XdsNodeStatus['types'], conn = `${id}-1`): XdsNodeStatus => ({
  connection_id: conn,
  node_id: id,
  kind: 'sidecar',
  namespace: 'default',
  service_account: 'reviews',
  spiffe_id: 'spiffe://cluster.local/ns/default/sa/reviews',
  connected_at: '2026-01-01T00:00:00.000Z',
  peer: '127.0.0.1:1234',
  transport: 'mtls',
  types,
});

t.test('renderXdsStatus: istioctl proxy-status columns, NACKED rows followed by the error', async (t) => {
  const out = renderXdsStatus({
    connected: 3,
    nodes: [
      node('b-proxy.default', { cds: type('SYNCED'), lds: type('NACKED', { nack: { version: 'v2', code: 3, message: 'listeners[0]: bad\n  port', at: '2026-01-01T00:00:01.000Z' } }), eds: type('STALE'), rds: type('NOT_SENT') }),
      node('a.default', { cds: type('SYNCED') }, 'a.default-9'),
      node('a.default', { cds: type('STALE') }, 'a.default-2'),
    ],
  });
  t.equal(
    out,
    [
      'NAME              CDS      LDS        EDS        RDS',
      'a.default         STALE    NOT SENT   NOT SENT   NOT SENT',
      'a.default         SYNCED   NOT SENT   NOT SENT   NOT SENT',
      'b-proxy.default   SYNCED   NACKED     STALE      NOT SENT',
      '    LDS rejected version v2: listeners[0]: bad port',
      '',
    ].join('\n'),
  );
  t.equal(renderXdsStatus({ connected: 0, nodes: [] }), 'NAME   CDS   LDS   EDS   RDS\n(no proxies connected)\n');
});

t.test('LogLimiter: a burst per key per window, then the count of what was dropped', async (t) => {
  const clock = new FakeClock();
  const l = new LogLimiter(clock, 2, 1000, 3);
  t.strictSame(l.allow('a'), { suppressed: 0 });
  t.strictSame(l.allow('a'), { suppressed: 0 });
  t.equal(l.allow('a'), undefined);
  t.equal(l.allow('a'), undefined);
  t.strictSame(l.allow('b'), { suppressed: 0 }, 'keys are independent');
  clock.advance(1000);
  t.strictSame(l.allow('a'), { suppressed: 2 }, 'the next window reports the dropped lines');
  t.strictSame(l.allow('a'), { suppressed: 0 });
  // Past maxKeys the table starts over instead of growing.
  l.allow('c');
  t.strictSame(l.allow('d'), { suppressed: 0 });
  t.strictSame(l.allow('a'), { suppressed: 0 }, 'a was forgotten with the reset');
});

t.test('ResponseCache: one body per (resources, version, selection), shared; missing names do not split it', async (t) => {
  const c = new ResponseCache();
  const resources = new Map([
    ['b', Uint8Array.from([0x0a, 0x01, 0x62])],
    ['a', Uint8Array.from([0x0a, 0x01, 0x61])],
  ]);
  const all = c.body(EDS, resources, 'v1', { wildcard: true, names: new Set() });
  t.equal(c.body(EDS, resources, 'v1', { wildcard: true, names: new Set(['a']) }), all, 'the same Buffer: encoded once');
  const named = c.body(EDS, resources, 'v1', { wildcard: false, names: new Set(['b', 'a', 'missing']) });
  t.equal(c.body(EDS, resources, 'v1', { wildcard: false, names: new Set(['a', 'b']) }), named);
  t.not(c.body(EDS, resources, 'v2', { wildcard: false, names: new Set(['a', 'b']) }), named, 'another version is another body');
  const r = decodeResponse(withNonce(named, 'n1'));
  t.equal(r.nonce, 'n1');
  t.equal(r.version_info, 'v1');
  t.strictSame(r.resources.map((x) => Buffer.from(x.value).toString('hex')), ['0a0161', '0a0162'], 'named: sorted by name');
  t.strictSame(decodeResponse(all).resources.map((x) => Buffer.from(x.value).toString('hex')), ['0a0162', '0a0161'], 'wildcard: snapshot order');
  // Bounded: 256 selections per map, the oldest dropped first.
  for (let i = 0; i < 300; i++) c.body(EDS, resources, `x${i}`, { wildcard: true, names: new Set() });
  t.not(c.body(EDS, resources, 'v1', { wildcard: true, names: new Set() }), all, 'evicted, encoded again');
});
