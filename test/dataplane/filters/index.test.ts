// The filter chain: config order, the first answer stops it, sync stays sync, async and failing filters.
import t from 'tap';
import { Registry } from 'prom-client';
import { FakeClock } from '../../../src/core/clock.js';
import { seededRng } from '../../../src/core/rng.js';
import { FILTER_ORDER, buildFilterChain } from '../../../src/dataplane/filters/index.js';
import type { FilterDeps, FilterRequest, HttpFilterFactory } from '../../../src/dataplane/filters/filter.js';
import { Replies } from '../../../src/dataplane/local-reply.js';
import type { HttpFilterConfig } from '../../../src/model/types.js';
import { createMetrics } from '../../../src/telemetry/metrics.js';
import { silentLogger } from '../../../src/telemetry/logger.js';

const deps: FilterDeps = { listenerName: 'l', clock: new FakeClock(), rng: seededRng(1), metrics: createMetrics(new Registry()), logger: silentLogger() };
const req = {} as FilterRequest;
const cfg = (typeUrl: string, name = typeUrl): HttpFilterConfig => ({ name, typeUrl, optional: false, config: {} });

/** Factories that record their calls and answer what their config's name says: "pass", "deny", "async-pass", "async-deny", "throw", "reject". */
function registry(log: string[]): Map<string, HttpFilterFactory> {
  const make = (typeUrl: string): HttpFilterFactory => ({
    typeUrl,
    create: (c) => ({
      name: c.name,
      decodeHeaders() {
        log.push(c.name);
        const [mode, what] = c.name.split(':');
        if (what === 'throw') throw new Error('bug');
        if (what === 'reject') return Promise.reject(new Error('bug'));
        const v = what === 'deny' ? Replies.badRequest(`denied by ${c.name}`) : undefined;
        return mode === 'async' ? Promise.resolve(v) : v;
      },
    }),
  });
  return new Map(['a', 'b', 'c'].map((u) => [u, make(u)]));
}

t.test('an empty chain, and configs without a runtime factory (the router) add nothing', (t) => {
  const chain = buildFilterChain([cfg(FILTER_ORDER.at(-1)!)], deps);
  t.ok(chain.empty);
  t.equal(chain.run(req), undefined);
  t.end();
});

t.test('filters run in config order; the first answer stops the chain; all-sync stays synchronous', (t) => {
  const log: string[] = [];
  const chain = buildFilterChain([cfg('a', 'sync:pass'), cfg('b', 'sync:deny'), cfg('c', 'sync:pass')], deps, registry(log));
  t.notOk(chain.empty);
  const v = chain.run(req);
  t.notOk(v instanceof Promise, 'no Promise when every filter answers at once');
  t.match(v, { status: 400, message: 'denied by sync:deny' });
  t.strictSame(log, ['sync:pass', 'sync:deny'], 'the filter after the answer never ran');
  t.end();
});

t.test('an async filter makes the rest of the chain async, in order; every filter passing is undefined', async (t) => {
  const log: string[] = [];
  const pass = buildFilterChain([cfg('a', 'sync:pass'), cfg('b', 'async:pass'), cfg('c', 'sync:pass')], deps, registry(log));
  const v = pass.run(req);
  t.ok(v instanceof Promise);
  t.equal(await v, undefined);
  t.strictSame(log, ['sync:pass', 'async:pass', 'sync:pass']);
  const deny = buildFilterChain([cfg('a', 'async:deny'), cfg('c', 'sync:pass')], deps, registry([]));
  t.match(await deny.run(req), { status: 400, message: 'denied by async:deny' });
});

t.test('a filter that throws or rejects is a 500 naming it, never a request let through', async (t) => {
  const log: string[] = [];
  const sync = buildFilterChain([cfg('a', 'sync:throw'), cfg('b', 'sync:pass')], deps, registry(log));
  t.match(sync.run(req), { status: 500, code: 'filter_failed', message: 'HTTP filter sync:throw failed' });
  const async = buildFilterChain([cfg('a', 'async:pass'), cfg('b', 'async:reject'), cfg('c', 'sync:pass')], deps, registry(log));
  t.match(await async.run(req), { status: 500, code: 'filter_failed', message: 'HTTP filter async:reject failed' });
  t.strictSame(log, ['sync:throw', 'async:pass', 'async:reject'], 'nothing ran after the failure');
});
