// VirtualService http[].mirror / mirrorPercentage / mirrorPercent / mirrors: Istio's mirroring, validated as
// istiod's validateHTTPRoute, into one list of shadow targets.
import t from 'tap';
import { check, doc, valid, withBase } from './helpers.js';

const REVIEWS = 'reviews.default.svc.cluster.local';
const RATINGS = 'ratings.default.svc.cluster.local';
/** A reviews VirtualService whose one route has `extra` (YAML lines under the route); the first is line 10 of mesh/x.yaml. */
const vsWith = (extra: string) => withBase(doc('VirtualService', 'r', `  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n${extra}`));
const mirrorsOf = (extra: string) => valid(vsWith(extra)).virtualServices[0]!.http[0]!.mirrors;

t.test('mirror with mirrorPercentage, the deprecated mirrorPercent, no percentage (100), and the mirrors list', (t) => {
  t.strictSame(mirrorsOf('    mirror: {host: reviews, subset: v2}\n    mirrorPercentage: {value: 12.5}\n'), [{ destination: { host: 'reviews', fqdn: REVIEWS, subset: 'v2' }, percent: 12.5, at: 'mirror' }]);
  t.strictSame(mirrorsOf('    mirror: {host: ratings}\n    mirrorPercent: 30\n'), [{ destination: { host: 'ratings', fqdn: RATINGS }, percent: 30, at: 'mirror' }]);
  t.strictSame(mirrorsOf('    mirror: {host: ratings, port: {number: 9080}}\n'), [{ destination: { host: 'ratings', fqdn: RATINGS, port: 9080 }, percent: 100, at: 'mirror' }]);
  t.strictSame(mirrorsOf('    mirrors:\n    - destination: {host: ratings}\n    - destination: {host: reviews, subset: v2}\n      percentage: {value: 0}\n'), [
    { destination: { host: 'ratings', fqdn: RATINGS }, percent: 100, at: 'mirrors[0].destination' },
    { destination: { host: 'reviews', fqdn: REVIEWS, subset: 'v2' }, percent: 0, at: 'mirrors[1].destination' },
  ]);
  t.equal(mirrorsOf(''), undefined, 'no mirroring');
  t.end();
});

t.test('bad mirroring is refused with file, line and field', (t) => {
  const P = 'mesh/x.yaml:10 VirtualService r: spec.http[0]';
  t.strictSame(check(vsWith('    mirror: {host: ratings}\n    mirrorPercentage: {value: 120}\n')), [`mesh/x.yaml:11 VirtualService r: spec.http[0].mirrorPercentage.value: 120 is not a percentage in 0..100`]);
  t.strictSame(check(vsWith('    mirror: {host: ratings}\n    mirrorPercentage: {value: "half"}\n')), [`mesh/x.yaml:11 VirtualService r: spec.http[0].mirrorPercentage.value: expected a number, got "half"`]);
  t.strictSame(check(vsWith('    mirrorPercentage: {value: 5}\n')), [`${P}.mirrorPercentage: is set without mirror, so nothing would be mirrored`]);
  t.strictSame(check(vsWith('    mirror: {host: ratings}\n    mirrors: [{destination: {host: ratings}}]\n')), [`mesh/x.yaml:11 VirtualService r: spec.http[0].mirrors: cannot be set together with mirror; list every target under mirrors`]);
  t.strictSame(check(vsWith('    mirrors: [{percentage: {value: 5}}, {destination: {host: ratings}, percentage: {value: -1}}, {destination: {host: ratings}, weight: 3}]\n')), [
    `${P}.mirrors[0].destination: is required`,
    `${P}.mirrors[1].percentage.value: -1 is not a percentage in 0..100`,
    `${P}.mirrors[2].weight: unknown field`,
  ]);
  t.strictSame(check(vsWith('    mirror: {host: ratings}\n    mirrorPercent: 101\n')), [`mesh/x.yaml:11 VirtualService r: spec.http[0].mirrorPercent: must be 0..100`]);
  t.strictSame(check(vsWith('    mirror: {host: nowhere}\n')), [`${P}.mirror.host: no ServiceEntry declares host nowhere.default.svc.cluster.local (nowhere in namespace default)`]);
  t.strictSame(check(vsWith('    mirrors: [{destination: {host: reviews, subset: v9}}]\n')), [
    `${P}.mirrors[0].destination.subset: DestinationRule default/reviews (mesh/base.yaml:45) defines no subset v9 (subsets: v1, v2)`,
  ]);
  t.end();
});
