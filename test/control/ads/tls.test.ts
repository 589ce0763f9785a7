// The ADS server on the TLS port: the node's claimed identity must be the SPIFFE ID its verified client certificate proves.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { systemClock } from '../../../src/core/clock.js';
import { issueServingCert } from '../../../src/identity/ca.js';
import { AdsTestClient, CDS, nodeProto, startAds } from '../../helpers/ads-client.js';
import { tempDir } from '../../helpers/mesh.js';
import { makePki, type IssuedForTest } from '../../helpers/pki.js';

const pki = await makePki();
const serving = await issueServingCert(pki.ca, { spiffeId: `spiffe://${pki.trustDomain}/ns/outrigger-system/sa/outrigger-control`, names: ['127.0.0.1'], ttlMs: 3600_000, clock: systemClock });
// Client certificates are requested but optional at the TLS layer, as on the control server's 15012 (where a
// CSR may come with a token instead); the ADS server itself insists on one. createSsl could only require them.
const files = tempDir('outrigger-ads-tls-');
t.teardown(files.cleanup);
const file = (name: string, body: string) => {
  writeFileSync(path.join(files.dir, name), body);
  return path.join(files.dir, name);
};
const provider = new grpc.experimental.FileWatcherCertificateProvider({ caCertificateFile: file('root.pem', pki.rootPem), certificateFile: file('cert.pem', serving.chainPem), privateKeyFile: file('key.pem', serving.keyPem), refreshIntervalMs: 3600_000 });
const serverCreds = () => grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
const clientCreds = (svid?: IssuedForTest, root = pki.rootPem) => (svid ? grpc.credentials.createSsl(Buffer.from(root), Buffer.from(svid.keyPem), Buffer.from(svid.chainPem)) : grpc.credentials.createSsl(Buffer.from(root)));

async function tlsAds(t: { teardown(fn: () => unknown): void }) {
  const a = await startAds({ credentials: serverCreds(), attach: { requireIdentity: true } });
  t.teardown(() => a.close());
  const connect = (svid?: IssuedForTest) => {
    const c = AdsTestClient.connect(a.address, clientCreds(svid));
    t.teardown(() => c.close());
    return c;
  };
  return { a, connect };
}

t.test('a node whose metadata names the identity of its client certificate is served', async (t) => {
  const { a, connect } = await tlsAds(t);
  const c = connect(await pki.issue('default/sa/reviews'));
  const cds = await c.ask({ node: nodeProto('reviews-1.default', 'default', 'reviews'), type_url: CDS });
  t.strictSame(cds.names, ['reviews', 'ratings']);
  const n = a.ads.status().nodes[0]!;
  t.equal(n.transport, 'mtls');
  t.equal(n.spiffe_id, `spiffe://${pki.trustDomain}/ns/default/sa/reviews`);
  t.match(n.peer, /127\.0\.0\.1/);
  t.match(await a.metric('pilot_xds'), /pilot_xds\{kind="sidecar",transport="mtls"\} 1/);
});

t.test('a node claiming another identity is refused with PERMISSION_DENIED and counted', async (t) => {
  const { a, connect } = await tlsAds(t);
  const c = connect(await pki.issue('default/sa/ratings'));
  c.send({ node: nodeProto('reviews-1.default', 'default', 'reviews'), type_url: CDS });
  const s = await c.status();
  t.equal(s.code, grpc.status.PERMISSION_DENIED);
  t.match(s.details, /claims spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews .* client certificate is spiffe:\/\/cluster\.local\/ns\/default\/sa\/ratings/);
  t.match(await a.metric('outrigger_xds_refusals_total'), /reason="identity_mismatch"\} 1/);
  t.match(a.logs.join(''), /"node":"reviews-1.default".*"reason":"identity_mismatch".*ADS stream refused/);
  t.equal(a.ads.status().connected, 0);
});

t.test('no client certificate, one from another CA, or one that is no X509-SVID: UNAUTHENTICATED', async (t) => {
  const { a, connect } = await tlsAds(t);
  const none = connect();
  t.equal((await none.status()).code, grpc.status.UNAUTHENTICATED, 'refused before any request');
  t.match((await none.status()).details, /needs a client certificate/);

  // Another mesh's certificate does not verify against our bundle: grpc-js reports no peer certificate.
  const other = await makePki({ trustDomain: 'other.mesh' });
  const foreign = connect(await other.issue('default/sa/reviews'));
  foreign.send({ node: nodeProto('x'), type_url: CDS });
  t.equal((await foreign.status()).code, grpc.status.UNAUTHENTICATED);

  const twoUris = connect(await pki.issue('default/sa/reviews', { extraUris: [`spiffe://${pki.trustDomain}/ns/default/sa/ratings`] }));
  const s = await twoUris.status();
  t.equal(s.code, grpc.status.UNAUTHENTICATED);
  t.match(s.details, /not a valid X509-SVID: .*exactly one URI SAN/);
  t.match(await a.metric('outrigger_xds_refusals_total'), /reason="no_client_cert"\} 2[\s\S]*reason="svid_invalid"\} 1/);
});

t.test('one AdsServer serves the TLS port and the plaintext port', async (t) => {
  const { a, connect } = await tlsAds(t);
  const plain = new grpc.Server();
  a.ads.attach(plain, { requireIdentity: false });
  const port = await new Promise<number>((resolve, reject) => plain.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  t.teardown(() => new Promise<void>((resolve) => plain.tryShutdown(() => resolve())));
  const local = AdsTestClient.connect(`127.0.0.1:${port}`);
  t.teardown(() => local.close());
  const secure = connect(await pki.issue('default/sa/reviews'));
  await local.ask({ node: nodeProto('proxyless-1', 'default', 'anyone', { GENERATOR: 'grpc' }), type_url: CDS });
  await secure.ask({ node: nodeProto('reviews-1'), type_url: CDS });
  const byTransport = Object.fromEntries(a.ads.status().nodes.map((n) => [n.transport, n.node_id]));
  t.strictSame(byTransport, { plaintext: 'proxyless-1', mtls: 'reviews-1' });
  // A config change reaches both.
  a.source.set(CDS, []);
  a.source.change();
  t.strictSame((await local.next()).names, []);
  t.strictSame((await secure.next()).names, []);
});
