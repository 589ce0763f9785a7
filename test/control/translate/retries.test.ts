// VirtualService retries -> RouteAction.retry_policy as istiod writes it (route/retry/retry.go), read back through
// the sidecar's own decoder, and through grpc-js-xds's validators for proxyless clients.
import t from 'tap';
import type { HTTPRetry, HTTPRoute } from '../../../src/control/mesh/types.js';
import { translate } from '../../../src/control/translate/index.js';
import type { RetryPolicy, RouteConfiguration } from '../../../src/model/types.js';
import { ROUTE_CONFIGURATION_TYPE_URL } from '../../../src/xds/protos.js';
import { grpcAccepts } from './grpc-validators.js';
import { FRONTEND, ISTIO_DEFAULT_RETRY, OPTS, REVIEWS, bookinfo, decodeAll, dest, dr, node, policy, vs, type NodeOpts } from './helpers.js';

interface GrpcRetry {
  num_retries?: { value: number };
  retry_on: string;
}

const outbound = (mesh = bookinfo(), o: NodeOpts = {}): RouteConfiguration => decodeAll(translate(mesh, node(o), OPTS), ROUTE_CONFIGURATION_TYPE_URL).get('outbound')!;
/** The retry policy of each route of a virtual host, in order (undefined = none). */
function retries(rc: RouteConfiguration, vhost: string): (RetryPolicy | undefined)[] {
  return rc.virtualHosts.find((v) => v.name === vhost)!.routes.map((r) => (r.action.kind === 'route' ? r.action.action.retryPolicy : undefined));
}
/** bookinfo with a reviews VirtualService of one route to v1 carrying `retries`. */
const withRetries = (retries: HTTPRetry, route: HTTPRoute['route'] = [{ destination: dest(REVIEWS, 'v1'), weight: 100 }]) =>
  bookinfo({ virtualServices: [vs('reviews', [REVIEWS], [{ match: [], route, retries }])] });

t.test("no retries written: istiod's DefaultPolicy on every outbound route, VirtualService or default route; none inbound", (t) => {
  const rc = outbound();
  t.strictSame(retries(rc, `${REVIEWS}:9080`), [ISTIO_DEFAULT_RETRY, ISTIO_DEFAULT_RETRY, ISTIO_DEFAULT_RETRY], 'each VirtualService route');
  t.strictSame(retries(rc, `${FRONTEND}:80`), [ISTIO_DEFAULT_RETRY], 'the default route of a service without a VirtualService');
  const inbound = decodeAll(translate(bookinfo(), node({ ip: '10.0.1.1', sa: 'bookinfo-reviews', labels: { app: 'reviews', version: 'v1' } }), OPTS), ROUTE_CONFIGURATION_TYPE_URL).get('inbound')!;
  t.ok(inbound.virtualHosts.length > 0);
  t.ok(
    inbound.virtualHosts.every((v) => v.routes.every((r) => r.action.kind === 'route' && r.action.action.retryPolicy === undefined)),
    'inbound routes get none (the app is local)',
  );
  t.end();
});

t.test('retries: attempts, perTryTimeout, retryOn with status codes, retryRemoteLocalities, backoff, retryIgnorePreviousHosts', (t) => {
  const [p] = retries(outbound(withRetries({ attempts: 3, perTryTimeoutMs: 2000, retryOn: { conditions: ['gateway-error', 'connect-failure'], statusCodes: [503, 429] }, retryRemoteLocalities: true, backoffMs: 100 })), `${REVIEWS}:9080`);
  t.strictSame(p, {
    retryOn: new Set(['gateway-error', 'connect-failure', 'retriable-status-codes']),
    numRetries: 3,
    perTryTimeoutMs: 2000,
    retriableStatusCodes: [503, 429],
    previousHosts: true,
    previousPrioritiesUpdateFrequency: 2,
    hostSelectionRetryMaxAttempts: 5,
    backOffBaseMs: 100,
    backOffMaxMs: 1000,
  });
  // Only attempts: the rest of the default policy stays.
  t.strictSame(retries(outbound(withRetries({ attempts: 5 })), `${REVIEWS}:9080`), [{ ...ISTIO_DEFAULT_RETRY, numRetries: 5 }]);
  // retryOn replaces the default's 503 too: conditions only = no status codes, and retriable-status-codes once.
  t.match(retries(outbound(withRetries({ attempts: 1, retryOn: { conditions: ['5xx', 'reset'], statusCodes: [] } })), `${REVIEWS}:9080`), [{ retryOn: new Set(['5xx', 'reset']), retriableStatusCodes: [] }]);
  t.match(retries(outbound(withRetries({ attempts: 1, retryOn: { conditions: ['retriable-status-codes'], statusCodes: [504] } })), `${REVIEWS}:9080`), [{ retryOn: new Set(['retriable-status-codes']), retriableStatusCodes: [504] }]);
  t.match(retries(outbound(withRetries({ attempts: 1, retryIgnorePreviousHosts: false })), `${REVIEWS}:9080`), [{ previousHosts: false }]);
  t.end();
});

t.test('attempts: 0 disables retries: no retry_policy at all, as istiod', (t) => {
  const rc = outbound(withRetries({ attempts: 0 }));
  t.strictSame(retries(rc, `${REVIEWS}:9080`), [undefined]);
  t.strictSame(retries(rc, `${FRONTEND}:80`), [ISTIO_DEFAULT_RETRY], 'other services keep the default');
  t.end();
});

t.test('consistent hashing to a single destination leaves previous_hosts out (DefaultConsistentHashPolicy); split routes and default routes keep it', (t) => {
  const hashed = dr('reviews', REVIEWS, {
    trafficPolicy: policy({ loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } }),
    subsets: [
      { name: 'v1', labels: { version: 'v1' } },
      { name: 'v2', labels: { version: 'v2' } },
    ],
  });
  const single = { ...withRetries({ attempts: 2 }), destinationRules: [hashed] };
  t.match(retries(outbound(single), `${REVIEWS}:9080`), [{ previousHosts: false, numRetries: 2 }]);
  const split = bookinfo({ virtualServices: [vs('reviews', [REVIEWS], [{ match: [], route: [{ destination: dest(REVIEWS, 'v1'), weight: 50 }, { destination: dest(REVIEWS, 'v2'), weight: 50 }] }])], destinationRules: [hashed] });
  t.match(retries(outbound(split), `${REVIEWS}:9080`), [{ previousHosts: true }], 'weighted: istiod does not count it as hashed');
  const noVs = bookinfo({ virtualServices: [], destinationRules: [hashed] });
  t.match(retries(outbound(noVs), `${REVIEWS}:9080`), [{ previousHosts: true }], 'default route: BuildDefaultHTTPOutboundRoute keeps the predicate');
  t.end();
});

t.test('proxyless gRPC clients get the same policies, and grpc-js-xds accepts them (gRFC A44)', (t) => {
  const o = { proxyless: true, locality: { region: 'aws-us-east-1', zone: 'aws-us-east-1a', subZone: '' } };
  const custom = withRetries({ attempts: 4, perTryTimeoutMs: 500, retryOn: { conditions: ['unavailable', 'deadline-exceeded'], statusCodes: [] }, retryRemoteLocalities: true, backoffMs: 50 });
  const cases = [
    { mesh: bookinfo(), want: [2, 2, 2], retryOn: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes' },
    { mesh: custom, want: [4], retryOn: 'unavailable,deadline-exceeded' },
    { mesh: withRetries({ attempts: 0 }), want: [undefined], retryOn: undefined },
  ];
  for (const c of cases) {
    const r = grpcAccepts(t, translate(c.mesh, node(o), OPTS)).get(ROUTE_CONFIGURATION_TYPE_URL)!.get(`${REVIEWS}:9081`) as { virtual_hosts: { routes: { route: { retry_policy: GrpcRetry | null } }[] }[] };
    const policies = r.virtual_hosts[0]!.routes.map((x) => x.route.retry_policy);
    t.strictSame(policies.map((p) => p?.num_retries?.value), c.want, `num_retries as gRPC reads them: ${JSON.stringify(c.want)}`);
    t.equal(policies[0]?.retry_on, c.retryOn);
  }
  t.end();
});
