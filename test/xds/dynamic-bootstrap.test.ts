// dynamic_resources in Istio's bootstrap shape, the --xds target, and EDS clusters: decoded, or refused by field path.
import t from 'tap';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLUSTER_TYPE_URL } from '../../src/xds/protos.js';
import { decodeBootstrap, loadBootstrapFile } from '../../src/xds/bootstrap.js';
import { adsBootstrap, assignment, edsCluster, httpListener } from '../helpers/xds-resources.js';
import { configIssues, fmt, problems, viaJson } from './helpers.js';

const CA_METADATA = { CA_ADDR: '127.0.0.1:15012', CA_ROOT_CERT: '/etc/root.pem', NAMESPACE: 'default', SERVICE_ACCOUNT: 'app' };
const issuesOf = (b: object, o = {}) => configIssues(() => decodeBootstrap(b, o)).map(fmt);

t.test("Istio's shape: ADS over the static cluster xds-grpc, no static listeners", (t) => {
  const b = decodeBootstrap(adsBootstrap(15010, { initialFetchTimeout: '0s' }));
  t.strictSame(b.ads, { clusterName: 'xds-grpc', address: { host: '127.0.0.1', port: 15010 }, ldsInitialFetchTimeoutMs: 0, cdsInitialFetchTimeoutMs: 0, setNodeOnFirstMessageOnly: true });
  t.strictSame(b.listeners, []);
  t.equal(b.ca, undefined, 'no CA without CA_ADDR');
  const tls = { sni: 'istiod', common_tls_context: { tls_certificate_sds_secret_configs: [{ name: 'default' }], validation_context_sds_secret_config: { name: 'ROOTCA' } } };
  const withTls = decodeBootstrap(adsBootstrap(15012, { tls, metadata: CA_METADATA }));
  t.match(withTls.ads, { tls: { sni: 'istiod', common: { sdsCertificate: 'default', validation: { sdsBundle: 'ROOTCA' } } }, ldsInitialFetchTimeoutMs: 15_000 });
  t.match(withTls.ca, { address: '127.0.0.1:15012', spiffeId: 'spiffe://cluster.local/ns/default/sa/app' });
  t.match(decodeBootstrap(adsBootstrap(15010, { metadata: CA_METADATA })).ca, { address: '127.0.0.1:15012' }, 'with ADS, node metadata naming a CA configures it (dynamic resources may use SDS)');
  t.end();
});

t.test('with dynamic_resources, static listeners may use rds, static clusters EDS, routes name CDS clusters', (t) => {
  const b = adsBootstrap(15010) as any;
  b.static_resources.listeners = [httpListener('in', 0, { rds: 'r' }), httpListener('out', 0, { cluster: 'from-cds' })];
  b.static_resources.clusters.push(edsCluster('e', { serviceName: 'svc' }));
  const d = decodeBootstrap(b);
  t.match(d.listeners[0], { filterChain: { hcm: { route: { kind: 'rds', name: 'r', initialFetchTimeoutMs: 15_000 } } } });
  t.match(d.clusters[1], { name: 'e', type: 'EDS', eds: { serviceName: 'svc', initialFetchTimeoutMs: 15_000 } });
  const s = { static_resources: { clusters: [edsCluster('e')] } };
  t.match(issuesOf(s), [/static_resources\.clusters\[0\]\.type: EDS needs dynamic_resources/]);
  t.end();
});

t.test('other dynamic_resources shapes are refused with field paths', (t) => {
  const mutate = (f: (d: any) => void) => {
    const b = adsBootstrap(15010) as any;
    f(b);
    return issuesOf(b);
  };
  const D = 'dynamic_resources';
  t.strictSame(
    mutate((b) => Object.assign(b.dynamic_resources.ads_config, { api_type: 'DELTA_GRPC', transport_api_version: 'V2' })),
    [`${D}.ads_config.api_type: DELTA_GRPC is not supported (only GRPC, state of the world)`, `${D}.ads_config.transport_api_version: V2 is not supported`],
  );
  t.strictSame(mutate((b) => delete b.dynamic_resources.ads_config.api_type), [`${D}.ads_config.api_type: is required (GRPC)`]);
  t.strictSame(
    mutate((b) => {
      b.dynamic_resources.ads_config.grpc_services = [{ google_grpc: { target_uri: 'x', stat_prefix: 'x' } }, { envoy_grpc: { cluster_name: 'xds-grpc' } }];
      b.dynamic_resources.ads_config.refresh_delay = '1s';
    }),
    [
      `${D}.ads_config.refresh_delay: field 'refresh_delay' is not supported`,
      `${D}.ads_config.grpc_services: exactly one gRPC service is supported (got 2)`,
      `${D}.ads_config.grpc_services[0].google_grpc: field 'google_grpc' is not supported`,
    ],
  );
  t.strictSame(mutate((b) => (b.dynamic_resources.ads_config.grpc_services = [{ envoy_grpc: { cluster_name: 'nope' } }])), [
    `${D}.ads_config.grpc_services[0].envoy_grpc.cluster_name: unknown cluster "nope" (the control server must be a STATIC cluster in static_resources.clusters)`,
  ]);
  t.strictSame(mutate((b) => (b.static_resources.clusters[0] = edsCluster('xds-grpc'))), ['static_resources.clusters[0].type: the ADS cluster "xds-grpc" must be STATIC (its first endpoint is the control server)']);
  t.strictSame(mutate((b) => (b.static_resources.clusters[0].load_assignment = { cluster_name: 'xds-grpc' })), ['static_resources.clusters[0].load_assignment: the ADS cluster "xds-grpc" needs an endpoint: the control server\'s address']);
  t.strictSame(
    mutate((b) => {
      delete b.dynamic_resources.cds_config;
      b.dynamic_resources.lds_config = { path: '/etc/lds.yaml' };
    }),
    [`${D}.cds_config: is required (this sidecar takes listeners and clusters over one ADS stream)`, `${D}.lds_config.path: field 'path' is not supported`],
  );
  t.strictSame(mutate((b) => delete b.dynamic_resources.ads_config), [`${D}.ads_config: is required (this sidecar takes listeners and clusters over one ADS stream)`]);
  t.strictSame(mutate((b) => (b.dynamic_resources.lds_config = { ads: {}, resource_api_version: 'V2' })), [`${D}.lds_config.resource_api_version: V2 is not supported`]);
  t.strictSame(mutate((b) => (b.dynamic_resources.ads_config.grpc_services = [{}])), [`${D}.ads_config.grpc_services[0].envoy_grpc: is required`]);
  t.end();
});

t.test('--xds: plaintext or mTLS with Istio\'s SDS names; grpcs needs the mesh CA; not together with dynamic_resources', (t) => {
  const plain = decodeBootstrap({ node: { id: 'n' } }, { xds: { host: 'istiod.istio-system.svc', port: 15010, tls: false } });
  t.strictSame(plain.ads, { clusterName: '', address: { host: 'istiod.istio-system.svc', port: 15010 }, ldsInitialFetchTimeoutMs: 15_000, cdsInitialFetchTimeoutMs: 15_000, setNodeOnFirstMessageOnly: true });
  const secure = decodeBootstrap({ node: { id: 'n', metadata: CA_METADATA } }, { xds: { host: '127.0.0.1', port: 15012, tls: true } });
  t.strictSame(secure.ads?.tls, { sni: '', common: { certificates: [], sdsCertificate: 'default', validation: { sdsBundle: 'ROOTCA', uriSanMatchers: [] }, alpnProtocols: ['h2'] } });
  t.ok(secure.ca);
  t.match(issuesOf({ node: { id: 'n' } }, { xds: { host: '127.0.0.1', port: 15012, tls: true } }), [/^node\.metadata\.CA_ADDR: is required: --xds grpcs:\/\/ authenticates to the control server with the workload SVID/]);
  t.match(issuesOf(adsBootstrap(15010), { xds: { host: '127.0.0.1', port: 15010, tls: false } }), [/^dynamic_resources: the control server is given by --xds/]);
  t.end();
});

t.test('EDS clusters: eds_cluster_config over ADS, service_name defaulting to the name; nothing else mixed in', (t) => {
  const decode = (c: object) => viaJson(CLUSTER_TYPE_URL, c);
  t.match(decode(edsCluster('c')), { ok: true, value: { type: 'EDS', eds: { serviceName: 'c', initialFetchTimeoutMs: 15_000 } } });
  t.match(decode(edsCluster('c', { initialFetchTimeout: '2.5s' })), { ok: true, value: { eds: { initialFetchTimeoutMs: 2500 } } });
  t.strictSame(problems(decode({ ...edsCluster('c'), load_assignment: assignment('c', [1]) })), ['load_assignment: an EDS cluster gets its endpoints from EDS; load_assignment is not allowed']);
  t.strictSame(problems(decode({ name: 'c', type: 'EDS' })), ['eds_cluster_config: is required for type EDS (eds_config: {ads: {}})']);
  t.strictSame(problems(decode({ name: 'c', type: 'STATIC', eds_cluster_config: {} })), ['eds_cluster_config: only a cluster of type EDS takes eds_cluster_config']);
  t.strictSame(problems(decode({ name: 'c', type: 'EDS', eds_cluster_config: { service_name: 's' } })), ['eds_cluster_config.eds_config: is required']);
  t.strictSame(problems(decode({ name: 'c', type: 'EDS', eds_cluster_config: { eds_config: { resource_api_version: 'V3', initial_fetch_timeout: '-1s', ads: {} } } })), [
    'eds_cluster_config.eds_config.initial_fetch_timeout: must not be negative',
  ]);
  t.strictSame(problems(decode({ name: 'c', type: 'EDS', eds_cluster_config: { eds_config: { resource_api_version: 'V3' } } })), ['eds_cluster_config.eds_config.ads: is required']);
  t.end();
});

t.test('examples/sidecar-ads.yaml decodes: ADS over mTLS with the SVID, no static listeners', (t) => {
  const b = loadBootstrapFile(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples/sidecar-ads.yaml'));
  t.match(b.ads, { clusterName: 'xds-grpc', address: { host: '127.0.0.1', port: 15012 }, tls: { common: { sdsCertificate: 'default', validation: { sdsBundle: 'ROOTCA', uriSanMatchers: [] } } }, ldsInitialFetchTimeoutMs: 0 });
  t.match(b.ca, { spiffeId: 'spiffe://cluster.local/ns/default/sa/reviews' });
  t.strictSame(b.listeners, []);
  t.end();
});
