// The RBAC filter decoder: every Permission and Principal kind istiod emits, and every refusal by field path.
import t from 'tap';
import { LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL } from '../../../src/xds/protos.js';
import { ROUTER, hcm, listener, problems, viaJson } from '../helpers.js';

const RBAC_URL = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
const F = 'filter_chains[0].filters[0].typed_config.http_filters[0].typed_config';
const rbacFilter = (cfg: Record<string, unknown>) => ({ name: 'envoy.filters.http.rbac', typed_config: { '@type': RBAC_URL, ...cfg } });
const decode = (cfg: Record<string, unknown>) => viaJson(LISTENER_TYPE_URL, listener({ hcm: hcm({ http_filters: [rbacFilter(cfg), ROUTER] }) }));
const configOf = (cfg: Record<string, unknown>) => {
  const r = decode(cfg);
  if (!r.ok) throw new Error(problems(r).join('\n'));
  return r.value.filterChain.hcm.httpFilters[0]!.config;
};
const policy = (permissions: object[], principals: object[] = [{ any: true }]) => ({ permissions, principals });
const oneRule = (perm: object, princ: object = { any: true }) => ({ rules: { policies: { p: policy([perm], [princ]) } } });
const sm = { exact: 'x' };

t.test('every Permission kind decodes into the model', (t) => {
  const perms = [
    { any: true },
    { and_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'GET' } } }, { url_path: { path: { prefix: '/api/', ignore_case: true } } }] } },
    { or_rules: { rules: [{ destination_port: 8080 }, { destination_port_range: { start: 9000, end: 9100 } }] } },
    { not_rule: { destination_ip: { address_prefix: '10.0.0.0', prefix_len: 8 } } },
    { metadata: { filter: 'istio_authn', path: [{ key: 'request.auth.claims' }, { key: 'groups' }], value: { list_match: { one_of: { string_match: { exact: 'admin' } } } }, invert: true } },
    { requested_server_name: { suffix: '.local' } },
    { header: { name: ':authority', present_match: true, invert_match: true } },
  ];
  const cfg = configOf({ rules: { action: 'DENY', policies: { b: policy(perms), a: policy([{ any: true }]) } }, rules_stat_prefix: 'r.', shadow_rules_stat_prefix: 's.' });
  t.strictSame(cfg, {
    rules: {
      action: 'DENY',
      policies: [
        { name: 'a', permissions: [{ kind: 'any' }], principals: [{ kind: 'any' }] },
        {
          name: 'b',
          permissions: [
            { kind: 'any' },
            {
              kind: 'and',
              rules: [
                { kind: 'header', matcher: { name: ':method', match: { kind: 'string', matcher: { kind: 'exact', value: 'GET', ignoreCase: false } }, invert: false } },
                { kind: 'url_path', matcher: { kind: 'prefix', value: '/api/', ignoreCase: true } },
              ],
            },
            { kind: 'or', rules: [{ kind: 'destination_port', port: 8080 }, { kind: 'destination_port_range', start: 9000, end: 9100 }] },
            { kind: 'not', rule: { kind: 'destination_ip', cidr: { addressPrefix: '10.0.0.0', prefixLen: 8 } } },
            {
              kind: 'metadata',
              matcher: { filter: 'istio_authn', path: ['request.auth.claims', 'groups'], value: { kind: 'list_one_of', matcher: { kind: 'string', matcher: { kind: 'exact', value: 'admin', ignoreCase: false } } }, invert: true },
            },
            { kind: 'requested_server_name', matcher: { kind: 'suffix', value: '.local', ignoreCase: false } },
            { kind: 'header', matcher: { name: ':authority', match: { kind: 'present', present: true }, invert: true } },
          ],
          principals: [{ kind: 'any' }],
        },
      ],
    },
    shadowRules: undefined,
    rulesStatPrefix: 'r.',
    shadowRulesStatPrefix: 's.',
  }, 'policies come out in name order, as Envoy evaluates its std::map');
  t.end();
});

t.test('every Principal kind decodes into the model', (t) => {
  const ids = [
    { any: true },
    { and_ids: { ids: [{ authenticated: { principal_name: { exact: 'spiffe://td/ns/a/sa/b' } } }, { authenticated: {} }] } },
    { or_ids: { ids: [{ source_ip: { address_prefix: '1.2.3.4', prefix_len: 32 } }, { direct_remote_ip: { address_prefix: '2001:db8::', prefix_len: 32 } }] } },
    { not_id: { remote_ip: { address_prefix: '192.168.0.0', prefix_len: 16 } } },
    { header: { name: 'x-user', safe_regex_match: { regex: 'a.*' } } },
    { url_path: { path: { exact: '/x' } } },
    { metadata: { filter: 'istio_authn', path: [{ key: 'request.auth.principal' }], value: { string_match: { exact: 'iss/sub' } } } },
  ];
  const cfg = configOf({ shadow_rules: { action: 'LOG', policies: { p: policy([{ any: true }], ids) } } });
  t.strictSame((cfg as { shadowRules: { policies: { principals: unknown }[] } }).shadowRules.policies[0]!.principals, [
    { kind: 'any' },
    { kind: 'and', rules: [{ kind: 'authenticated', principalName: { kind: 'exact', value: 'spiffe://td/ns/a/sa/b', ignoreCase: false } }, { kind: 'authenticated', principalName: undefined }] },
    { kind: 'or', rules: [{ kind: 'direct_remote_ip', cidr: { addressPrefix: '1.2.3.4', prefixLen: 32 } }, { kind: 'direct_remote_ip', cidr: { addressPrefix: '2001:db8::', prefixLen: 32 } }] },
    { kind: 'not', rule: { kind: 'remote_ip', cidr: { addressPrefix: '192.168.0.0', prefixLen: 16 } } },
    { kind: 'header', matcher: { name: 'x-user', match: { kind: 'string', matcher: { kind: 'regex', regex: 'a.*', ignoreCase: false } }, invert: false } },
    { kind: 'url_path', matcher: { kind: 'exact', value: '/x', ignoreCase: false } },
    { kind: 'metadata', matcher: { filter: 'istio_authn', path: ['request.auth.principal'], value: { kind: 'string', matcher: { kind: 'exact', value: 'iss/sub', ignoreCase: false } }, invert: false } },
  ]);
  t.match(cfg, { rules: undefined, rulesStatPrefix: '' }, 'no rules: the filter enforces nothing');
  t.strictSame(configOf({ rules: {} }), { rules: { action: 'ALLOW', policies: [] }, shadowRules: undefined, rulesStatPrefix: '', shadowRulesStatPrefix: '' }, 'ALLOW by default, no policies');
  t.end();
});

t.test('every ValueMatcher kind decodes', (t) => {
  const vm = (value: object) => oneRule({ metadata: { filter: 'f', path: [{ key: 'k' }], value } });
  const valueOf = (value: object) => (configOf(vm(value)) as { rules: { policies: { permissions: { matcher: { value: unknown } }[] }[] } }).rules.policies[0]!.permissions[0]!.matcher.value;
  t.strictSame(valueOf({ null_match: {} }), { kind: 'null' });
  t.match(configOf(oneRule({ destination_ip: { address_prefix: '10.1.2.3' } })), { rules: { policies: [{ permissions: [{ cidr: { addressPrefix: '10.1.2.3', prefixLen: 0 } }] }] } }, 'prefix_len unset is 0, as in Envoy');
  t.strictSame(valueOf({ double_match: { exact: 1.5 } }), { kind: 'double', exact: 1.5 });
  t.strictSame(valueOf({ double_match: { range: { start: 1, end: 2 } } }), { kind: 'double_range', start: 1, end: 2 });
  t.strictSame(valueOf({ bool_match: true }), { kind: 'bool', value: true });
  t.strictSame(valueOf({ bool_match: false }), { kind: 'bool', value: false });
  t.strictSame(valueOf({ present_match: true }), { kind: 'present', present: true });
  t.end();
});

t.test('refusals name the field path', (t) => {
  const P = `${F}.rules.policies["p"]`;
  const cases: [Record<string, unknown>, string[]][] = [
    [{ rules: { policies: { p: { ...policy([{ any: true }]), condition: { id: 1 } } } } }, [`${P}.condition: CEL conditions are not supported; a policy that cannot be evaluated in full is refused`]],
    [{ matcher: {} }, [`${F}.matcher: the generic matcher API is not supported; use the RBAC rule fields`]],
    [{ shadow_matcher: {} }, [`${F}.shadow_matcher: the generic matcher API is not supported; use shadow_rules`]],
    [{ rules: { policies: { p: policy([]) } } }, [`${P}.permissions: at least one permission is required`]],
    [{ rules: { policies: { p: policy([{ any: true }], []) } } }, [`${P}.principals: at least one principal is required`]],
    [oneRule({}), [`${P}.permissions[0]: one of and_rules, or_rules, any, header, url_path, destination_ip, destination_port, destination_port_range, metadata, not_rule, requested_server_name is required`]],
    [oneRule({ any: true }, {}), [`${P}.principals[0]: one of and_ids, or_ids, any, authenticated, source_ip, direct_remote_ip, remote_ip, header, url_path, metadata, not_id is required`]],
    [oneRule({ any: false }), [`${P}.permissions[0].any: must be true`]],
    [oneRule({ uri_template: {} }), [`${P}.permissions[0].uri_template: uri_template is not supported; use url_path`]],
    [oneRule({ any: true }, { filter_state: { key: 'k', string_match: sm } }), [`${P}.principals[0].filter_state: filter_state matching is not supported`]],
    [oneRule({ and_rules: { rules: [] } }), [`${P}.permissions[0].and_rules.rules: at least one entry is required`]],
    [oneRule({ any: true }, { or_ids: { ids: [] } }), [`${P}.principals[0].or_ids.ids: at least one entry is required`]],
    [oneRule({ destination_ip: { address_prefix: '10.0.0.300', prefix_len: 8 } }), [`${P}.permissions[0].destination_ip.address_prefix: "10.0.0.300" is not an IPv4 or IPv6 address`]],
    [oneRule({ any: true }, { remote_ip: { address_prefix: '10.0.0.0', prefix_len: 33 } }), [`${P}.principals[0].remote_ip.prefix_len: 33 is above 32 for an IPv4 address`]],
    [oneRule({ any: true }, { direct_remote_ip: { address_prefix: '::1', prefix_len: 129 } }), [`${P}.principals[0].direct_remote_ip.prefix_len: 129 is above 128 for an IPv6 address`]],
    [oneRule({ destination_ip: { prefix_len: 8 } }), [`${P}.permissions[0].destination_ip.address_prefix: is required`]],
    [oneRule({ destination_port: 70000 }), [`${P}.permissions[0].destination_port: 70000 is above 65535`]],
    [oneRule({ destination_port_range: { start: 10, end: 5 } }), [`${P}.permissions[0].destination_port_range: start 10 is above end 5`]],
    [oneRule({ url_path: {} }), [`${P}.permissions[0].url_path.path: is required`]],
    [oneRule({ url_path: { path: { safe_regex: { regex: '(' } } } }), [`${P}.permissions[0].url_path.path.safe_regex.regex: invalid RE2 regex "(": missing ): (`]],
    [oneRule({ header: { name: 'x', string_match: { prefix: '' } } }), [`${P}.permissions[0].header.string_match.prefix: must not be empty`]],
    [oneRule({ metadata: { filter: 'f', path: [], value: { present_match: true } } }), [`${P}.permissions[0].metadata.path: at least one path segment is required`]],
    [oneRule({ metadata: { filter: 'f', path: [{ key: 'k' }] } }), [`${P}.permissions[0].metadata.value: is required`]],
    [oneRule({ metadata: { filter: 'f', path: [{ key: 'k' }], value: {} } }), [`${P}.permissions[0].metadata.value: one of null_match, double_match, string_match, bool_match, present_match, list_match is required`]],
    [oneRule({ metadata: { filter: 'f', path: [{ key: 'k' }], value: { list_match: {} } } }), [`${P}.permissions[0].metadata.value.list_match.one_of: is required`]],
    [oneRule({ metadata: { filter: 'f', path: [{ key: 'k' }], value: { double_match: { range: { start: 2, end: 1 } } } } }), [`${P}.permissions[0].metadata.value.double_match.range: start 2 must be below end 1`]],
    [oneRule({ metadata: { filter: 'f', path: [{ key: 'k' }], value: { double_match: {} } } }), [`${P}.permissions[0].metadata.value.double_match: one of range, exact is required`]],
    [oneRule({ metadata: { filter: 'f', path: [{ key: 'k' }], value: { or_match: { value_matchers: [] } } } }), [`${P}.permissions[0].metadata.value.or_match: field 'or_match' is not supported`]],
    [oneRule({ any: true }, { authenticated: { principal_name: { prefix: '' } } }), [`${P}.principals[0].authenticated.principal_name.prefix: must not be empty`]],
  ];
  for (const [cfg, want] of cases) {
    t.strictSame(problems(decode(cfg)), want, JSON.stringify(cfg));
  }
  t.end();
});

t.test('an unknown action and an RBACPerRoute on a route are refused', (t) => {
  t.match(problems(decode({ rules: { action: 'CUSTOM', policies: {} } })), [/action/], 'CUSTOM is not an RBAC action');
  const route = viaJson(ROUTE_CONFIGURATION_TYPE_URL, {
    name: 'rc',
    virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' }, typed_per_filter_config: { 'envoy.filters.http.rbac': { '@type': `${RBAC_URL}PerRoute`, rbac: {} } } }] }],
  });
  t.strictSame(problems(route), [
    `virtual_hosts[0].routes[0].typed_per_filter_config["envoy.filters.http.rbac"]: no HTTP filter takes ${RBAC_URL}PerRoute as per-route config (wrap it in a FilterConfig with is_optional: true to skip it)`,
  ]);
  t.end();
});
