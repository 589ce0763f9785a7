// `npm start`'s demo, in-process on its own loopback block: every pod's sidecar configured over ADS with an SVID
// from the mesh CA, load through mTLS hops, the canary shift seen by the traffic, zero failures, a clean stop.
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runDemo } from '../../src/cli/demo.js';
import { BUNDLED_MESH } from '../../src/cli/demo-mesh.js';
import { waitFor } from '../helpers/tools.js';

const ID = (sa: string) => `spiffe://cluster.local/ns/default/sa/bookinfo-${sa}`;
const count = (m: ReadonlyMap<string, number> | undefined) => [...(m?.values() ?? [])].reduce((a, b) => a + b, 0);
const share = (m: ReadonlyMap<string, number> | undefined, v: string) => (count(m) ? (m!.get(v) ?? 0) / count(m) : NaN);

t.test('bookinfo on loopback: traffic over mTLS sidecars, the 90/10 canary shifted to 50/50 live, no failure, clean stop', async (t) => {
  let text = '';
  // Fifteen sidecars share one SVID source each with many TLS contexts: no EventEmitter leak warning.
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  t.teardown(() => void process.off('warning', onWarning));
  // A modest rate: the whole mesh shares this one process (and the machine its two cores) with other tests.
  const demo = await runDemo({ rate: 20, durationMs: 0, shiftAfterMs: 5000, inProcess: true, ipOffset: 150, write: (s) => (text += s) });
  // Enough answers routed by the new config, however slow the machine: then stop, as Ctrl-C would.
  await waitFor(() => count(demo.stats.versionsByPhase.get('after')) >= 60 && text.includes('reviews split before the change'), 'answers after the shift, and the split shown', 45_000);
  await demo.stop();
  const r = await demo.done;
  t.comment(text);
  t.equal(demo.pods.length, 15, 'one pod per WorkloadEntry');
  t.match(text, /control server on 127\.150\.0\.2: xDS \+ mesh CA over mTLS :15012/);
  t.match(text, /as end-user jason[^\n]*:\n[^\n]*answered in[^\n]*\n +→ reviews v3 /, 'the walkthrough: jason is routed to v3');
  t.match(text, /gRPC Echo\.Unary to reviews:9081 through the same sidecar: "hello over gRPC" from reviews-v\d-\S+, which saw caller spiffe:\/\/cluster\.local\/ns\/default\/sa\/bookinfo-frontend/);
  t.equal(r.failed, 0, r.firstFailure ?? 'no failure');
  t.equal(r.ok, r.sent, `every one of the ${r.sent} requests answered`);
  t.strictSame(r.peers, [`${ID('frontend')} -> ratings`, `${ID('frontend')} -> reviews`, `${ID('reviews')} -> ratings`], 'each app saw its caller\'s SVID');
  // Bounds ~4 standard deviations wide at 30 / 60 answers, and apart: the split moved, v2 from 10 % to 50 %.
  const before = r.split.get('before');
  const after = r.split.get('after');
  t.ok(count(before) >= 30, `answers before the shift: ${count(before)}`);
  t.ok(share(before, 'v2') <= 0.25, `v2 before the shift: ${(share(before, 'v2') * 100).toFixed(1)} %`);
  t.ok(share(after, 'v2') >= 0.3 && share(after, 'v2') <= 0.7, `v2 after the shift: ${(share(after, 'v2') * 100).toFixed(1)} %`);
  t.equal(before?.get('v3'), undefined, 'v3 only for jason');
  const s = r.shift!;
  t.ok(s.acceptedAtMs! >= s.writtenAtMs && s.syncedAtMs! >= s.acceptedAtMs!, 'written, accepted, then ACKed by every sidecar');
  t.comment(`accepted ${Math.round(s.acceptedAtMs! - s.writtenAtMs)} ms, every sidecar ${Math.round(s.syncedAtMs! - s.writtenAtMs)} ms after the write`);
  t.match(text, /\] reviews split before the change: v1 \d+ % \(\d+\) {2}v2 \d+ % \(\d+\); since: v1 \d+ % \(\d+\) {2}v2 \d+ % \(\d+\)/);
  t.strictSame(s.weights, [{ subset: 'v1', before: 90, after: 50 }, { subset: 'v2', before: 10, after: 50 }]);
  t.ok(r.clean, 'every sidecar drained');
  t.match(text, /Stopped cleanly\./);
  const dir = /Working directory (\S+)/.exec(text)?.[1];
  t.ok(dir && !existsSync(dir), 'the working directory is gone');
  t.strictSame(warnings, []);
});

t.test('a locality failure: aws-us-east-1 loses its backends, its frontend fails over to another cloud and comes home after the ejection', async (t) => {
  // The bundled mesh with seconds-long outlier timings, so the return home comes within the test.
  const mesh = mkdtempSync(path.join(os.tmpdir(), 'outrigger-failover-mesh-'));
  t.teardown(() => rmSync(mesh, { recursive: true, force: true }));
  for (const f of readdirSync(BUNDLED_MESH)) {
    const text = readFileSync(path.join(BUNDLED_MESH, f), 'utf8').replace(/baseEjectionTime: \w+/g, 'baseEjectionTime: 4s').replace(/interval: \w+/g, 'interval: 500ms');
    writeFileSync(path.join(mesh, f), text);
  }
  let text = '';
  const demo = await runDemo({ rate: 20, durationMs: 0, shiftAfterMs: 0, failAfterMs: 4000, recoverAfterMs: 2000, inProcess: true, ipOffset: 45, meshDir: mesh, write: (s) => (text += s) });
  await waitFor(() => text.includes('traffic is home') || text.includes('[failover] traffic had not returned'), 'traffic home after the restart', 120_000);
  // A few seconds of traffic at home, for the "after" share.
  const home = demo.stats.crossByPeriod;
  await waitFor(() => (home.get('after')?.total ?? 0) >= 60, 'answers after the return', 30_000);
  await demo.stop();
  const r = await demo.done;
  t.comment(text.split('\n').filter((l) => /failover|killed|restarted|traffic is home|Failover|Cross-cloud|Stopping/.test(l)).join('\n'));
  const f = r.failover!;
  t.equal(f.region, 'aws-us-east-1');
  t.strictSame([...f.pods].sort(), ['ratings-aws-us-east-1', 'reviews-v1-aws-us-east-1', 'reviews-v2-aws-us-east-1', 'reviews-v3-aws-us-east-1']);
  t.ok(f.switchMs !== undefined && f.switchMs < 2000, `the switch took ${f.switchMs?.toFixed(0)} ms`);
  t.ok(f.affectedSent > 0, `the aws frontend was sent ${f.affectedSent} requests while its region was down`);
  t.ok(f.firstBackAtMs! <= f.restartedAtMs!, 'the first pod was back no later than the last');
  t.ok(f.returnedAtMs! > f.firstBackAtMs!, 'home again only after a restarted pod was back');
  t.equal(r.failed, f.failed, 'every failure happened during the failover window');
  t.ok(f.failed <= 10, `${f.failed} failed requests (Istio's default retries cover the switch)`);
  t.match(text, new RegExp(`Failover: aws-us-east-1 lost its 4 backend pods at t=[\\d.]+ s, back at t=[\\d.]+ s; ${f.failed} requests failed from the kill until traffic was home; the switch took \\d+ ms; traffic home at t=[\\d.]+ s\\.`));
  const share = (p: string) => (r.crossCloud.get(p)!.cross / r.crossCloud.get(p)!.total) * 100;
  t.ok(share('before') < 5, `before: ${share('before').toFixed(1)} % cross-cloud (each caller served in its own region)`);
  t.ok(share('during') > 15, `during: ${share('during').toFixed(1)} % cross-cloud (the aws frontend's hops)`);
  t.ok(share('after') < 5, `after: ${share('after').toFixed(1)} % cross-cloud`);
  t.match(text, /Cross-cloud answers \(reviews\/ratings answered from another region than their caller's\): before \d+ % \(\d+ of \d+\); during \d+ % \(\d+ of \d+\); after \d+ % \(\d+ of \d+\)/);
  t.ok(r.clean, 'every sidecar drained, the restarted ones too');
});
