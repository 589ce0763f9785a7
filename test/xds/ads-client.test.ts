// The ADS client's transport on a fake clock: backoff doubles with jitter up to the cap, resets after a
// response, survives credentials that fail, and stops for good on close().
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { FakeClock } from '../../src/core/clock.js';
import type { Rng } from '../../src/core/rng.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { AdsClient } from '../../src/xds/ads-client.js';
import { decodeBootstrap } from '../../src/xds/bootstrap.js';
import { startAdsServer, typeOf } from '../helpers/ads-server.js';
import { adsBootstrap } from '../helpers/xds-resources.js';

/** Always the middle of the jitter range, so every delay is half its cap. */
const half: Rng = { next: () => 0.5, int: (n) => Math.floor(n / 2) };

function client(port: number, clock: FakeClock, credentials: () => grpc.ChannelCredentials = () => grpc.credentials.createInsecure()) {
  return new AdsClient({
    target: `127.0.0.1:${port}`,
    credentials,
    bootstrap: decodeBootstrap(adsBootstrap(port)),
    watcher: { apply: () => [], missing: () => {} },
    clock,
    rng: half,
    logger: silentLogger(),
    backoffBaseMs: 100,
    backoffMaxMs: 350,
  });
}

const nextBackoff = (c: AdsClient) => new Promise<number>((r) => c.once('backoff', (ms: number) => r(ms)));

t.test('reconnects on the injected clock: jittered exponential backoff, capped, reset by a response', async (t) => {
  const ads = await startAdsServer();
  const port = ads.port;
  await ads.stop();
  const clock = new FakeClock();
  const c = client(port, clock);
  t.teardown(async () => {
    c.close();
    await ads.stop();
  });
  const delays: number[] = [];
  let b = nextBackoff(c);
  c.start();
  for (let i = 0; i < 4; i++) {
    delays.push(await b);
    b = nextBackoff(c);
    clock.advance(delays.at(-1)!);
  }
  t.strictSame(delays, [50, 100, 175, 175], 'rng 0.5 of min(350, 100 * 2^n)');
  await ads.restart();
  const connected = new Promise((r) => c.once('connected', r));
  clock.advance(await b);
  await connected;
  t.equal(c.connected, true);
  await ads.request((r) => typeOf(r) === 'cds');
  ads.push('cds', '1', []);
  await ads.request((r) => typeOf(r) === 'cds' && r.version_info === '1');
  const again = nextBackoff(c);
  ads.killStreams();
  t.equal(await again, 50, 'a stream that got a response starts the backoff from the bottom');
});

t.test('credentials that cannot be built count as a failed attempt; close() stops retrying', async (t) => {
  const ads = await startAdsServer();
  t.teardown(() => ads.stop());
  const clock = new FakeClock();
  let fail = true;
  const c = client(ads.port, clock, () => {
    if (fail) throw new Error('no certificate yet');
    return grpc.credentials.createInsecure();
  });
  const failed = nextBackoff(c);
  c.start();
  t.equal(await failed, 50);
  fail = false;
  const connected = new Promise((r) => c.once('connected', r));
  clock.advance(50);
  await connected;
  const again = nextBackoff(c);
  ads.killStreams();
  await again;
  c.close();
  t.equal(clock.pending(), 0, 'no retry pending after close');
  t.equal(c.connected, false);
});
