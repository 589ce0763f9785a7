// The RBAC evaluator: Envoy's config.rbac.v3 semantics for every rule kind, actions, empty sets, IPv4/IPv6 and invert.
import t from 'tap';
import type { Permission, Principal, RbacAction, RbacRules } from '../../src/model/rbac.js';
import { compileCidr, compileRbac, metadataValue, parseIp, parseIstioPolicyName, type RbacInput } from '../../src/policy/rbac.js';

const base: RbacInput = {
  method: 'GET',
  path: '/api/users?id=1#frag',
  authority: 'svc.ns.svc.cluster.local:8080',
  headers: { 'x-user': 'alice', 'x-multi': ['a', 'b'], 'content-type': 'application/json' },
  directRemoteIp: '10.1.2.3',
  remoteIp: '203.0.113.9',
  destinationIp: '10.9.0.1',
  destinationPort: 8080,
  principal: 'spiffe://cluster.local/ns/default/sa/client',
  sni: 'outbound_.8080_._.svc.ns.svc.cluster.local',
  metadata: {
    istio_authn: {
      'request.auth.principal': 'https://issuer/alice',
      'request.auth.claims': { groups: ['dev', 'admin'], nested: { level: { deep: ['x'] } }, iss: ['https://issuer'] },
      score: 2.5,
      ok: true,
      nothing: null,
    },
  },
};

const rules = (action: RbacAction, perms: Permission[], princs: Principal[] = [{ kind: 'any' }], name = 'p'): RbacRules => ({ action, policies: [{ name, permissions: perms, principals: princs }] });
const allowP = (p: Permission, input: Partial<RbacInput> = {}) => compileRbac(rules('ALLOW', [p])).evaluate({ ...base, ...input }).allowed;
const allowId = (id: Principal, input: Partial<RbacInput> = {}) => compileRbac(rules('ALLOW', [{ kind: 'any' }], [id])).evaluate({ ...base, ...input }).allowed;
const exact = (value: string, ignoreCase = false) => ({ kind: 'exact' as const, value, ignoreCase });
const hdr = (name: string, match: Parameters<typeof exactHeader>[1], invert = false) => exactHeader(name, match, invert);
function exactHeader(name: string, match: { kind: 'present'; present: boolean } | { kind: 'string'; matcher: ReturnType<typeof exact> | { kind: 'prefix' | 'suffix' | 'contains'; value: string; ignoreCase: boolean } | { kind: 'regex'; regex: string; ignoreCase: false } }, invert: boolean): Permission {
  return { kind: 'header', matcher: { name, match, invert } };
}
const str = (m: ReturnType<typeof exact>) => ({ kind: 'string' as const, matcher: m });

t.test('actions: ALLOW allows iff a policy matches, DENY iff none does, LOG always with the match reported', (t) => {
  const yes: Permission = { kind: 'any' };
  const no: Permission = { kind: 'destination_port', port: 1 };
  t.strictSame(compileRbac(rules('ALLOW', [yes])).evaluate(base), { allowed: true, matchedPolicy: 'p' });
  t.strictSame(compileRbac(rules('ALLOW', [no])).evaluate(base), { allowed: false, matchedPolicy: undefined });
  t.strictSame(compileRbac(rules('DENY', [yes])).evaluate(base), { allowed: false, matchedPolicy: 'p' });
  t.strictSame(compileRbac(rules('DENY', [no])).evaluate(base), { allowed: true, matchedPolicy: undefined });
  t.strictSame(compileRbac(rules('LOG', [yes])).evaluate(base), { allowed: true, matchedPolicy: 'p' });
  t.strictSame(compileRbac(rules('LOG', [no])).evaluate(base), { allowed: true, matchedPolicy: undefined });
  t.end();
});

t.test('empty policy sets: ALLOW denies all, DENY allows all', (t) => {
  t.strictSame(compileRbac({ action: 'ALLOW', policies: [] }).evaluate(base), { allowed: false, matchedPolicy: undefined });
  t.strictSame(compileRbac({ action: 'DENY', policies: [] }).evaluate(base), { allowed: true, matchedPolicy: undefined });
  t.end();
});

t.test('a policy needs some permission AND some principal; the first matching policy in order is reported', (t) => {
  const e = compileRbac({
    action: 'ALLOW',
    policies: [
      { name: 'a', permissions: [{ kind: 'any' }], principals: [{ kind: 'authenticated', principalName: exact('spiffe://other') }] },
      { name: 'b', permissions: [{ kind: 'destination_port', port: 1 }, { kind: 'destination_port', port: 8080 }], principals: [{ kind: 'remote_ip', cidr: { addressPrefix: '1.1.1.1', prefixLen: 32 } }, { kind: 'any' }] },
      { name: 'c', permissions: [{ kind: 'any' }], principals: [{ kind: 'any' }] },
    ],
  });
  t.strictSame(e.evaluate(base), { allowed: true, matchedPolicy: 'b' });
  t.strictSame(e.policyNames, ['a', 'b', 'c']);
  t.equal(e.action, 'ALLOW');
  t.end();
});

t.test('and / or / not combinators', (t) => {
  const p8080: Permission = { kind: 'destination_port', port: 8080 };
  const p1: Permission = { kind: 'destination_port', port: 1 };
  t.ok(allowP({ kind: 'and', rules: [p8080, { kind: 'any' }] }));
  t.notOk(allowP({ kind: 'and', rules: [p8080, p1] }));
  t.ok(allowP({ kind: 'or', rules: [p1, p8080] }));
  t.notOk(allowP({ kind: 'or', rules: [p1, p1] }));
  t.ok(allowP({ kind: 'not', rule: p1 }));
  t.notOk(allowP({ kind: 'not', rule: p8080 }));
  const any: Principal = { kind: 'any' };
  const none: Principal = { kind: 'not', rule: any };
  t.ok(allowId({ kind: 'and', rules: [any, any] }));
  t.notOk(allowId({ kind: 'and', rules: [any, none] }));
  t.ok(allowId({ kind: 'or', rules: [none, any] }));
  t.notOk(allowId({ kind: 'or', rules: [none] }));
  t.end();
});

t.test('header matchers: pseudo-headers, repeated values joined by comma, missing header and invert', (t) => {
  t.ok(allowP(hdr(':method', str(exact('GET')))));
  t.notOk(allowP(hdr(':method', str(exact('POST')))));
  t.ok(allowP(hdr(':path', str(exact('/api/users?id=1#frag')))), ':path is the whole path with its query');
  t.ok(allowP(hdr(':authority', { kind: 'string', matcher: { kind: 'prefix', value: 'svc.ns', ignoreCase: false } })));
  t.ok(allowP(hdr('host', str(exact('svc.ns.svc.cluster.local:8080')))), 'host is :authority');
  t.ok(allowP(hdr('x-multi', str(exact('a,b')))), 'repeated header values are joined with ,');
  t.ok(allowP(hdr('x-user', { kind: 'string', matcher: { kind: 'regex', regex: 'al.*', ignoreCase: false } })));
  t.ok(allowP(hdr('x-user', { kind: 'string', matcher: { kind: 'contains', value: 'LIC', ignoreCase: true } })));
  t.ok(allowP(hdr('x-user', { kind: 'present', present: true })));
  t.notOk(allowP(hdr('x-absent', { kind: 'present', present: true })));
  t.ok(allowP(hdr('x-absent', { kind: 'present', present: false })));
  t.notOk(allowP(hdr('x-absent', str(exact('v')))), 'a missing header fails a value matcher');
  t.ok(allowP(hdr('x-absent', str(exact('v')), true)), '... and passes an inverted one');
  t.notOk(allowP(hdr('x-user', str(exact('alice')), true)), 'invert_match');
  t.end();
});

t.test('url_path matches the path without query or fragment; ignore_case', (t) => {
  const up = (m: { kind: 'exact' | 'prefix' | 'suffix'; value: string; ignoreCase: boolean }): Permission => ({ kind: 'url_path', matcher: m });
  t.ok(allowP(up(exact('/api/users'))));
  t.notOk(allowP(up(exact('/api/users?id=1'))));
  t.ok(allowP(up({ kind: 'prefix', value: '/API/', ignoreCase: true })));
  t.notOk(allowP(up({ kind: 'prefix', value: '/API/', ignoreCase: false })));
  t.ok(allowP(up({ kind: 'suffix', value: 'users', ignoreCase: false }), { path: '/x/users#f' }));
  t.ok(allowP(up(exact('/plain')), { path: '/plain' }));
  t.ok(allowId({ kind: 'url_path', matcher: exact('/api/users') }), 'url_path as a principal');
  t.end();
});

t.test('destination ip, port, port range, requested server name', (t) => {
  t.ok(allowP({ kind: 'destination_ip', cidr: { addressPrefix: '10.9.0.0', prefixLen: 16 } }));
  t.notOk(allowP({ kind: 'destination_ip', cidr: { addressPrefix: '10.8.0.0', prefixLen: 16 } }));
  t.ok(allowP({ kind: 'destination_port', port: 8080 }));
  t.ok(allowP({ kind: 'destination_port_range', start: 8000, end: 8081 }));
  t.notOk(allowP({ kind: 'destination_port_range', start: 8000, end: 8080 }), 'end is exclusive');
  t.ok(allowP({ kind: 'destination_port_range', start: 8080, end: 8081 }), 'start is inclusive');
  t.ok(allowP({ kind: 'requested_server_name', matcher: { kind: 'suffix', value: '.cluster.local', ignoreCase: false } }));
  t.notOk(allowP({ kind: 'requested_server_name', matcher: { kind: 'suffix', value: '.cluster.local', ignoreCase: false } }, { sni: undefined }));
  t.ok(allowP({ kind: 'requested_server_name', matcher: exact('') }, { sni: undefined }), 'no SNI is the empty name');
  t.end();
});

t.test('authenticated: the peer principal, any TLS peer without principal_name, never plaintext', (t) => {
  t.ok(allowId({ kind: 'authenticated', principalName: exact('spiffe://cluster.local/ns/default/sa/client') }));
  t.notOk(allowId({ kind: 'authenticated', principalName: exact('spiffe://cluster.local/ns/default/sa/other') }));
  t.ok(allowId({ kind: 'authenticated', principalName: { kind: 'prefix', value: 'spiffe://cluster.local/ns/default/', ignoreCase: false } }));
  t.ok(allowId({ kind: 'authenticated', principalName: undefined }));
  t.notOk(allowId({ kind: 'authenticated', principalName: undefined }, { principal: undefined }), 'plaintext: not authenticated');
  t.ok(allowId({ kind: 'authenticated', principalName: undefined }, { principal: undefined, tls: true }), 'TLS without a client certificate is authenticated (Envoy)');
  t.ok(allowId({ kind: 'authenticated', principalName: exact('') }, { principal: undefined, tls: true }), '... with the empty subject');
  t.notOk(allowId({ kind: 'authenticated', principalName: exact('') }, { principal: undefined }));
  t.notOk(allowId({ kind: 'authenticated', principalName: exact('spiffe://cluster.local/ns/default/sa/client') }, { tls: false }));
  t.end();
});

t.test('remote and direct remote ip, IPv4 and IPv6, IPv4-mapped addresses', (t) => {
  const direct = (addressPrefix: string, prefixLen: number): Principal => ({ kind: 'direct_remote_ip', cidr: { addressPrefix, prefixLen } });
  const remote = (addressPrefix: string, prefixLen: number): Principal => ({ kind: 'remote_ip', cidr: { addressPrefix, prefixLen } });
  t.ok(allowId(direct('10.0.0.0', 8)));
  t.notOk(allowId(direct('11.0.0.0', 8)));
  t.ok(allowId(direct('10.1.2.99', 24)), 'host bits of the prefix are ignored');
  t.ok(allowId(direct('0.0.0.0', 0)), '/0 matches every IPv4 address');
  t.ok(allowId(direct('10.1.2.3', 32)));
  t.ok(allowId(remote('203.0.113.0', 24)));
  t.notOk(allowId(remote('10.0.0.0', 8)));
  t.ok(allowId(direct('10.0.0.0', 8), { directRemoteIp: '::ffff:10.1.2.3' }), 'IPv4-mapped IPv6 is the IPv4 address');
  t.ok(allowId(direct('2001:db8::', 32), { directRemoteIp: '2001:db8:1::7' }));
  t.notOk(allowId(direct('2001:db8::', 32), { directRemoteIp: '2001:db9::7' }));
  t.notOk(allowId(direct('2001:db8::', 32)), 'an IPv4 peer never matches an IPv6 range');
  t.notOk(allowId(direct('10.0.0.0', 8), { directRemoteIp: '2001:db8::1' }), 'nor the reverse');
  t.ok(allowId(direct('::', 0), { directRemoteIp: 'fe80::1%eth0' }), 'zone ids are ignored');
  t.ok(allowId(direct('::1', 128), { directRemoteIp: '::1' }));
  t.ok(allowId(direct('::ffff:10.0.0.0', 104)), 'an IPv4-mapped range counts its prefix over 128 bits');
  t.notOk(allowId(direct('::ffff:11.0.0.0', 104)));
  t.ok(allowId(direct('64:ff9b::', 96), { directRemoteIp: '64:ff9b::192.0.2.33' }), 'an embedded IPv4 tail');
  t.notOk(allowId(direct('10.0.0.0', 8), { directRemoteIp: 'not-an-ip' }));
  t.end();
});

t.test('parseIp and compileCidr on odd input', (t) => {
  for (const bad of ['1.2.3', '1.2.3.256', '1.2.3.x', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::8', 'g::1', '::1.2.3.999', '1:2:3:4:5:6:7']) t.equal(parseIp(bad), undefined, bad);
  t.strictSame(parseIp('1:2:3:4:5:6:7:8'), { v4: false, n: 0x00010002000300040005000600070008n });
  t.notOk(compileCidr({ addressPrefix: 'bogus', prefixLen: 8 })(parseIp('10.0.0.1')));
  t.end();
});

t.test('metadata matchers read the istio_authn layout jwt_authn writes', (t) => {
  const md = (path: string[], value: import('../../src/model/rbac.js').ValueMatcher, invert = false): Principal => ({ kind: 'metadata', matcher: { filter: 'istio_authn', path, value, invert } });
  const s = (v: string) => ({ kind: 'string' as const, matcher: exact(v) });
  t.ok(allowId(md(['request.auth.principal'], s('https://issuer/alice'))), 'requestPrincipals');
  t.notOk(allowId(md(['request.auth.principal'], s('https://issuer/bob'))));
  t.ok(allowId(md(['request.auth.claims', 'groups'], { kind: 'list_one_of', matcher: s('admin') })), 'a claim list');
  t.notOk(allowId(md(['request.auth.claims', 'groups'], { kind: 'list_one_of', matcher: s('ops') })));
  t.ok(allowId(md(['request.auth.claims', 'nested', 'level', 'deep'], { kind: 'list_one_of', matcher: s('x') })), 'nested claims');
  t.notOk(allowId(md(['request.auth.principal'], { kind: 'list_one_of', matcher: s('https://issuer/alice') })), 'a string is not a list');
  t.ok(allowId(md(['request.auth.principal'], s('https://issuer/alice'))));
  t.notOk(allowId(md(['request.auth.principal'], s('https://issuer/alice')), { metadata: undefined }), 'no metadata: no match');
  t.ok(allowId(md(['request.auth.principal'], s('https://issuer/alice'), true), { metadata: undefined }), '... inverted: a match (notRequestPrincipals)');
  t.notOk(allowId(md(['request.auth.principal'], s('https://issuer/alice'), true)));
  t.ok(allowId(md(['score'], { kind: 'double', exact: 2.5 })));
  t.notOk(allowId(md(['score'], { kind: 'double', exact: 2 })));
  t.ok(allowId(md(['score'], { kind: 'double_range', start: 2, end: 3 })));
  t.notOk(allowId(md(['score'], { kind: 'double_range', start: 3, end: 4 })));
  t.notOk(allowId(md(['ok'], { kind: 'double', exact: 1 })));
  t.ok(allowId(md(['ok'], { kind: 'bool', value: true })));
  t.notOk(allowId(md(['ok'], { kind: 'bool', value: false })));
  t.ok(allowId(md(['nothing'], { kind: 'null' })));
  t.notOk(allowId(md(['absent'], { kind: 'null' })));
  t.ok(allowId(md(['request.auth.claims'], { kind: 'present', present: true })), 'present matches a struct too (Envoy checks the kind is set)');
  t.notOk(allowId(md(['absent'], { kind: 'present', present: true })));
  t.notOk(allowId(md(['ok'], { kind: 'present', present: false })), 'present_match false never matches');
  t.notOk(allowId(md(['score'], s('2.5'))), 'a number is not a string');
  t.ok(allowP({ kind: 'metadata', matcher: { filter: 'istio_authn', path: ['ok'], value: { kind: 'bool', value: true }, invert: false } }), 'metadata as a permission');
  t.equal(metadataValue(base.metadata, 'istio_authn', ['request.auth.claims', 'groups', '0']), undefined, 'a list is not walked into');
  t.equal(metadataValue(base.metadata, 'istio_authn', ['score', 'x']), undefined, 'nor a scalar');
  t.end();
});

t.test('istiod policy names give the namespace, policy and rule index', (t) => {
  t.strictSame(parseIstioPolicyName('ns[foo]-policy[httpbin-deny]-rule[2]'), { namespace: 'foo', policy: 'httpbin-deny', rule: 2 });
  t.equal(parseIstioPolicyName('my-policy'), undefined);
  t.end();
});

t.test('compile-time shortcuts (ORs fused into Sets, ANDs reordered by cost) decide as the plain rules do', (t) => {
  const h = (name: string, value: string, invert = false): Permission => ({ kind: 'header', matcher: { name, match: { kind: 'string', matcher: exact(value) }, invert } });
  const or = (...rules: Permission[]): Permission => ({ kind: 'or', rules });
  t.ok(allowP(or({ kind: 'destination_port', port: 9090 }, { kind: 'destination_port', port: 8080 })), 'ports');
  t.notOk(allowP(or({ kind: 'destination_port', port: 9090 }, { kind: 'destination_port', port: 7070 })));
  t.ok(allowP(or(h(':method', 'POST'), h(':method', 'GET'))), 'one header, exact values');
  t.notOk(allowP(or(h(':method', 'POST'), h(':method', 'PUT'))));
  t.notOk(allowP(or(h('x-absent', 'a'), h('x-absent', 'b'))), 'a missing header matches no value');
  t.ok(allowP(or(h('x-other', 'b'), h('x-user', 'alice'))), 'different names: not fused, still an OR');
  t.notOk(allowP(or(h('x-user', 'bob'), h('x-user', 'alice', true))), 'an inverted member is not fused');
  t.ok(allowP(or(h('x-user', 'bob'), h('x-user', 'carol', true))));
  t.ok(allowP(or(h('x-user', 'bob'), { kind: 'header', matcher: { name: 'x-user', match: { kind: 'present', present: true }, invert: false } })), 'present: not fused');
  t.ok(allowP(or(h('x-user', 'bob'), { kind: 'header', matcher: { name: 'x-user', match: { kind: 'string', matcher: exact('ALICE'.toLowerCase()) }, invert: false } })));
  t.ok(allowP(or(h('x-user', 'bob'), { kind: 'header', matcher: { name: 'x-user', match: { kind: 'string', matcher: { kind: 'exact', value: 'ALICE', ignoreCase: true } }, invert: false } })), 'ignore_case: not fused');
  t.ok(allowP(or({ kind: 'url_path', matcher: exact('/nope') }, { kind: 'url_path', matcher: { kind: 'prefix', value: '/api/', ignoreCase: false } })), 'paths');
  t.notOk(allowP(or({ kind: 'url_path', matcher: exact('/nope') }, { kind: 'url_path', matcher: exact('/api') })));
  t.ok(allowP({ kind: 'not', rule: or({ kind: 'url_path', matcher: exact('/nope') }, { kind: 'url_path', matcher: exact('/api') }) }), 'paths, where the index cannot tell');
  t.ok(allowP(or(h('x-user', 'alice'), { kind: 'destination_port', port: 1 })), 'mixed kinds: a plain OR');
  const sni = (v: string): Permission => ({ kind: 'requested_server_name', matcher: { kind: 'suffix', value: v, ignoreCase: false } });
  t.ok(allowP(or(sni('.nope'), sni('.cluster.local'))), 'a kind without a Set form: a plain OR');
  const auth = (v: string): Principal => ({ kind: 'authenticated', principalName: exact(v) });
  t.ok(allowId({ kind: 'or', rules: [auth('spiffe://x'), auth(base.principal!)] }), 'principals');
  t.notOk(allowId({ kind: 'or', rules: [auth('spiffe://x'), auth(base.principal!)] }, { tls: false }), 'never without TLS');
  t.notOk(allowId({ kind: 'or', rules: [auth('spiffe://x'), auth('spiffe://y')] }));
  t.ok(allowId({ kind: 'or', rules: [auth('spiffe://x'), { kind: 'authenticated', principalName: { kind: 'suffix', value: '/sa/client', ignoreCase: false } }] }), 'a suffix: not fused');
  // An AND of every kind, so each is costed and reordered; the decision is the conjunction whatever the order.
  const md: Permission = { kind: 'metadata', matcher: { filter: 'istio_authn', path: ['ok'], value: { kind: 'bool', value: true }, invert: false } };
  const regexHeader: Permission = { kind: 'header', matcher: { name: 'x-user', match: { kind: 'string', matcher: { kind: 'regex', regex: 'al.*', ignoreCase: false } }, invert: false } };
  const everything: Permission[] = [
    md,
    regexHeader,
    { kind: 'url_path', matcher: { kind: 'regex', regex: '/api/[a-z]+', ignoreCase: false } },
    { kind: 'requested_server_name', matcher: { kind: 'prefix', value: 'outbound_', ignoreCase: false } },
    { kind: 'destination_ip', cidr: { addressPrefix: '10.9.0.0', prefixLen: 16 } },
    { kind: 'not', rule: { kind: 'destination_port', port: 1 } },
    { kind: 'destination_port_range', start: 8000, end: 9000 },
    or({ kind: 'destination_port', port: 8080 }, { kind: 'destination_port', port: 8081 }),
    { kind: 'any' },
  ];
  t.ok(allowP({ kind: 'and', rules: everything }));
  t.notOk(allowP({ kind: 'and', rules: [...everything, { kind: 'destination_port', port: 1 }] }));
  const ids: Principal[] = [
    { kind: 'authenticated', principalName: { kind: 'regex', regex: '.*/ns/default/.*', ignoreCase: false } },
    { kind: 'authenticated', principalName: undefined },
    { kind: 'remote_ip', cidr: { addressPrefix: '203.0.113.0', prefixLen: 24 } },
    { kind: 'direct_remote_ip', cidr: { addressPrefix: '10.0.0.0', prefixLen: 8 } },
    { kind: 'any' },
  ];
  t.ok(allowId({ kind: 'and', rules: ids }));
  t.notOk(allowId({ kind: 'and', rules: ids }, { principal: 'spiffe://cluster.local/ns/other/sa/x' }));
  t.notOk(compileRbac({ action: 'ALLOW', policies: [{ name: 'empty-or', permissions: [], principals: [{ kind: 'any' }] }] }).evaluate(base).allowed, 'an empty OR matches nothing');
  t.end();
});

t.test('the path index skips policies whose paths cannot match, and decides as a full scan would', (t) => {
  const up = (kind: 'exact' | 'prefix' | 'suffix', value: string, ignoreCase = false): Permission => ({ kind: 'url_path', matcher: { kind, value, ignoreCase } });
  const pol = (name: string, perms: Permission[]) => ({ name, permissions: perms, principals: [{ kind: 'any' as const }] });
  const e = compileRbac({
    action: 'ALLOW',
    policies: [
      pol('a-exact', [up('exact', '/x')]),
      pol('b-prefix', [{ kind: 'and', rules: [{ kind: 'destination_port', port: 8080 }, { kind: 'or', rules: [up('prefix', '/api/'), up('prefix', '/v2/')] }] }]),
      pol('c-suffix', [up('suffix', '.png')]),
      pol('d-any-path-on-9', [{ kind: 'destination_port', port: 9 }]),
      pol('e-regex', [{ kind: 'url_path', matcher: { kind: 'regex', regex: '/re/[0-9]+', ignoreCase: false } }]),
      pol('f-ignore-case', [up('exact', '/CASE', true)]),
      pol('g-not', [{ kind: 'not', rule: up('prefix', '/') }]),
      pol('h-or-mixed', [up('exact', '/m'), { kind: 'destination_port', port: 7 }]),
      pol('i-same-keys', [up('exact', '/x'), up('prefix', '/api/')]),
    ],
  });
  const at = (path: string, destinationPort = 8080) => e.evaluate({ ...base, path, destinationPort }).matchedPolicy;
  t.equal(at('/x?q=1'), 'a-exact');
  t.equal(at('/api/users'), 'b-prefix');
  t.equal(at('/v2/'), 'b-prefix');
  t.equal(at('/api/users', 1), 'i-same-keys', 'the index is a necessary condition, the rule still decides (b needs port 8080)');
  t.equal(at('/img/a.png'), 'c-suffix');
  t.equal(at('/nothing', 9), 'd-any-path-on-9');
  t.equal(at('/re/42'), 'e-regex');
  t.equal(at('/case'), 'f-ignore-case');
  t.equal(at('/whatever', 7), 'h-or-mixed');
  t.equal(at('/nothing'), undefined);
  t.equal(at('/'), undefined, 'shorter than every prefix and suffix');
  t.end();
});

t.test('the path index: necessary keys, and its epoch wrapping around', async (t) => {
  const { PathIndex, pathKeys } = await import('../../src/policy/rbac-index.js');
  const up = (value: string): Permission => ({ kind: 'url_path', matcher: { kind: 'prefix', value, ignoreCase: false } });
  t.strictSame(pathKeys({ kind: 'and', rules: [{ kind: 'or', rules: [up('/a'), up('/b')] }, up('/c')] }), [{ kind: 'prefix', value: '/c' }], 'the AND member with fewest keys');
  t.equal(pathKeys({ kind: 'or', rules: [up('/a'), { kind: 'any' }] }), undefined);
  t.equal(pathKeys({ kind: 'not', rule: up('/a') }), undefined);
  const index = new PathIndex([[up('/a')], [{ kind: 'any' }]]);
  t.ok(index.useful);
  (index as unknown as { epoch: number }).epoch = 0xfffffffe;
  index.select('/a');
  t.ok(index.inPlay(0) && index.inPlay(1));
  index.select('/zzz');
  t.notOk(index.inPlay(0), 'after the wrap, old marks do not count');
  t.ok(index.inPlay(1));
  t.notOk(new PathIndex([[{ kind: 'any' }]]).useful, 'no path keys anywhere: not used');
  t.end();
});
