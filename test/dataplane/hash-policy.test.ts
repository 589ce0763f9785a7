// RouteAction.hash_policy on a request: which values are hashed, in which order, and when the walk stops.
import t from 'tap';
import { hashOf, type HashSource } from '../../src/dataplane/hash-policy.js';
import type { HashPolicy } from '../../src/model/types.js';
import { requestHash } from '../../src/upstream/lb/index.js';

const src = (headers: Record<string, string>, path = '/', remoteIp = '10.1.2.3'): HashSource => ({ header: (n) => headers[n], path, remoteIp });
const header = (headerName: string, terminal = false): HashPolicy => ({ kind: 'header', headerName, terminal });

t.test('each policy that finds its value contributes it, in order', (t) => {
  const s = src({ 'x-user': 'ana', cookie: 'a=1; session=xyz ; b=2' }, '/p?tenant=t1&x=2');
  t.equal(hashOf([header('X-User')], s), requestHash(['ana']), 'header names are matched in lower case');
  t.equal(hashOf([{ kind: 'cookie', name: 'session', terminal: false }], s), requestHash(['xyz']));
  t.equal(hashOf([{ kind: 'query_parameter', name: 'tenant', terminal: false }], s), requestHash(['t1']));
  t.equal(hashOf([{ kind: 'source_ip', terminal: false }], s), requestHash(['10.1.2.3']));
  t.equal(hashOf([header('x-user'), { kind: 'query_parameter', name: 'tenant', terminal: false }], s), requestHash(['ana', 't1']), 'values combine');
  t.end();
});

t.test('a terminal policy that found a value ends the walk; missing values are skipped', (t) => {
  const s = src({ 'x-user': 'ana' });
  t.equal(hashOf([header('x-user', true), { kind: 'source_ip', terminal: false }], s), requestHash(['ana']));
  t.equal(hashOf([header('x-missing', true), { kind: 'source_ip', terminal: false }], s), requestHash(['10.1.2.3']), 'a terminal policy without a value does not stop it');
  t.equal(hashOf([{ kind: 'cookie', name: 'session', terminal: false }, { kind: 'query_parameter', name: 'q', terminal: false }], s), undefined, 'nothing found: no hash (a random pick)');
  t.equal(hashOf([{ kind: 'query_parameter', name: 'q', terminal: false }], src({}, '/p?other=1')), undefined);
  t.equal(hashOf([{ kind: 'source_ip', terminal: false }], src({}, '/', '')), undefined);
  t.equal(hashOf([], s), undefined, 'no policy: no hash');
  t.end();
});
