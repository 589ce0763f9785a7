// Bootstrap files end to end: the shipped examples decode to the expected model; every error names file:line and path.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, formatIssue } from '../../src/core/errors.js';
import { HTTP2_DEFAULTS, LB_DEFAULTS } from '../../src/model/types.js';
import { decodeBootstrap, loadBootstrapFile } from '../../src/xds/bootstrap.js';
import { HCM_MODEL_DEFAULTS, UPSTREAM_TLS, bootstrap, cluster, configIssues, fmt, hcm, listener } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const example = (name: string) => readFileSync(path.join(ROOT, 'examples', name), 'utf8');
const fixture = (name: string) => path.join(ROOT, 'test/fixtures/xds', name);
const PEM = 'not checked here, only that it is readable';

function isDeepFrozen(v: unknown): boolean {
  return typeof v !== 'object' || v === null || (Object.isFrozen(v) && Object.values(v).every(isDeepFrozen));
}

const hcmDefaults = { ...HCM_MODEL_DEFAULTS, upgradeTypes: ['websocket'] };
const prefixRoute = (cluster: string, timeoutMs: number) => ({
  name: '',
  match: { path: { kind: 'prefix', value: '/' }, caseSensitive: true, headers: [] },
  action: { kind: 'route', action: { cluster, timeoutMs, hashPolicy: [] } },
});
const staticCluster = (name: string, port: number, locality = { region: '', zone: '', subZone: '' }) => ({
  name,
  type: 'STATIC',
  connectTimeoutMs: 1000,
  lbPolicy: 'ROUND_ROBIN',
  lb: LB_DEFAULTS,
  loadAssignment: {
    clusterName: name,
    localities: [{ locality, priority: 0, weight: 0, endpoints: [{ address: { host: '127.0.0.1', port }, healthStatus: 'UNKNOWN', weight: 1, hostname: '' }] }],
    overprovisioningFactor: 140,
  },
  http2: HTTP2_DEFAULTS,
  idleTimeoutMs: 3_600_000,
});

t.test('examples/sidecar-a.yaml (outbound, mTLS cluster) decodes to the expected model', (t) => {
  const dir = t.testdir({
    'sidecar-a.yaml': example('sidecar-a.yaml'),
    certs: { frontend: { 'cert-chain.pem': PEM, 'key.pem': PEM }, 'root-cert.pem': PEM },
  });
  const b = loadBootstrapFile(path.join(dir, 'sidecar-a.yaml'));
  const file = (p: string) => ({ kind: 'file', path: path.join(dir, p) });
  const az = { region: 'aws-us-east-1', zone: 'aws-us-east-1a', subZone: '' };
  t.strictSame(b.listeners.map((l) => l.filterChains), b.listeners.map((l) => [l.filterChain]), 'filterChains holds the one chain');
  t.strictSame({ ...b, listeners: b.listeners.map(({ filterChains: _all, ...l }) => l) }, {
    node: { id: 'frontend-1', cluster: 'frontend', locality: az, metadata: {} },
    listeners: [
      {
        name: 'outbound',
        address: { host: '127.0.0.1', port: 15001 },
        trafficDirection: 'OUTBOUND',
        filterChain: {
          name: '',
          hcm: {
            ...hcmDefaults,
            statPrefix: 'outbound',
            route: {
              kind: 'inline',
              config: { name: 'outbound', virtualHosts: [{ name: 'reviews', domains: ['reviews', 'reviews:9080'], routes: [prefixRoute('outbound|9080||reviews', 15_000)] }] },
            },
          },
        },
      },
    ],
    clusters: [
      {
        ...staticCluster('outbound|9080||reviews', 15006, az),
        protocol: 'HTTP2',
        tls: {
          common: {
            certificates: [{ certificateChain: file('certs/frontend/cert-chain.pem'), privateKey: file('certs/frontend/key.pem') }],
            validation: {
              trustedCa: file('certs/root-cert.pem'),
              uriSanMatchers: [{ kind: 'exact', value: 'spiffe://cluster.local/ns/default/sa/reviews', ignoreCase: false }],
            },
            alpnProtocols: ['h2'],
          },
          sni: 'outbound_.9080_._.reviews',
        },
      },
    ],
    admin: { address: { host: '127.0.0.1', port: 15000 } },
  });
  t.ok(isDeepFrozen(b), 'the model is deep-frozen');
  t.end();
});

t.test('examples/sidecar-b.yaml (inbound mTLS listener) decodes to the expected model', (t) => {
  const dir = t.testdir({
    'sidecar-b.yaml': example('sidecar-b.yaml'),
    certs: { reviews: { 'cert-chain.pem': PEM, 'key.pem': PEM }, 'root-cert.pem': PEM },
  });
  const b = loadBootstrapFile(path.join(dir, 'sidecar-b.yaml'));
  const file = (p: string) => ({ kind: 'file', path: path.join(dir, p) });
  t.strictSame(b.listeners.map((l) => l.filterChains), b.listeners.map((l) => [l.filterChain]), 'filterChains holds the one chain');
  t.strictSame({ ...b, listeners: b.listeners.map(({ filterChains: _all, ...l }) => l) }, {
    node: { id: 'reviews-1', cluster: 'reviews', metadata: {} },
    listeners: [
      {
        name: 'inbound',
        address: { host: '127.0.0.1', port: 15006 },
        trafficDirection: 'INBOUND',
        filterChain: {
          name: '',
          hcm: {
            ...hcmDefaults,
            statPrefix: 'inbound_9080',
            forwardClientCertDetails: 'SANITIZE_SET',
            setCurrentClientCertDetails: { subject: false, cert: false, chain: false, dns: false, uri: true },
            route: { kind: 'inline', config: { name: 'inbound', virtualHosts: [{ name: 'inbound', domains: ['*'], routes: [prefixRoute('inbound|9080||', 0)] }] } },
          },
          tls: {
            common: {
              certificates: [{ certificateChain: file('certs/reviews/cert-chain.pem'), privateKey: file('certs/reviews/key.pem') }],
              validation: { trustedCa: file('certs/root-cert.pem'), uriSanMatchers: [{ kind: 'prefix', value: 'spiffe://cluster.local/', ignoreCase: false }] },
              alpnProtocols: ['h2', 'http/1.1'],
            },
            requireClientCertificate: true,
          },
        },
      },
    ],
    clusters: [{ ...staticCluster('inbound|9080||', 9080), protocol: 'HTTP1' }],
    admin: { address: { host: '127.0.0.1', port: 15100 } },
  });
  t.ok(isDeepFrozen(b));
  t.end();
});

/** Each `# error: <path>: <message>` comment in a fixture is an issue expected on that line (prefix match). */
function expectedIssues(file: string): { line: number; text: string }[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .flatMap((l, i) => {
      const m = /# error: (.*)$/.exec(l);
      return m ? [{ line: i + 1, text: m[1]! }] : [];
    });
}

for (const name of ['json-errors.yaml', 'model-errors.yaml']) {
  t.test(`${name}: every issue, each with file, line and exact field path`, (t) => {
    const file = fixture(name);
    const issues = configIssues(() => loadBootstrapFile(file));
    const expected = expectedIssues(file);
    t.equal(issues.length, expected.length, 'no more, no fewer issues than the fixture marks');
    for (const want of expected) {
      const got = issues.find((i) => i.line === want.line && fmt(i).startsWith(want.text));
      t.ok(got, `line ${want.line}: ${want.text}`, { found: issues.filter((i) => i.line === want.line).map(fmt) });
    }
    t.ok(issues.every((i) => i.file === file));
    t.end();
  });
}

t.test('the ConfigError message lists file:line path: message for each issue', (t) => {
  const file = fixture('model-errors.yaml');
  const e = configIssues(() => loadBootstrapFile(file));
  t.match(formatIssue(e.find((i) => i.path.endsWith('lb_policy'))!), /model-errors\.yaml:\d+ static_resources\.clusters\[0\]\.lb_policy: CLUSTER_PROVIDED is not supported/);
  t.end();
});

t.test('malformed YAML, unreadable files and empty documents are ConfigErrors with a location', (t) => {
  const dir = t.testdir({
    'garbled.yaml': 'static_resources:\n  listeners: [\n',
    'dup.yaml': 'node:\n  id: a\n  id: b\n',
    'empty.yaml': '',
    'list.json': '[1, 2]',
    'laughs.yaml': ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...'bcdefgh'.split('').map((c, i) => `${c}: &${c} [${Array(10).fill(`*${'abcdefgh'[i]}`).join(', ')}]`)].join('\n'),
  });
  const garbled = configIssues(() => loadBootstrapFile(path.join(dir, 'garbled.yaml')));
  t.equal(garbled[0]!.path, '(document)');
  t.equal(garbled[0]!.file, path.join(dir, 'garbled.yaml'));
  t.type(garbled[0]!.line, 'number');
  const dup = configIssues(() => loadBootstrapFile(path.join(dir, 'dup.yaml')));
  t.match(dup[0], { path: '(document)', line: 3, message: /unique/ });
  t.match(configIssues(() => loadBootstrapFile(path.join(dir, 'empty.yaml')))[0], { path: '(document)', message: /expected an object .*Bootstrap.*got null/ });
  t.match(configIssues(() => loadBootstrapFile(path.join(dir, 'list.json')))[0], { path: '(document)', line: 1, message: /got a list/ });
  t.match(configIssues(() => loadBootstrapFile(path.join(dir, 'laughs.yaml')))[0], { path: '(document)', message: /alias/i }, 'alias bombs are refused');
  const missing = configIssues(() => loadBootstrapFile(path.join(dir, 'nope.yaml')));
  t.match(missing[0], { path: '(document)', file: path.join(dir, 'nope.yaml'), message: /cannot read the bootstrap: .*ENOENT/ });
  t.end();
});

t.test('JSON bootstraps get line numbers too; lowerCamelCase keys are found for snake_case paths', (t) => {
  const b = bootstrap({ clusters: [{ ...cluster(), lbPolicy: 'CLUSTER_PROVIDED' }] });
  const dir = t.testdir({ 'b.json': JSON.stringify(b, null, 2) });
  const file = path.join(dir, 'b.json');
  const [issue, ...rest] = configIssues(() => loadBootstrapFile(file));
  t.equal(rest.length, 0);
  t.equal(issue!.path, 'static_resources.clusters[0].lb_policy');
  const lines = readFileSync(file, 'utf8').split('\n');
  t.match(lines[issue!.line! - 1], /"lbPolicy": "CLUSTER_PROVIDED"/, 'the line of the camelCase key');
  t.end();
});

t.test('a missing required field points at the closest line that exists', (t) => {
  const dir = t.testdir({ 'b.yaml': 'static_resources:\n  clusters:\n  - connect_timeout: 1s\n' });
  const issues = configIssues(() => loadBootstrapFile(path.join(dir, 'b.yaml')));
  t.strictSame(issues.map((i) => [i.line, fmt(i)]), [[3, 'static_resources.clusters[0].name: is required']]);
  t.end();
});

t.test('file DataSources: relative to the bootstrap, made absolute, and checked', (t) => {
  const dir = t.testdir({ conf: { 'ca.pem': PEM, sub: {} } });
  const tls = (filename: string) => ({
    name: 'tls',
    typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', common_tls_context: { validation_context: { trusted_ca: { filename } } } },
  });
  const ok = decodeBootstrap(bootstrap({ clusters: [cluster({ transport_socket: tls('ca.pem') })] }), { file: path.join(dir, 'conf', 'b.yaml') });
  t.strictSame(ok.clusters[0]!.tls!.common.validation!.trustedCa, { kind: 'file', path: path.join(dir, 'conf', 'ca.pem') });
  const viaBase = decodeBootstrap(bootstrap({ clusters: [cluster({ transport_socket: tls('conf/ca.pem') })] }), { baseDir: dir });
  t.equal((viaBase.clusters[0]!.tls!.common.validation!.trustedCa as { path: string }).path, path.join(dir, 'conf', 'ca.pem'));

  const bad = bootstrap({ clusters: [cluster({ transport_socket: tls('sub') }), cluster({ transport_socket: tls('none.pem') }, 'other')] });
  const issues = configIssues(() => decodeBootstrap(bad, { file: path.join(dir, 'conf', 'b.yaml') }));
  const p = 'transport_socket.typed_config.common_tls_context.validation_context.trusted_ca.filename';
  t.strictSame(issues.map(fmt), [
    `static_resources.clusters[0].${p}: not a regular file: ${path.join(dir, 'conf', 'sub')}`,
    `static_resources.clusters[1].${p}: file not found: ${path.join(dir, 'conf', 'none.pem')}`,
  ]);
  t.ok(issues.every((i) => i.file === path.join(dir, 'conf', 'b.yaml') && i.line === undefined), 'in-memory: file but no line');
  t.end();
});

t.test('a file DataSource that cannot be opened says why', (t) => {
  const dir = t.testdir({ 'ca.pem': PEM });
  const b = bootstrap({ clusters: [cluster({ transport_socket: { name: 'tls', typed_config: { '@type': UPSTREAM_TLS, common_tls_context: { validation_context: { trusted_ca: { filename: 'ca.pem/x' } } } } } })] });
  t.match(configIssues(() => decodeBootstrap(b, { baseDir: dir })).map(fmt), [/trusted_ca\.filename: file not readable: .*ca\.pem\/x \(ENOTDIR\)$/]);
  t.end();
});

t.test('direct responses need no cluster; RDS in a static bootstrap is refused with its path', (t) => {
  const rds = hcm({ route_config: undefined, rds: { route_config_name: 'r', config_source: { ads: {} } } });
  const direct = hcm({ route_config: { virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200 } }] }] } });
  const b = decodeBootstrap(bootstrap({ listeners: [listener({ name: 'b', port: 8081, hcm: direct })], clusters: [] }));
  t.strictSame(b.listeners.map((l) => l.filterChain.hcm.route.kind), ['inline']);
  const issues = configIssues(() => decodeBootstrap(bootstrap({ listeners: [listener({ name: 'a', hcm: rds })], clusters: [] }))).map(fmt);
  t.match(issues, [/static_resources\.listeners\[0\]\.filter_chains\[0\]\.filters\[0\]\.typed_config\.rds: RDS needs dynamic_resources/]);
  t.end();
});

t.test('a missing file is reported together with the decoder issues, not instead of them', (t) => {
  const b = bootstrap({
    clusters: [cluster({ lb_policy: 'CLUSTER_PROVIDED', transport_socket: { name: 'tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', common_tls_context: { tls_certificates: [{ certificate_chain: { filename: '/nonexistent/c.pem' }, private_key: { inline_string: 'k' } }] } } } })],
  });
  const issues = configIssues(() => decodeBootstrap(b)).map(fmt);
  t.equal(issues.length, 2);
  t.match(issues, [/lb_policy: CLUSTER_PROVIDED is not supported/, /certificate_chain\.filename: file not found: \/nonexistent\/c\.pem/]);
  t.end();
});

t.test('YAML anchors and merge keys work as in Envoy', (t) => {
  const yaml = `
x-cluster: &base { type: STATIC, connect_timeout: 2s }
static_resources:
  clusters:
  - <<: *base
    name: a
    load_assignment: { cluster_name: a, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 1 } } } }] }] }
`;
  const dir = t.testdir({ 'b.yaml': yaml });
  // x-cluster is not a Bootstrap field: anchors live in the document, so the extra key is still an error...
  t.match(configIssues(() => loadBootstrapFile(path.join(dir, 'b.yaml'))).map(fmt), ['x-cluster: unknown field']);
  // ...but an anchor defined on a real field is fine, and merged keys decode.
  writeFileSync(path.join(dir, 'b.yaml'), yaml.replace('x-cluster: &base { type: STATIC, connect_timeout: 2s }\n', '').replace('  - <<: *base\n    name: a', '  - &base { name: a, type: STATIC, connect_timeout: 2s }\n  - <<: *base\n    name: b').replace('cluster_name: a', 'cluster_name: b'));
  const b = loadBootstrapFile(path.join(dir, 'b.yaml'));
  t.strictSame(b.clusters.map((c) => [c.name, c.connectTimeoutMs]), [['a', 2000], ['b', 2000]]);
  t.end();
});

t.test('node: locality and Struct metadata become plain data', (t) => {
  const b = decodeBootstrap({
    node: { id: 'n', cluster: 'c', locality: { region: 'r', zone: 'z', sub_zone: 's' }, metadata: { a: 1, b: 'x', c: [true, null], d: { e: 2.5 } } },
  });
  t.strictSame(b.node, { id: 'n', cluster: 'c', locality: { region: 'r', zone: 'z', subZone: 's' }, metadata: { a: 1, b: 'x', c: [true, null], d: { e: 2.5 } } });
  t.strictSame(b.listeners, []);
  t.equal(b.admin, undefined);
  t.equal(decodeBootstrap({ admin: {} }).admin, undefined, 'admin without an address: no admin listener, as in Envoy');
  t.strictSame(decodeBootstrap({ admin: { address: { socket_address: { address: '::1', port_value: 15000 } } } }).admin, { address: { host: '::1', port: 15000 } });
  t.strictSame(decodeBootstrap({ admin: { address: { socket_address: { address: '127.9.8.7' } } } }).admin, { address: { host: '127.9.8.7', port: 0 } });
  t.end();
});

t.test('bootstrap-level rules: unsupported sections, duplicate names, listener port clashes', (t) => {
  const issues = configIssues(() =>
    decodeBootstrap(
      bootstrap({
        listeners: [listener({ name: 'a' }), listener({ name: 'a', port: 8081 }), { ...listener({ name: 'c', port: 9000 }), address: { socket_address: { address: '127.0.0.2', port_value: 9000 } } }, listener({ name: 'd', port: 0 }), listener({ name: 'e', port: 0 })],
        extra: { layered_runtime: {}, node: { id: 'x', user_agent_name: 'me' } },
      }),
    ),
  ).map(fmt);
  t.strictSame(issues, [
    "layered_runtime: field 'layered_runtime' is not supported",
    "node.user_agent_name: field 'user_agent_name' is not supported",
    'static_resources.listeners[1].name: duplicate listener name "a" (also static_resources.listeners[0])',
  ]);
  const clash = configIssues(() => decodeBootstrap(bootstrap({ listeners: [listener({ name: 'a' }), { ...listener({ name: 'b' }), address: { socket_address: { address: '127.0.0.2', port_value: 8080 } } }, listener({ name: 'c' })] }))).map(fmt);
  t.strictSame(clash, ['static_resources.listeners[2].address.socket_address.port_value: port 8080 is already used by static_resources.listeners[0] (a)']);
  t.match(configIssues(() => decodeBootstrap({ static_resources: { secrets: [{ name: 's' }] } })).map(fmt), ["static_resources.secrets: field 'secrets' is not supported"]);
  t.end();
});

t.test('ConfigError is what the CLI catches: exit code 2 material', (t) => {
  t.throws(() => decodeBootstrap({ nope: 1 }), ConfigError);
  t.end();
});
