// The local_ratelimit decoder, the route rate_limits actions, and the filter order, by field path.
import t from 'tap';
import { LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL } from '../../../src/xds/protos.js';
import { ROUTER, hcm, listener, problems, viaJson } from '../helpers.js';

const RL_URL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const EXPR_URL = 'type.googleapis.com/envoy.extensions.rate_limit_descriptors.expr.v3.Descriptor';
const F = 'filter_chains[0].filters[0].typed_config.http_filters';
const bucket = (max = 3, fill = '1s', perFill?: number) => ({ max_tokens: max, fill_interval: fill, ...(perFill !== undefined && { tokens_per_fill: perFill }) });
const rl = (extra: Record<string, unknown> = {}) => ({ name: 'envoy.filters.http.local_ratelimit', typed_config: { '@type': RL_URL, stat_prefix: 'rl', token_bucket: bucket(), ...extra } });
const decodeFilters = (filters: object[]) => viaJson(LISTENER_TYPE_URL, listener({ hcm: hcm({ http_filters: filters }) }));
const filterProblems = (filters: object[]) => problems(decodeFilters(filters));

t.test('a full LocalRateLimit decodes with Envoy defaults', (t) => {
  const r = decodeFilters([
    rl({
      filter_enabled: { runtime_key: 'rl_enabled', default_value: { numerator: 100 } },
      filter_enforced: { default_value: { numerator: 5000, denominator: 'TEN_THOUSAND' } },
      response_headers_to_add: [{ header: { key: 'X-Limited', value: 'yes' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
      descriptors: [
        { entries: [{ key: 'rule', value: 'a' }], token_bucket: bucket(1, '2s', 1) },
        { entries: [{ key: 'user' }], token_bucket: bucket(5, '1s') },
      ],
      always_consume_default_token_bucket: false,
      rate_limited_as_resource_exhausted: true,
    }),
    ROUTER,
  ]);
  t.ok(r.ok, JSON.stringify(problems(r)));
  if (!r.ok) return t.end();
  t.strictSame(r.value.filterChain.hcm.httpFilters[0], {
    name: 'envoy.filters.http.local_ratelimit',
    typeUrl: RL_URL,
    optional: false,
    config: {
      statPrefix: 'rl',
      status: 429,
      tokenBucket: { maxTokens: 3, tokensPerFill: 1, fillIntervalMs: 1000 },
      enabled: 1,
      enforced: 0.5,
      responseHeadersToAdd: [{ key: 'x-limited', value: 'yes' }],
      descriptors: [
        { entries: [{ key: 'rule', value: 'a' }], tokenBucket: { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 2000 } },
        { entries: [{ key: 'user', value: '' }], tokenBucket: { maxTokens: 5, tokensPerFill: 1, fillIntervalMs: 1000 } },
      ],
      stage: 0,
      alwaysConsumeDefaultTokenBucket: false,
      rateLimitedAsResourceExhausted: true,
    },
  });
  const bare = decodeFilters([rl({ filter_enabled: { default_value: { numerator: 200, denominator: 'HUNDRED' } } }), ROUTER]);
  t.match(bare, { ok: true, value: { filterChain: { hcm: { httpFilters: [{ config: { enabled: 1, enforced: 0, alwaysConsumeDefaultTokenBucket: true, rateLimitedAsResourceExhausted: false } }, {}] } } } }, 'unset filter_enforced is 0 (Envoy); a numerator above the denominator is 100 %');
  t.end();
});

t.test('token bucket errors: a missing or too short fill interval, zero tokens, descriptor intervals off the filter grid', (t) => {
  const P = `${F}[0].typed_config`;
  t.strictSame(filterProblems([rl({ token_bucket: { max_tokens: 3 } }), ROUTER]), [`${P}.token_bucket.fill_interval: is required`]);
  t.strictSame(filterProblems([rl({ token_bucket: bucket(3, '0.040s') }), ROUTER]), [`${P}.token_bucket.fill_interval: must be at least 50ms (Envoy's fill timer granularity)`]);
  t.strictSame(filterProblems([rl({ token_bucket: { max_tokens: 0, tokens_per_fill: 0, fill_interval: '1s' } }), ROUTER]), [
    `${P}.token_bucket.max_tokens: must be greater than 0`,
    `${P}.token_bucket.tokens_per_fill: must be greater than 0`,
  ]);
  t.strictSame(filterProblems([rl({ token_bucket: undefined, stat_prefix: '', stage: 11 }), ROUTER]), [
    `${P}.stat_prefix: is required`,
    `${P}.token_bucket: is required (per-route local rate limit config is not supported, so the filter needs its own bucket)`,
    `${P}.stage: 11 is above 10`,
  ]);
  t.strictSame(
    filterProblems([
      rl({
        descriptors: [
          { entries: [{ key: 'rule', value: 'a' }], token_bucket: bucket(1, '1.5s') },
          { entries: [{ key: 'rule', value: 'a' }], token_bucket: { max_tokens: 1 } },
          { entries: [], token_bucket: bucket() },
          { entries: [{ value: 'x' }] },
        ],
      }),
      ROUTER,
    ]),
    [
      `${P}.descriptors[0].token_bucket.fill_interval: must be a multiple of the filter's token_bucket.fill_interval (1000ms): one fill timer drives every bucket`,
      `${P}.descriptors[1].entries: duplicate descriptor (also descriptors[0])`,
      `${P}.descriptors[1].token_bucket.fill_interval: is required`,
      `${P}.descriptors[2].entries: at least one entry is required`,
      `${P}.descriptors[3].entries[0].key: is required`,
      `${P}.descriptors[3].token_bucket: is required`,
    ],
  );
  t.strictSame(
    filterProblems([
      rl({
        status: { code: 'ServiceUnavailable' },
        response_headers_to_add: new Array(11).fill({ header: { key: 'a', value: 'b' } }),
      }),
      ROUTER,
    ]),
    [`${P}.status: field 'status' is not supported`, `${P}.response_headers_to_add: at most 10 entries (got 11)`],
  );
  t.end();
});

t.test('filter order: jwt_authn → rbac → local_ratelimit → fault → router, else an error at the filter', (t) => {
  const cors = { name: 'envoy.filters.http.cors', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors' }, is_optional: true };
  const rbac = { name: 'envoy.filters.http.rbac', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC' } };
  t.strictSame(filterProblems([rl(), rl({ stat_prefix: 'rl2' }), ROUTER]), [], 'several instances of one filter side by side');
  t.strictSame(filterProblems([rl(), cors, ROUTER]), [], 'an optional unknown filter is skipped, and so not ordered');
  t.strictSame(filterProblems([rl(), rbac, ROUTER]), [`${F}[1]: rbac must come before local_ratelimit (http_filters[0]): the order is jwt_authn → rbac → local_ratelimit → fault → router`]);
  t.strictSame(filterProblems([ROUTER, rl()]), [`${F}[0]: the router must be the last HTTP filter`, `${F}[1]: local_ratelimit must come before router (http_filters[0]): the order is jwt_authn → rbac → local_ratelimit → fault → router`]);
  t.end();
});

const routes = (rateLimits: unknown) => ({ name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c', rate_limits: rateLimits } }] }] });
const decodeRoutes = (rateLimits: unknown) => viaJson(ROUTE_CONFIGURATION_TYPE_URL, routes(rateLimits));
const R = 'virtual_hosts[0].routes[0].route.rate_limits';

t.test('route rate_limits: the actions that make descriptors', (t) => {
  const r = decodeRoutes([
    {
      stage: 1,
      actions: [
        { header_value_match: { descriptor_value: 'rule-0', headers: [{ name: ':path', string_match: { prefix: '/api' } }] } },
        { request_headers: { header_name: 'X-User', descriptor_key: 'user', skip_if_absent: true } },
        { generic_key: { descriptor_value: 'g' } },
        { remote_address: {} },
        { extension: { name: 'principal', typed_config: { '@type': EXPR_URL, descriptor_key: 'source_principal', text: 'connection.uri_san_peer_certificate' } } },
        { header_value_match: { descriptor_key: 'k', descriptor_value: 'v', expect_match: false, headers: [{ name: ':method', exact_match: 'GET' }] } },
      ],
    },
  ]);
  t.ok(r.ok, JSON.stringify(problems(r)));
  if (!r.ok) return t.end();
  const vh = r.value.virtualHosts[0]!;
  const action = vh.routes[0]!.action;
  t.strictSame(action.kind === 'route' && action.action.rateLimits, [
    {
      stage: 1,
      actions: [
        { kind: 'header_value_match', key: 'header_match', value: 'rule-0', expectMatch: true, headers: [{ name: ':path', match: { kind: 'string', matcher: { kind: 'prefix', value: '/api', ignoreCase: false } }, invert: false }] },
        { kind: 'request_headers', header: 'x-user', key: 'user', skip: true },
        { kind: 'generic_key', key: 'generic_key', value: 'g' },
        { kind: 'remote_address', key: 'remote_address' },
        { kind: 'source_principal', key: 'source_principal', skip: false },
        { kind: 'header_value_match', key: 'k', value: 'v', expectMatch: false, headers: [{ name: ':method', match: { kind: 'string', matcher: { kind: 'exact', value: 'GET', ignoreCase: false } }, invert: false }] },
      ],
    },
  ]);
  t.end();
});

t.test('route rate_limits errors by field path', (t) => {
  t.strictSame(
    problems(
      decodeRoutes([
        { stage: 11, actions: [], disable_key: 'x' },
        {
          actions: [
            {},
            { source_cluster: {} },
            { request_headers: {} },
            { header_value_match: { headers: [] } },
            { generic_key: {} },
            { extension: { name: 'e', typed_config: { '@type': EXPR_URL, descriptor_key: 'p', text: 'request.path' } } },
            { extension: { name: 'e', typed_config: { '@type': EXPR_URL } } },
          ],
        },
      ]),
    ),
    [
      `${R}[0].disable_key: field 'disable_key' is not supported`,
      `${R}[0].stage: 11 is above 10`,
      `${R}[0].actions: at least one action is required`,
      `${R}[1].actions[0]: one of request_headers, header_value_match, generic_key, remote_address, extension is required`,
      `${R}[1].actions[1].source_cluster: field 'source_cluster' is not supported`,
      `${R}[1].actions[2].request_headers.header_name: is required`,
      `${R}[1].actions[2].request_headers.descriptor_key: is required`,
      `${R}[1].actions[3].header_value_match.headers: at least one header matcher is required`,
      `${R}[1].actions[3].header_value_match.descriptor_value: is required`,
      `${R}[1].actions[4].generic_key.descriptor_value: is required`,
      `${R}[1].actions[5].extension.typed_config.text: only the expression connection.uri_san_peer_certificate (the caller's SPIFFE ID) is supported`,
      `${R}[1].actions[6].extension.typed_config.descriptor_key: is required`,
      `${R}[1].actions[6].extension.typed_config.text: is required`,
    ],
  );
  t.end();
});
