// PeerAuthentication (security.istio.io/v1, v1beta1): the spec as written, istiod's refusals at file:line, and the
// composition a workload gets (mesh < namespace < workload, UNSET inherits, the oldest wins, portLevelMtls).
import t from 'tap';
import { composePeerAuthentication } from '../../../src/control/mesh/peer-authentication.js';
import type { PeerAuthentication } from '../../../src/control/mesh/types.js';
import { check, valid } from './helpers.js';

/** A PeerAuthentication document; its spec starts on line 7 (or 8 with a creationTimestamp). */
function pa(name: string, ns: string, spec: string, o: { api?: string; created?: string } = {}): string {
  const created = o.created ? `  creationTimestamp: "${o.created}"\n` : '';
  return `apiVersion: ${o.api ?? 'security.istio.io/v1'}\nkind: PeerAuthentication\nmetadata:\n  name: ${name}\n  namespace: ${ns}\n${created}spec:\n${spec}`;
}

const policies = (...docs: string[]) => valid(Object.fromEntries(docs.map((d, i) => [`mesh/pa${i}.yaml`, d]))).peerAuthentications;
const REVIEWS: { namespace: string; labels: Record<string, string> } = { namespace: 'default', labels: { app: 'reviews', version: 'v1' } };
const compose = (ps: readonly PeerAuthentication[], w = REVIEWS, root = 'istio-system') => {
  const m = composePeerAuthentication(ps, w, root);
  return { mode: m.mode, source: m.source, perPort: Object.fromEntries(m.perPort), portSource: m.portSource };
};

t.test('every field reads into the model, at v1 and v1beta1', (t) => {
  const [a, b, c] = policies(
    pa('reviews', 'default', '  selector: {matchLabels: {app: reviews}}\n  mtls: {mode: STRICT}\n  portLevelMtls:\n    8080: {mode: PERMISSIVE}\n    "9090": {}\n', { created: '2024-05-01T10:00:00Z' }),
    pa('ns', 'default', '  mtls: {mode: DISABLE}\n', { api: 'security.istio.io/v1beta1' }),
    pa('empty', 'default', '  {}\n'),
  );
  t.strictSame({ ...a, meta: undefined }, { kind: 'PeerAuthentication', meta: undefined, selector: { matchLabels: { app: 'reviews' } }, mtls: 'STRICT', portLevelMtls: { 8080: 'PERMISSIVE', 9090: 'UNSET' } });
  t.equal(a!.meta.creationTimestampMs, Date.parse('2024-05-01T10:00:00Z'));
  t.strictSame({ ...b, meta: undefined }, { kind: 'PeerAuthentication', meta: undefined, mtls: 'DISABLE' });
  t.strictSame({ ...c, meta: undefined }, { kind: 'PeerAuthentication', meta: undefined, mtls: 'UNSET' }, 'an empty spec is UNSET (inherit)');
  const [d] = policies(pa('nosel', 'default', '  selector: {matchLabels: {}}\n  mtls: {}\n'));
  t.equal(d!.selector, undefined, 'an empty selector selects the namespace, as Istio reads it');
  t.end();
});

t.test('refusals name file:line and the field', (t) => {
  const one = (spec: string, o: { api?: string; created?: string } = {}) => check({ 'mesh/pa.yaml': pa('p', 'default', spec, o) });
  t.strictSame(one('  mtls: {mode: STRICT, strict: true}\n  selectors: {}\n'), [
    'mesh/pa.yaml:7 PeerAuthentication p: spec.mtls.strict: unknown field',
    'mesh/pa.yaml:8 PeerAuthentication p: spec.selectors: unknown field',
  ].map((s) => s.replace('unknown field', check({ 'x.yaml': pa('p', 'default', '  x: 1\n') })[0]!.split(': ').at(-1)!)));
  t.match(one('  mtls: {mode: MUTUAL}\n'), [/^mesh\/pa\.yaml:7 PeerAuthentication p: spec\.mtls\.mode: "MUTUAL" is not one of UNSET, DISABLE, PERMISSIVE, STRICT$/]);
  t.strictSame(one('  selector: {matchLabels: {app: r}}\n  portLevelMtls:\n    0: {mode: STRICT}\n    http: {mode: STRICT}\n    70000: {mode: DISABLE}\n'), [
    'mesh/pa.yaml:8 PeerAuthentication p: spec.portLevelMtls.0: "0" is not a port (1..65535)',
    'mesh/pa.yaml:8 PeerAuthentication p: spec.portLevelMtls.70000: "70000" is not a port (1..65535)',
    'mesh/pa.yaml:10 PeerAuthentication p: spec.portLevelMtls.http: "http" is not a port (1..65535)',
  ]);
  t.strictSame(one('  mtls: {mode: STRICT}\n  portLevelMtls:\n    8080: {mode: DISABLE}\n'), [
    'mesh/pa.yaml:8 PeerAuthentication p: spec.portLevelMtls: mesh/namespace peer authentication cannot have port level mTLS: portLevelMtls needs a selector (Istio)',
  ]);
  t.strictSame(one('  selector: {matchLabels: {app: r}}\n  portLevelMtls: {}\n'), [
    'mesh/pa.yaml:8 PeerAuthentication p: spec.portLevelMtls: port level mTLS, if defined, must have at least one element (Istio)',
  ]);
  t.match(one('  mtls: {mode: STRICT}\n', { created: 'yesterday' }), [/metadata\.creationTimestamp: "yesterday" is not an RFC 3339 time$/]);
  t.match(one('  mtls: {mode: STRICT}\n', { api: 'networking.istio.io/v1' }), [/apiVersion: unknown apiVersion "networking.istio.io\/v1" \(expected security.istio.io\/v1, security.istio.io\/v1beta1\)$/]);
  t.match(one('  selector: {matchLabels: {"bad key!": x}}\n'), [/spec\.selector\.matchLabels\["bad key!"\]: label key/]);
  t.end();
});

t.test("precedence: workload > namespace > mesh, UNSET inherits, PERMISSIVE when nothing applies", (t) => {
  t.strictSame(compose([]), { mode: 'PERMISSIVE', source: undefined, perPort: {}, portSource: undefined }, "Istio's default");
  const mesh = pa('mesh', 'istio-system', '  mtls: {mode: STRICT}\n');
  const ns = pa('ns', 'default', '  mtls: {mode: PERMISSIVE}\n');
  const wl = pa('wl', 'default', '  selector: {matchLabels: {app: reviews}}\n  mtls: {mode: DISABLE}\n');
  t.match(compose(policies(mesh)), { mode: 'STRICT', source: 'istio-system/mesh' }, 'mesh-wide');
  t.match(compose(policies(mesh, ns)), { mode: 'PERMISSIVE', source: 'default/ns' }, 'namespace over mesh');
  t.match(compose(policies(mesh, ns, wl)), { mode: 'DISABLE', source: 'default/wl' }, 'workload over namespace');
  t.match(compose(policies(mesh, pa('ns', 'default', '  mtls: {mode: UNSET}\n'), pa('wl', 'default', '  selector: {matchLabels: {app: reviews}}\n'))), { mode: 'STRICT', source: 'istio-system/mesh' }, 'UNSET levels inherit');
  t.match(compose(policies(mesh), REVIEWS, 'mesh-root'), { mode: 'PERMISSIVE' }, 'istio-system is not the root namespace here');
  t.match(compose(policies(pa('mesh', 'mesh-root', '  mtls: {mode: STRICT}\n')), REVIEWS, 'mesh-root'), { mode: 'STRICT', source: 'mesh-root/mesh' }, '--root-namespace');
  // Selectors pick workloads of their own namespace only; other namespaces' policies do nothing here.
  const elsewhere = policies(pa('o', 'other', '  mtls: {mode: STRICT}\n'), pa('o2', 'other', '  selector: {matchLabels: {app: reviews}}\n  mtls: {mode: STRICT}\n'), pa('r', 'istio-system', '  selector: {matchLabels: {app: reviews}}\n  mtls: {mode: STRICT}\n'));
  t.match(compose(elsewhere), { mode: 'PERMISSIVE', source: undefined }, "another namespace's policies and a root-namespace selector do not apply");
  t.match(compose(policies(pa('wl', 'default', '  selector: {matchLabels: {app: ratings}}\n  mtls: {mode: STRICT}\n'))), { mode: 'PERMISSIVE' }, 'a selector that does not match');
  // A workload in the root namespace: its namespace-wide policy is the mesh policy.
  t.match(compose(policies(mesh), { namespace: 'istio-system', labels: {} }), { mode: 'STRICT', source: 'istio-system/mesh' });
  t.end();
});

t.test('the oldest policy of a level wins; without creationTimestamp the oldest is Kubernetes zero time, then the name', (t) => {
  const newer = pa('a-newer', 'default', '  mtls: {mode: DISABLE}\n', { created: '2024-06-01T00:00:00Z' });
  const older = pa('z-older', 'default', '  mtls: {mode: STRICT}\n', { created: '2024-01-01T00:00:00Z' });
  t.match(compose(policies(newer, older)), { mode: 'STRICT', source: 'default/z-older' });
  t.match(compose(policies(older, newer)), { mode: 'STRICT', source: 'default/z-older' }, 'file order does not matter');
  const undated = pa('m-undated', 'default', '  mtls: {mode: PERMISSIVE}\n');
  t.match(compose(policies(older, undated)), { mode: 'PERMISSIVE', source: 'default/m-undated' }, 'no timestamp counts as oldest');
  t.match(compose(policies(pa('b', 'default', '  mtls: {mode: DISABLE}\n'), pa('a', 'default', '  mtls: {mode: STRICT}\n'))), { mode: 'STRICT', source: 'default/a' }, 'ties: by name');
  const w1 = pa('w1', 'default', '  selector: {matchLabels: {app: reviews}}\n  mtls: {mode: DISABLE}\n', { created: '2024-02-01T00:00:00Z' });
  const w2 = pa('w2', 'default', '  selector: {matchLabels: {version: v1}}\n  mtls: {mode: STRICT}\n', { created: '2024-01-01T00:00:00Z' });
  t.match(compose(policies(w1, w2)), { mode: 'STRICT', source: 'default/w2' }, 'two workload policies: the oldest');
  t.end();
});

t.test('portLevelMtls: from the workload policy, UNSET ports inherit the workload mode', (t) => {
  const ns = pa('ns', 'default', '  mtls: {mode: STRICT}\n');
  const wl = pa('wl', 'default', '  selector: {matchLabels: {app: reviews}}\n  portLevelMtls:\n    9080: {mode: PERMISSIVE}\n    9081: {mode: UNSET}\n    9082: {mode: DISABLE}\n');
  t.strictSame(compose(policies(ns, wl)), { mode: 'STRICT', source: 'default/ns', perPort: { 9080: 'PERMISSIVE', 9081: 'STRICT', 9082: 'DISABLE' }, portSource: 'default/wl' });
  t.end();
});
