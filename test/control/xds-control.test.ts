// The control server with --config: mesh YAML -> snapshots -> ADS on 15010 and 15012, live changes, rejected changes.
import t from 'tap';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { webcrypto } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { systemClock } from '../../src/core/clock.js';
import { ConfigError } from '../../src/core/errors.js';
import { ControlServer } from '../../src/control/server.js';
import { createCsr, parseCsr } from '../../src/identity/csr.js';
import { renderStatus } from '../../src/cli/control.js';
import { CDS, EDS, LDS, RDS, AdsTestClient, nodeProto } from '../helpers/ads-client.js';
import { startControl, memoryLogger } from '../helpers/mesh-ca.js';
import { tempDir } from '../helpers/mesh.js';

const EXAMPLES = path.resolve(import.meta.dirname, '../../examples/mesh');
const REVIEWS = 'reviews.default.svc.cluster.local';

function meshCopy(t: { teardown(fn: () => void): void }): string {
  const tmp = tempDir('outrigger-mesh-');
  t.teardown(() => tmp.cleanup());
  const dir = path.join(tmp.dir, 'mesh');
  cpSync(EXAMPLES, dir, { recursive: true });
  return dir;
}

/** A frontend sidecar's node, as its bootstrap states it (Istio's metadata keys). */
const frontendNode = (sa = 'bookinfo-frontend') => nodeProto('frontend-1.default', 'default', sa, { INSTANCE_IPS: '127.10.1.1', LABELS_JSON: '' });

async function envoySync(c: AdsTestClient) {
  const cds = await c.ask({ node: frontendNode(), type_url: CDS });
  c.ack(cds);
  const edsNames = cds.names.filter((n) => n.startsWith('outbound|'));
  const eds = await c.ask({ type_url: EDS, resource_names: edsNames });
  c.ack(eds, edsNames);
  const lds = await c.ask({ type_url: LDS });
  c.ack(lds);
  const rds = await c.ask({ type_url: RDS, resource_names: ['outbound', 'inbound'] });
  c.ack(rds, ['outbound', 'inbound']);
  return { cds, eds, lds, rds };
}

t.test('an invalid mesh directory refuses to start, naming file, line and field', async (t) => {
  const dir = meshCopy(t);
  const f = path.join(dir, 'reviews.yaml');
  writeFileSync(f, readFileSync(f, 'utf8').replace('weight: 10', 'weight: 110'));
  const tmp = tempDir('outrigger-ca-');
  t.teardown(() => tmp.cleanup());
  const err = await ControlServer.start({
    caDir: path.join(tmp.dir, 'ca'),
    trustDomain: 'cluster.local',
    grpcAddress: { host: '127.0.0.1', port: 0 },
    xdsAddress: { host: '127.0.0.1', port: 0 },
    configDir: dir,
    serverNames: ['localhost'],
    defaultTtlMs: 3600_000,
    maxTtlMs: 86_400_000,
    rotationStepTimeoutMs: 60_000,
    clock: systemClock,
    logger: memoryLogger().logger,
    registry: new Registry(),
  }).catch((e: unknown) => e);
  t.type(err, ConfigError);
  const issues = (err as ConfigError).issues;
  t.ok(issues.some((i) => i.file?.endsWith('reviews.yaml') && i.line === 167 && /VirtualService reviews: spec\.http\[1\]\.route\[1\]\.weight/.test(i.path)), JSON.stringify(issues));
});

t.test('a sidecar syncs over plaintext xDS; a canary change reaches it as an RDS push; a bad change is rejected and shown', async (t) => {
  const dir = meshCopy(t);
  const ca = await startControl({ configDir: dir });
  t.teardown(() => ca.close());
  const c = AdsTestClient.connect(ca.xdsAddress);
  t.teardown(() => c.close());
  const { cds, lds, rds } = await envoySync(c);
  t.ok(cds.names.includes(`outbound|9080|v1|${REVIEWS}`));
  t.ok(cds.names.includes('inbound|9080||'));
  t.strictSame([...lds.names].sort(), ['virtualInbound', 'virtualOutbound']);
  t.strictSame([...rds.names].sort(), ['inbound', 'outbound']);
  let st = ca.server.status();
  t.equal(st.xds?.nodes.length, 1);
  t.match(renderStatus(st), /frontend-1\.default[^\n]*SYNCED/);

  // The canary shift: only RDS changes, so the next response is RDS (nothing else was sent before it).
  const f = path.join(dir, 'reviews.yaml');
  const original = readFileSync(f, 'utf8');
  writeFileSync(f, original.replace('weight: 90', 'weight: 50').replace('weight: 10', 'weight: 50'));
  const pushed = await c.next();
  t.equal(pushed.type_url, RDS);
  t.not(pushed.version_info, rds.version_info);
  c.ack(pushed, ['outbound', 'inbound']);

  // A broken change: rejected whole, the previous snapshot keeps serving, status/metrics say why.
  const reloaded = ca.server.nextConfigReload();
  writeFileSync(f, original.replace('subset: v2', 'subset: v9'));
  await reloaded;
  st = ca.server.status();
  t.equal(st.config?.generation, 2);
  t.match(st.config?.rejected?.issues.join('\n'), /reviews\.yaml:\d+ VirtualService reviews: spec\.http\[1\]\.route\[1\]\.destination\.subset: .*v9/);
  const text = renderStatus(st);
  t.match(text, /REJECTED change/);
  t.match(await ca.registry.getSingleMetricAsString('outrigger_config_last_reload_successful'), / 0$/m);
  // Nothing was pushed for it: the next response is the answer to this subscription change.
  const again = await c.ask({ type_url: RDS, resource_names: ['outbound'], response_nonce: pushed.nonce, version_info: pushed.version_info });
  t.equal(again.version_info, pushed.version_info, 'still the accepted config');
});

t.test('on the TLS port a node must be who its SVID says', async (t) => {
  const dir = meshCopy(t);
  const ca = await startControl({ configDir: dir });
  t.teardown(() => ca.close());
  const id = 'spiffe://cluster.local/ns/default/sa/bookinfo-frontend';
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const issued = await ca.server.authority.sign(await parseCsr(await createCsr(keys, id)), id, 600_000);
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
  const creds = grpc.credentials.createSsl(Buffer.from(ca.server.authority.bundlePem), Buffer.from(keyPem), Buffer.from(issued.chainPems.join('')));

  const good = AdsTestClient.connect(ca.address, creds);
  t.teardown(() => good.close());
  const cds = await good.ask({ node: frontendNode(), type_url: CDS });
  t.ok(cds.names.length > 0);
  t.equal(ca.server.status().xds?.nodes[0]?.transport, 'mtls');

  const liar = AdsTestClient.connect(ca.address, creds);
  t.teardown(() => liar.close());
  liar.send({ node: frontendNode('bookinfo-reviews'), type_url: CDS });
  const s = await liar.status();
  t.equal(s.code, grpc.status.PERMISSION_DENIED);
  t.match(s.details, /bookinfo-reviews/);
});
