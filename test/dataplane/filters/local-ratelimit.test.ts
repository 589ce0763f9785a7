// The local_ratelimit filter on a fake clock: descriptors from the route's actions, 429 + RateLimit-*, shadow, gRPC, metrics.
import t from 'tap';
import { Registry } from 'prom-client';
import { FakeClock } from '../../../src/core/clock.js';
import { seededRng } from '../../../src/core/rng.js';
import { RequestRecord, type ConnInfo } from '../../../src/dataplane/exchange.js';
import type { FilterRequest } from '../../../src/dataplane/filters/filter.js';
import { buildFilterChain } from '../../../src/dataplane/filters/index.js';
import { LOCAL_RATELIMIT_TYPE_URL, requestDescriptors } from '../../../src/dataplane/filters/local-ratelimit.js';
import { GRPC, renderLocalReply, type LocalReply } from '../../../src/dataplane/local-reply.js';
import type { CompiledRoute } from '../../../src/dataplane/router.js';
import type { LocalRateLimitConfig, RateLimitEntry } from '../../../src/model/rate-limit.js';
import { silentLogger } from '../../../src/telemetry/logger.js';
import { createMetrics } from '../../../src/telemetry/metrics.js';

const bucket = (maxTokens: number, tokensPerFill = 1, fillIntervalMs = 1000) => ({ maxTokens, tokensPerFill, fillIntervalMs });
const BIG = bucket(2 ** 32 - 1, 2 ** 32 - 1);

function config(over: Partial<LocalRateLimitConfig> = {}): LocalRateLimitConfig {
  return { statPrefix: 'rl', status: 429, tokenBucket: bucket(3), enabled: 1, enforced: 1, responseHeadersToAdd: [], descriptors: [], stage: 0, alwaysConsumeDefaultTokenBucket: true, rateLimitedAsResourceExhausted: false, ...over };
}

function setup(cfg: LocalRateLimitConfig, rng = seededRng(7)) {
  const clock = new FakeClock();
  const registry = new Registry();
  const metrics = createMetrics(registry);
  const chain = buildFilterChain([{ name: 'envoy.filters.http.local_ratelimit', typeUrl: LOCAL_RATELIMIT_TYPE_URL, optional: false, config: cfg as unknown as Record<string, unknown> }], {
    listenerName: 'virtualInbound',
    clock,
    rng,
    metrics,
    logger: silentLogger(),
  });
  const counts = async () => {
    const m = (await registry.getSingleMetric('outrigger_local_ratelimit_requests_total')!.get()).values;
    return Object.fromEntries(m.map((v) => [v.labels.result, v.value]));
  };
  return { clock, chain, counts };
}

function request(o: { path?: string; headers?: Record<string, string>; peer?: string; rateLimits?: RateLimitEntry[]; method?: string } = {}): FilterRequest {
  const conn: ConnInfo = { remoteIp: '10.0.0.9', remotePort: 1234, tls: o.peer !== undefined, ...(o.peer !== undefined && { peer: { uri: o.peer } }) };
  const rec = new RequestRecord(0, 0, 'id', o.method ?? 'GET', 'svc', o.path ?? '/', 'HTTP/1.1', o.headers ?? {}, false, conn);
  const route = o.rateLimits && ({ route: { name: '', match: {}, action: { kind: 'route', action: { cluster: 'c', timeoutMs: 0, hashPolicy: [], rateLimits: o.rateLimits } } }, virtualHost: 'v' } as unknown as CompiledRoute);
  return { rec, route };
}

t.test('exactly max_tokens pass, then 429 RL with RateLimit-* headers, until the next whole fill interval', async (t) => {
  const { clock, chain, counts } = setup(config({ tokenBucket: bucket(3, 2, 10_000), responseHeadersToAdd: [{ key: 'x-limited', value: '1' }] }));
  for (let i = 0; i < 3; i++) t.equal(chain.run(request()), undefined, `request ${i + 1}`);
  clock.advance(2_500);
  const r = chain.run(request()) as LocalReply;
  t.match(r, { status: 429, code: 'rate_limited', flag: 'RL', details: 'local_rate_limited' });
  t.strictSame(r.headers, { 'ratelimit-limit': '3', 'ratelimit-remaining': '0', 'ratelimit-reset': '8', 'x-limited': '1' });
  const http = renderLocalReply(r, 'rid', false);
  t.equal(JSON.parse(http.body).code, 'rate_limited');
  t.equal(renderLocalReply(r, 'rid', true).headers['grpc-status'], String(GRPC.UNAVAILABLE), "without rate_limited_as_resource_exhausted: Envoy's 429 mapping");
  clock.advance(7_499);
  t.not(chain.run(request()), undefined, 'still nothing at 9.999 s');
  clock.advance(1);
  t.equal(chain.run(request()), undefined, 'the fill at 10 s adds tokens_per_fill (2)');
  t.equal(chain.run(request()), undefined);
  t.not(chain.run(request()), undefined);
  t.strictSame(await counts(), { allowed: 5, rate_limited: 3 });
  t.end();
});

t.test('gRPC callers get RESOURCE_EXHAUSTED with rate_limited_as_resource_exhausted', (t) => {
  const { chain } = setup(config({ tokenBucket: bucket(1), rateLimitedAsResourceExhausted: true }));
  chain.run(request());
  const r = chain.run(request()) as LocalReply;
  t.equal(renderLocalReply(r, 'rid', true).headers['grpc-status'], String(GRPC.RESOURCE_EXHAUSTED));
  t.end();
});

t.test('shadow (filter_enforced 0): every request passes, the over-limit ones are counted', async (t) => {
  const { chain, counts } = setup(config({ tokenBucket: bucket(2), enforced: 0 }));
  for (let i = 0; i < 5; i++) t.equal(chain.run(request()), undefined);
  t.strictSame(await counts(), { allowed: 2, shadow_limited: 3 });
  t.end();
});

t.test('filter_enabled: unset (0) does nothing at all; a fraction samples with the injected rng', async (t) => {
  const off = setup(config({ tokenBucket: bucket(1), enabled: 0 }));
  for (let i = 0; i < 3; i++) t.equal(off.chain.run(request()), undefined);
  t.strictSame(await off.counts(), {});
  const half = setup(config({ tokenBucket: BIG, enabled: 0.5 }), seededRng(3));
  for (let i = 0; i < 1000; i++) half.chain.run(request());
  const allowed = (await half.counts()).allowed!;
  t.ok(allowed > 450 && allowed < 550, `about half checked (${allowed})`);
  const someEnforced = setup(config({ tokenBucket: bucket(1), enforced: 0.5 }), seededRng(3));
  let refused = 0;
  for (let i = 0; i < 1000; i++) if (someEnforced.chain.run(request()) !== undefined) refused++;
  t.ok(refused > 450 && refused < 550, `about half of the over-limit requests refused (${refused})`);
  t.end();
});

const PRINCIPAL: RateLimitEntry = {
  stage: 0,
  actions: [
    { kind: 'header_value_match', key: 'rule', value: 'api', expectMatch: true, headers: [{ name: ':path', match: { kind: 'string', matcher: { kind: 'prefix', value: '/api', ignoreCase: false } }, invert: false }] },
    { kind: 'source_principal', key: 'source_principal', skip: false },
  ],
};

t.test('per-principal buckets: the route actions give one descriptor per caller, each with its own bucket', (t) => {
  const { chain } = setup(
    config({ tokenBucket: BIG, alwaysConsumeDefaultTokenBucket: false, descriptors: [{ entries: [{ key: 'rule', value: 'api' }, { key: 'source_principal', value: '' }], tokenBucket: bucket(2) }] }),
  );
  const as = (peer: string | undefined, path = '/api/x') => chain.run(request({ path, rateLimits: [PRINCIPAL], ...(peer !== undefined && { peer }) }));
  t.equal(as('spiffe://td/ns/a/sa/alice'), undefined);
  t.equal(as('spiffe://td/ns/a/sa/alice'), undefined);
  t.match(as('spiffe://td/ns/a/sa/alice'), { status: 429 }, 'alice used her 2');
  t.equal(as('spiffe://td/ns/a/sa/bob'), undefined, 'bob has his own bucket');
  t.equal(as('spiffe://td/ns/a/sa/alice', '/other'), undefined, 'another path: the rule does not match');
  t.equal(as(undefined), undefined, 'no client certificate: no principal, no descriptor (the default bucket)');
  t.end();
});

t.test('descriptor production follows Envoy: skip flags, expect_match, stages, dropped descriptors', (t) => {
  const hdr = (name: string, value: string) => ({ name, match: { kind: 'string' as const, matcher: { kind: 'exact' as const, value, ignoreCase: false } }, invert: false });
  const entries: RateLimitEntry[] = [
    { stage: 0, actions: [{ kind: 'request_headers', key: 'user', header: 'x-user', skip: false }] },
    { stage: 0, actions: [{ kind: 'request_headers', key: 'user', header: 'x-user', skip: true }, { kind: 'generic_key', key: 'g', value: 'v' }] },
    { stage: 0, actions: [{ kind: 'remote_address', key: 'remote_address' }, { kind: 'header_value_match', key: 'm', value: 'not-post', expectMatch: false, headers: [hdr(':method', 'POST')] }] },
    { stage: 0, actions: [{ kind: 'source_principal', key: 'p', skip: true }] },
    { stage: 1, actions: [{ kind: 'generic_key', key: 'g', value: 'stage1' }] },
    { stage: 0, actions: [{ kind: 'header_value_match', key: 'h', value: 'host', expectMatch: true, headers: [hdr(':authority', 'svc'), hdr('host', 'svc')] }] },
  ];
  const anon = request({ rateLimits: entries, method: 'GET' }).rec;
  const route = request({ rateLimits: entries }).route;
  t.strictSame(requestDescriptors(route, anon, 0), [[{ key: 'g', value: 'v' }], [{ key: 'remote_address', value: '10.0.0.9' }, { key: 'm', value: 'not-post' }], [{ key: 'h', value: 'host' }]]);
  const rec = request({ headers: { 'x-user': 'u1' }, method: 'POST', peer: 'spiffe://td/x' }).rec;
  t.strictSame(requestDescriptors(route, rec, 0), [[{ key: 'user', value: 'u1' }], [{ key: 'user', value: 'u1' }, { key: 'g', value: 'v' }], [{ key: 'p', value: 'spiffe://td/x' }], [{ key: 'h', value: 'host' }]]);
  const multi = request({ headers: { 'x-user': ['a', 'b'] as unknown as string } }).rec;
  t.strictSame(requestDescriptors(route, multi, 1), [[{ key: 'g', value: 'stage1' }]]);
  t.strictSame(requestDescriptors(route, multi, 0)[0], [{ key: 'user', value: 'a,b' }], 'repeated headers are joined');
  t.strictSame(requestDescriptors(undefined, anon, 0), [], 'no route, no descriptors');
  t.strictSame(requestDescriptors(request({ path: '/api/x' }).route, anon, 0), []);
  t.end();
});
