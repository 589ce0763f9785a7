// AuthorizationPolicy (security.istio.io v1 / v1beta1): the spec as written, and every refusal at file:line with its field.
import t from 'tap';
import { check, doc, valid } from './helpers.js';

const ap = (body: string, name = 'authz', api = 'security.istio.io/v1') => doc('AuthorizationPolicy', name, body, api);
const file = (body: string) => ({ 'mesh/authz.yaml': ap(body) });

t.test('a policy with every field reads into the model; v1beta1 too; {} is an ALLOW policy without rules', (t) => {
  const c = valid({
    'mesh/authz.yaml': ap(`  selector:
    matchLabels: {app: httpbin}
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep", "spiffe://td/ns/a/sa/b", "*", "cluster.local/ns/a/*", "*/sa/admin"]
        notPrincipals: ["td/ns/x/sa/y"]
        requestPrincipals: ["https://accounts.example.com/*"]
        notRequestPrincipals: ["*"]
        namespaces: [foo, "prod-*"]
        notNamespaces: [bar]
        ipBlocks: [10.0.0.0/8, 192.168.1.1]
        notIpBlocks: ["::1"]
        remoteIpBlocks: [203.0.113.0/24]
        notRemoteIpBlocks: ["2001:db8::/32"]
    to:
    - operation:
        hosts: [example.com, "*.example.com"]
        notHosts: ["admin.*"]
        ports: ["8080"]
        notPorts: ["0"]
        methods: [GET, POST]
        notMethods: [DELETE]
        paths: [/exact, /api/*, "*.png", "*"]
        notPaths: [/admin/*]
    when:
    - key: request.auth.claims[groups]
      values: [admins]
    - key: request.auth.claims[realm_access][roles]
      notValues: [guest]
    - {key: "request.headers[X-Tenant]", values: [acme]}
    - {key: source.ip, values: [10.1.1.1]}
    - {key: remote.ip, values: [10.2.0.0/16]}
    - {key: source.namespace, values: [foo]}
    - {key: source.principal, values: [td/ns/a/sa/b]}
    - {key: request.auth.principal, values: [iss/sub]}
    - {key: request.auth.audiences, values: [aud]}
    - {key: request.auth.presenter, values: [azp]}
    - {key: destination.ip, values: [10.3.0.1]}
    - {key: destination.port, values: ["443"]}
    - {key: connection.sni, values: ["*.svc"]}
  - {}
`),
    'mesh/b.yaml': ap('  {}\n', 'allow-nothing', 'security.istio.io/v1beta1'),
  });
  const [deny, nothing] = c.authorizationPolicies!;
  t.strictSame(nothing, { kind: 'AuthorizationPolicy', meta: { name: 'allow-nothing', namespace: 'default', file: 'mesh/b.yaml', line: 1 }, action: 'ALLOW', rules: [] });
  t.equal(deny!.action, 'DENY');
  t.strictSame(deny!.selector, { matchLabels: { app: 'httpbin' } });
  t.equal(deny!.rules.length, 2);
  t.strictSame(deny!.rules[1], { from: [], to: [], when: [] });
  const r = deny!.rules[0]!;
  t.strictSame(r.from[0]!.ipBlocks, ['10.0.0.0/8', '192.168.1.1']);
  t.strictSame(r.from[0]!.notRemoteIpBlocks, ['2001:db8::/32']);
  t.strictSame(r.to[0]!.paths, ['/exact', '/api/*', '*.png', '*']);
  t.strictSame(r.to[0]!.notPorts, ['0']);
  t.strictSame(r.when.map((w) => w.key).slice(0, 3), ['request.auth.claims[groups]', 'request.auth.claims[realm_access][roles]', 'request.headers[X-Tenant]']);
  t.strictSame(r.when[1], { key: 'request.auth.claims[realm_access][roles]', values: [], notValues: ['guest'] });
  t.end();
});

t.test('CUSTOM, targetRef(s), provider, unknown actions and fields are refused with file:line:field', (t) => {
  t.strictSame(check(file('  action: CUSTOM\n  provider: {name: ext}\n  rules: [{}]\n')), [
    'mesh/authz.yaml:6 AuthorizationPolicy authz: spec.action: CUSTOM: not supported (CUSTOM delegates to an external authorizer through ext_authz, which Outrigger does not have); use ALLOW, DENY or AUDIT',
    'mesh/authz.yaml:7 AuthorizationPolicy authz: spec.provider: only for action CUSTOM, which is not supported',
  ]);
  t.strictSame(check(file('  targetRef: {kind: Gateway, name: gw}\n  targetRefs: [{kind: Service, name: s}]\n  action: deny\n  selectr: {}\n')), [
    'mesh/authz.yaml:6 AuthorizationPolicy authz: spec.targetRef: not supported: Outrigger applies policies to sidecars, chosen by selector.matchLabels',
    'mesh/authz.yaml:7 AuthorizationPolicy authz: spec.targetRefs: not supported: Outrigger applies policies to sidecars, chosen by selector.matchLabels',
    'mesh/authz.yaml:8 AuthorizationPolicy authz: spec.action: "deny" is not one of ALLOW, DENY, AUDIT, CUSTOM',
    'mesh/authz.yaml:9 AuthorizationPolicy authz: spec.selectr: unknown field',
  ]);
  t.strictSame(check(file('  selector: {labels: {app: x}}\n  rules:\n  - from:\n    - source: {principal: [x]}\n    to:\n    - operation: {path: [/x]}\n    when:\n    - {key: source.ip, value: [1.2.3.4]}\n')), [
    'mesh/authz.yaml:6 AuthorizationPolicy authz: spec.selector.labels: unknown field',
    'mesh/authz.yaml:9 AuthorizationPolicy authz: spec.rules[0].from[0].source.principal: unknown field',
    'mesh/authz.yaml:9 AuthorizationPolicy authz: spec.rules[0].from[0].source: must set at least one of principals, notPrincipals, requestPrincipals, notRequestPrincipals, namespaces, notNamespaces, ipBlocks, notIpBlocks, remoteIpBlocks, notRemoteIpBlocks',
    'mesh/authz.yaml:11 AuthorizationPolicy authz: spec.rules[0].to[0].operation.path: unknown field',
    'mesh/authz.yaml:11 AuthorizationPolicy authz: spec.rules[0].to[0].operation: must set at least one of hosts, notHosts, ports, notPorts, methods, notMethods, paths, notPaths',
    'mesh/authz.yaml:13 AuthorizationPolicy authz: spec.rules[0].when[0].value: unknown field',
    'mesh/authz.yaml:13 AuthorizationPolicy authz: spec.rules[0].when[0]: at least one of values, notValues is required',
  ]);
  t.end();
});

t.test('invalid CIDRs, ports out of range, wildcards in the middle, non-SPIFFE principals are refused', (t) => {
  t.strictSame(
    check(
      file(`  rules:
  - from:
    - source:
        ipBlocks: [10.0.0.0/33, 10.0.0/8, not-an-ip]
        notRemoteIpBlocks: ["::1/129"]
        principals: [frontend, "cluster.local/ns/a/sa/b", "spiffe://cluster.local/ns/a/sa/b/c", "cluster.local/*/sa/b", "*a*"]
        namespaces: [""]
    to:
    - operation:
        ports: ["65536", "http", "-1"]
        paths: [/a/*/b, /api/*, "/x/{*}/y"]
        hosts: ["a.*.com"]
`),
    ),
    [
      'mesh/authz.yaml:9 AuthorizationPolicy authz: spec.rules[0].from[0].source.ipBlocks[0]: "10.0.0.0/33" is not an IP address or CIDR range',
      'mesh/authz.yaml:9 AuthorizationPolicy authz: spec.rules[0].from[0].source.ipBlocks[1]: "10.0.0/8" is not an IP address or CIDR range',
      'mesh/authz.yaml:9 AuthorizationPolicy authz: spec.rules[0].from[0].source.ipBlocks[2]: "not-an-ip" is not an IP address or CIDR range',
      'mesh/authz.yaml:10 AuthorizationPolicy authz: spec.rules[0].from[0].source.notRemoteIpBlocks[0]: "::1/129" is not an IP address or CIDR range',
      'mesh/authz.yaml:11 AuthorizationPolicy authz: spec.rules[0].from[0].source.principals[0]: "frontend" is not a SPIFFE principal (<trust domain>/ns/<namespace>/sa/<service account>) or *',
      'mesh/authz.yaml:11 AuthorizationPolicy authz: spec.rules[0].from[0].source.principals[2]: "spiffe://cluster.local/ns/a/sa/b/c" is not a SPIFFE principal (<trust domain>/ns/<namespace>/sa/<service account>) or *',
      'mesh/authz.yaml:11 AuthorizationPolicy authz: spec.rules[0].from[0].source.principals[3]: "cluster.local/*/sa/b": a wildcard (*) may only be the whole value, a prefix (*suffix) or a suffix (prefix*)',
      'mesh/authz.yaml:11 AuthorizationPolicy authz: spec.rules[0].from[0].source.principals[4]: "*a*": use one wildcard, at the start or at the end',
      'mesh/authz.yaml:12 AuthorizationPolicy authz: spec.rules[0].from[0].source.namespaces[0]: must not be empty',
      'mesh/authz.yaml:15 AuthorizationPolicy authz: spec.rules[0].to[0].operation.ports[0]: "65536" is not a port (0..65535)',
      'mesh/authz.yaml:15 AuthorizationPolicy authz: spec.rules[0].to[0].operation.ports[1]: "http" is not a port (0..65535)',
      'mesh/authz.yaml:15 AuthorizationPolicy authz: spec.rules[0].to[0].operation.ports[2]: "-1" is not a port (0..65535)',
      'mesh/authz.yaml:16 AuthorizationPolicy authz: spec.rules[0].to[0].operation.paths[0]: "/a/*/b": a wildcard (*) may only be the whole value, a prefix (*suffix) or a suffix (prefix*)',
      'mesh/authz.yaml:16 AuthorizationPolicy authz: spec.rules[0].to[0].operation.paths[2]: "/x/{*}/y": path templates ({*}, {**}) are not supported yet',
      'mesh/authz.yaml:17 AuthorizationPolicy authz: spec.rules[0].to[0].operation.hosts[0]: "a.*.com": a wildcard (*) may only be the whole value, a prefix (*suffix) or a suffix (prefix*)',
    ],
  );
  t.end();
});

t.test('when: unknown keys, malformed header / claim keys, values checked by key; empty from/to, null rules, missing source', (t) => {
  t.strictSame(
    check(
      file(`  rules:
  - when:
    - {key: request.method, values: [GET]}
    - {key: "request.headers[]", values: [x]}
    - {key: "request.headers[a][b]", values: [x]}
    - {key: "request.auth.claims[a]b", values: [x]}
    - {key: source.ip, values: [10.0.0.256]}
    - {key: destination.port, notValues: ["99999"]}
    - {key: source.principal, values: [sleep]}
    - {key: "request.auth.claims[groups]", values: ["a*b"]}
    - {values: [x]}
  - from: []
    to: []
  -
  - from:
    - {}
    to:
    - operation: null
`),
    ),
    [
      `mesh/authz.yaml:8 AuthorizationPolicy authz: spec.rules[0].when[0].key: unknown key "request.method" (Istio's keys: source.ip, remote.ip, destination.ip, destination.port, source.namespace, source.principal, request.auth.principal, request.auth.audiences, request.auth.presenter, connection.sni, request.headers[...], request.auth.claims[...])`,
      'mesh/authz.yaml:9 AuthorizationPolicy authz: spec.rules[0].when[1].key: "request.headers[]": write request.headers[<header name>]',
      'mesh/authz.yaml:10 AuthorizationPolicy authz: spec.rules[0].when[2].key: "request.headers[a][b]": write request.headers[<header name>]',
      'mesh/authz.yaml:11 AuthorizationPolicy authz: spec.rules[0].when[3].key: "request.auth.claims[a]b": write request.auth.claims[<claim>] or, for a nested claim, request.auth.claims[<claim>][<nested claim>]',
      'mesh/authz.yaml:12 AuthorizationPolicy authz: spec.rules[0].when[4].values[0]: "10.0.0.256" is not an IP address or CIDR range',
      'mesh/authz.yaml:13 AuthorizationPolicy authz: spec.rules[0].when[5].notValues[0]: "99999" is not a port (0..65535)',
      'mesh/authz.yaml:14 AuthorizationPolicy authz: spec.rules[0].when[6].values[0]: "sleep" is not a SPIFFE principal (<trust domain>/ns/<namespace>/sa/<service account>) or *',
      'mesh/authz.yaml:15 AuthorizationPolicy authz: spec.rules[0].when[7].values[0]: "a*b": a wildcard (*) may only be the whole value, a prefix (*suffix) or a suffix (prefix*)',
      'mesh/authz.yaml:16 AuthorizationPolicy authz: spec.rules[0].when[8].key: is required',
      'mesh/authz.yaml:17 AuthorizationPolicy authz: spec.rules[1].from: must not be empty (leave it out to match any)',
      'mesh/authz.yaml:18 AuthorizationPolicy authz: spec.rules[1].to: must not be empty (leave it out to match any)',
      'mesh/authz.yaml:19 AuthorizationPolicy authz: spec.rules[2]: must not be null (write {} for a rule that matches every request)',
      'mesh/authz.yaml:21 AuthorizationPolicy authz: spec.rules[3].from[0].source: is required',
      'mesh/authz.yaml:23 AuthorizationPolicy authz: spec.rules[3].to[0].operation: is required',
    ],
  );
  t.end();
});

t.test('wrong shapes: a spec, rule, source or condition that is not an object', (t) => {
  t.strictSame(check(file('  rules: [x, {from: [{source: y}], when: [z]}]\n')), [
    'mesh/authz.yaml:6 AuthorizationPolicy authz: spec.rules[0]: expected an object, got "x"',
    'mesh/authz.yaml:6 AuthorizationPolicy authz: spec.rules[1].from[0].source: expected an object, got "y"',
    'mesh/authz.yaml:6 AuthorizationPolicy authz: spec.rules[1].when[0]: expected an object, got "z"',
  ]);
  t.strictSame(check({ 'mesh/authz.yaml': 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: [1]\n' }), ['mesh/authz.yaml:4 AuthorizationPolicy a: spec: expected an object, got a list']);
  t.end();
});
