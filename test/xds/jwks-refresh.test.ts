// The sidecar's unknown-kid refresh client: per-issuer rate limit on the injected clock, bounded issuers, errors logged not thrown.
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { FakeClock } from '../../src/core/clock.js';
import { JwksRefreshClient, MAX_ISSUER_LENGTH, MAX_KID_LENGTH } from '../../src/xds/jwks-refresh.js';
import { deadPort } from '../helpers/http-app.js';
import { memoryLogger } from '../helpers/mesh-ca.js';

t.test('one request per issuer per interval, at most maxIssuers remembered, oversized input dropped, failures only logged', async (t) => {
  const clock = new FakeClock();
  const { logger, logs } = memoryLogger();
  const c = new JwksRefreshClient({ target: `127.0.0.1:${await deadPort()}`, credentials: () => grpc.credentials.createInsecure(), clock, logger, minIntervalMs: 10_000, maxIssuers: 2, timeoutMs: 2000 });
  t.equal(c.request('a', 'k'), true);
  t.equal(c.request('a', 'k2'), false, 'same issuer within the interval');
  t.equal(c.request('b', 'k'), true);
  t.equal(c.request('c', 'k'), false, 'two issuers remembered, both recent: a third is dropped');
  t.equal(c.request('', 'k'), false);
  t.equal(c.request('x'.repeat(MAX_ISSUER_LENGTH + 1), 'k'), false);
  t.equal(c.request('d', 'k'.repeat(MAX_KID_LENGTH + 1)), false);
  clock.advance(10_000);
  t.equal(c.request('c', 'k'), true, 'old issuers age out');
  t.equal(c.request('a', 'k'), true);
  await c.settled();
  t.equal(logs.join('').match(/"msg":"JWKS refresh request failed"/g)?.length, 4, 'an unreachable control server is logged, never thrown');
  c.close();
  t.equal(c.request('z', 'k'), false, 'closed');
});
