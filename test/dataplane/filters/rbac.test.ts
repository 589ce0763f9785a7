// The rbac filter: enforced rules decide (403 rbac_denied, PERMISSION_DENIED for gRPC), shadow and LOG never deny, one audit line, metrics.
import t from 'tap';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { FakeClock } from '../../../src/core/clock.js';
import { seededRng } from '../../../src/core/rng.js';
import { RequestRecord, type ConnInfo } from '../../../src/dataplane/exchange.js';
import type { FilterRequest } from '../../../src/dataplane/filters/filter.js';
import { buildFilterChain } from '../../../src/dataplane/filters/index.js';
import { RBAC_TYPE_URL, destinationPort, rbacInput } from '../../../src/dataplane/filters/rbac.js';
import { GRPC, renderLocalReply, type LocalReply } from '../../../src/dataplane/local-reply.js';
import type { CompiledRoute } from '../../../src/dataplane/router.js';
import type { Permission, RbacConfig, RbacRules } from '../../../src/model/rbac.js';
import { createMetrics } from '../../../src/telemetry/metrics.js';

const CLIENT = 'spiffe://cluster.local/ns/default/sa/client';
const exact = (value: string) => ({ kind: 'exact' as const, value, ignoreCase: false });
const byPath = (name: string, path: string): RbacRules['policies'][number] => ({ name, permissions: [{ kind: 'url_path', matcher: exact(path) }], principals: [{ kind: 'any' }] });
const cfg = (o: Partial<RbacConfig>): RbacConfig => ({ rules: undefined, shadowRules: undefined, rulesStatPrefix: '', shadowRulesStatPrefix: '', ...o });

function setup(...configs: RbacConfig[]) {
  const registry = new Registry();
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info', base: undefined }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  const chain = buildFilterChain(
    configs.map((c) => ({ name: 'envoy.filters.http.rbac', typeUrl: RBAC_TYPE_URL, optional: false, config: c as unknown as Record<string, unknown> })),
    { listenerName: 'virtualInbound', clock: new FakeClock(), rng: seededRng(1), metrics: createMetrics(registry), logger },
  );
  const counts = async () => {
    const m = (await registry.getSingleMetric('outrigger_rbac_decisions_total')!.get()).values;
    return Object.fromEntries(m.filter((v) => v.value > 0).map((v) => [`${v.labels.action} ${v.labels.policy}`, v.value]));
  };
  return { chain, lines, counts };
}

function request(o: { path?: string; peer?: string; cluster?: string; grpc?: boolean; conn?: Partial<ConnInfo> } = {}): FilterRequest {
  const conn: ConnInfo = { remoteIp: '10.0.0.9', remotePort: 1234, tls: o.peer !== undefined, localIp: '10.0.0.1', localPort: 15006, ...(o.peer !== undefined && { peer: { uri: o.peer } }), ...o.conn };
  const rec = new RequestRecord(0, 0, 'rid-1', 'GET', 'svc', o.path ?? '/', 'HTTP/2', {}, o.grpc ?? false, conn);
  const route = o.cluster === undefined ? undefined : ({ route: { action: { kind: 'route', action: { cluster: o.cluster } } }, virtualHost: 'v' } as unknown as CompiledRoute);
  return { rec, route };
}

t.test('ALLOW: a matching request goes on; any other is 403 rbac_denied with the details and one audit line', async (t) => {
  const { chain, lines, counts } = setup(cfg({ rules: { action: 'ALLOW', policies: [byPath('ns[default]-policy[allow-api]-rule[0]', '/api')] } }));
  t.equal(chain.run(request({ path: '/api?x=1', peer: CLIENT })), undefined);
  t.equal(lines.length, 0, 'an allowed request is not logged');
  const r = chain.run(request({ path: '/admin', peer: CLIENT })) as LocalReply;
  t.match(r, { status: 403, code: 'rbac_denied', message: 'RBAC: access denied', flag: '-', details: 'rbac_access_denied_matched_policy[none]' });
  t.strictSame(JSON.parse(renderLocalReply(r, 'rid-1', false).body), { code: 'rbac_denied', message: 'RBAC: access denied', request_id: 'rid-1' });
  t.equal(renderLocalReply(r, 'rid-1', true).headers['grpc-status'], String(GRPC.PERMISSION_DENIED), 'gRPC callers get PERMISSION_DENIED');
  t.strictSame(lines.map(({ time: _t, level: _l, ...rest }) => rest), [
    { listener: 'virtualInbound', filter: 'envoy.filters.http.rbac', policy: 'none', principal: CLIENT, path: '/admin', decision: 'denied', request_id: 'rid-1', msg: 'rbac' },
  ]);
  t.strictSame(await counts(), { 'allowed ns[default]-policy[allow-api]-rule[0]': 1, 'denied none': 1 });
  t.end();
});

t.test("DENY: the matched policy is named in the details and the log (Istio's name parsed to policy and rule)", async (t) => {
  const { chain, lines, counts } = setup(cfg({ rules: { action: 'DENY', policies: [byPath('ns[foo]-policy[no-admin]-rule[3]', '/admin')] } }));
  const r = chain.run(request({ path: '/admin' })) as LocalReply;
  t.equal(r.details, 'rbac_access_denied_matched_policy[ns[foo]-policy[no-admin]-rule[3]]');
  t.equal(r.message, 'RBAC: access denied by policy foo/no-admin rule 3', 'a matching DENY policy is named to the caller');
  t.match(lines, [{ policy: 'foo/no-admin', rule: 3, principal: null, path: '/admin', decision: 'denied' }]);
  t.equal(chain.run(request({ path: '/ok' })), undefined);
  t.strictSame(await counts(), { 'denied ns[foo]-policy[no-admin]-rule[3]': 1, 'allowed none': 1 });
  t.end();
});

t.test('DENY before ALLOW with two filters in the chain; the first refusal ends the chain', (t) => {
  const deny = cfg({ rules: { action: 'DENY', policies: [byPath('deny-admin', '/admin')] } });
  const allow = cfg({ rules: { action: 'ALLOW', policies: [{ name: 'all-from-client', permissions: [{ kind: 'any' }], principals: [{ kind: 'authenticated', principalName: exact(CLIENT) }] }] } });
  const { chain } = setup(deny, allow);
  t.match(chain.run(request({ path: '/admin', peer: CLIENT })), { details: 'rbac_access_denied_matched_policy[deny-admin]', message: 'RBAC: access denied by policy deny-admin' });
  t.equal(chain.run(request({ path: '/x', peer: CLIENT })), undefined);
  t.match(chain.run(request({ path: '/x', peer: 'spiffe://cluster.local/ns/default/sa/other' })), { details: 'rbac_access_denied_matched_policy[none]', message: 'RBAC: access denied' }, 'no ALLOW policy matched: none to name');
  t.end();
});

t.test('shadow rules and the LOG action never deny; their matches are counted and logged', async (t) => {
  const shadow = { action: 'ALLOW' as const, policies: [byPath('shadow-api', '/api')] };
  const { chain, lines, counts } = setup(cfg({ shadowRules: shadow }), cfg({ rules: { action: 'LOG', policies: [byPath('audit-api', '/api')] } }));
  t.equal(chain.run(request({ path: '/api' })), undefined);
  t.equal(chain.run(request({ path: '/other' })), undefined, 'shadow-denied, still let through');
  t.strictSame(lines.map((l) => [l.policy, l.decision]), [
    ['shadow-api', 'shadow_allowed'],
    ['audit-api', 'logged'],
  ], 'only matches are logged');
  t.strictSame(await counts(), { 'shadow_allowed shadow-api': 1, 'shadow_denied none': 1, 'logged audit-api': 1 });
  t.end();
});

t.test('shadow alongside enforced rules: both evaluated, the enforced decision stands', async (t) => {
  const { chain, counts } = setup(cfg({ rules: { action: 'ALLOW', policies: [byPath('api', '/api')] }, shadowRules: { action: 'DENY', policies: [byPath('shadow-deny-api', '/api')] } }));
  t.equal(chain.run(request({ path: '/api' })), undefined);
  t.strictSame(await counts(), { 'allowed api': 1, 'shadow_denied shadow-deny-api': 1 });
  t.end();
});

t.test('no rules and no shadow rules: the filter does nothing', (t) => {
  const { chain, lines } = setup(cfg({}));
  t.equal(chain.run(request()), undefined);
  t.equal(lines.length, 0);
  t.end();
});

t.test("destination port: the inbound cluster's port, else the connection's local port", (t) => {
  const route = (cluster: string) => request({ cluster }).route;
  t.equal(destinationPort(route('inbound|8080||'), 15006), 8080);
  t.equal(destinationPort(route('inbound|http|x|'), 15006), 15006, 'not a port');
  t.equal(destinationPort(route('outbound|80||svc'), 15001), 15001);
  t.equal(destinationPort(route(''), 15006), 15006, 'weighted clusters name no single port');
  t.equal(destinationPort(undefined, 15006), 15006, 'no route');
  t.equal(destinationPort({ route: { action: { kind: 'redirect' } } } as unknown as CompiledRoute, 9), 9);
  const { chain } = setup(cfg({ rules: { action: 'ALLOW', policies: [{ name: 'p8080', permissions: [{ kind: 'destination_port', port: 8080 } as Permission], principals: [{ kind: 'any' }] }] } }));
  t.equal(chain.run(request({ cluster: 'inbound|8080||' })), undefined);
  t.not(chain.run(request({ cluster: 'inbound|9090||' })), undefined);
  t.end();
});

t.test('the input: addresses, principal (URI SAN, else subject), SNI, metadata', (t) => {
  const req = request({ conn: { tls: true, peer: { subject: 'CN=legacy' }, sni: 'svc.local' } });
  req.rec.dynamicMetadata = { istio_authn: { 'request.auth.principal': 'iss/sub' } };
  t.match(rbacInput(req), { directRemoteIp: '10.0.0.9', remoteIp: '10.0.0.9', destinationIp: '10.0.0.1', destinationPort: 15006, principal: 'CN=legacy', sni: 'svc.local', tls: true, metadata: { istio_authn: { 'request.auth.principal': 'iss/sub' } } });
  t.match(rbacInput(request({ conn: { localIp: undefined, localPort: undefined } })), { destinationIp: '', destinationPort: 0, principal: undefined, tls: false });
  t.end();
});
