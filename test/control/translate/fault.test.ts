// VirtualService fault -> the fault filter on the outbound HCM and the route's typed_per_filter_config, as istiod
// writes them, read back through the sidecar's own decoders.
import t from 'tap';
import type { HTTPRoute } from '../../../src/control/mesh/types.js';
import { translate } from '../../../src/control/translate/index.js';
import { FAULT_FILTER_NAME, FAULT_TYPE_URL } from '../../../src/model/fault.js';
import { LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL } from '../../../src/xds/protos.js';
import { OPTS, REVIEWS, bookinfo, decodeAll, dest, node, vs } from './helpers.js';

const translated = (fault?: HTTPRoute['fault']) => {
  const s = translate(bookinfo({ virtualServices: [vs('reviews', [REVIEWS], [{ match: [], route: [{ destination: dest(REVIEWS, 'v1'), weight: 100 }], ...(fault && { fault }) }])] }), node(), OPTS);
  const rc = decodeAll(s, ROUTE_CONFIGURATION_TYPE_URL).get('outbound')!;
  return { s, route: rc.virtualHosts.find((v) => v.name === `${REVIEWS}:9080`)!.routes[0]! };
};

t.test('the outbound HCM always carries the empty fault filter before the router; inbound does not', (t) => {
  const lds = decodeAll(translated().s, LISTENER_TYPE_URL);
  t.strictSame(lds.get('virtualOutbound')!.filterChain.hcm.httpFilters.map((f) => [f.name, f.config]), [
    [FAULT_FILTER_NAME, { headers: [], downstreamNodes: [] }],
    ['envoy.filters.http.router', {}],
  ]);
  t.strictSame(lds.get('virtualInbound')!.filterChain.hcm.httpFilters.map((f) => f.name), ['envoy.filters.http.router']);
  t.equal(translated().route.typedPerFilterConfig, undefined, 'a route without a fault has no per-filter config');
  t.end();
});

t.test("a route's fault: percentages per million (istiod's translatePercentToFractionalPercent), HTTP and gRPC aborts", (t) => {
  const { route } = translated({ delay: { fixedDelayMs: 1500, percentage: 12.5 }, abort: { httpStatus: 503, percentage: 0.29 } });
  t.strictSame(route.typedPerFilterConfig, {
    [FAULT_FILTER_NAME]: { typeUrl: FAULT_TYPE_URL, config: { delay: { fixedDelayMs: 1500, probability: 0.125 }, abort: { httpStatus: 503, probability: 0.0029 }, headers: [], downstreamNodes: [] } },
  });
  const grpc = translated({ abort: { grpcStatus: 14, percentage: 100 } }).route;
  t.strictSame(grpc.typedPerFilterConfig?.[FAULT_FILTER_NAME]?.config, { abort: { httpStatus: 200, grpcStatus: 14, probability: 1 }, headers: [], downstreamNodes: [] });
  const unset = translated({ delay: { fixedDelayMs: 10 }, abort: { grpcStatus: 0 } }).route;
  t.strictSame(unset.typedPerFilterConfig?.[FAULT_FILTER_NAME]?.config, { delay: { fixedDelayMs: 10, probability: 0 }, abort: { httpStatus: 200, grpcStatus: 0, probability: 0 }, headers: [], downstreamNodes: [] }, 'no percentage: never (Istio)');
  t.end();
});
