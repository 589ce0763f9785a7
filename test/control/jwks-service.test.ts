// JwksService.RefreshKeys over real mTLS gRPC: a mesh workload's unknown kid refetches the keys (cooldown applies); anonymous callers are refused.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { systemClock } from '../../src/core/clock.js';
import { CaClient } from '../../src/identity/ca-client.js';
import { requestSvid } from '../../src/identity/workload-identity.js';
import { JwksRefreshClient, jwksRefreshService } from '../../src/xds/jwks-refresh.js';
import { serveHttp } from '../helpers/http-app.js';
import { TD, tempDir } from '../helpers/mesh.js';
import { memoryLogger, startControl } from '../helpers/mesh-ca.js';

const ISSUER = 'https://idp.example.com';
const ec = (kid: string) => ({ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }), kid, alg: 'ES256' });

/** Resolves once `cond` holds, checking after each turn of the event loop (a fetch completing is I/O we cannot await directly). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}

t.test('RefreshKeys from a workload SVID refetches the issuer\'s keys once per cooldown; anonymous and bad calls are refused', async (t) => {
  let body = JSON.stringify({ keys: [ec('k1')] });
  let fetches = 0;
  const port = await serveHttp(t, (_req, res) => {
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
  const mesh = tempDir('outrigger-jwks-');
  t.teardown(() => mesh.cleanup());
  writeFileSync(
    path.join(mesh.dir, 'ra.yaml'),
    `apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: istio-system}\nspec:\n  jwtRules:\n  - {issuer: "${ISSUER}", jwksUri: "http://127.0.0.1:${port}/keys"}\n`,
  );
  const ca = await startControl({ configDir: mesh.dir });
  t.teardown(() => ca.close());
  const jwksOf = () => ca.server.status().jwks!;
  await until(() => jwksOf()[0]?.state === 'ok');
  t.match(jwksOf(), [{ issuers: [ISSUER], kids: ['k1'] }]);

  const roots = readFileSync(ca.rootFile);
  const svid = await requestSvid(new CaClient({ address: ca.address, roots: () => roots.toString(), clock: systemClock, trustDomain: TD }), {
    spiffeId: `spiffe://${TD}/ns/default/sa/reviews`,
    ttlMs: 600_000,
    instance: 'i',
    credential: { token: readFileSync(await ca.token('default/reviews'), 'utf8') },
  });
  const sidecarLog = memoryLogger();
  const channelOptions = { 'grpc.ssl_target_name_override': 'outrigger-control', 'grpc.default_authority': 'outrigger-control' };
  const client = (mtls: boolean) =>
    new JwksRefreshClient({
      target: ca.address,
      credentials: () => (mtls ? grpc.credentials.createSsl(roots, Buffer.from(svid.keyPem), Buffer.from(svid.chainPem)) : grpc.credentials.createSsl(roots)),
      channelOptions,
      clock: systemClock,
      logger: sidecarLog.logger,
    });

  // The IdP rotated: k2 is new. One request from the sidecar, and every proxy gets the new keys.
  body = JSON.stringify({ keys: [ec('k1'), ec('k2')] });
  const sidecar = client(true);
  t.equal(sidecar.request(ISSUER, 'k2'), true);
  t.equal(sidecar.request(ISSUER, 'k3'), false, 'rate-limited per issuer on the sidecar');
  await sidecar.settled();
  await until(() => jwksOf()[0]!.kids.length === 2);
  t.equal(fetches, 2);
  t.match(ca.logs.join(''), /"caller":"spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews".*"msg":"unknown-kid JWKS refresh requested"/);

  // Another sidecar's made-up kid within the cooldown: answered, but the IdP is not asked again.
  const other = client(true);
  t.equal(other.request(ISSUER, 'made-up'), true);
  await other.settled();
  t.equal(fetches, 2);

  // No SVID: refused, logged by the sidecar, never thrown.
  const anonymous = client(false);
  t.equal(anonymous.request(ISSUER, 'x'), true);
  await anonymous.settled();
  t.match(sidecarLog.logs.join(''), /"code":"UNAUTHENTICATED".*"msg":"JWKS refresh request failed"/);
  // A bad request from a workload: INVALID_ARGUMENT.
  const raw = new (jwksRefreshService())(ca.address, grpc.credentials.createSsl(roots, Buffer.from(svid.keyPem), Buffer.from(svid.chainPem)), channelOptions);
  t.teardown(() => raw.close());
  const err = await new Promise<grpc.ServiceError | null>((r) => (raw as unknown as Record<string, (...a: unknown[]) => void>).RefreshKeys!({ issuer: '', kid: '' }, (e: grpc.ServiceError | null) => r(e)));
  t.equal(err?.code, grpc.status.INVALID_ARGUMENT);
  const m = await ca.registry.getSingleMetricAsString('outrigger_jwks_refresh_requests_total');
  t.match(m, /result="fetching"} 1/);
  t.match(m, /result="cooldown"} 1/);
  t.match(m, /result="refused"} 2/);
  t.match(await ca.registry.getSingleMetricAsString('outrigger_jwks_fetches_total'), /result="ok"} 2/);
});
