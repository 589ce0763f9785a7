// RouteConfiguration and matcher decoders: match kinds, header matchers, RE2, domains, actions and their refusals.
import t from 'tap';
import { ROUTE_CONFIGURATION_TYPE_URL } from '../../src/xds/protos.js';
import { routeClusterRefs } from '../../src/xds/resources/route.js';
import { problems, viaJson } from './helpers.js';

const decode = (json: unknown) => viaJson(ROUTE_CONFIGURATION_TYPE_URL, json);
const withRoutes = (routes: object[], domains: string[] = ['*']) => ({ name: 'rc', virtual_hosts: [{ name: 'vh', domains, routes }] });
const routeProblems = (...routes: object[]) => problems(decode(withRoutes(routes)));
const R = 'virtual_hosts[0].routes';
const to = { cluster: 'c' };

t.test('route matches, header matchers and actions decode to the model', (t) => {
  const r = decode(
    withRoutes([
      {
        name: 'api',
        match: {
          path: '/api',
          case_sensitive: false,
          headers: [
            { name: 'content-type', string_match: { prefix: 'application/grpc', ignore_case: true } },
            { name: 'x-debug', present_match: false },
            { name: 'x-a', exact_match: 'a' },
            { name: 'x-b', prefix_match: 'b' },
            { name: 'x-c', suffix_match: 'c' },
            { name: 'x-d', contains_match: 'd', invert_match: true },
            { name: 'x-e', safe_regex_match: { regex: '[0-9]+' } },
            { name: 'x-f' },
            { name: 'x-g', string_match: { safe_regex: { google_re2: {}, regex: 'v\\d' } } },
          ],
        },
        route: { cluster: 'api', timeout: '0s', prefix_rewrite: '/v2', host_rewrite_literal: 'api.internal' },
      },
      { match: { safe_regex: { regex: '/users/[^/]+' } }, direct_response: { status: 204 } },
      { match: { prefix: '' }, direct_response: { status: 503, body: { inline_string: 'down' } } },
    ]),
  );
  const s = (kind: string, value: string, ignoreCase = false) => ({ kind: 'string', matcher: { kind, value, ignoreCase } });
  t.strictSame(r.ok && r.value.virtualHosts[0]!.routes, [
    {
      name: 'api',
      match: {
        path: { kind: 'path', value: '/api' },
        caseSensitive: false,
        headers: [
          { name: 'content-type', match: s('prefix', 'application/grpc', true), invert: false },
          { name: 'x-debug', match: { kind: 'present', present: false }, invert: false },
          { name: 'x-a', match: s('exact', 'a'), invert: false },
          { name: 'x-b', match: s('prefix', 'b'), invert: false },
          { name: 'x-c', match: s('suffix', 'c'), invert: false },
          { name: 'x-d', match: s('contains', 'd'), invert: true },
          { name: 'x-e', match: { kind: 'string', matcher: { kind: 'regex', regex: '[0-9]+', ignoreCase: false } }, invert: false },
          { name: 'x-f', match: { kind: 'present', present: true }, invert: false },
          { name: 'x-g', match: { kind: 'string', matcher: { kind: 'regex', regex: 'v\\d', ignoreCase: false } }, invert: false },
        ],
      },
      action: { kind: 'route', action: { cluster: 'api', timeoutMs: 0, hashPolicy: [], prefixRewrite: '/v2', hostRewriteLiteral: 'api.internal' } },
    },
    { name: '', match: { path: { kind: 'regex', regex: '/users/[^/]+' }, caseSensitive: true, headers: [] }, action: { kind: 'direct_response', status: 204 } },
    { name: '', match: { path: { kind: 'prefix', value: '' }, caseSensitive: true, headers: [] }, action: { kind: 'direct_response', status: 503, body: 'down' } },
  ]);
  t.end();
});

t.test('domains follow Envoy: one wildcard at the start or end, unique across virtual hosts', (t) => {
  const ok = decode({ virtual_hosts: [{ name: 'a', domains: ['*.a.com', 'a.*', '*-b.a.com', 'A.com:80'] }, { name: 'b', domains: ['*'] }] });
  t.match(ok, { ok: true, value: { name: '', virtualHosts: [{ domains: ['*.a.com', 'a.*', '*-b.a.com', 'A.com:80'], routes: [] }, { domains: ['*'] }] } });
  t.strictSame(problems(decode({ virtual_hosts: [{ name: 'a', domains: ['', 'a*b.com', '*.a.*', 'x.com', 'X.com'] }, { name: 'a', domains: ['x.COM'] }, { name: 'c' }, { domains: ['y'] }] })), [
    'virtual_hosts[0].domains[0]: must not be empty',
    'virtual_hosts[0].domains[1]: "a*b.com": the wildcard must be at the start or the end',
    'virtual_hosts[0].domains[2]: "*.a.*": only one wildcard is allowed',
    'virtual_hosts[2].domains: at least one domain is required',
    'virtual_hosts[3].name: is required',
    'virtual_hosts[0].domains[4]: duplicate domain "X.com" (also in virtual_hosts[0])',
    'virtual_hosts[1].name: duplicate virtual host name "a" (also virtual_hosts[0])',
    'virtual_hosts[1].domains[0]: duplicate domain "x.COM" (also in virtual_hosts[0])',
  ]);
  t.strictSame(problems(decode({ virtual_hosts: [], vhds: {}, request_headers_to_add: [] })), ["vhds: field 'vhds' is not supported"]);
  t.end();
});

t.test('routes need a match and an action from the supported set', (t) => {
  t.strictSame(routeProblems({ route: to }, { match: { prefix: '/' } }), [`${R}[0].match: is required`, `${R}[1]: one of route, direct_response, redirect is required`]);
  t.strictSame(routeProblems({ match: { prefix: '/' }, filter_action: {} }), [`${R}[0].filter_action: field 'filter_action' is not supported`]);
  t.strictSame(routeProblems({ match: {}, route: to }, { match: { connect_matcher: {} }, route: to }, { match: { prefix: '/', grpc: {} }, route: to }), [
    `${R}[0].match: one of prefix, path, safe_regex is required`,
    `${R}[1].match.connect_matcher: field 'connect_matcher' is not supported`,
    `${R}[2].match.grpc: field 'grpc' is not supported`,
  ]);
  t.strictSame(routeProblems({ match: { prefix: '/' }, route: { cluster_header: 'x-cluster' } }, { match: { prefix: '/' }, route: {} }), [
    `${R}[0].route.cluster_header: field 'cluster_header' is not supported`,
    `${R}[1].route: one of cluster, weighted_clusters is required`,
  ]);
  t.strictSame(routeProblems({ match: { prefix: '/' }, route: { cluster: 'c', timeout: '-1s', idle_timeout: '1s' } }), [
    `${R}[0].route.idle_timeout: field 'idle_timeout' is not supported`,
    `${R}[0].route.timeout: must not be negative`,
  ]);
  t.strictSame(routeProblems({ match: { prefix: '/' }, direct_response: { status: 600, body: { filename: '/etc/x' } } }, { match: { prefix: '/' }, direct_response: {} }), [
    `${R}[0].direct_response.status: 600 is not an HTTP status in [200, 600)`,
    `${R}[0].direct_response.body.filename: field 'filename' is not supported`,
    `${R}[1].direct_response.status: 0 is not an HTTP status in [200, 600)`,
  ]);
  t.end();
});

t.test('safe_regex is RE2: what RE2 rejects is rejected with its reason', (t) => {
  const bad = (regex: string) => routeProblems({ match: { safe_regex: { regex } }, route: to });
  t.strictSame(bad('(?=lookahead)'), [`${R}[0].match.safe_regex.regex: invalid RE2 regex "(?=lookahead)": invalid perl operator: (?=`]);
  t.strictSame(bad('(a)\\1'), [`${R}[0].match.safe_regex.regex: invalid RE2 regex "(a)\\\\1": invalid escape sequence: \\1`]);
  t.match(bad('a{1001}'), [/invalid repetition size/]);
  t.match(bad('/a/(b'), [/invalid RE2 regex "\/a\/\(b": missing \): \/a\/\(b$/]);
  t.strictSame(bad('a)|(b'), [`${R}[0].match.safe_regex.regex: invalid RE2 regex "a)|(b": unexpected ): a)|(b`], 'cannot escape the anchors it is wrapped in');
  t.strictSame(routeProblems({ match: { safe_regex: { regex: '' } }, route: to }), [`${R}[0].match.safe_regex.regex: is required`]);
  t.strictSame(routeProblems({ match: { safe_regex: { regex: 'a', google_re2: { max_program_size: 100 } } }, route: to }), [
    `${R}[0].match.safe_regex.google_re2.max_program_size: field 'max_program_size' is not supported`,
  ]);
  t.end();
});

t.test('string and header matchers: required parts, Envoy length rules, unsupported kinds', (t) => {
  const header = (h: object) => routeProblems({ match: { prefix: '/', headers: [h] }, route: to });
  const H = `${R}[0].match.headers[0]`;
  t.strictSame(header({ string_match: { exact: '' } }), [`${H}.name: is required`]);
  t.strictSame(header({ name: 'a', string_match: {} }), [`${H}.string_match: one of exact, prefix, suffix, contains, safe_regex is required`]);
  t.strictSame(header({ name: 'a', string_match: { ignore_case: true } }), [`${H}.string_match: one of exact, prefix, suffix, contains, safe_regex is required`]);
  t.strictSame(header({ name: 'a', string_match: { suffix: '' } }), [`${H}.string_match.suffix: must not be empty`]);
  t.strictSame(header({ name: 'a', string_match: { custom: { name: 'x' } } }), [`${H}.string_match.custom: field 'custom' is not supported`]);
  t.strictSame(header({ name: 'a', string_match: { safe_regex: { regex: 'x' }, ignore_case: true } }), [`${H}.string_match.ignore_case: has no effect on safe_regex (use (?i) in the regex)`]);
  t.strictSame(header({ name: 'a', string_match: { safe_regex: { regex: '(' } } }), [`${H}.string_match.safe_regex.regex: invalid RE2 regex "(": missing ): (`]);
  t.strictSame(header({ name: 'a', safe_regex_match: { regex: '[' } }), [`${H}.safe_regex_match.regex: invalid RE2 regex "[": missing ]: [`]);
  t.strictSame(header({ name: 'a', prefix_match: '' }), [`${H}.prefix_match: must not be empty`]);
  t.strictSame(header({ name: 'a', range_match: { start: 1, end: 2 }, treat_missing_header_as_empty: true }), [
    `${H}.range_match: field 'range_match' is not supported`,
    `${H}.treat_missing_header_as_empty: field 'treat_missing_header_as_empty' is not supported`,
  ]);
  t.end();
});

t.test('weighted_clusters: one cluster per request by weight; names required, weights not all 0, no total_weight', (t) => {
  const split = { match: { prefix: '/' }, route: { weighted_clusters: { clusters: [{ name: 'v1', weight: 90 }, { name: 'v3', weight: 10 }, { name: 'off' }] }, timeout: '0s' } };
  const r = decode(withRoutes([split]));
  t.match(r, { ok: true, value: { virtualHosts: [{ routes: [{ action: { kind: 'route', action: { cluster: '', timeoutMs: 0, weightedClusters: [{ name: 'v1', weight: 90 }, { name: 'v3', weight: 10 }, { name: 'off', weight: 0 }] } } }] }] } });
  if (r.ok) {
    t.strictSame(
      routeClusterRefs(r.value, 'rc').map((x) => x.path),
      [0, 1, 2].map((i) => `rc.virtual_hosts[0].routes[0].route.weighted_clusters.clusters[${i}].name`),
      'every weighted cluster is a reference the bootstrap checks',
    );
  }
  const wc = (clusters: object[], extra: object = {}) => ({ match: { prefix: '/' }, route: { weighted_clusters: { clusters, ...extra } } });
  t.strictSame(routeProblems(wc([]), wc([{ name: 'a' }, { name: 'b', weight: 0 }]), wc([{ weight: 1 }]), wc([{ name: 'a', weight: 1, cluster_header: 'x' }], { total_weight: 1 })), [
    `${R}[0].route.weighted_clusters.clusters: at least one cluster is required`,
    `${R}[1].route.weighted_clusters.clusters: the weights must not all be 0`,
    `${R}[2].route.weighted_clusters.clusters[0].name: is required`,
    `${R}[3].route.weighted_clusters.total_weight: field 'total_weight' is not supported`,
    `${R}[3].route.weighted_clusters.clusters[0].cluster_header: field 'cluster_header' is not supported`,
  ]);
  t.end();
});

t.test('hash_policy: header, cookie, source IP and query parameter, in order, with terminal', (t) => {
  const hashed = (hash_policy: object[]) => decode(withRoutes([{ match: { prefix: '/' }, route: { cluster: 'c', hash_policy } }]));
  const r = hashed([
    { header: { header_name: 'X-User' }, terminal: true },
    { cookie: { name: 'session', ttl: '3600s', path: '/app' } },
    { cookie: { name: 'sticky', ttl: '0s' } },
    { cookie: { name: 'plain' } },
    { connection_properties: { source_ip: true } },
    { connection_properties: {} },
    { query_parameter: { name: 'user' }, terminal: true },
  ]);
  const action = r.ok && r.value.virtualHosts[0]!.routes[0]!.action;
  t.strictSame(action && action.kind === 'route' && action.action.hashPolicy, [
    // Envoy looks the header up by its lowercased name.
    { kind: 'header', headerName: 'x-user', terminal: true },
    { kind: 'cookie', name: 'session', ttlMs: 3_600_000, path: '/app', terminal: false },
    // ttl 0s is set: Envoy generates a session cookie; no ttl means it never generates one.
    { kind: 'cookie', name: 'sticky', ttlMs: 0, terminal: false },
    { kind: 'cookie', name: 'plain', terminal: false },
    { kind: 'source_ip', terminal: false },
    // connection_properties with source_ip false yields no hash in Envoy: left out.
    { kind: 'query_parameter', name: 'user', terminal: true },
  ]);
  const P = `${R}[0].route.hash_policy`;
  t.strictSame(
    problems(
      hashed([
        { filter_state: { key: 'k' } },
        {},
        { header: { header_name: '', regex_rewrite: { pattern: { regex: 'a' }, substitution: 'b' } } },
        { header: { header_name: 'x\ny' } },
        { cookie: { ttl: '-1s', attributes: [{ name: 'SameSite', value: 'Lax' }] } },
        { query_parameter: {} },
      ]),
    ),
    [
      `${P}[0].filter_state: field 'filter_state' is not supported`,
      `${P}[1]: one of header, cookie, connection_properties, query_parameter is required`,
      `${P}[2].header.regex_rewrite: field 'regex_rewrite' is not supported`,
      `${P}[2].header.header_name: is required`,
      `${P}[3].header.header_name: "x\\ny" is not a valid header name`,
      `${P}[4].cookie.attributes: field 'attributes' is not supported`,
      `${P}[4].cookie.name: is required`,
      `${P}[4].cookie.ttl: must not be negative`,
      `${P}[5].query_parameter.name: is required`,
    ],
  );
  // policy_specifier is a oneof: two kinds in one entry never reach the decoder.
  t.strictSame(problems(hashed([{ connection_properties: { source_ip: true }, header: { header_name: 'x' } }])), [
    `${P}[0].header: only one of 'connection_properties' and 'header' may be set (oneof policy_specifier)`,
  ]);
  t.end();
});

const actionOf = (route: object) => {
  const r = decode(withRoutes([route]));
  return r.ok ? r.value.virtualHosts[0]!.routes[0]! : undefined;
};

t.test('query_parameters, redirect, regex_rewrite and header mutations decode to the model', (t) => {
  const r = actionOf({
    match: { prefix: '/', query_parameters: [{ name: 'v', string_match: { exact: '2' } }, { name: 'debug' }, { name: 'p', present_match: true }] },
    route: { cluster: 'c', regex_rewrite: { pattern: { regex: '^/a/(\\d+)$' }, substitution: '/b/\\1' } },
    request_headers_to_add: [
      { header: { key: 'X-Set', value: 'one' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { header: { key: 'x-add', value: '50%% off' } },
      { header: { key: 'x-old', value: 'v' }, append: false },
      { header: { key: 'x-old2', value: 'v' }, append: true },
    ],
    request_headers_to_remove: ['X-Gone'],
    response_headers_to_add: [{ header: { key: 'x-r', value: 'r' }, append_action: 'ADD_IF_ABSENT' }],
    response_headers_to_remove: ['server'],
  });
  t.strictSame(r?.match.queryParameters, [
    { name: 'v', match: { kind: 'string', matcher: { kind: 'exact', value: '2', ignoreCase: false } } },
    { name: 'debug', match: { kind: 'present' } },
    { name: 'p', match: { kind: 'present' } },
  ]);
  t.match(r?.action, { kind: 'route', action: { regexRewrite: { regex: '^/a/(\\d+)$', substitution: '/b/\\1' } } });
  t.strictSame(r?.headers, {
    requestHeadersToAdd: [
      { name: 'x-set', value: 'one', appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { name: 'x-add', value: '50% off', appendAction: 'APPEND_IF_EXISTS_OR_ADD' },
      { name: 'x-old', value: 'v', appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { name: 'x-old2', value: 'v', appendAction: 'APPEND_IF_EXISTS_OR_ADD' },
    ],
    requestHeadersToRemove: ['x-gone'],
    responseHeadersToAdd: [{ name: 'x-r', value: 'r', appendAction: 'ADD_IF_ABSENT' }],
    responseHeadersToRemove: ['server'],
  });
  t.equal(actionOf({ match: { prefix: '/' }, route: to })?.headers, undefined, 'no mutations: no headers field');
  t.strictSame(actionOf({ match: { prefix: '/' }, redirect: { https_redirect: true, host_redirect: 'b.example', port_redirect: 8443, path_redirect: '/n', response_code: 'PERMANENT_REDIRECT', strip_query: true } })?.action, {
    kind: 'redirect',
    redirect: { scheme: 'https', host: 'b.example', port: 8443, path: '/n', status: 308, stripQuery: true },
  });
  t.strictSame(actionOf({ match: { prefix: '/' }, redirect: { scheme_redirect: 'HTTP' } })?.action, { kind: 'redirect', redirect: { scheme: 'http', status: 301, stripQuery: false } });
  const split = actionOf({
    match: { prefix: '/' },
    route: { weighted_clusters: { clusters: [{ name: 'a', weight: 1, response_headers_to_add: [{ header: { key: 'x-v', value: 'a' } }] }, { name: 'b', weight: 1 }] } },
  });
  t.match(split?.action, { action: { weightedClusters: [{ name: 'a', headers: { responseHeadersToAdd: [{ name: 'x-v', value: 'a' }] } }, { name: 'b' }] } });
  t.end();
});

t.test('bad redirects, rewrites, query matchers and header mutations are refused by field path', (t) => {
  t.strictSame(
    routeProblems(
      { match: { prefix: '/', query_parameters: [{ string_match: { exact: 'a' } }, { name: 'x', present_match: false }, { name: 'y', string_match: { safe_regex: { regex: 'a)|(b' } } }] }, route: to },
      { match: { prefix: '/' }, redirect: { port_redirect: 70000, path_redirect: 'a\nb' } },
      { match: { prefix: '/' }, route: { cluster: 'c', prefix_rewrite: '/', regex_rewrite: { pattern: { regex: '(?<=a)b' }, substitution: '' } } },
      { match: { prefix: '/' }, route: { cluster: 'c', regex_rewrite: { substitution: 'x' } } },
      {
        match: { prefix: '/' },
        route: to,
        request_headers_to_add: [{ header: { key: ':path', value: '/' } }, { header: { key: 'Host', value: 'h' } }, { header: { key: 'x', value: '%REQ(:path)%' } }, {}, { header: { key: 'y', value: 'a\rb', raw_value: 'eA==' }, append: true, append_action: 'ADD_IF_ABSENT' }],
        response_headers_to_remove: ['', 'a b'],
      },
    ),
    [
      `${R}[0].match.query_parameters[0].name: is required`,
      `${R}[0].match.query_parameters[1].present_match: false is not supported (it can only be true)`,
      `${R}[0].match.query_parameters[2].string_match.safe_regex.regex: invalid RE2 regex "a)|(b": unexpected ): a)|(b`,
      `${R}[1].redirect.port_redirect: 70000 is not a port`,
      `${R}[1].redirect.path_redirect: must not contain NUL, CR or LF`,
      `${R}[2].route.regex_rewrite.pattern.regex: invalid RE2 regex "(?<=a)b": invalid perl operator: (?<`,
      `${R}[2].route.regex_rewrite: cannot be set together with prefix_rewrite`,
      `${R}[3].route.regex_rewrite.pattern: is required`,
      `${R}[4].request_headers_to_add[0].header.key: ":path": pseudo-headers and host cannot be modified (use host_rewrite_literal)`,
      `${R}[4].request_headers_to_add[1].header.key: "Host": pseudo-headers and host cannot be modified (use host_rewrite_literal)`,
      `${R}[4].request_headers_to_add[2].header.value: "%REQ(:path)%": command operators (%...%) are not supported; write %% for a literal %`,
      `${R}[4].request_headers_to_add[3].header: is required`,
      `${R}[4].request_headers_to_add[3].header.key: "" is not a valid header name`,
      `${R}[4].request_headers_to_add[4].header.raw_value: field 'raw_value' is not supported`,
      `${R}[4].request_headers_to_add[4].header.value: must not contain NUL, CR or LF`,
      `${R}[4].request_headers_to_add[4]: only one of append, append_action may be set`,
      `${R}[4].response_headers_to_remove[0]: "" is not a valid header name`,
      `${R}[4].response_headers_to_remove[1]: "a b" is not a valid header name`,
    ],
  );
  // The proto layer refuses what the proto itself forbids, before the decoder runs.
  t.match(routeProblems({ match: { prefix: '/' }, redirect: { scheme_redirect: 'http', https_redirect: true } }), [/only one of 'scheme_redirect' and 'https_redirect'/]);
  t.match(routeProblems({ match: { prefix: '/' }, redirect: { response_code: 'MULTIPLE_CHOICES' } }), [/not a valid RedirectResponseCode/]);
  t.strictSame(routeProblems({ match: { prefix: '/' }, redirect: { prefix_rewrite: '/' } }), [`${R}[0].redirect.prefix_rewrite: field 'prefix_rewrite' is not supported`]);
  t.end();
});
