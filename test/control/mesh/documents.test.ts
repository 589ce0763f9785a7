// One document at a time: YAML errors, kinds, apiVersions, unknown fields, types, ranges, durations, regexes,
// fields not supported yet, each named by file:line and field path.
import t from 'tap';
import { check, doc, withBase } from './helpers.js';

t.test('malformed YAML: the line of the syntax error, in a file of several documents', async (t) => {
  const text = `${doc('WorkloadEntry', 'a', '  address: 127.0.0.1\n')}---\n${doc('WorkloadEntry', 'b', '  address: 127.0.0.2\n  labels: app: x\n  weight: 1\n')}`;
  t.match(check({ 'mesh/x.yaml': text }), [/^mesh\/x\.yaml:14: YAML: Nested mappings are not allowed/], 'line 14 of the file, in the second document');
  // An unclosed flow collection is noticed on the line that cannot continue it.
  t.match(check({ 'mesh/x.yaml': 'a: [1, 2\nb: 3\n' }), [/^mesh\/x\.yaml:2: YAML: Flow sequence in block collection must be sufficiently indented and end with a \]$/]);

  t.match(check({ 'mesh/x.yaml': doc('WorkloadEntry', 'a', '  address: 127.0.0.1\n  address: 127.0.0.2\n') }), [/^mesh\/x\.yaml:7: YAML: Map keys must be unique/]);
  // Aliases that expand exponentially ("billion laughs") are refused instead of eating the memory.
  const laughs = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...'bcdefghij'.split('').map((c, i) => `${c}: &${c} [${Array(10).fill(`*${'abcdefghij'[i]}`).join(', ')}]`)].join('\n');
  t.match(check({ 'mesh/x.yaml': `${laughs}\n` }), [/^mesh\/x\.yaml:1: YAML: Excessive alias count/]);
});

t.test('not a resource, unknown kinds and apiVersions', async (t) => {
  t.strictSame(check({ 'x.yaml': '- a\n- b\n' }), ['x.yaml:1: expected a Kubernetes resource (an object with apiVersion, kind, metadata and spec)']);
  t.strictSame(check({ 'x.yaml': doc('Frobnicator', 'f', '  x: 1\n') }), ['x.yaml:2 Frobnicator f: kind: unknown kind "Frobnicator" (Outrigger reads ServiceEntry, WorkloadEntry, VirtualService, DestinationRule, RateLimitPolicy, RequestAuthentication, AuthorizationPolicy, PeerAuthentication)']);
  t.strictSame(check({ 'x.yaml': doc('Gateway', 'g', '  servers: []\n') }), ['x.yaml:2 Gateway g: kind: Gateway is not supported yet (Outrigger reads ServiceEntry, WorkloadEntry, VirtualService, DestinationRule, RateLimitPolicy, RequestAuthentication, AuthorizationPolicy, PeerAuthentication)']);
  const expected = '(expected networking.istio.io/v1, networking.istio.io/v1beta1, networking.istio.io/v1alpha3)';
  t.strictSame(check({ 'x.yaml': doc('WorkloadEntry', 'w', '  address: 127.0.0.1\n', 'networking.istio.io/v2') }), [`x.yaml:1 WorkloadEntry w: apiVersion: unknown apiVersion "networking.istio.io/v2" ${expected}`]);
  t.strictSame(check({ 'x.yaml': doc('WorkloadEntry', 'w', '  address: 127.0.0.1\n', 'v1') }), [`x.yaml:1 WorkloadEntry w: apiVersion: unknown apiVersion "v1" ${expected}`]);
  t.strictSame(check({ 'x.yaml': 'kind: 7\napiVersion: [v1]\nmetadata: {name: x}\nspec: {}\n' }), [
    'x.yaml:1: kind: expected a string, got 7',
    'x.yaml:2: apiVersion: expected a string, got a list',
  ]);
});

t.test('unknown fields: top level, metadata, spec, nested deep; spelling hints', async (t) => {
  const text = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespce: shop
  uid: 0b1c
specs: {}
spec:
  Hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
        port: {numbr: 9080}
`;
  t.strictSame(check({ 'mesh/x.yaml': text }), [
    'mesh/x.yaml:5 VirtualService reviews: metadata.namespce: unknown field',
    'mesh/x.yaml:7 VirtualService reviews: specs: unknown field',
    'mesh/x.yaml:8 VirtualService reviews: spec.hosts: is required',
    'mesh/x.yaml:9 VirtualService reviews: spec.Hosts: unknown field (did you mean hosts?)',
    'mesh/x.yaml:14 VirtualService reviews: spec.http[0].route[0].destination.port.numbr: unknown field',
    'mesh/x.yaml:14 VirtualService reviews: spec.http[0].route[0].destination.port.number: is required',
  ]);
  const dr = doc('DestinationRule', 'reviews', '  host: reviews\n  trafficPolicy:\n    outlierDetection:\n      consecutive_5xx_errors: 3\n');
  t.strictSame(check({ 'mesh/x.yaml': dr }), ['mesh/x.yaml:9 DestinationRule reviews: spec.trafficPolicy.outlierDetection.consecutive_5xx_errors: unknown field (did you mean consecutive5xxErrors?)']);
  // kubectl get -o yaml output carries status and server-set metadata; both are accepted and ignored.
  const fromCluster = `${doc('WorkloadEntry', 'w', '  address: 127.0.0.1\n').replace('  name: w\n', '  name: w\n  resourceVersion: "12"\n  creationTimestamp: "2024-01-01T00:00:00Z"\n')}status: {conditions: []}\n`;
  t.strictSame(check({ 'x.yaml': fromCluster }), []);
});

t.test('wrong types', async (t) => {
  const se = doc(
    'ServiceEntry',
    'reviews',
    `  hosts: reviews.default.svc.cluster.local
  resolution: STATIC
  ports:
  - {number: "9080", name: http, protocol: HTTP}
  - 9081
  workloadSelector:
    labels: {app: reviews, version: 2}
`,
  );
  t.strictSame(check({ 'x.yaml': se }), [
    'x.yaml:6 ServiceEntry reviews: spec.hosts: expected a list, got "reviews.default.svc.cluster.local"',
    'x.yaml:9 ServiceEntry reviews: spec.ports[0].number: expected an integer, got "9080"',
    'x.yaml:10 ServiceEntry reviews: spec.ports[1]: expected an object, got 9081',
    'x.yaml:12 ServiceEntry reviews: spec.workloadSelector.labels.version: expected a string, got 2',
  ]);
  const vs = doc('VirtualService', 'reviews', '  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n      weight: ten\n    timeout: 5\n');
  t.strictSame(check({ 'x.yaml': vs }), [
    'x.yaml:10 VirtualService reviews: spec.http[0].route[0].weight: expected an integer, got "ten"',
    'x.yaml:11 VirtualService reviews: spec.http[0].timeout: expected a string, got 5',
  ]);
  const dr = doc('DestinationRule', 'r', '  host: reviews\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {useSourceIp: "yes"}\n  subsets: {v1: {}}\n');
  t.strictSame(check({ 'x.yaml': dr }), [
    'x.yaml:9 DestinationRule r: spec.trafficPolicy.loadBalancer.consistentHash.useSourceIp: expected true or false, got "yes"',
    'x.yaml:10 DestinationRule r: spec.subsets: expected a list, got an object',
  ]);
  t.strictSame(check({ 'x.yaml': 'apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w, labels: [a]}\nspec: [address]\n' }), [
    'x.yaml:3 WorkloadEntry w: metadata.labels: expected an object (a map), got a list',
    'x.yaml:4 WorkloadEntry w: spec: expected an object, got a list',
  ]);
});

t.test('values out of range or of the wrong form', async (t) => {
  const se = doc(
    'ServiceEntry',
    'Reviews',
    `  hosts: [reviews.default.svc.cluster.local, reviews.default.svc.cluster.local, 10.0.0.1, "*.example.com", Reviews.example]
  resolution: STATIC
  location: MESH_OUTSIDE
  ports:
  - {number: 0, name: http, protocol: HTTP, targetPort: 70000}
  - {number: 9080, name: http, protocol: MONGO}
  - {number: 9080, name: x, protocol: SCTP}
  endpoints:
  - {address: reviews.example, ports: {http: 65536, Bad_Name: 1}, weight: 4294967296, locality: "a/b/c/d", serviceAccount: "Bad SA"}
`,
  );
  t.strictSame(check({ 'x.yaml': se }), [
    `x.yaml:4 ServiceEntry Reviews: metadata.name: "Reviews" is not a DNS-1123 name (lowercase letters, digits, '-' and '.')`,
    'x.yaml:6 ServiceEntry Reviews: spec.hosts[1]: duplicate host reviews.default.svc.cluster.local',
    'x.yaml:6 ServiceEntry Reviews: spec.hosts[2]: must be a DNS name, not an IP address',
    'x.yaml:6 ServiceEntry Reviews: spec.hosts[3]: wildcard hosts are not supported yet',
    `x.yaml:6 ServiceEntry Reviews: spec.hosts[4]: "Reviews.example" is not a DNS-1123 name (lowercase letters, digits, '-' and '.')`,
    'x.yaml:8 ServiceEntry Reviews: spec.location: "MESH_OUTSIDE" is not one of MESH_INTERNAL, MESH_EXTERNAL',
    'x.yaml:10 ServiceEntry Reviews: spec.ports[0].number: must be 1..65535',
    'x.yaml:10 ServiceEntry Reviews: spec.ports[0].targetPort: must be 1..65535',
    'x.yaml:11 ServiceEntry Reviews: spec.ports[1].protocol: protocol MONGO is not supported (one of HTTP, HTTP2, GRPC, TCP, TLS, HTTPS)',
    'x.yaml:11 ServiceEntry Reviews: spec.ports[1].name: port name http is used twice',
    'x.yaml:12 ServiceEntry Reviews: spec.ports[2].protocol: unknown protocol "SCTP" (one of HTTP, HTTP2, GRPC, TCP, TLS, HTTPS)',
    'x.yaml:12 ServiceEntry Reviews: spec.ports[2].number: port 9080 is listed twice',
    'x.yaml:14 ServiceEntry Reviews: spec.endpoints[0].address: "reviews.example" is not an IP address (only STATIC resolution is supported)',
    'x.yaml:14 ServiceEntry Reviews: spec.endpoints[0].ports.http: must be 1..65535',
    `x.yaml:14 ServiceEntry Reviews: spec.endpoints[0].ports.Bad_Name: port name "Bad_Name" is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)`,
    'x.yaml:14 ServiceEntry Reviews: spec.endpoints[0].locality: "a/b/c/d" is not a locality (region, region/zone or region/zone/subzone)',
    'x.yaml:14 ServiceEntry Reviews: spec.endpoints[0].weight: must be 0..4294967295',
    `x.yaml:14 ServiceEntry Reviews: spec.endpoints[0].serviceAccount: "Bad SA" is not a DNS-1123 name (lowercase letters, digits, '-' and '.')`,
  ]);
  const labels = `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: w
  namespace: Shop
  labels: {"app.kubernetes.io/name": ok, "-bad": x, "a/b/c": x, tier: "not ok"}
spec:
  address: 127.0.0.1
  labels:
    version: ${'v'.repeat(64)}
`;
  t.strictSame(check({ 'x.yaml': labels }), [
    `x.yaml:5 WorkloadEntry w: metadata.namespace: "Shop" is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)`,
    `x.yaml:6 WorkloadEntry w: metadata.labels["-bad"]: label key "-bad": the name must be 1..63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
    'x.yaml:6 WorkloadEntry w: metadata.labels["a/b/c"]: label key "a/b/c": the prefix must be a DNS-1123 name',
    `x.yaml:6 WorkloadEntry w: metadata.labels.tier: label value "not ok" must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
    `x.yaml:10 WorkloadEntry w: spec.labels.version: label value "${'v'.repeat(64)}" must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
  ]);
  const missing = doc('ServiceEntry', 'r', '  hosts: []\n  ports: []\n');
  t.strictSame(check({ 'x.yaml': missing }), [
    'x.yaml:5 ServiceEntry r: spec.resolution: is required',
    'x.yaml:6 ServiceEntry r: spec.hosts: must list at least one host',
    'x.yaml:7 ServiceEntry r: spec.ports: must list at least one port',
  ]);
});

t.test('durations as Istio writes them; at least 1ms, whole ms', async (t) => {
  const route = (timeout: string) => doc('VirtualService', 'r', `  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews}}]\n    timeout: ${timeout}\n`);
  const timeoutOf = (timeout: string) => check({ 'x.yaml': route(timeout) }).filter((i) => i.includes('timeout'));
  t.strictSame(timeoutOf('5 seconds'), ['x.yaml:9 VirtualService r: spec.http[0].timeout: invalid duration "5 seconds" (write it as Istio does: 5s, 250ms, 1m30s, 1h)']);
  t.strictSame(timeoutOf('-1s'), ['x.yaml:9 VirtualService r: spec.http[0].timeout: invalid duration "-1s" (write it as Istio does: 5s, 250ms, 1m30s, 1h)']);
  t.strictSame(timeoutOf('0s'), ['x.yaml:9 VirtualService r: spec.http[0].timeout: must be at least 1ms']);
  t.strictSame(timeoutOf('500us'), ['x.yaml:9 VirtualService r: spec.http[0].timeout: must be at least 1ms']);
  t.strictSame(timeoutOf('1.5ms'), ['x.yaml:9 VirtualService r: spec.http[0].timeout: only durations to ms precision are supported']);
  for (const [text, ms] of [['250ms', 250], ['1.1s', 1100], ['1m30s', 90_000], ['1h', 3_600_000], ['0.001s', 1]] as const) {
    const { parseMeshDocuments } = await import('../../../src/control/mesh/loader.js');
    const r = parseMeshDocuments([
      { path: 'b.yaml', text: withBase('')['mesh/base.yaml']! },
      { path: 'x.yaml', text: route(text) },
    ]);
    t.equal(r.ok && r.config.virtualServices[0]!.http[0]!.timeoutMs, ms, `${text} = ${ms} ms`);
  }
});

t.test('regexes must be RE2', async (t) => {
  const vs = doc(
    'VirtualService',
    'r',
    `  hosts: [reviews]
  http:
  - match:
    - uri: {regex: "/api/(v1"}
      headers:
        x-user: {regex: "(?<name>a)\\\\1"}
        x-ok: {regex: "[a-z]+"}
    route: [{destination: {host: reviews}}]
`,
  );
  t.strictSame(
    check({ 'x.yaml': vs }).map((i) => i.replace(/RE2 regular expression: .*/, 'RE2 regular expression: …')),
    [
      'x.yaml:9 VirtualService r: spec.http[0].match[0].uri.regex: not a valid RE2 regular expression: …',
      'x.yaml:11 VirtualService r: spec.http[0].match[0].headers.x-user.regex: not a valid RE2 regular expression: …',
    ],
  );
});

t.test('Istio fields Outrigger does not implement yet are refused, never dropped', async (t) => {
  const vs = doc(
    'VirtualService',
    'r',
    `  hosts: [reviews]
  gateways: [mesh, istio-system/ingress]
  exportTo: ["*", "."]
  tcp: []
  http:
  - match:
    - scheme: {exact: http}
      headers: {x-a: {}}
      sourceNamespace: other
    route:
    - destination: {host: reviews}
      headers: {request: {set: {x: y}}}
    retries: {attempts: 3}
`,
  );
  t.strictSame(check({ 'x.yaml': vs }), [
    'x.yaml:7 VirtualService r: spec.gateways[1]: gateway "istio-system/ingress": not supported yet (Outrigger has no gateways; only "mesh" is accepted)',
    'x.yaml:8 VirtualService r: spec.exportTo[1]: ".": not supported yet (Outrigger exports every resource to all namespaces; only "*" is accepted)',
    'x.yaml:9 VirtualService r: spec.tcp: not supported yet',
    'x.yaml:12 VirtualService r: spec.http[0].match[0].scheme: not supported yet',
    'x.yaml:13 VirtualService r: spec.http[0].match[0].headers.x-a: a presence match ({}) is not supported yet; use one of exact, prefix, regex',
    'x.yaml:14 VirtualService r: spec.http[0].match[0].sourceNamespace: not supported yet',
  ]);
  const se = doc('ServiceEntry', 's', '  hosts: [a.example]\n  addresses: [10.0.0.1]\n  resolution: DNS\n  ports: [{number: 80, name: http, protocol: HTTP}]\n');
  t.strictSame(check({ 'x.yaml': se }), [
    'x.yaml:7 ServiceEntry s: spec.addresses: not supported yet',
    'x.yaml:8 ServiceEntry s: spec.resolution: DNS: not supported (Outrigger resolves only STATIC endpoints: WorkloadEntries or inline endpoints with IP addresses)',
  ]);
  const dr = doc('DestinationRule', 'd', '  host: reviews\n  workloadSelector: {matchLabels: {app: x}}\n  trafficPolicy:\n    tls: {mode: MUTUAL, clientCertificate: /c.pem}\n');
  t.strictSame(check({ 'x.yaml': dr }), [
    'x.yaml:7 DestinationRule d: spec.workloadSelector: not supported yet',
    'x.yaml:9 DestinationRule d: spec.trafficPolicy.tls.clientCertificate: not supported yet',
    'x.yaml:9 DestinationRule d: spec.trafficPolicy.tls.mode: MUTUAL: not supported (Outrigger originates Istio mutual TLS (ISTIO_MUTUAL) or plaintext (DISABLE))',
  ]);
});

t.test('VirtualService structure: hosts, routes, matches, weights in one route', async (t) => {
  const vs = doc(
    'VirtualService',
    'r',
    `  hosts: [reviews, reviews.default.svc.cluster.local]
  http:
  - match:
    - uri: {}
      headers:
        "x user": {exact: a}
        X-Env: {exact: a}
        x-env: {prefix: b}
      port: 0
    route:
    - destination: {host: reviews, subset: V1}
      weight: 60
    - destination: {host: reviews}
  - route: []
  - route:
    - weight: 100
    - destination: {subset: v1}
`,
  );
  t.strictSame(check({ 'x.yaml': vs }), [
    'x.yaml:6 VirtualService r: spec.hosts[1]: duplicate host reviews.default.svc.cluster.local',
    'x.yaml:9 VirtualService r: spec.http[0].match[0].uri: one of exact, prefix, regex is required',
    `x.yaml:11 VirtualService r: spec.http[0].match[0].headers["x user"]: "x user" is not a header name (letters, digits, '-' and '_')`,
    'x.yaml:13 VirtualService r: spec.http[0].match[0].headers.x-env: header x-env is matched twice (also as X-Env)',
    'x.yaml:14 VirtualService r: spec.http[0].match[0].port: must be 1..65535',
    'x.yaml:15 VirtualService r: spec.http[0].route: weights add up to 60, not 100',
    `x.yaml:16 VirtualService r: spec.http[0].route[0].destination.subset: "V1" is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)`,
    'x.yaml:19 VirtualService r: spec.http[1].route: must list at least one destination',
    'x.yaml:21 VirtualService r: spec.http[2].route[0].destination: is required',
    'x.yaml:22 VirtualService r: spec.http[2].route[1].destination.host: is required',
  ]);
  t.strictSame(check({ 'x.yaml': doc('VirtualService', 'r', '  hosts: []\n  http: []\n') }), [
    'x.yaml:6 VirtualService r: spec.hosts: must list at least one host',
    'x.yaml:7 VirtualService r: spec.http: must list at least one route',
  ]);
  t.strictSame(check({ 'x.yaml': doc('VirtualService', 'r', '  exportTo: ["*"]\n') }), [
    'x.yaml:5 VirtualService r: spec.hosts: is required',
    'x.yaml:5 VirtualService r: spec.http: is required',
  ]);
});

t.test('every document is checked even when an earlier one fails; lines count from the top of the file', async (t) => {
  const text = [
    doc('WorkloadEntry', 'good', '  address: 127.0.0.1\n'),
    doc('WorkloadEntry', 'bad', '  address: 127.0.0.2\n  weight: -1\n'),
    doc('WorkloadEntry', 'worse', '  adress: 127.0.0.3\n'),
  ].join('---\n');
  t.strictSame(check({ 'mesh/x.yaml': text }), [
    'mesh/x.yaml:14 WorkloadEntry bad: spec.weight: must be 0..4294967295',
    'mesh/x.yaml:20 WorkloadEntry worse: spec.address: is required',
    'mesh/x.yaml:21 WorkloadEntry worse: spec.adress: unknown field',
  ]);
  // A document without a name still has its spec checked.
  t.strictSame(check({ 'x.yaml': 'apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {namespace: a}\nspec: {address: x}\n' }), [
    'x.yaml:3 WorkloadEntry: metadata.name: is required',
    'x.yaml:4 WorkloadEntry: spec.address: "x" is not an IP address (only STATIC resolution is supported)',
  ]);
});

t.test('anchors, aliases and merge keys: an error in a shared node is named at each use, on the anchor line', async (t) => {
  const vs = doc(
    'VirtualService',
    'r',
    `  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /a}}]
    route: &to-reviews
    - destination: {host: reviews, port: {number: 0}}
  - route: *to-reviews
`,
  );
  t.strictSame(check({ 'x.yaml': vs }), [
    'x.yaml:10 VirtualService r: spec.http[0].route[0].destination.port.number: must be 1..65535',
    'x.yaml:10 VirtualService r: spec.http[1].route[0].destination.port.number: must be 1..65535',
  ]);
  const merged = `${doc('WorkloadEntry', 'a', '  address: 127.0.0.1\n  labels: &common {app: reviews}\n')}---\n${doc('WorkloadEntry', 'b', '  address: 127.0.0.2\n  labels: {<<: {app: reviews, tier: web}, version: v2}\n')}`;
  t.strictSame(check({ 'x.yaml': merged }), []);
});

t.test('documents and parts of the wrong shape', async (t) => {
  t.strictSame(check({ 'x.yaml': doc('DestinationRule', 'd', '  - host: reviews\n') }), ['x.yaml:5 DestinationRule d: spec: expected an object, got a list']);
  t.strictSame(check({ 'x.yaml': doc('DestinationRule', 'd', '  host: reviews\n  trafficPolicy: ~\n  subsets: [v1, {name: v2, trafficPolicy: ~}]\n') }).slice(0, 1), [
    'x.yaml:8 DestinationRule d: spec.subsets[0]: expected an object, got "v1"',
  ]);
  t.strictSame(check({ 'x.yaml': doc('VirtualService', 'v', '  hosts: [reviews]\n  http: [7, {route: [7, {destination: 7}]}, {match: [7], route: [{destination: {host: reviews, port: 7}}]}]\n') }), [
    'x.yaml:7 VirtualService v: spec.http[0]: expected an object, got 7',
    'x.yaml:7 VirtualService v: spec.http[1].route[0]: expected an object, got 7',
    'x.yaml:7 VirtualService v: spec.http[1].route[1].destination: expected an object, got 7',
    'x.yaml:7 VirtualService v: spec.http[2].match[0]: expected an object, got 7',
    'x.yaml:7 VirtualService v: spec.http[2].route[0].destination.port: expected an object, got 7',
  ]);
  t.strictSame(check({ 'x.yaml': doc('ServiceEntry', 's', '  hosts: [s.example]\n  resolution: STATIC\n  ports: [{number: 1, name: a, protocol: TCP}]\n  workloadSelector: {labels: {app: s}}\n  endpoints: [{address: 127.0.0.1}, 7]\n') }), [
    'x.yaml:9 ServiceEntry s: spec.workloadSelector: only one of workloadSelector or endpoints can be set (Istio)',
    'x.yaml:10 ServiceEntry s: spec.endpoints[1]: expected an object, got 7',
  ]);
});
