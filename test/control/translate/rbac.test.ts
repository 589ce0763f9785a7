// AuthorizationPolicy -> RBAC filters: istiod's proto shapes (names, principals, permissions, not_*), selection and order.
import t from 'tap';
import type { AuthorizationPolicy, MeshConfig } from '../../../src/control/mesh/types.js';
import { valid } from '../mesh/helpers.js';
import { translate } from '../../../src/control/translate/index.js';
import { meshIndex } from '../../../src/control/translate/mesh-index.js';
import { RBAC_TYPE_URL, inboundRbacFilters, stringMatcher } from '../../../src/control/translate/rbac.js';
import type { NodeCtx } from '../../../src/control/translate/common.js';
import { LISTENER_TYPE_URL, lookupType } from '../../../src/xds/protos.js';
import { OPTS, TD, bookinfo, node, type NodeOpts } from './helpers.js';

/** `body` as AuthorizationPolicy documents (each a full YAML document, `---`-separated) through the real loader. */
export function policies(yaml: string): readonly AuthorizationPolicy[] {
  return valid({ 'mesh/authz.yaml': yaml }).authorizationPolicies ?? [];
}

export const ap = (name: string, spec: string, namespace = 'default') =>
  `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\nspec:\n${spec.endsWith('\n') ? spec : `${spec}\n`}`;

function ctx(mesh: MeshConfig, o: NodeOpts & { root?: string } = {}): NodeCtx {
  const n = node(o);
  return { mesh: meshIndex(mesh), caller: { kind: n.kind, namespace: n.namespace }, node: n, trustDomain: TD, domainSuffix: OPTS.domainSuffix, ...(o.root && { rootNamespace: o.root }) };
}

type Filter = { name: string; typed_config: { '@type': string; rules: { action: string; policies: Record<string, { permissions: unknown[]; principals: unknown[] }> } } };
const filtersOf = (yaml: string, o?: NodeOpts & { root?: string }) => inboundRbacFilters(ctx(bookinfo({ authorizationPolicies: policies(yaml) }), o)) as Filter[];

t.test('principals, namespaces, ip blocks, request principals and operations in istiod shapes', (t) => {
  const [f] = filtersOf(
    ap(
      'httpbin',
      `  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep", "spiffe://cluster.local/ns/x/sa/y"]
        notNamespaces: ["dev*"]
        ipBlocks: ["10.0.0.0/8"]
        remoteIpBlocks: ["2001:db8::1"]
        requestPrincipals: ["https://issuer/*"]
    to:
    - operation:
        hosts: ["Example.com", "*.example.org"]
        methods: ["GET"]
        notPaths: ["/admin/*"]
        ports: ["8080"]
    when:
    - key: request.auth.claims[groups][admin]
      values: ["yes"]
    - key: destination.port
      notValues: ["9090"]
`,
    ),
  );
  t.equal(f!.name, 'envoy.filters.http.rbac');
  t.equal(f!.typed_config['@type'], RBAC_TYPE_URL);
  t.equal(f!.typed_config.rules.action, 'ALLOW');
  t.strictSame(Object.keys(f!.typed_config.rules.policies), ['ns[default]-policy[httpbin]-rule[0]']);
  const p = f!.typed_config.rules.policies['ns[default]-policy[httpbin]-rule[0]']!;
  t.strictSame(p.permissions, [
    {
      and_rules: {
        rules: [
          { or_rules: { rules: [{ header: { name: ':authority', string_match: { exact: 'Example.com', ignore_case: true } } }, { header: { name: ':authority', string_match: { suffix: '.example.org', ignore_case: true } } }] } },
          { or_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'GET' } } }] } },
          { not_rule: { or_rules: { rules: [{ url_path: { path: { prefix: '/admin/' } } }] } } },
          { or_rules: { rules: [{ destination_port: 8080 }] } },
          { not_rule: { or_rules: { rules: [{ destination_port: 9090 }] } } },
        ],
      },
    },
  ]);
  t.strictSame(p.principals, [
    {
      and_ids: {
        ids: [
          { or_ids: { ids: [{ authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/default/sa/sleep' } } }, { authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/x/sa/y' } } }] } },
          { or_ids: { ids: [{ metadata: { filter: 'istio_authn', path: [{ key: 'request.auth.principal' }], value: { string_match: { prefix: 'https://issuer/' } } } }] } },
          { not_id: { or_ids: { ids: [{ authenticated: { principal_name: { safe_regex: { regex: '.*/ns/dev.*/.*' } } } }] } } },
          { or_ids: { ids: [{ remote_ip: { address_prefix: '2001:db8::1', prefix_len: 128 } }] } },
          { or_ids: { ids: [{ direct_remote_ip: { address_prefix: '10.0.0.0', prefix_len: 8 } }] } },
          {
            or_ids: {
              ids: [{ metadata: { filter: 'istio_authn', path: [{ key: 'request.auth.claims' }, { key: 'groups' }, { key: 'admin' }], value: { list_match: { one_of: { string_match: { exact: 'yes' } } } } } }],
            },
          },
        ],
      },
    },
  ]);
  t.end();
});

t.test('when keys on each side; from/to lists are ORed, rules: [{}] is any/any', (t) => {
  const [f] = filtersOf(
    ap(
      'w',
      `  action: DENY
  rules:
  - from:
    - source: {namespaces: [a]}
    - source: {notPrincipals: ["*"]}
    to:
    - operation: {methods: ["*"]}
    - operation: {paths: ["*.png", "/exact", "*"]}
    when:
    - {key: "request.headers[X-Tenant]", values: ["*", "acme*"]}
    - {key: source.ip, values: [10.1.2.3]}
    - {key: remote.ip, values: [10.0.0.0/16]}
    - {key: source.namespace, values: ["prod-*"]}
    - {key: source.principal, values: ["*/sa/admin"]}
    - {key: request.auth.principal, values: [iss/sub]}
    - {key: request.auth.audiences, values: [aud1]}
    - {key: request.auth.presenter, values: [azp1]}
    - {key: destination.ip, values: [192.168.0.0/24]}
    - {key: connection.sni, values: ["*.svc"]}
  - {}
`,
    ),
  );
  t.equal(f!.typed_config.rules.action, 'DENY');
  const pol = f!.typed_config.rules.policies;
  t.strictSame(pol['ns[default]-policy[w]-rule[1]'], { permissions: [{ and_rules: { rules: [{ any: true }] } }], principals: [{ and_ids: { ids: [{ any: true }] } }] });
  const p = pol['ns[default]-policy[w]-rule[0]']!;
  const whenPerm = [
    { or_rules: { rules: [{ destination_ip: { address_prefix: '192.168.0.0', prefix_len: 24 } }] } },
    { or_rules: { rules: [{ requested_server_name: { suffix: '.svc' } }] } },
  ];
  t.strictSame(p.permissions, [
    { and_rules: { rules: [{ or_rules: { rules: [{ header: { name: ':method', present_match: true } }] } }, ...whenPerm] } },
    { and_rules: { rules: [{ or_rules: { rules: [{ url_path: { path: { suffix: '.png' } } }, { url_path: { path: { exact: '/exact' } } }, { url_path: { path: { safe_regex: { regex: '.+' } } } }] } }, ...whenPerm] } },
  ]);
  const authn = (key: string, string_match: object) => ({ or_ids: { ids: [{ metadata: { filter: 'istio_authn', path: [{ key }], value: { string_match } } }] } });
  const whenIds = [
    { or_ids: { ids: [{ header: { name: 'x-tenant', present_match: true } }, { header: { name: 'x-tenant', string_match: { prefix: 'acme' } } }] } },
    { or_ids: { ids: [{ direct_remote_ip: { address_prefix: '10.1.2.3', prefix_len: 32 } }] } },
    { or_ids: { ids: [{ remote_ip: { address_prefix: '10.0.0.0', prefix_len: 16 } }] } },
    { or_ids: { ids: [{ authenticated: { principal_name: { safe_regex: { regex: '.*/ns/prod-.*/.*' } } } }] } },
    { or_ids: { ids: [{ authenticated: { principal_name: { safe_regex: { regex: 'spiffe://.*/sa/admin' } } } }] } },
    authn('request.auth.principal', { exact: 'iss/sub' }),
    authn('request.auth.audiences', { exact: 'aud1' }),
    authn('request.auth.presenter', { exact: 'azp1' }),
  ];
  t.strictSame(p.principals, [
    { and_ids: { ids: [{ or_ids: { ids: [{ authenticated: { principal_name: { safe_regex: { regex: '.*/ns/a/.*' } } } }] } }, ...whenIds] } },
    { and_ids: { ids: [{ not_id: { or_ids: { ids: [{ authenticated: { principal_name: { safe_regex: { regex: '.+' } } } }] } } }, ...whenIds] } },
  ]);
  t.end();
});

t.test('istiod StringMatcherWithPrefix forms', (t) => {
  t.strictSame(stringMatcher('*', 'spiffe://'), { safe_regex: { regex: '.+' } });
  t.strictSame(stringMatcher('cluster.local/ns/a/*', 'spiffe://'), { prefix: 'spiffe://cluster.local/ns/a/' });
  t.strictSame(stringMatcher('*.local/ns/a/sa/b', 'spiffe://'), { safe_regex: { regex: 'spiffe://.*\\.local/ns/a/sa/b' } });
  t.strictSame(stringMatcher('x'), { exact: 'x' });
  t.end();
});

t.test('selection (namespace, root namespace, selector), filter order AUDIT -> DENY -> ALLOW, empty rules', (t) => {
  const yaml = [
    ap('allow-nothing', '  {}'),
    ap('deny-none', '  action: DENY\n  rules: []'),
    ap('audit', '  action: AUDIT\n  rules:\n  - to:\n    - operation: {paths: [/audit]}'),
    ap('mesh-wide', '  action: DENY\n  rules:\n  - from:\n    - source: {namespaces: [evil]}', 'istio-system'),
    ap('other-ns', '  rules:\n  - {}', 'other'),
    ap('reviews-only', '  selector:\n    matchLabels: {app: reviews}\n  rules:\n  - {}'),
    ap('frontend-only', '  selector:\n    matchLabels: {app: frontend}\n  action: DENY\n  rules:\n  - to:\n    - operation: {methods: [DELETE]}'),
  ].join('---\n');
  const fs = filtersOf(yaml);
  t.strictSame(
    fs.map((f) => [f.typed_config.rules.action, Object.keys(f.typed_config.rules.policies)]),
    [
      ['LOG', ['ns[default]-policy[audit]-rule[0]']],
      ['DENY', ['ns[default]-policy[frontend-only]-rule[0]', 'ns[istio-system]-policy[mesh-wide]-rule[0]']],
      ['ALLOW', []],
    ],
    'the allow-nothing policy leaves an ALLOW filter matching nothing; the DENY policy without rules adds no policy',
  );
  const custom = filtersOf(yaml, { root: 'mesh-root' });
  t.strictSame(
    custom.map((f) => Object.keys(f.typed_config.rules.policies)),
    [['ns[default]-policy[audit]-rule[0]'], ['ns[default]-policy[frontend-only]-rule[0]'], []],
    'with another root namespace, istio-system is just a namespace',
  );
  const reviews = filtersOf(yaml, { labels: { app: 'reviews' } });
  t.strictSame(reviews.map((f) => Object.keys(f.typed_config.rules.policies).length), [1, 1, 1]);
  t.strictSame(filtersOf(ap('x', '  {}', 'other')), [], 'no policy applies: no filter at all');
  t.end();
});

t.test('the listener carries the RBAC filters before local_ratelimit and the router, encoded as Envoy protos', (t) => {
  const mesh = bookinfo({
    authorizationPolicies: policies(ap('deny-admin', '  action: DENY\n  rules:\n  - to:\n    - operation: {paths: ["/admin*"]}')),
    rateLimitPolicies: [{ kind: 'RateLimitPolicy', meta: { name: 'rl', namespace: 'default', file: 'x', line: 1 }, rules: [{ match: { headers: {} }, tokenBucket: { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 1000 }, shadow: false }] }],
  });
  const s = translate(mesh, node(), OPTS);
  const bytes = s.resources.get(LISTENER_TYPE_URL)!.get('virtualInbound')!;
  const listener = lookupType('envoy.config.listener.v3.Listener')!;
  const json = listener.toObject(listener.decode(bytes)) as { filter_chains: { filters: { typed_config: { value: Uint8Array; type_url: string } }[] }[] };
  const hcmAny = json.filter_chains[0]!.filters[0]!.typed_config;
  const hcmType = lookupType('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager')!;
  const hcm = hcmType.toObject(hcmType.decode(hcmAny.value)) as { http_filters: { name: string; typed_config: { type_url: string; value: Uint8Array } }[] };
  t.strictSame(
    hcm.http_filters.map((f) => f.typed_config.type_url),
    [RBAC_TYPE_URL, 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit', 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router'],
  );
  const rbacType = lookupType('envoy.extensions.filters.http.rbac.v3.RBAC')!;
  const rbac = rbacType.toObject(rbacType.decode(hcm.http_filters[0]!.typed_config.value), { enums: String }) as { rules: { action: string; policies: Record<string, unknown> } };
  t.equal(rbac.rules.action, 'DENY');
  t.match(rbac.rules.policies['ns[default]-policy[deny-admin]-rule[0]'], { permissions: [{ and_rules: { rules: [{ or_rules: { rules: [{ url_path: { path: { prefix: '/admin' } } }] } }] } }] });
  t.end();
});
