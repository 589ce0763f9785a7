// RateLimitPolicy -> xDS: the selected sidecar's inbound filters and route rate_limits, read back by the sidecar's
// decoders and its descriptor producer, including per-key header buckets and the keyless fallback.
import t from 'tap';
import { translate } from '../../../src/control/translate/index.js';
import type { RateLimitPolicy } from '../../../src/control/mesh/types.js';
import { RequestRecord } from '../../../src/dataplane/exchange.js';
import { requestDescriptors } from '../../../src/dataplane/filters/local-ratelimit.js';
import type { CompiledRoute } from '../../../src/dataplane/router.js';
import type { LocalRateLimitConfig } from '../../../src/model/rate-limit.js';
import { LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL } from '../../../src/xds/protos.js';
import { OPTS, bookinfo, decodeAll, node } from './helpers.js';

const meta = (name: string, namespace = 'default') => ({ name, namespace, file: 'rl.yaml', line: 1 });
const policy = (name: string, rules: RateLimitPolicy['rules'], labels?: Record<string, string>, namespace = 'default'): RateLimitPolicy => ({
  kind: 'RateLimitPolicy',
  meta: meta(name, namespace),
  ...(labels && { workloadSelector: { labels } }),
  rules,
});
const tb = (maxTokens: number, fillIntervalMs: number) => ({ maxTokens, tokensPerFill: 1, fillIntervalMs });

t.test('per-key header buckets, regex headers, selection by namespace and labels', (t) => {
  const mesh = bookinfo({
    rateLimitPolicies: [
      policy('users', [{ match: { headers: { 'x-tier': { regex: 'free|trial' } } }, tokenBucket: tb(2, 1000), perKey: { header: 'x-user' }, shadow: false }, { match: { headers: {} }, tokenBucket: tb(9, 500), shadow: false }], { app: 'frontend' }),
      policy('elsewhere', [{ match: { headers: {} }, tokenBucket: tb(1, 1000), shadow: false }], undefined, 'other'),
      policy('not-me', [{ match: { headers: {} }, tokenBucket: tb(1, 1000), shadow: false }], { app: 'reviews' }),
    ],
  });
  const s = translate(mesh, node(), OPTS);
  const inbound = decodeAll(s, LISTENER_TYPE_URL).get('virtualInbound')!;
  const filters = inbound.filterChain.hcm.httpFilters;
  t.equal(filters.length, 2, 'one local_ratelimit (the frontend-selecting policy) and the router');
  const cfg = filters[0]!.config as unknown as LocalRateLimitConfig;
  t.match(cfg, { statPrefix: 'default.users', enforced: 1, tokenBucket: { maxTokens: 2 ** 32 - 1, fillIntervalMs: 500 }, alwaysConsumeDefaultTokenBucket: false, rateLimitedAsResourceExhausted: true });
  t.strictSame(
    cfg.descriptors.map((d) => d.entries),
    [
      [{ key: 'rule', value: 'default/users/0' }, { key: 'key', value: '' }],
      [{ key: 'rule', value: 'default/users/0' }],
      [{ key: 'rule', value: 'default/users/1' }],
    ],
  );
  const routes = decodeAll(s, ROUTE_CONFIGURATION_TYPE_URL).get('inbound')!;
  const route = { route: routes.virtualHosts[0]!.routes[0]!, virtualHost: 'v' } as unknown as CompiledRoute;
  const rec = (headers: Record<string, string>) => new RequestRecord(0, 0, 'id', 'GET', 'frontend', '/', 'HTTP/2', headers, false, { remoteIp: '10.0.0.2', remotePort: 1, tls: true });
  t.strictSame(requestDescriptors(route, rec({ 'x-tier': 'free', 'x-user': 'u1' }), 0), [[{ key: 'rule', value: 'default/users/0' }, { key: 'key', value: 'u1' }], [{ key: 'rule', value: 'default/users/1' }]]);
  t.strictSame(requestDescriptors(route, rec({ 'x-tier': 'trial' }), 0), [[{ key: 'rule', value: 'default/users/0' }], [{ key: 'rule', value: 'default/users/1' }]], 'no x-user: the shared keyless bucket');
  t.strictSame(requestDescriptors(route, rec({ 'x-tier': 'paid', 'x-user': 'u1' }), 0), [[{ key: 'rule', value: 'default/users/1' }]]);
  const plain = translate(bookinfo(), node(), OPTS);
  t.equal(decodeAll(plain, LISTENER_TYPE_URL).get('virtualInbound')!.filterChain.hcm.httpFilters.length, 1, 'no policy, no filter');
  t.end();
});
