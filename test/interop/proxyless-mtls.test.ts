// Interop: a proxyless gRPC client (grpc-js-xds XdsChannelCredentials, file_watcher certificates from `outrigger certs renew`) calls a workload behind an Outrigger sidecar over mTLS.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { XdsChannelCredentials } from '@grpc/grpc-js-xds';
import { startEchoGrpc } from '../helpers/apps.js';
import { startControl } from '../helpers/mesh-ca.js';
import { runSidecar, tempDir } from '../helpers/mesh.js';
import { metricValue } from '../helpers/two-hop.js';
import { GRPC_PORT, echoClient, installBootstrap, writeMesh } from '../helpers/proxyless.js';
import { runCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/tools.js';
import { adsBootstrap } from '../helpers/xds-resources.js';

const CLIENT_ID = 'spiffe://cluster.local/ns/default/sa/productpage';
const TARGET = `xds:///reviews.default.svc.cluster.local:${GRPC_PORT}`;
/**
 * The translator sends mTLS endpoints to the sidecar's inbound port 15006 (Istio's), so the sidecar needs a
 * loopback address of its own for that fixed port: one per process, so two runs of this file do not collide.
 */
const POD_IP = `127.77.${(process.pid % 250) + 1}.6`;

t.test('a proxyless client reaches a sidecar-fronted workload over mTLS; the app sees the client SPIFFE ID', async (t) => {
  const mesh = tempDir('outrigger-proxyless-mtls-');
  t.teardown(() => mesh.cleanup());
  // The app listens on the pod's address; only its sidecar (same address, 15006) is in the endpoints.
  const app = await startEchoGrpc('reviews-v1', POD_IP, 0);
  t.teardown(() => app.close());
  writeMesh(mesh.dir, {
    workloads: [{ name: 'reviews-v1', address: POD_IP, port: app.port, version: 'v1', locality: 'gcp-us-east4/us-east4-a', serviceAccount: 'bookinfo-reviews' }],
    trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } },
  });
  // Mesh-wide STRICT (Istio's root namespace): without it the default is PERMISSIVE, which would serve the
  // plaintext client below (with no identity) instead of refusing it.
  writeFileSync(
    path.join(mesh.dir, 'strict.yaml'),
    'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: default, namespace: istio-system }\nspec:\n  mtls: { mode: STRICT }\n',
  );
  const ca = await startControl({ configDir: mesh.dir });
  t.teardown(() => ca.close());

  // The workload's sidecar as istio-agent would start it: ADS to the control server, SVID from the mesh CA.
  const xdsPort = Number(ca.xdsAddress.split(':')[1]);
  const sidecar = await runSidecar(
    adsBootstrap(xdsPort, {
      metadata: { SERVICE_ACCOUNT: 'bookinfo-reviews', INSTANCE_IPS: POD_IP, CA_ADDR: ca.address, CA_ROOT_CERT: ca.rootFile, BOOTSTRAP_TOKEN: await ca.token('default/bookinfo-reviews') },
    }),
  );
  t.teardown(() => sidecar.shutdown());
  await waitFor(() => sidecar.ready(), 'the sidecar to apply its first config');
  t.equal(sidecar.runtime.listeners.find((l) => l.name === 'virtualInbound')?.address()?.port, 15006);

  // The client's SVID, as a VM or CronJob keeps it: `outrigger certs renew` with a bootstrap token.
  const certs = path.join(ca.dir, 'productpage');
  const renew = await runCli(['certs', 'renew', '--dir', certs, '--identity', 'default/productpage', '--ca', ca.address, '--ca-root', ca.rootFile, '--token', await ca.token('default/productpage')]);
  t.equal(renew.code, 0, renew.stderr);
  t.match(renew.stdout, `renewed: ${CLIENT_ID}`);

  // gRFC A29: xDS credentials take their certificates from the bootstrap's providers; Istio names its "default".
  installBootstrap(ca.xdsAddress, {
    id: 'sidecar~127.0.0.1~productpage-1.default~default.svc.cluster.local',
    locality: { region: 'aws-us-east-1', zone: 'us-east-1a' },
    extra: {
      certificate_providers: {
        default: {
          plugin_name: 'file_watcher',
          config: {
            certificate_file: path.join(certs, 'cert-chain.pem'),
            private_key_file: path.join(certs, 'key.pem'),
            ca_certificate_file: path.join(certs, 'root-cert.pem'),
            refresh_interval: '600s',
          },
        },
      },
    },
  });
  const client = echoClient(TARGET, new XdsChannelCredentials(grpc.credentials.createInsecure()));
  t.teardown(() => client.close());
  const r = await client.unary();
  t.equal(r.served_by, 'reviews-v1');
  t.equal(r.peer, CLIENT_ID, 'the sidecar verified the client certificate and passed its SPIFFE ID on in XFCC');

  // The same cluster through plain insecure credentials: gRPC ignores the xDS security config, and the
  // sidecar, STRICT, refuses the plaintext connection (no filter chain matches raw_buffer).
  const plain = echoClient(TARGET);
  t.teardown(() => plain.close());
  const refused = await plain.unary().catch((e: grpc.ServiceError) => e);
  t.equal((refused as grpc.ServiceError).code, grpc.status.UNAVAILABLE, String((refused as Error).message));
  t.ok((await metricValue(sidecar, 'outrigger_listener_no_filter_chain_match_total', { listener: 'virtualInbound' })) > 0, 'the sidecar refused the plaintext connection');
});
