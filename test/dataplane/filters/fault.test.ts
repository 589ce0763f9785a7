// The fault filter on a fake clock with a seeded rng: delay timing, percentages, per-route override, gRPC, limits.
import t from 'tap';
import { Registry } from 'prom-client';
import { FakeClock } from '../../../src/core/clock.js';
import { seededRng, type Rng } from '../../../src/core/rng.js';
import { RequestRecord } from '../../../src/dataplane/exchange.js';
import { faultFilter } from '../../../src/dataplane/filters/fault.js';
import type { FilterRequest, FilterVerdict } from '../../../src/dataplane/filters/filter.js';
import { renderLocalReply } from '../../../src/dataplane/local-reply.js';
import type { CompiledRoute } from '../../../src/dataplane/router.js';
import { FAULT_FILTER_NAME, FAULT_TYPE_URL, type FaultConfig } from '../../../src/model/fault.js';
import type { Route } from '../../../src/model/types.js';
import { silentLogger } from '../../../src/telemetry/logger.js';
import { createMetrics } from '../../../src/telemetry/metrics.js';

const base = { headers: [], downstreamNodes: [] };

function setup(config: Partial<FaultConfig>, rng: Rng = seededRng(7)) {
  const clock = new FakeClock();
  const metrics = createMetrics(new Registry());
  const filter = faultFilter.create({ name: FAULT_FILTER_NAME, typeUrl: FAULT_TYPE_URL, optional: false, config: { ...base, ...config } }, { listenerName: 'outbound', clock, rng, metrics, logger: silentLogger() });
  const injected = async (kind: string) => (await metrics.faultsInjected.get()).values.find((v) => v.labels.kind === kind)?.value ?? 0;
  const overflow = async () => (await metrics.faultsOverflow.get()).values[0]?.value ?? 0;
  return { clock, filter, injected, overflow };
}

function request(o: { headers?: Record<string, string>; grpc?: boolean; perRoute?: Partial<FaultConfig>; onAbort?: (fn: () => void) => void } = {}): FilterRequest {
  const rec = new RequestRecord(0, 0, 'rid', 'GET', 'reviews', '/r', 'HTTP/1.1', { ...o.headers }, o.grpc ?? false, { remoteIp: '127.0.0.1', remotePort: 1, tls: false });
  const typedPerFilterConfig = o.perRoute && { [FAULT_FILTER_NAME]: { typeUrl: FAULT_TYPE_URL, config: { ...base, ...o.perRoute } } };
  const route = { route: { name: 'r', ...(typedPerFilterConfig && { typedPerFilterConfig }) } as unknown as Route, virtualHost: 'vh' } as CompiledRoute;
  return { rec, route, ...(o.onAbort && { onAbort: o.onAbort }) };
}

/** Whether a Promise has settled, after letting pending microtasks run. */
async function settled<T>(p: Promise<T>): Promise<{ done: boolean; value?: T }> {
  let out: { done: boolean; value?: T } = { done: false };
  void p.then((value) => (out = { done: true, value }));
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return out;
}

t.test('a delay holds the request exactly fixed_delay on the clock, then lets it go on, flagged DI', async (t) => {
  const { clock, filter, injected } = setup({ delay: { fixedDelayMs: 1000, probability: 1 } });
  const req = request();
  const v = filter.decodeHeaders(req);
  t.ok(v instanceof Promise, 'a delayed request is asynchronous');
  clock.advance(999);
  t.equal((await settled(v as Promise<FilterVerdict>)).done, false, 'still waiting at 999 ms');
  clock.advance(1);
  t.strictSame(await settled(v as Promise<FilterVerdict>), { done: true, value: undefined }, 'released at 1000 ms, not answered');
  t.equal(req.rec.flag, 'DI');
  t.equal(clock.pending(), 0);
  t.equal(await injected('delay'), 1);
  t.equal(await injected('abort'), 0);
});

t.test('an abort is a local reply with the status, flagged FI; after a delay the abort is decided when it ends', async (t) => {
  const { clock, filter, injected } = setup({ delay: { fixedDelayMs: 50, probability: 1 }, abort: { httpStatus: 503, probability: 1 } });
  const v = filter.decodeHeaders(request());
  clock.advance(50);
  t.match(await v, { status: 503, code: 'fault_abort', message: 'fault filter abort', flag: 'FI', details: 'fault_filter_abort' });
  t.equal(await injected('delay'), 1);
  t.equal(await injected('abort'), 1);
  const empty = setup({});
  t.equal(empty.filter.decodeHeaders(request()), undefined, "Istio's empty listener-level config does nothing, synchronously");
});

t.test('percentages with a seeded rng: one independent draw per fault, within 4.5 sigma over 20,000 requests', async (t) => {
  // Seeded, so the counts are fixed: the bounds (4.5 sigma of the binomial) show the draw is a fair one per
  // request, and cannot flake. No delay here, so every verdict is synchronous.
  const n = 20_000;
  const { filter, injected } = setup({ abort: { httpStatus: 500, probability: 0.25 } }, seededRng(2026));
  let aborted = 0;
  for (let i = 0; i < n; i++) if (filter.decodeHeaders(request()) !== undefined) aborted++;
  const sigma = Math.sqrt(n * 0.25 * 0.75);
  t.ok(Math.abs(aborted - n * 0.25) < 4.5 * sigma, `${aborted} of ${n} aborted (25 %)`);
  t.equal(await injected('abort'), aborted);

  // Delay 50 % and abort 50 %: independent, so each of the four outcomes is about a quarter.
  const both = setup({ delay: { fixedDelayMs: 1, probability: 0.5 }, abort: { httpStatus: 500, probability: 0.5 } }, seededRng(9));
  const cells = { delayAbort: 0, delayOnly: 0, abortOnly: 0, none: 0 };
  const m = 4000;
  for (let i = 0; i < m; i++) {
    const v = both.filter.decodeHeaders(request());
    if (v instanceof Promise) {
      both.clock.advance(1);
      if ((await v) !== undefined) cells.delayAbort++;
      else cells.delayOnly++;
    } else if (v !== undefined) cells.abortOnly++;
    else cells.none++;
  }
  const s = Math.sqrt(m * 0.25 * 0.75);
  for (const [k, c] of Object.entries(cells)) t.ok(Math.abs(c - m / 4) < 4.5 * s, `${k}: ${c} of ${m}`);
  const never = setup({ abort: { httpStatus: 500, probability: 0 }, delay: { fixedDelayMs: 5, probability: 0 } });
  for (let i = 0; i < 1000; i++) if (never.filter.decodeHeaders(request()) !== undefined) t.fail('a 0 % fault fired');
});

t.test("the route's typed_per_filter_config replaces the listener-level config whole", async (t) => {
  const { filter } = setup({ abort: { httpStatus: 503, probability: 1 } });
  t.match(filter.decodeHeaders(request()), { status: 503 }, 'no per-route config: the listener-level one');
  t.match(filter.decodeHeaders(request({ perRoute: { abort: { httpStatus: 418, probability: 1 } } })), { status: 418 });
  t.equal(filter.decodeHeaders(request({ perRoute: {} })), undefined, 'an empty per-route config turns the fault off for the route');
  const route = request({ perRoute: { abort: { httpStatus: 429, probability: 1 } } });
  t.match(filter.decodeHeaders(route), { status: 429 });
  t.match(filter.decodeHeaders(route), { status: 429 }, 'the compiled per-route config is reused');
});

t.test('gRPC callers: http_status maps to a grpc-status; grpc_status is sent as it is, over HTTP 200', (t) => {
  const { filter } = setup({ abort: { httpStatus: 503, probability: 1 } });
  const grpc = request({ grpc: true });
  const reply = filter.decodeHeaders(grpc) as NonNullable<FilterVerdict>;
  t.match(renderLocalReply(reply, 'rid', true), { status: 200, headers: { 'grpc-status': '14', 'grpc-message': 'fault%20filter%20abort' } }, '503 -> UNAVAILABLE');
  const byCode = setup({ abort: { httpStatus: 200, grpcStatus: 8, probability: 1 } });
  const r = byCode.filter.decodeHeaders(grpc) as NonNullable<FilterVerdict>;
  t.match(renderLocalReply(r, 'rid', true), { status: 200, headers: { 'grpc-status': '8' } }, 'RESOURCE_EXHAUSTED as configured');
  t.match(renderLocalReply(r, 'rid', false), { status: 200 }, 'an HTTP caller gets the 200 Envoy sends for a gRPC abort');
  t.end();
});

t.test('a caller that goes away during a delay cancels its timer; nothing is left pending', async (t) => {
  const { clock, filter } = setup({ delay: { fixedDelayMs: 60_000, probability: 1 }, abort: { httpStatus: 500, probability: 1 }, maxActiveFaults: 1 });
  const aborts: (() => void)[] = [];
  const v = filter.decodeHeaders(request({ onAbort: (fn) => aborts.push(fn) })) as Promise<FilterVerdict>;
  t.equal(clock.pending(), 1);
  for (const fn of aborts) fn();
  t.equal(clock.pending(), 0, 'the timer is cleared at once');
  t.strictSame(await settled(v), { done: true, value: undefined }, 'resolved without an abort: nobody is listening');
  for (const fn of aborts) fn();
  t.ok(filter.decodeHeaders(request()) instanceof Promise, 'the abandoned delay no longer counts against max_active_faults');
});

t.test('max_active_faults: at the limit a request passes untouched and is counted as overflow', async (t) => {
  const { clock, filter, overflow } = setup({ delay: { fixedDelayMs: 100, probability: 1 }, maxActiveFaults: 2 });
  const a = filter.decodeHeaders(request());
  const b = filter.decodeHeaders(request());
  t.ok(a instanceof Promise && b instanceof Promise);
  const c = request();
  t.equal(filter.decodeHeaders(c), undefined, 'the third passes at once');
  t.equal(c.rec.flag, '-');
  t.equal(await overflow(), 1);
  clock.advance(100);
  await Promise.all([a, b]);
  t.ok(filter.decodeHeaders(request()) instanceof Promise, 'room again once the delays ended');
});

t.test('headers and downstream_nodes restrict which requests are faulted', (t) => {
  const { filter } = setup({
    abort: { httpStatus: 500, probability: 1 },
    headers: [{ name: 'x-chaos', match: { kind: 'string', matcher: { kind: 'exact', value: 'on', ignoreCase: false } }, invert: false }],
    downstreamNodes: ['frontend'],
  });
  t.equal(filter.decodeHeaders(request()), undefined, 'no header');
  t.equal(filter.decodeHeaders(request({ headers: { 'x-chaos': 'on' } })), undefined, 'header, but no downstream node');
  t.equal(filter.decodeHeaders(request({ headers: { 'x-chaos': 'on', 'x-envoy-downstream-service-node': 'other' } })), undefined, 'another node');
  t.match(filter.decodeHeaders(request({ headers: { 'x-chaos': 'on', 'x-envoy-downstream-service-node': 'frontend' } })), { status: 500 });
  const pseudo = setup({
    abort: { httpStatus: 500, probability: 1 },
    headers: [
      { name: ':path', match: { kind: 'string', matcher: { kind: 'prefix', value: '/r', ignoreCase: false } }, invert: false },
      { name: ':method', match: { kind: 'string', matcher: { kind: 'exact', value: 'GET', ignoreCase: false } }, invert: false },
      { name: ':authority', match: { kind: 'string', matcher: { kind: 'exact', value: 'reviews', ignoreCase: false } }, invert: false },
      { name: 'x-multi', match: { kind: 'string', matcher: { kind: 'exact', value: 'a,b', ignoreCase: false } }, invert: false },
    ],
  });
  const multi = request();
  (multi.rec.headers as Record<string, string[]>)['x-multi'] = ['a', 'b'];
  t.match(pseudo.filter.decodeHeaders(multi), { status: 500 }, 'pseudo-headers and repeated headers, as Envoy matches them');
  t.end();
});
