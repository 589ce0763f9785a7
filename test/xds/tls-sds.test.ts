// SDS secret names (Istio's `default` / `ROOTCA`) in TLS contexts and the mesh CA in node metadata, through the bootstrap decoder.
import t from 'tap';
import { decodeBootstrap, loadBootstrapFile } from '../../src/xds/bootstrap.js';
import { DOWNSTREAM_TLS, UPSTREAM_TLS, bootstrap, cluster, configIssues, fmt, listener } from './helpers.js';

const CA_MD = { CA_ADDR: '127.0.0.1:15012', CA_ROOT_CERT: '/etc/outrigger/root-cert.pem', NAMESPACE: 'default', SERVICE_ACCOUNT: 'reviews' };
const SAN = { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: 'spiffe://cluster.local/ns/default/sa/reviews' } }] };
// What istiod generates for a sidecar cluster: SDS certificate + combined validation context.
const ISTIO_COMMON = {
  tls_certificate_sds_secret_configs: [{ name: 'default' }],
  combined_validation_context: { default_validation_context: SAN, validation_context_sds_secret_config: { name: 'ROOTCA' } },
};
const upstream = (common: object) => cluster({ transport_socket: { name: 'tls', typed_config: { '@type': UPSTREAM_TLS, common_tls_context: common } } });
const withMd = (md: Record<string, unknown>, clusters: object[]) => ({ ...bootstrap({ clusters }), node: { id: 'n', cluster: 'c', metadata: md } });

t.test("Istio's SDS form decodes; the CA comes from node metadata", (t) => {
  const b = decodeBootstrap(withMd({ ...CA_MD, TRUST_DOMAIN: 'example.org', SECRET_TTL: '2m', BOOTSTRAP_TOKEN: '/var/run/token' }, [upstream(ISTIO_COMMON)]));
  const common = b.clusters[0]!.tls!.common;
  t.equal(common.sdsCertificate, 'default');
  t.same(common.certificates, []);
  t.equal(common.validation?.sdsBundle, 'ROOTCA');
  t.equal(common.validation?.trustedCa, undefined);
  t.equal(common.validation?.uriSanMatchers.length, 1);
  t.same(b.ca, { address: '127.0.0.1:15012', rootCertFile: '/etc/outrigger/root-cert.pem', spiffeId: 'spiffe://example.org/ns/default/sa/reviews', ttlMs: 120_000, tokenFile: '/var/run/token' });

  const plain = decodeBootstrap(withMd(CA_MD, [upstream({ tls_certificate_sds_secret_configs: [{ name: 'default' }], validation_context_sds_secret_config: { name: 'ROOTCA' } })]));
  t.equal(plain.clusters[0]!.tls!.common.validation?.sdsBundle, 'ROOTCA');
  t.equal(plain.ca?.ttlMs, 3600_000, 'SECRET_TTL defaults to 1 h');
  t.equal(plain.ca?.spiffeId, 'spiffe://cluster.local/ns/default/sa/reviews', 'TRUST_DOMAIN defaults to cluster.local');

  const fileOnly = decodeBootstrap(withMd(CA_MD, [cluster()]));
  t.equal(fileOnly.ca, undefined, 'CA_ADDR without an SDS name starts no identity manager');

  const inbound = listener({ chain: { transport_socket: { name: 'tls', typed_config: { '@type': DOWNSTREAM_TLS, require_client_certificate: true, common_tls_context: ISTIO_COMMON } } } });
  const l = decodeBootstrap({ ...bootstrap({ listeners: [inbound] }), node: { id: 'n', cluster: 'c', metadata: CA_MD } });
  t.equal(l.listeners[0]!.filterChain.tls?.common.sdsCertificate, 'default', 'a server certificate may come from SDS');
  t.end();
});

t.test('SDS mistakes are refused with the field path', (t) => {
  const issues = (md: Record<string, unknown>, common: object) => configIssues(() => decodeBootstrap(withMd(md, [upstream(common)]))).map(fmt);
  const p = 'static_resources.clusters[0].transport_socket.typed_config.common_tls_context';
  t.match(issues({}, ISTIO_COMMON), [/node\.metadata\.CA_ADDR: is required/]);
  t.match(issues({ CA_ADDR: CA_MD.CA_ADDR, SERVICE_ACCOUNT: 'reviews' }, ISTIO_COMMON), [/CA_ROOT_CERT: is required/, /NAMESPACE: is required/]);
  t.match(issues({ ...CA_MD, CA_ADDR: 'nohost' }, ISTIO_COMMON), [/CA_ADDR: must be host:port/]);
  t.match(issues({ ...CA_MD, SECRET_TTL: 'soon' }, ISTIO_COMMON), [/SECRET_TTL: must be a positive duration/]);
  t.strictSame(issues(CA_MD, { ...ISTIO_COMMON, tls_certificate_sds_secret_configs: [{ name: 'mycert' }] }), [
    `${p}.tls_certificate_sds_secret_configs[0].name: must be "default" (the identity manager serves Istio's secret names "default" and "ROOTCA"), not "mycert"`,
  ]);
  t.match(issues(CA_MD, { ...ISTIO_COMMON, tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { ads: {} } }] }), [/sds_config' is not supported/]);
  t.match(issues(CA_MD, { tls_certificate_sds_secret_configs: [{ name: 'default' }], validation_context: { trusted_ca: { inline_string: 'x' } } }), [/both come from SDS .* or both from files/]);
  t.match(issues(CA_MD, { ...ISTIO_COMMON, validation_context: { trusted_ca: { inline_string: 'x' } } }), [/only one of 'combined_validation_context' and 'validation_context' may be set/]);
  t.match(issues(CA_MD, { ...ISTIO_COMMON, tls_certificates: [{ certificate_chain: { inline_string: 'c' }, private_key: { inline_string: 'k' } }] }), [/either tls_certificates or tls_certificate_sds_secret_configs/]);
  t.match(issues(CA_MD, { tls_certificate_sds_secret_configs: [{ name: 'default' }, { name: 'default' }], validation_context_sds_secret_config: { name: 'ROOTCA' } }), [/at most one SDS certificate/]);
  t.match(issues(CA_MD, { ...ISTIO_COMMON, combined_validation_context: { default_validation_context: { trusted_ca: { inline_string: 'x' } }, validation_context_sds_secret_config: { name: 'ROOTCA' } } }), [/combined form takes its roots from the SDS bundle/]);
  t.match(issues(CA_MD, { ...ISTIO_COMMON, combined_validation_context: { default_validation_context: {} } }), [/combined_validation_context\.validation_context_sds_secret_config: is required/]);
  t.match(issues(CA_MD, { validation_context: {} }), [/validation_context\.trusted_ca: is required/]);
  t.end();
});

t.test('examples/sidecar-ca.yaml decodes: SDS names in the listener, the CA and identity from node metadata', (t) => {
  const file = new URL('../../examples/sidecar-ca.yaml', import.meta.url).pathname;
  const b = loadBootstrapFile(file);
  const common = b.listeners[0]!.filterChain.tls!.common;
  t.equal(common.sdsCertificate, 'default');
  t.equal(common.validation?.sdsBundle, 'ROOTCA');
  t.same(b.ca, { address: '127.0.0.1:15012', rootCertFile: '/etc/outrigger/root-cert.pem', tokenFile: '/var/run/secrets/outrigger/token', spiffeId: 'spiffe://cluster.local/ns/default/sa/reviews', ttlMs: 3600_000 });
  t.end();
});
