import t from 'tap';
import { throwsWhere } from '../helpers/tools.js';
import { parseSpiffeId, workloadId } from '../../src/identity/spiffe.js';
import { IdentityError } from '../../src/identity/errors.js';

t.test('valid SPIFFE IDs parse into trust domain and path', (t) => {
  const id = parseSpiffeId('spiffe://cluster.local/ns/default/sa/reviews');
  t.same({ ...id }, { trustDomain: 'cluster.local', path: '/ns/default/sa/reviews', uri: 'spiffe://cluster.local/ns/default/sa/reviews' });
  t.equal(parseSpiffeId('spiffe://aws-us-east-1.example_td').path, '');
  t.equal(workloadId('td', 'ns1', 'sa-1').uri, 'spiffe://td/ns/ns1/sa/sa-1');
  t.ok(Object.isFrozen(id));
  t.end();
});

t.test('each SPIFFE-ID rule is enforced and named', (t) => {
  const cases: [string, RegExp][] = [
    ['https://cluster.local/ns/a', /scheme/],
    ['SPIFFE://cluster.local/ns/a', /scheme/],
    ['spiffe:///ns/a', /trust domain is empty/],
    [`spiffe://${'a'.repeat(256)}/x`, /longer than 255/],
    ['spiffe://user@td/x', /userinfo or a port/],
    ['spiffe://td:8080/x', /userinfo or a port/],
    ['spiffe://Cluster.Local/x', /lowercase/],
    ['spiffe://td/ns/a?x=1', /query and fragment/],
    ['spiffe://td/ns/a#frag', /query and fragment/],
    ['spiffe://td/ns/a/', /must not end with "\/"/],
    ['spiffe://td/ns//a', /must not be empty/],
    ['spiffe://td/ns/./a', /must not be "\." or "\.\."/],
    ['spiffe://td/ns/../a', /must not be "\." or "\.\."/],
    ['spiffe://td/ns/a b', /may only contain letters/],
    ['spiffe://td/ns/%41', /may only contain letters/],
    [`spiffe://td/${'a'.repeat(2100)}`, /2048 bytes/],
  ];
  for (const [id, rule] of cases) {
    throwsWhere(t, () => parseSpiffeId(id), (e: unknown) => e instanceof IdentityError && e.code === 'SPIFFE_ID_INVALID' && rule.test(e.message), id.slice(0, 60));
  }
  t.end();
});
