// AuthorizationPolicy decisions as Istio documents them, through the real chain: mesh YAML -> loader -> our RBAC
// translation -> Envoy proto bytes -> the sidecar's xDS decoder -> the RBAC evaluator, filter by filter (AUDIT logs,
// DENY then ALLOW). References: istio.io/latest/docs/reference/config/security/authorization-policy/ ("ref"),
// .../security/conditions/ ("conditions"), and the tasks under docs/tasks/security/authorization/ ("task").
import t from 'tap';
import { valid } from '../mesh/helpers.js';
import { translate } from '../../../src/control/translate/index.js';
import type { RbacConfig } from '../../../src/model/rbac.js';
import { RBAC_TYPE_URL } from '../../../src/model/rbac.js';
import { compileRbac, type RbacInput } from '../../../src/policy/rbac.js';
import { LISTENER_TYPE_URL } from '../../../src/xds/protos.js';
import { OPTS, decodeAll, node, type NodeOpts } from './helpers.js';

const SLEEP = 'spiffe://cluster.local/ns/default/sa/sleep';

/** The request as the sidecar's RBAC filter sees it; jwt = what jwt_authn puts under istio_authn. */
interface Req {
  readonly method?: string;
  readonly path?: string;
  readonly host?: string;
  readonly port?: number;
  readonly headers?: Record<string, string>;
  /** The peer's SPIFFE ID; null = a plaintext request (no client certificate). */
  readonly principal?: string | null;
  readonly ip?: string;
  readonly remoteIp?: string;
  readonly destinationIp?: string;
  readonly sni?: string;
  readonly jwt?: { iss: string; sub: string; aud?: string; azp?: string; claims?: Record<string, unknown> };
}

function input(r: Req): RbacInput {
  const jwt = r.jwt;
  const principal = r.principal === null ? undefined : (r.principal ?? SLEEP);
  return {
    method: r.method ?? 'GET',
    path: r.path ?? '/',
    authority: r.host ?? 'httpbin.default',
    headers: r.headers ?? {},
    directRemoteIp: r.ip ?? '10.0.0.5',
    remoteIp: r.remoteIp ?? r.ip ?? '10.0.0.5',
    destinationIp: r.destinationIp ?? '10.0.0.1',
    destinationPort: r.port ?? 9080,
    principal,
    tls: principal !== undefined,
    sni: r.sni ?? 'outbound_.9080_._.frontend.default.svc.cluster.local',
    // The shared contract: principal `iss/sub`, first audience, presenter, claims as lists of strings (objects kept).
    metadata: jwt && {
      istio_authn: {
        'request.auth.principal': `${jwt.iss}/${jwt.sub}`,
        ...(jwt.aud !== undefined && { 'request.auth.audiences': jwt.aud }),
        ...(jwt.azp !== undefined && { 'request.auth.presenter': jwt.azp }),
        'request.auth.claims': { iss: [jwt.iss], sub: [jwt.sub], ...jwt.claims },
      },
    },
  };
}

/** One AuthorizationPolicy document: `spec` in flow or block style (already indented by two spaces when block). */
const ap = (name: string, spec: string, o: { ns?: string } = {}) =>
  `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ${name}\n  namespace: ${o.ns ?? 'default'}\nspec: ${spec}\n`;

interface Decision {
  readonly allowed: boolean;
  /** The policy a DENY or ALLOW filter reported (the 403's matched policy), if any. */
  readonly policy?: string;
  /** Policies that matched in the AUDIT (LOG) filter. */
  readonly audited: readonly string[];
}

/** The inbound chain's RBAC filters in order, as the sidecar runs them: the first refusal stops the request. */
function decide(docs: readonly string[], req: Req, n: NodeOpts = {}): Decision {
  const mesh = valid({ 'mesh/authz.yaml': docs.length > 0 ? docs.join('---\n') : '# none\n', 'mesh/base.yaml': 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: unrelated, namespace: elsewhere}\nspec: {}\n' });
  const listener = decodeAll(translate(mesh, node(n), OPTS), LISTENER_TYPE_URL).get('virtualInbound')!;
  const audited: string[] = [];
  for (const f of listener.filterChain.hcm.httpFilters) {
    if (f.typeUrl !== RBAC_TYPE_URL) continue;
    const rules = (f.config as unknown as RbacConfig).rules!;
    const d = compileRbac(rules).evaluate(input(req));
    if (rules.action === 'LOG') {
      if (d.matchedPolicy) audited.push(d.matchedPolicy);
    } else if (!d.allowed) return { allowed: false, ...(d.matchedPolicy && { policy: d.matchedPolicy }), audited };
  }
  return { allowed: true, audited };
}

interface Case {
  readonly name: string;
  readonly docs: readonly string[];
  readonly req: Req;
  readonly allowed: boolean;
  readonly policy?: string;
  readonly audited?: readonly string[];
  readonly node?: NodeOpts;
}

const allowFrom = (source: string) => ap('allow', `{rules: [{from: [{source: ${source}}]}]}`);
const allowTo = (operation: string) => ap('allow', `{rules: [{to: [{operation: ${operation}}]}]}`);
const allowWhen = (conds: string) => ap('allow', `{rules: [{when: ${conds}}]}`);
const denyTo = (operation: string) => ap('deny', `{action: DENY, rules: [{to: [{operation: ${operation}}]}]}`);
const DENY0 = 'ns[default]-policy[deny]-rule[0]';
const jwt = (claims: Record<string, unknown> = {}, o: { aud?: string; azp?: string } = {}) => ({ iss: 'https://accounts.example.com', sub: 'alice', ...o, claims });

const CASES: Case[] = [
  // Precedence and the empty forms (ref: "allow-nothing", "deny-all", "allow-all" examples; ref: evaluation order).
  { name: 'no policy applies: allow', docs: [], req: {}, allowed: true },
  { name: 'ref allow-nothing: `spec: {}` denies every request', docs: [ap('allow-nothing', '{}')], req: {}, allowed: false },
  { name: 'ref allow-all: `rules: [{}]` allows every request', docs: [ap('allow-all', '{rules: [{}]}')], req: { principal: null }, allowed: true },
  { name: 'ref deny-all: DENY with `rules: [{}]` denies every request', docs: [ap('deny', '{action: DENY, rules: [{}]}')], req: {}, allowed: false, policy: DENY0 },
  { name: 'a DENY policy without rules matches nothing (and is no ALLOW policy): allow', docs: [ap('deny', '{action: DENY}')], req: {}, allowed: true },
  { name: 'DENY wins over an ALLOW matching the same request', docs: [ap('allow-all', '{rules: [{}]}'), denyTo('{methods: [GET]}')], req: {}, allowed: false, policy: DENY0 },
  { name: 'no DENY match, an ALLOW policy applies and matches: allow', docs: [allowTo('{methods: [GET]}'), denyTo('{methods: [DELETE]}')], req: {}, allowed: true },
  { name: 'ALLOW policies apply but none matches: deny', docs: [allowTo('{methods: [POST]}'), ap('allow2', '{rules: [{to: [{operation: {paths: [/x]}}]}]}')], req: {}, allowed: false },
  { name: 'any one of several ALLOW policies matching is enough', docs: [allowTo('{methods: [POST]}'), ap('allow2', '{rules: [{to: [{operation: {paths: [/]}}]}]}')], req: {}, allowed: true },
  { name: 'AUDIT only logs: the request is allowed and the audit match recorded', docs: [ap('audit', '{action: AUDIT, rules: [{to: [{operation: {paths: ["/data/*"]}}]}]}')], req: { path: '/data/x' }, allowed: true, audited: ['ns[default]-policy[audit]-rule[0]'] },
  { name: 'AUDIT is no ALLOW policy: with only AUDIT policies a non-matching request is allowed', docs: [ap('audit', '{action: AUDIT, rules: [{to: [{operation: {paths: ["/data/*"]}}]}]}')], req: { path: '/other' }, allowed: true, audited: [] },

  // Selection: root namespace, namespace, selector (ref: "selector", "root namespace").
  { name: 'a root-namespace (istio-system) DENY applies mesh-wide', docs: [ap('deny', '{action: DENY, rules: [{}]}', { ns: 'istio-system' })], req: {}, allowed: false, policy: 'ns[istio-system]-policy[deny]-rule[0]' },
  { name: 'another namespace\'s allow-nothing does not apply', docs: [ap('allow-nothing', '{}', { ns: 'other' })], req: {}, allowed: true },
  { name: 'a selector that does not match the workload: the policy does not apply', docs: [ap('allow-nothing', '{selector: {matchLabels: {app: reviews}}}')], req: {}, allowed: true },
  { name: 'a selector that matches the workload: the policy applies', docs: [ap('allow-nothing', '{selector: {matchLabels: {app: frontend}}}')], req: {}, allowed: false },

  // from.source
  { name: 'ref: principals allow cluster.local/ns/default/sa/sleep', docs: [allowFrom('{principals: [cluster.local/ns/default/sa/sleep]}')], req: {}, allowed: true },
  { name: 'principals: another identity is denied', docs: [allowFrom('{principals: [cluster.local/ns/default/sa/sleep]}')], req: { principal: 'spiffe://cluster.local/ns/default/sa/other' }, allowed: false },
  { name: 'principals: prefix form cluster.local/ns/default/*', docs: [allowFrom('{principals: ["cluster.local/ns/default/*"]}')], req: {}, allowed: true },
  { name: 'principals: suffix form */sa/sleep', docs: [allowFrom('{principals: ["*/sa/sleep"]}')], req: { principal: 'spiffe://other.td/ns/x/sa/sleep' }, allowed: true },
  { name: 'ref: principals ["*"] requires mTLS: a plaintext request is denied', docs: [allowFrom('{principals: ["*"]}')], req: { principal: null }, allowed: false },
  { name: 'notPrincipals: the excluded caller is denied', docs: [allowFrom('{notPrincipals: [cluster.local/ns/default/sa/sleep]}')], req: {}, allowed: false },
  { name: 'namespaces: a caller of the namespace is allowed', docs: [allowFrom('{namespaces: [default]}')], req: {}, allowed: true },
  { name: 'namespaces: a caller of another namespace is denied', docs: [allowFrom('{namespaces: [test]}')], req: {}, allowed: false },
  { name: 'task deny: DENY notNamespaces [foo] refuses callers from elsewhere', docs: [ap('deny', '{action: DENY, rules: [{from: [{source: {notNamespaces: [foo]}}]}]}')], req: {}, allowed: false, policy: DENY0 },
  { name: 'ipBlocks: a CIDR containing the peer address', docs: [allowFrom('{ipBlocks: [10.0.0.0/24]}')], req: {}, allowed: true },
  { name: 'ipBlocks: a peer outside the CIDR', docs: [allowFrom('{ipBlocks: [10.1.0.0/16]}')], req: {}, allowed: false },
  { name: 'notIpBlocks: DENY everyone outside 10.0.0.0/8', docs: [ap('deny', '{action: DENY, rules: [{from: [{source: {notIpBlocks: [10.0.0.0/8]}}]}]}')], req: { ip: '192.168.1.1' }, allowed: false, policy: DENY0 },
  { name: 'remoteIpBlocks match the original client (remote_ip), not the direct peer', docs: [allowFrom('{remoteIpBlocks: [203.0.113.0/24]}')], req: { ip: '10.0.0.5', remoteIp: '203.0.113.7' }, allowed: true },
  { name: 'notRemoteIpBlocks: DENY all but the client range', docs: [ap('deny', '{action: DENY, rules: [{from: [{source: {notRemoteIpBlocks: [203.0.113.0/24]}}]}]}')], req: { remoteIp: '198.51.100.1' }, allowed: false, policy: DENY0 },
  { name: 'task jwt: requestPrincipals ["*"] allows a request with a valid JWT', docs: [allowFrom('{requestPrincipals: ["*"]}')], req: { jwt: jwt() }, allowed: true },
  { name: 'task jwt: requestPrincipals ["*"] denies a request without a JWT', docs: [allowFrom('{requestPrincipals: ["*"]}')], req: {}, allowed: false },
  { name: 'requestPrincipals: exact iss/sub', docs: [allowFrom('{requestPrincipals: [https://accounts.example.com/alice]}')], req: { jwt: jwt() }, allowed: true },
  { name: 'requestPrincipals: another subject is denied', docs: [allowFrom('{requestPrincipals: [https://accounts.example.com/bob]}')], req: { jwt: jwt() }, allowed: false },
  { name: 'ref: DENY notRequestPrincipals ["*"] refuses requests without a JWT', docs: [ap('deny', '{action: DENY, rules: [{from: [{source: {notRequestPrincipals: ["*"]}}]}]}')], req: {}, allowed: false, policy: DENY0 },
  { name: 'DENY notRequestPrincipals ["*"] lets a request with a JWT through', docs: [ap('deny', '{action: DENY, rules: [{from: [{source: {notRequestPrincipals: ["*"]}}]}]}')], req: { jwt: jwt() }, allowed: true },
  { name: 'fields of one source are ANDed: principal right, IP wrong', docs: [allowFrom('{principals: [cluster.local/ns/default/sa/sleep], ipBlocks: [10.9.0.0/16]}')], req: {}, allowed: false },
  { name: 'from entries are ORed: the second source matches', docs: [ap('allow', '{rules: [{from: [{source: {namespaces: [x]}}, {source: {ipBlocks: [10.0.0.5]}}]}]}')], req: {}, allowed: true },

  // to.operation
  { name: 'hosts: exact and case-insensitive', docs: [allowTo('{hosts: [httpbin.default]}')], req: { host: 'HTTPBIN.Default' }, allowed: true },
  { name: 'hosts: an exact host does not match the host with a port (Istio: write host:*)', docs: [allowTo('{hosts: [httpbin.default]}')], req: { host: 'httpbin.default:9080' }, allowed: false },
  { name: 'hosts: host:* matches any port', docs: [allowTo('{hosts: ["httpbin.default:*"]}')], req: { host: 'httpbin.default:9080' }, allowed: true },
  { name: 'hosts: suffix *.example.com', docs: [allowTo('{hosts: ["*.example.com"]}')], req: { host: 'api.example.com' }, allowed: true },
  { name: 'notHosts: DENY all hosts but one', docs: [denyTo('{notHosts: [httpbin.default]}')], req: { host: 'evil.example' }, allowed: false, policy: DENY0 },
  { name: 'ref: methods GET allowed', docs: [allowTo('{methods: [GET, HEAD]}')], req: {}, allowed: true },
  { name: 'methods: DELETE is not listed: denied', docs: [allowTo('{methods: [GET, HEAD]}')], req: { method: 'DELETE' }, allowed: false },
  { name: 'notMethods: all but GET', docs: [allowTo('{notMethods: [GET]}')], req: { method: 'POST' }, allowed: true },
  { name: 'paths: exact, ignoring the query string', docs: [allowTo('{paths: [/info]}')], req: { path: '/info?x=1' }, allowed: true },
  { name: 'paths: exact does not match a longer path', docs: [allowTo('{paths: [/info]}')], req: { path: '/info/more' }, allowed: false },
  { name: 'ref: paths prefix /api/*', docs: [allowTo('{paths: ["/api/*"]}')], req: { path: '/api/v1/users' }, allowed: true },
  { name: 'paths: suffix *.png', docs: [allowTo('{paths: ["*.png"]}')], req: { path: '/img/logo.png' }, allowed: true },
  { name: 'paths: presence * matches any non-empty path', docs: [allowTo('{paths: ["*"]}')], req: { path: '/anything' }, allowed: true },
  { name: 'task deny: DENY paths /admin/* refuses /admin/users', docs: [denyTo('{paths: ["/admin/*"]}')], req: { path: '/admin/users' }, allowed: false, policy: DENY0 },
  { name: 'notPaths in an ALLOW: everything but /admin/*', docs: [allowTo('{notPaths: ["/admin/*"]}')], req: { path: '/admin/x' }, allowed: false },
  { name: 'ports: the destination port is listed', docs: [allowTo('{ports: ["9080"]}')], req: {}, allowed: true },
  { name: 'notPorts: the destination port is excluded', docs: [allowTo('{notPorts: ["9080"]}')], req: {}, allowed: false },
  { name: 'to entries are ORed; fields within one are ANDed', docs: [allowTo('{methods: [POST], paths: [/]}'), ap('allow2', '{rules: [{to: [{operation: {methods: [PUT]}}, {operation: {paths: ["/x*"]}}]}]}')], req: { path: '/xyz' }, allowed: true },

  // when (conditions reference)
  { name: 'task jwt: request.auth.claims[groups] contains group1', docs: [allowWhen('[{key: "request.auth.claims[groups]", values: [group1]}]')], req: { jwt: jwt({ groups: ['group1', 'group2'] }) }, allowed: true },
  { name: 'request.auth.claims[groups] without the group: denied', docs: [allowWhen('[{key: "request.auth.claims[groups]", values: [group1]}]')], req: { jwt: jwt({ groups: ['group2'] }) }, allowed: false },
  { name: 'nested claims: request.auth.claims[realm_access][roles]', docs: [allowWhen('[{key: "request.auth.claims[realm_access][roles]", values: [admin]}]')], req: { jwt: jwt({ realm_access: { roles: ['admin'] } }) }, allowed: true },
  { name: 'claims notValues: DENY guests', docs: [ap('deny', '{action: DENY, rules: [{when: [{key: "request.auth.claims[role]", values: [guest]}]}]}')], req: { jwt: jwt({ role: ['guest'] }) }, allowed: false, policy: DENY0 },
  { name: 'request.headers[version] values v1', docs: [allowWhen('[{key: "request.headers[version]", values: [v1, v2]}]')], req: { headers: { version: 'v2' } }, allowed: true },
  { name: 'request.headers notValues', docs: [allowWhen('[{key: "request.headers[x-env]", notValues: [prod]}]')], req: { headers: { 'x-env': 'prod' } }, allowed: false },
  { name: 'source.ip', docs: [allowWhen('[{key: source.ip, values: [10.0.0.0/8]}]')], req: {}, allowed: true },
  { name: 'remote.ip', docs: [allowWhen('[{key: remote.ip, values: [10.0.0.0/8]}]')], req: { remoteIp: '172.16.0.1' }, allowed: false },
  { name: 'source.namespace', docs: [allowWhen('[{key: source.namespace, values: [default]}]')], req: {}, allowed: true },
  { name: 'source.principal', docs: [allowWhen('[{key: source.principal, values: [cluster.local/ns/default/sa/sleep]}]')], req: { principal: 'spiffe://cluster.local/ns/default/sa/x' }, allowed: false },
  { name: 'request.auth.principal', docs: [allowWhen('[{key: request.auth.principal, values: [https://accounts.example.com/alice]}]')], req: { jwt: jwt() }, allowed: true },
  { name: 'request.auth.audiences', docs: [allowWhen('[{key: request.auth.audiences, values: [bookstore]}]')], req: { jwt: jwt({}, { aud: 'bookstore' }) }, allowed: true },
  { name: 'request.auth.presenter', docs: [allowWhen('[{key: request.auth.presenter, values: [web-app]}]')], req: { jwt: jwt({}, { azp: 'cli' }) }, allowed: false },
  { name: 'destination.ip', docs: [allowWhen('[{key: destination.ip, values: [10.0.0.1]}]')], req: {}, allowed: true },
  { name: 'destination.port notValues', docs: [ap('deny', '{action: DENY, rules: [{when: [{key: destination.port, notValues: ["9080"]}]}]}')], req: { port: 8080 }, allowed: false, policy: DENY0 },
  { name: 'connection.sni', docs: [allowWhen('[{key: connection.sni, values: ["*.frontend.default.svc.cluster.local"]}]')], req: {}, allowed: true },
  { name: 'when conditions are ANDed', docs: [allowWhen('[{key: source.namespace, values: [default]}, {key: "request.headers[x-a]", values: ["1"]}]')], req: {}, allowed: false },
  {
    name: 'the three actions together: AUDIT logs, DENY refuses /admin, ALLOW admits sleep',
    docs: [ap('audit', '{action: AUDIT, rules: [{}]}'), denyTo('{paths: ["/admin*"]}'), allowFrom('{principals: [cluster.local/ns/default/sa/sleep]}')],
    req: { path: '/admin' },
    allowed: false,
    policy: DENY0,
    audited: ['ns[default]-policy[audit]-rule[0]'],
  },
];

t.test(`${CASES.length} decisions, each as Istio documents it`, async (t) => {
  t.ok(CASES.length >= 40);
  for (const c of CASES) {
    const d = decide(c.docs, c.req, c.node);
    t.equal(d.allowed, c.allowed, `${c.name}: ${c.allowed ? 'allow' : 'deny'}`);
    if (c.policy !== undefined) t.equal(d.policy, c.policy, `${c.name}: reported policy`);
    if (c.audited !== undefined) t.strictSame(d.audited, c.audited, `${c.name}: audited`);
  }
});
