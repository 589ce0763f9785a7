// 200 ADS streams on one server: one config change reaches every stream, in batches that yield to the event loop.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { AdsTestClient, CDS, LDS, clusterJson, nodeProto, startAds } from '../../helpers/ads-client.js';

t.test('200 concurrent streams all receive a push after onChange', async (t) => {
  const a = await startAds({ pushBatch: 50 });
  t.teardown(() => a.close());
  // Streams of 200 proxies over 4 connections.
  const channels = Array.from({ length: 4 }, () => new grpc.Client(a.address, grpc.credentials.createInsecure()));
  t.teardown(() => channels.forEach((c) => c.close()));
  const streams = Array.from({ length: 200 }, (_, i) => new AdsTestClient(channels[i % 4]!, false));
  t.teardown(() => streams.forEach((s) => s.close()));
  const first = await Promise.all(streams.map((c, i) => c.ask({ node: nodeProto(`reviews-${i}.default`), type_url: CDS })));
  streams.forEach((c, i) => c.ack(first[i]!));
  // An answered request after each ACK: every ACK has been processed.
  await Promise.all(streams.map((c) => c.ask({ type_url: LDS })));
  t.equal(a.ads.status().connected, 200);
  t.ok(a.ads.status().nodes.every((n) => n.types.cds!.state === 'SYNCED'));

  a.source.set(CDS, [clusterJson('reviews'), clusterJson('ratings'), clusterJson('details')]);
  const before = a.source.snapshotCalls;
  a.source.change();
  // The first batch went out synchronously; this runs at the first yield, before the last batch.
  const atFirstYield = new Promise<number>((resolve) => setImmediate(() => resolve(a.source.snapshotCalls - before)));
  const pushed = await Promise.all(streams.map((c) => c.next()));
  const seen = await atFirstYield;
  t.ok(seen > 0 && seen < 200, `the push yielded to the event loop between batches (${seen} of 200 streams done at the first yield)`);
  t.ok(pushed.every((r) => r.type_url === CDS && r.names.length === 3 && r.version_info === a.source.version(CDS)));
  t.equal(new Set(pushed.map((r) => r.nonce)).size, 200, 'a nonce per response');
  await a.ads.idle();
  t.match(await a.metric('pilot_xds_pushes'), /\{type="cds"\} 400/);
  t.match(await a.metric('pilot_proxy_convergence_time'), /pilot_proxy_convergence_time_count 200/);
  t.match(await a.metric('pilot_xds'), /pilot_xds\{kind="sidecar",transport="plaintext"\} 200/);
});

t.test('changes during a push are coalesced into one more pass', async (t) => {
  const a = await startAds({ pushBatch: 2 });
  t.teardown(() => a.close());
  const streams = Array.from({ length: 6 }, () => a.client());
  await Promise.all(streams.map((c, i) => c.ask({ node: nodeProto(`n${i}`), type_url: CDS })));
  a.source.set(CDS, [clusterJson('a')]);
  a.source.change();
  // Mid-pass, two more changes: the streams already pushed get the latest in a second pass, once.
  a.source.set(CDS, [clusterJson('b')]);
  a.source.change();
  a.source.change();
  await a.ads.idle();
  const latest = a.source.version(CDS);
  for (const c of streams) {
    let r = await c.next();
    if (r.version_info !== latest) r = await c.next();
    t.equal(r.version_info, latest);
    t.strictSame(r.names, ['b']);
  }
  // Two passes at most per stream: the first two streams got "a" then "b", the others only "b".
  t.match(await a.metric('pilot_xds_pushes'), /\{type="cds"\} 14(\n|$)/);
});
