// Checks across documents: dangling hosts, subsets and ports; duplicates; route weights; endpoint conflicts.
import t from 'tap';
import { BASE, check, doc, serviceEntry, withBase } from './helpers.js';

const route = (dests: string, extra = '') => doc('VirtualService', 'r', `  hosts: [reviews]\n  http:\n  - route:\n${dests}${extra}`);

t.test('the base alone is valid', async (t) => {
  t.strictSame(check({ 'mesh/base.yaml': BASE }), []);
});

t.test('dangling hosts: a route, a VirtualService or a DestinationRule naming a service nobody declares', async (t) => {
  const text = [
    route('    - destination: {host: details}\n      weight: 100\n    - destination: {host: ratings.default.svc.cluster.local}\n      weight: 0\n'),
    doc('VirtualService', 'd', '  hosts: [details.shop.svc.cluster.local]\n  http:\n  - route: [{destination: {host: reviews}}]\n'),
    doc('DestinationRule', 'd', '  host: details\n'),
  ].join('---\n');
  t.strictSame(check(withBase(text)), [
    'mesh/x.yaml:9 VirtualService r: spec.http[0].route[0].destination.host: no ServiceEntry declares host details.default.svc.cluster.local (details in namespace default)',
    'mesh/x.yaml:19 VirtualService d: spec.hosts[0]: no ServiceEntry declares host details.shop.svc.cluster.local',
    'mesh/x.yaml:28 DestinationRule d: spec.host: no ServiceEntry declares host details.default.svc.cluster.local',
  ]);
});

t.test('dangling subsets and ports', async (t) => {
  const text = [
    route(
      `    - destination: {host: reviews, subset: v3}
      weight: 50
    - destination: {host: ratings, subset: v1, port: {number: 9080}}
      weight: 25
    - destination: {host: reviews, subset: v1, port: {number: 9999}}
      weight: 25
`,
    ).replace('  http:\n', '  http:\n  - match: [{port: 9081}, {port: 7}]\n    route: [{destination: {host: reviews}}]\n'),
    doc('DestinationRule', 'ratings', '  host: ratings\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 1234}\n      tls: {mode: DISABLE}\n  subsets:\n  - name: v1\n    trafficPolicy:\n      portLevelSettings: [{port: {number: 9080}, tls: {mode: ISTIO_MUTUAL}}, {port: {number: 80}, tls: {}}]\n'),
  ].join('---\n');
  t.strictSame(check(withBase(text)), [
    'mesh/x.yaml:8 VirtualService r: spec.http[0].match[1].port: port 7 is not a port of reviews.default.svc.cluster.local (ports: 9080, 9081)',
    'mesh/x.yaml:11 VirtualService r: spec.http[1].route[0].destination.subset: DestinationRule default/reviews (mesh/base.yaml:45) defines no subset v3 (subsets: v1, v2)',
    'mesh/x.yaml:15 VirtualService r: spec.http[1].route[2].destination.port.number: reviews.default.svc.cluster.local has no port 9999 (ports: 9080, 9081)',
    'mesh/x.yaml:26 DestinationRule ratings: spec.trafficPolicy.portLevelSettings[0].port.number: ratings.default.svc.cluster.local has no port 1234 (ports: 9080)',
    'mesh/x.yaml:31 DestinationRule ratings: spec.subsets[0].trafficPolicy.portLevelSettings[1].port.number: ratings.default.svc.cluster.local has no port 80 (ports: 9080)',
  ]);
  // Without any DestinationRule for the host, a subset cannot exist.
  const noRule = route('    - destination: {host: ratings, subset: v1}\n');
  t.strictSame(check(withBase(noRule)), [
    'mesh/x.yaml:9 VirtualService r: spec.http[0].route[0].destination.subset: subset v1 needs a DestinationRule for ratings.default.svc.cluster.local, and there is none',
  ]);
});

t.test('weights of one route add up to 100; a lone destination may leave its weight out', async (t) => {
  const text = doc(
    'VirtualService',
    'r',
    `  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 20}
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v2}}
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v2}, weight: 50}
    - {destination: {host: reviews}, weight: 0}
  - route:
    - {destination: {host: reviews}, weight: 100}
`,
  );
  t.strictSame(check(withBase(text)), [
    'mesh/x.yaml:8 VirtualService r: spec.http[0].route: weights add up to 110, not 100',
    'mesh/x.yaml:11 VirtualService r: spec.http[1].route: weights add up to 50, not 100',
    'mesh/x.yaml:13 VirtualService r: spec.http[2].route: weights add up to 50, not 100',
  ]);
});

t.test('duplicates: hosts in two ServiceEntries, VirtualServices or DestinationRules; subset names; names', async (t) => {
  const text = [
    serviceEntry('reviews', ['{number: 80, name: http, protocol: HTTP}']).replace('name: reviews', 'name: reviews-again'),
    doc('VirtualService', 'a', '  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}}]}]\n'),
    doc('VirtualService', 'b', '  hosts: [ratings, reviews.default.svc.cluster.local]\n  http: [{route: [{destination: {host: reviews}}]}]\n'),
    doc('DestinationRule', 'reviews-fqdn', '  host: reviews.default.svc.cluster.local\n'),
    doc('DestinationRule', 'ratings', '  host: ratings\n  subsets:\n  - {name: v1}\n  - {name: v1, labels: {version: v1}}\n'),
    doc('WorkloadEntry', 'reviews-v1', '  address: 127.10.9.9\n'),
    // Same name, other namespace or other kind: different objects.
    doc('WorkloadEntry', 'reviews-v1', '  address: 127.10.9.8\n').replace('  name: reviews-v1\n', '  name: reviews-v1\n  namespace: shop\n'),
    serviceEntry('details', ['{number: 80, name: http, protocol: HTTP}']).replace('name: details', 'name: reviews-v1'),
  ].join('---\n');
  t.strictSame(check(withBase(text)), [
    'mesh/x.yaml:6 ServiceEntry reviews-again: spec.hosts[0]: host reviews.default.svc.cluster.local is already declared by ServiceEntry default/reviews (mesh/base.yaml:4)',
    'mesh/x.yaml:26 VirtualService b: spec.hosts[1]: reviews.default.svc.cluster.local is already routed by VirtualService default/a (mesh/x.yaml:16); Outrigger takes one VirtualService per host',
    'mesh/x.yaml:34 DestinationRule reviews-fqdn: spec.host: reviews.default.svc.cluster.local already has DestinationRule default/reviews (mesh/base.yaml:45); Outrigger takes one DestinationRule per host',
    'mesh/x.yaml:44 DestinationRule ratings: spec.subsets[1].name: duplicate subset name v1 (also subsets[0])',
    'mesh/x.yaml:49 WorkloadEntry reviews-v1: metadata.name: duplicate name: WorkloadEntry default/reviews-v1 (mesh/base.yaml:29) has the same kind, namespace and name',
  ]);
});

t.test('two entries of one service on the same address and port conflict; other ports do not', async (t) => {
  const text = [
    doc('WorkloadEntry', 'reviews-v3', '  address: 127.10.2.1\n  labels: {app: reviews, version: v3}\n'),
    doc('WorkloadEntry', 'reviews-v4', '  address: 127.10.2.2\n  ports: {http: 19080, grpc: 19081}\n  labels: {app: reviews, version: v4}\n'),
    doc('WorkloadEntry', 'ratings-v1', '  address: 127.10.2.1\n  labels: {app: ratings}\n'),
    doc('ServiceEntry', 'db', '  hosts: [db.example]\n  resolution: STATIC\n  ports: [{number: 5432, name: tcp, protocol: TCP, targetPort: 6432}]\n  endpoints:\n  - {address: 127.0.0.5}\n  - {address: 127.0.0.5, ports: {tcp: 6432}}\n  - {address: 127.0.0.5, ports: {tcp: 5432}}\n  - {address: 127.0.0.6, ports: {tpc: 1}}\n'),
  ].join('---\n');
  t.strictSame(check(withBase(text)), [
    'mesh/x.yaml:6 WorkloadEntry reviews-v3: spec.address: endpoint 127.10.2.1:9080 of reviews.default.svc.cluster.local is also WorkloadEntry default/reviews-v1 (mesh/base.yaml:29); one address:port is one workload',
    'mesh/x.yaml:38 ServiceEntry db: spec.endpoints[3].ports.tpc: no port named tpc in spec.ports',
  ]);
  const fixed = text.replace('ports: {tpc: 1}', 'ports: {tcp: 1}');
  t.strictSame(check(withBase(fixed)).slice(1), [
    'mesh/x.yaml:36 ServiceEntry db: spec.endpoints[1].address: endpoint 127.0.0.5:6432 of db.example is also spec.endpoints[0]; one address:port is one workload',
  ]);
});

t.test('a document that failed on its own does not make references to it dangling too', async (t) => {
  const text = [
    doc('ServiceEntry', 'details', '  hosts: [details.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{number: 0, name: http, protocol: HTTP}]\n'),
    doc('DestinationRule', 'ratings', '  host: ratings\n  subsets: [{name: v1, colour: red}]\n'),
    doc('VirtualService', 'r', '  hosts: [details]\n  http:\n  - route:\n    - {destination: {host: details}, weight: 50}\n    - {destination: {host: ratings, subset: v1}, weight: 50}\n'),
  ].join('---\n');
  t.strictSame(check(withBase(text)), [
    'mesh/x.yaml:8 ServiceEntry details: spec.ports[0].number: must be 1..65535',
    'mesh/x.yaml:16 DestinationRule ratings: spec.subsets[0].colour: unknown field',
  ]);
});
