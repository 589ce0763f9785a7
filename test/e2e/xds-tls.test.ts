// ADS over mTLS: the workload SVID from the mesh CA (--xds grpcs://, SDS default/ROOTCA) or from files on the
// bootstrap's xds-grpc cluster; the server must be the control server by SPIFFE ID; never a plaintext fallback.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { systemRng } from '../../src/core/rng.js';
import { startSidecar } from '../../src/cli/sidecar.js';
import { AccessLog } from '../../src/telemetry/access-log.js';
import { decodeBootstrap } from '../../src/xds/bootstrap.js';
import { startAdsServer, typeOf } from '../helpers/ads-server.js';
import { startEchoApp } from '../helpers/apps.js';
import { memoryLogger, startControl } from '../helpers/mesh-ca.js';
import { runSidecar, tempDir, writeCertFiles } from '../helpers/mesh.js';
import { makePki } from '../helpers/pki.js';
import { waitFor } from '../helpers/tools.js';
import { request } from '../helpers/two-hop.js';
import { adsBootstrap, assignment, edsCluster, httpListener } from '../helpers/xds-resources.js';

const CONTROL_ID = 'spiffe://cluster.local/ns/outrigger-system/sa/outrigger-control';

t.test('--xds grpcs://: the stream authenticates with the SVID the mesh CA issued, and config flows', async (t) => {
  const ca = await startControl();
  const app = await startEchoApp('app');
  // The control server's own serving identity (its SVID, DNS name outrigger-control), as the real ADS server will use.
  const creds = () => grpc.experimental.createCertificateProviderServerCredentials(ca.server.authority.credentials, ca.server.authority.credentials, true);
  const ads = await startAdsServer({ credentials: creds });
  const { logger } = memoryLogger();
  const bootstrap = decodeBootstrap(
    {
      node: {
        id: 'app-1',
        metadata: { CA_ADDR: ca.address, CA_ROOT_CERT: ca.rootFile, NAMESPACE: 'default', SERVICE_ACCOUNT: 'app', BOOTSTRAP_TOKEN: await ca.token('default/app') },
      },
    },
    { xds: { host: '127.0.0.1', port: ads.port, tls: true } },
  );
  const sc = await startSidecar({ bootstrap, drainMs: 500, accessLog: new AccessLog({ target: 'off', sampleRate: 1 }, systemRng), logger, registry: new Registry() });
  t.teardown(async () => {
    await sc.shutdown();
    await ads.stop();
    await app.close();
    await ca.close();
  });
  await ads.request((r) => typeOf(r) === 'cds');
  t.strictSame(ads.peers, ['spiffe://cluster.local/ns/default/sa/app'], 'the server saw the workload SVID');
  ads.push('cds', '1', [edsCluster('app')]);
  await ads.request((r) => typeOf(r) === 'eds');
  ads.push('eds', '1', [assignment('app', [app.port])]);
  await ads.request((r) => typeOf(r) === 'lds');
  ads.push('lds', '1', [httpListener('out', 0, { cluster: 'app' })]);
  await waitFor(() => sc.ready(), 'ready');
  const port = sc.runtime.listeners[0]!.address()!.port;
  t.equal((await request(port)).headers['x-served-by'], 'app');
  t.match(sc.ads!.status(), { target: `127.0.0.1:${ads.port}`, connected: true });
});

t.test('xds-grpc cluster with file certificates: the server is checked by SPIFFE ID (default: the control server\'s)', async (t) => {
  const pki = await makePki();
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const me = await pki.issue('ns/default/sa/app');
  const files = writeCertFiles(tmp.dir, 'app', { chainPem: me.chainPem, keyPem: me.keyPem, rootPem: pki.rootPem });
  const serverCreds = async (id: string) => {
    const s = await pki.issue(id);
    return () => grpc.ServerCredentials.createSsl(Buffer.from(pki.rootPem), [{ cert_chain: Buffer.from(s.chainPem), private_key: Buffer.from(s.keyPem) }], true);
  };
  const tls = (matchers: object[]) => ({
    common_tls_context: {
      tls_certificates: [{ certificate_chain: { filename: files.chain }, private_key: { filename: files.key } }],
      validation_context: { trusted_ca: { filename: files.root }, match_typed_subject_alt_names: matchers },
    },
  });

  const control = await startAdsServer({ credentials: await serverCreds(CONTROL_ID) });
  const good = await runSidecar(adsBootstrap(control.port, { tls: tls([]) }), { adsBackoffMs: { base: 20, max: 100 } });
  t.teardown(async () => {
    await good.shutdown();
    await control.stop();
  });
  await control.request((r) => typeOf(r) === 'cds');
  t.strictSame(control.peers, ['spiffe://cluster.local/ns/default/sa/app']);

  // A server under the same root with another identity: refused, whatever its DNS names; retried, never plaintext.
  const impostor = await startAdsServer({ credentials: await serverCreds('ns/default/sa/impostor') });
  const refused = await runSidecar(adsBootstrap(impostor.port, { tls: tls([]) }), { adsBackoffMs: { base: 20, max: 100 } });
  const pinned = await runSidecar(adsBootstrap(impostor.port, { tls: tls([{ san_type: 'URI', matcher: { exact: 'spiffe://cluster.local/ns/istio-system/sa/istiod' } }]) }), {
    adsBackoffMs: { base: 20, max: 100 },
  });
  t.teardown(async () => {
    await refused.shutdown();
    await pinned.shutdown();
    await impostor.stop();
  });
  let attempts = 0;
  refused.ads!.on('backoff', () => attempts++);
  await waitFor(() => attempts >= 3, 'several refused attempts');
  t.equal(impostor.requests.length, 0, 'nothing was ever sent to a server that is not the control server');
  t.equal(refused.ads!.connected, false);
  t.equal(refused.ready(), false);
  // The same server passes once the cluster names its SPIFFE ID explicitly... and a different pin fails.
  const ok = await runSidecar(adsBootstrap(impostor.port, { tls: tls([{ san_type: 'URI', matcher: { exact: 'spiffe://cluster.local/ns/default/sa/impostor' } }]) }));
  t.teardown(() => ok.shutdown());
  await impostor.request((r) => typeOf(r) === 'cds');
  t.strictSame(impostor.peers, ['spiffe://cluster.local/ns/default/sa/app'], 'only the sidecar that pins the server\'s ID connected');
  t.equal(pinned.ads!.connected, false);
});
