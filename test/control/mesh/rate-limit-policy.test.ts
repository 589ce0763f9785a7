// RateLimitPolicy (outrigger.dev/v1alpha1): the rules as written, and every refusal at file:line with its field path.
import t from 'tap';
import { check, doc, valid } from './helpers.js';

const API = 'outrigger.dev/v1alpha1';
const rlp = (body: string, name = 'limits') => doc('RateLimitPolicy', name, body, API);

t.test('a policy with every field reads into the model', (t) => {
  const c = valid({
    'mesh/rl.yaml': rlp(`  workloadSelector: {labels: {app: reviews}}
  rules:
  - name: api
    match:
      path: {prefix: /api}
      method: GET
      headers: {X-Tier: {exact: free}}
      sourcePrincipal: cluster.local/ns/default/sa/frontend
    tokenBucket: {maxTokens: 10, tokensPerFill: 5, fillInterval: 1s}
    shadow: true
  - tokenBucket: {maxTokens: 2, fillInterval: 500ms}
    perKey: {header: X-User}
  - match: {path: {exact: /login}}
    tokenBucket: {maxTokens: 1, fillInterval: 2s}
    perKey: {sourcePrincipal: true}
`),
  });
  t.strictSame(c.rateLimitPolicies.map((p) => ({ ...p, meta: undefined })), [
    {
      kind: 'RateLimitPolicy',
      meta: undefined,
      workloadSelector: { labels: { app: 'reviews' } },
      rules: [
        {
          name: 'api',
          match: { path: { prefix: '/api' }, method: 'GET', headers: { 'x-tier': { exact: 'free' } }, sourcePrincipal: 'cluster.local/ns/default/sa/frontend' },
          tokenBucket: { maxTokens: 10, tokensPerFill: 5, fillIntervalMs: 1000 },
          shadow: true,
        },
        { match: { headers: {} }, tokenBucket: { maxTokens: 2, tokensPerFill: 1, fillIntervalMs: 500 }, perKey: { header: 'x-user' }, shadow: false },
        { match: { path: { exact: '/login' }, headers: {} }, tokenBucket: { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 2000 }, perKey: { sourcePrincipal: true }, shadow: false },
      ],
    },
  ]);
  t.end();
});

t.test('refusals name the file, the line and the field', (t) => {
  t.strictSame(
    check({
      'mesh/rl.yaml': rlp(`  rules:
  - tokenBucket: {maxTokens: 10}
  - tokenBucket: {maxTokens: 0, tokensPerFill: 1.5, fillInterval: 10ms}
  - tokenBucket: {maxTokens: "5", fillInterval: -1s}
    shadow: yes
  - tokenBucket: {maxTokens: 1, fillInterval: 1s, burst: 2}
    match: {path: {exact: /a, prefix: /b}, method: get, sourcePrincipal: spiffe://cluster.local/ns/a/sa/b, headers: {"bad name": {exact: x}}}
    perKey: {header: x, sourcePrincipal: true}
  - tokenBucket: {maxTokens: 1, fillInterval: 1s}
    match: {path: {}, sourcePrincipal: frontend}
    perKey: {sourcePrincipal: false}
  - tokenBucket: {maxTokens: 1, fillInterval: 75ms}
  - tokenBucket: {maxTokens: 1, fillInterval: 1s}
    match: {sourcePrincipal: td/ns/a/sa/b}
    perKey: {sourcePrincipal: true}
    limit: 3
`),
    }),
    [
      'mesh/rl.yaml:7 RateLimitPolicy limits: spec.rules[0].tokenBucket.fillInterval: is required',
      'mesh/rl.yaml:8 RateLimitPolicy limits: spec.rules[1].tokenBucket.maxTokens: must be 1..4294967295',
      'mesh/rl.yaml:8 RateLimitPolicy limits: spec.rules[1].tokenBucket.tokensPerFill: expected an integer, got 1.5',
      "mesh/rl.yaml:8 RateLimitPolicy limits: spec.rules[1].tokenBucket.fillInterval: must be at least 50ms (Envoy's fill timer granularity)",
      'mesh/rl.yaml:9 RateLimitPolicy limits: spec.rules[2].tokenBucket.maxTokens: expected an integer, got "5"',
      'mesh/rl.yaml:9 RateLimitPolicy limits: spec.rules[2].tokenBucket.fillInterval: invalid duration "-1s" (write it as Istio does: 5s, 250ms, 1m30s, 1h)',
      'mesh/rl.yaml:10 RateLimitPolicy limits: spec.rules[2].shadow: expected true or false, got "yes"',
      'mesh/rl.yaml:11 RateLimitPolicy limits: spec.rules[3].tokenBucket.burst: unknown field',
      'mesh/rl.yaml:12 RateLimitPolicy limits: spec.rules[3].match.path: only one of exact, prefix may be set',
      'mesh/rl.yaml:12 RateLimitPolicy limits: spec.rules[3].match.headers["bad name"]: "bad name" is not a header name',
      'mesh/rl.yaml:12 RateLimitPolicy limits: spec.rules[3].match.method: "get" is not an HTTP method (upper case, e.g. GET)',
      'mesh/rl.yaml:12 RateLimitPolicy limits: spec.rules[3].match.sourcePrincipal: write the principal as Istio does, without spiffe:// (cluster.local/ns/a/sa/b)',
      'mesh/rl.yaml:13 RateLimitPolicy limits: spec.rules[3].perKey: only one of header, sourcePrincipal may be set',
      'mesh/rl.yaml:15 RateLimitPolicy limits: spec.rules[4].match.path: one of exact, prefix is required',
      'mesh/rl.yaml:15 RateLimitPolicy limits: spec.rules[4].match.sourcePrincipal: "frontend" is not a principal (<trust domain>/ns/<namespace>/sa/<service account>)',
      'mesh/rl.yaml:16 RateLimitPolicy limits: spec.rules[4].perKey.sourcePrincipal: must be true (leave perKey out for one shared bucket)',
      "mesh/rl.yaml:17 RateLimitPolicy limits: spec.rules[5].tokenBucket.fillInterval: the rules' fill intervals share one Envoy fill timer at their greatest common divisor, which would be 25ms (< 50ms); use multiples of a common interval of at least 50ms",
      'mesh/rl.yaml:20 RateLimitPolicy limits: spec.rules[6].perKey.sourcePrincipal: the rule matches one source principal, so it has one bucket already',
      'mesh/rl.yaml:21 RateLimitPolicy limits: spec.rules[6].limit: unknown field',
    ],
  );
  t.strictSame(check({ 'mesh/rl.yaml': rlp('  rules: []\n  workloadSelector: {labels: {app: x}, namespace: y}\n') }), [
    'mesh/rl.yaml:6 RateLimitPolicy limits: spec.rules: at least one rule is required',
    'mesh/rl.yaml:7 RateLimitPolicy limits: spec.workloadSelector.namespace: unknown field',
  ]);
  t.strictSame(check({ 'mesh/rl.yaml': rlp('  workloadSelector: {}\n') }), ['mesh/rl.yaml:5 RateLimitPolicy limits: spec.rules: is required']);
  t.strictSame(check({ 'mesh/rl.yaml': doc('RateLimitPolicy', 'x', '  rules: [{tokenBucket: {maxTokens: 1, fillInterval: 1s}}]\n') }), [
    'mesh/rl.yaml:1 RateLimitPolicy x: apiVersion: unknown apiVersion "networking.istio.io/v1" (expected outrigger.dev/v1alpha1)',
  ]);
  t.match(check({ 'mesh/rl.yaml': doc('constructor', 'x', '  a: 1\n', API) }), [/unknown apiVersion "outrigger.dev\/v1alpha1" \(expected networking.istio.io/, /kind: unknown kind "constructor"/], 'a kind named like an Object member is just unknown');
  t.end();
});
