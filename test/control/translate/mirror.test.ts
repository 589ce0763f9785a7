// VirtualService mirrors -> RouteAction.request_mirror_policies as istiod writes them, read back through the
// sidecar's decoder; and the sidecar's max_grpc_timeout (= the route timeout) that lets grpc-timeout count.
import t from 'tap';
import type { HTTPMirror } from '../../../src/control/mesh/types.js';
import { translate } from '../../../src/control/translate/index.js';
import type { RouteAction, RouteConfiguration } from '../../../src/model/types.js';
import { ROUTE_CONFIGURATION_TYPE_URL } from '../../../src/xds/protos.js';
import { OPTS, RATINGS, REVIEWS, bookinfo, decodeAll, dest, node, vs } from './helpers.js';

const outbound = (mirrors?: HTTPMirror[], timeoutMs?: number): RouteConfiguration => {
  const mesh = bookinfo({ virtualServices: [vs('reviews', [REVIEWS], [{ match: [], route: [{ destination: dest(REVIEWS, 'v1'), weight: 100 }], ...(mirrors && { mirrors }), ...(timeoutMs !== undefined && { timeoutMs }) }])] });
  return decodeAll(translate(mesh, node(), OPTS), ROUTE_CONFIGURATION_TYPE_URL).get('outbound')!;
};
const action = (rc: RouteConfiguration): RouteAction => {
  const r = rc.virtualHosts.find((v) => v.name === `${REVIEWS}:9080`)!.routes[0]!.action;
  if (r.kind !== 'route') throw new Error('not a route');
  return r.action;
};

t.test('mirrors: the destination cluster (port from the service, else the vhost), percent in millionths; 0 % writes nothing', (t) => {
  const a = action(
    outbound([
      { destination: dest(RATINGS), percent: 12.5, at: 'mirror' },
      { destination: dest(REVIEWS, 'v2', 9080), percent: 100, at: 'mirrors[1].destination' },
      { destination: dest(REVIEWS, 'v3'), percent: 0, at: 'mirrors[2].destination' },
    ]),
  );
  t.strictSame(a.mirrorPolicies, [
    { cluster: `outbound|9080||${RATINGS}`, numerator: 125_000, denominator: 1_000_000 },
    { cluster: `outbound|9080|v2|${REVIEWS}`, numerator: 1_000_000, denominator: 1_000_000 },
  ]);
  t.equal(action(outbound()).mirrorPolicies, undefined, 'no mirrors: no policies');
  t.equal(action(outbound([{ destination: dest(RATINGS), percent: 0, at: 'mirror' }])).mirrorPolicies, undefined, 'only 0 %: none');
  t.end();
});

t.test('sidecar routes carry max_grpc_timeout = the route timeout (istiod), 0 when there is none', (t) => {
  t.equal(action(outbound(undefined, 2500)).maxGrpcTimeoutMs, 2500);
  t.equal(action(outbound()).maxGrpcTimeoutMs, 0);
  t.end();
});
