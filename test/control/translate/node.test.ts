// proxyNodeFrom: Envoy node metadata in Istio's keys -> ProxyNode, every problem by field path, and the cache key.
import t from 'tap';
import type { FieldIssue } from '../../../src/core/errors.js';
import type { Result } from '../../../src/core/result.js';
import type { ProxyNode } from '../../../src/control/snapshot.js';
import { proxyNodeFrom } from '../../../src/control/translate/node.js';
import type { NodeInfo } from '../../../src/model/types.js';
import { decodeBootstrapMessage } from '../../../src/xds/resources/bootstrap.js';
import { decodeCanonical } from '../../../src/xds/canonical.js';
import { jsonToMessage } from '../../../src/xds/json.js';
import { lookupType } from '../../../src/xds/protos.js';
import { TD } from './helpers.js';

const SIDECAR_MD = {
  NAMESPACE: 'default',
  SERVICE_ACCOUNT: 'bookinfo-reviews',
  LABELS: { version: 'v1', app: 'reviews' },
  INSTANCE_IPS: '10.0.1.1,fd00::1',
  POD_PORTS: '[{"name":"http","containerPort":9080,"protocol":"TCP"},{"containerPort":9081}]',
};
const info = (metadata: Record<string, unknown>, extra: Partial<NodeInfo> = {}): NodeInfo => ({ id: 'sidecar~10.0.1.1~reviews-v1.default~default.svc.cluster.local', cluster: 'reviews', metadata, ...extra });
const read = (metadata: Record<string, unknown>, extra: Partial<NodeInfo> = {}) => proxyNodeFrom(info(metadata, extra), { trustDomain: TD });
const value = (r: Result<ProxyNode, FieldIssue>) => (r.ok ? r.value : undefined);
const problems = (r: Result<ProxyNode, FieldIssue>) => (r.ok ? [] : r.errors.map((i) => `${i.path}: ${i.message}`));

t.test('a sidecar as istio-agent describes it', (t) => {
  const n = value(read(SIDECAR_MD, { locality: { region: 'aws-us-east-1', zone: 'aws-us-east-1a', subZone: '' } }))!;
  t.match(n, {
    id: 'sidecar~10.0.1.1~reviews-v1.default~default.svc.cluster.local',
    kind: 'sidecar',
    namespace: 'default',
    serviceAccount: 'bookinfo-reviews',
    spiffeId: `spiffe://${TD}/ns/default/sa/bookinfo-reviews`,
    labels: { app: 'reviews', version: 'v1' },
    locality: { region: 'aws-us-east-1', zone: 'aws-us-east-1a', subZone: '' },
    ips: ['10.0.1.1', 'fd00::1'],
  });
  t.strictSame(n.appPorts, [
    { name: 'http', port: 9080, protocol: 'TCP' },
    { name: '', port: 9081, protocol: 'TCP' },
  ]);
  t.ok(Object.isFrozen(n) && Object.isFrozen(n.labels) && Object.isFrozen(n.ips));
  t.end();
});

t.test('the node decoded from a real Struct (as it arrives on the wire) reads the same as a plain object', (t) => {
  // What Envoy sends: metadata is a google.protobuf.Struct; POD_PORTS stays a JSON string, numbers are doubles.
  const msg = jsonToMessage(lookupType('envoy.config.bootstrap.v3.Bootstrap')!, { node: { id: 'n1', metadata: { ...SIDECAR_MD, LABELS: { app: 'reviews' }, TRUST_DOMAIN: TD } } }, '');
  t.ok(msg.ok);
  const type = lookupType('envoy.config.bootstrap.v3.Bootstrap')!;
  const b = decodeBootstrapMessage(decodeCanonical(type, type.encode(msg.ok ? msg.value : {}).finish()), '');
  t.ok(b.ok);
  const n = b.ok ? value(proxyNodeFrom(b.value.node, { trustDomain: TD })) : undefined;
  t.match(n, { kind: 'sidecar', labels: { app: 'reviews' }, appPorts: [{ port: 9080 }, { port: 9081 }], locality: { region: '', zone: '', subZone: '' } });
  t.end();
});

t.test('lists are accepted where istio-agent writes strings', (t) => {
  const n = value(read({ ...SIDECAR_MD, INSTANCE_IPS: ['10.0.1.1'], POD_PORTS: [{ name: 'grpc', containerPort: 9081, protocol: 'TCP' }] }))!;
  t.strictSame(n.ips, ['10.0.1.1']);
  t.strictSame(n.appPorts, [{ name: 'grpc', port: 9081, protocol: 'TCP' }]);
  t.end();
});

t.test('GENERATOR "grpc" is a proxyless client: identity defaults to "default", no addresses needed', (t) => {
  const n = value(read({ GENERATOR: 'grpc' }))!;
  t.match(n, { kind: 'proxyless', namespace: 'default', serviceAccount: 'default', spiffeId: `spiffe://${TD}/ns/default/sa/default`, ips: [], appPorts: [] });
  t.match(value(read({ GENERATOR: 'grpc', NAMESPACE: 'shop', SERVICE_ACCOUNT: 'cart' })), { namespace: 'shop', spiffeId: `spiffe://${TD}/ns/shop/sa/cart` });
  t.end();
});

t.test('missing and wrong metadata are reported by field path, all at once', (t) => {
  t.strictSame(problems(read({}, { id: '' })), [
    'node.id: is required',
    'node.metadata.NAMESPACE: is required for a sidecar: its identity is spiffe://<trust domain>/ns/<NAMESPACE>/sa/<SERVICE_ACCOUNT>',
    'node.metadata.SERVICE_ACCOUNT: is required for a sidecar: its identity is spiffe://<trust domain>/ns/<NAMESPACE>/sa/<SERVICE_ACCOUNT>',
    'node.metadata.INSTANCE_IPS: is required for a sidecar: its listeners bind the first address',
  ]);
  t.strictSame(problems(read({ ...SIDECAR_MD, INSTANCE_IPS: ' , ' })), ['node.metadata.INSTANCE_IPS: is required for a sidecar: its listeners bind the first address'], 'an empty list is no address');
  t.strictSame(
    problems(
      read({
        GENERATOR: 'istio',
        NAMESPACE: 7,
        SERVICE_ACCOUNT: 'reviews',
        TRUST_DOMAIN: 'other.example',
        LABELS: { app: 'reviews', 'app.kubernetes.io/version': 3 },
        INSTANCE_IPS: '10.0.1.1,reviews.local',
        POD_PORTS: [{ name: 1, containerPort: 0 }, 'http', { protocol: 'TCP' }],
      }),
    ),
    [
      'node.metadata.GENERATOR: "istio" is not supported: "grpc" marks a proxyless gRPC client; leave it unset for a sidecar',
      'node.metadata.NAMESPACE: must be a string, not 7',
      'node.metadata.TRUST_DOMAIN: is "other.example", but this control server serves trust domain "cluster.local"',
      'node.metadata.LABELS["app.kubernetes.io/version"]: must be a string, not 3',
      'node.metadata.INSTANCE_IPS[1]: "reviews.local" is not an IP address',
      'node.metadata.POD_PORTS[0].containerPort: 0 is not a port (1-65535)',
      'node.metadata.POD_PORTS[0].name: must be a string',
      'node.metadata.POD_PORTS[1]: must be an object with containerPort',
      'node.metadata.POD_PORTS[2].containerPort: is required',
    ],
  );
  t.strictSame(problems(read({ ...SIDECAR_MD, LABELS: ['app'], INSTANCE_IPS: 10, POD_PORTS: '[{' })), [
    'node.metadata.LABELS: must be a map of label name to value',
    'node.metadata.INSTANCE_IPS: must be a comma-separated string or a list of IP addresses',
    `node.metadata.POD_PORTS: is not valid JSON: ${jsonError('[{')}`,
  ]);
  t.strictSame(problems(read({ ...SIDECAR_MD, POD_PORTS: '{"containerPort":1}' })), ['node.metadata.POD_PORTS: must be a list of {"name","containerPort","protocol"} (or that list as a JSON string)']);
  t.end();
});

function jsonError(text: string): string {
  try {
    JSON.parse(text);
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}

t.test('an identity that is not a valid SPIFFE ID blames the key that broke it', (t) => {
  t.strictSame(problems(read({ ...SIDECAR_MD, NAMESPACE: 'a/b' })), ['node.metadata.NAMESPACE: "a/b" must be one segment of the SPIFFE ID path (no "/")']);
  t.match(problems(read({ ...SIDECAR_MD, NAMESPACE: 'bad ns' })), [/^node\.metadata\.NAMESPACE: invalid SPIFFE ID .*may only contain/]);
  t.match(problems(read({ ...SIDECAR_MD, SERVICE_ACCOUNT: '..' })), [/^node\.metadata\.SERVICE_ACCOUNT: invalid SPIFFE ID .*"\." or "\.\."/]);
  t.end();
});

t.test('cacheKey: equal for what translates equally, different for what does not', (t) => {
  const key = (md: Record<string, unknown>, extra: Partial<NodeInfo> = {}) => value(read(md, extra))!.cacheKey;
  const base = key(SIDECAR_MD);
  t.equal(key({ ...SIDECAR_MD, LABELS: { app: 'reviews', version: 'v1' } }), base, 'label order does not matter');
  t.equal(key(SIDECAR_MD, { id: 'another-pod' }), base, 'the node id does not matter');
  const differs: [string, string][] = [
    ['namespace', key({ ...SIDECAR_MD, NAMESPACE: 'other' })],
    ['service account', key({ ...SIDECAR_MD, SERVICE_ACCOUNT: 'x' })],
    ['labels', key({ ...SIDECAR_MD, LABELS: { app: 'reviews', version: 'v2' } })],
    ['locality', key(SIDECAR_MD, { locality: { region: 'gcp-us-east4', zone: '', subZone: '' } })],
    ['network (failoverPriority compares it)', key({ ...SIDECAR_MD, NETWORK: 'net-2' })],
    ['a sidecar address', key({ ...SIDECAR_MD, INSTANCE_IPS: '10.0.1.2' })],
    ['a sidecar port', key({ ...SIDECAR_MD, POD_PORTS: [{ name: 'http', containerPort: 8080 }] })],
    ['kind', key({ ...SIDECAR_MD, GENERATOR: 'grpc' })],
  ];
  for (const [what, k] of differs) t.not(k, base, what);
  // A proxyless client's resources name no address of its own: all replicas share one translation.
  const grpc = { GENERATOR: 'grpc', NAMESPACE: 'default', LABELS: { app: 'productpage' } };
  t.equal(key({ ...grpc, INSTANCE_IPS: '10.0.9.1', POD_PORTS: '[]' }), key({ ...grpc, INSTANCE_IPS: '10.0.9.2' }));
  t.end();
});
