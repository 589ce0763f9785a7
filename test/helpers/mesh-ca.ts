// A control server (mesh CA) on 127.0.0.1:0 and sidecars that get their SVIDs from it through SDS `default`/`ROOTCA`.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Registry } from 'prom-client';
import { systemClock, type Clock } from '../../src/core/clock.js';
import { ControlServer } from '../../src/control/server.js';
import { loadOrCreateTokenKey, mintBootstrapToken } from '../../src/identity/token.js';
import { startEchoApp, type EchoApp } from './apps.js';
import { REVIEWS_ID, TD, inboundBootstrap, memoryLogger, outboundBootstrap, runSidecar, tempDir, type StartedSidecar } from './mesh.js';

export { memoryLogger };

export interface ControlForTest {
  server: ControlServer;
  dir: string;
  caDir: string;
  registry: Registry;
  logs: string[];
  address: string;
  monitoringUrl: string;
  /** The file a sidecar trusts the CA's serving certificate with (the trust bundle at start). */
  rootFile: string;
  /** host:port of plaintext xDS (with configDir). */
  xdsAddress: string;
  /** Writes a fresh single-use bootstrap token for ns/sa and returns its path. */
  token(nsSa: string, ttlMs?: number): Promise<string>;
  close(): Promise<void>;
}

export async function startControl(o: { caDir?: string; clock?: Clock; defaultTtlMs?: number; maxTtlMs?: number; port?: number; stepTimeoutMs?: number; configDir?: string; debounceMs?: number } = {}): Promise<ControlForTest> {
  const tmp = tempDir('outrigger-ca-');
  const caDir = o.caDir ?? path.join(tmp.dir, 'ca');
  const registry = new Registry();
  const { logger, logs } = memoryLogger();
  const clock = o.clock ?? systemClock;
  const server = await ControlServer.start({
    caDir,
    trustDomain: TD,
    grpcAddress: { host: '127.0.0.1', port: o.port ?? 0 },
    monitoringAddress: { host: '127.0.0.1', port: 0 },
    ...(o.configDir && { configDir: o.configDir, xdsAddress: { host: '127.0.0.1', port: 0 }, debounceMs: o.debounceMs ?? 20 }),
    serverNames: ['outrigger-control', 'localhost', '127.0.0.1'],
    defaultTtlMs: o.defaultTtlMs ?? 3600_000,
    maxTtlMs: o.maxTtlMs ?? 24 * 3600_000,
    rotationStepTimeoutMs: o.stepTimeoutMs ?? 60_000,
    // Every sidecar of a test connects after the server started; no restart to wait out.
    reconnectGraceMs: 0,
    clock,
    logger,
    registry,
  });
  const rootFile = path.join(tmp.dir, 'ca-root.pem');
  writeFileSync(rootFile, server.authority.bundlePem);
  const key = await loadOrCreateTokenKey(caDir);
  let n = 0;
  return {
    server,
    dir: tmp.dir,
    caDir,
    registry,
    logs,
    address: `127.0.0.1:${server.grpcPort}`,
    xdsAddress: `127.0.0.1:${server.xdsPort}`,
    monitoringUrl: `http://127.0.0.1:${server.monitoringPort}`,
    rootFile,
    async token(nsSa, ttlMs = 600_000) {
      const [ns, sa] = nsSa.split('/');
      const file = path.join(tmp.dir, `token-${++n}`);
      writeFileSync(file, await mintBootstrapToken(key, { spiffeId: `spiffe://${TD}/ns/${ns}/sa/${sa}`, ttlMs, clock }), { mode: 0o600 });
      return file;
    },
    async close() {
      await server.close();
      tmp.cleanup();
    },
  };
}

const SDS_TLS = { tls_certificate_sds_secret_configs: [{ name: 'default' }] };

/** Rewrites a file-certificate bootstrap to Istio's SDS names and points node metadata at the CA. */
export function sdsBootstrap(b: Record<string, any>, ca: ControlForTest, id: { ns: string; sa: string; tokenFile: string; ttl?: string }): object {
  const swap = (ctx: Record<string, any>) => {
    const v = ctx.validation_context;
    delete ctx.tls_certificates;
    delete ctx.validation_context;
    Object.assign(ctx, SDS_TLS, {
      combined_validation_context: {
        default_validation_context: { match_typed_subject_alt_names: v?.match_typed_subject_alt_names ?? [] },
        validation_context_sds_secret_config: { name: 'ROOTCA' },
      },
    });
  };
  for (const l of b.static_resources.listeners) for (const fc of l.filter_chains) if (fc.transport_socket) swap(fc.transport_socket.typed_config.common_tls_context);
  for (const c of b.static_resources.clusters) if (c.transport_socket) swap(c.transport_socket.typed_config.common_tls_context);
  b.node.metadata = {
    CA_ADDR: ca.address,
    CA_ROOT_CERT: ca.rootFile,
    NAMESPACE: id.ns,
    SERVICE_ACCOUNT: id.sa,
    BOOTSTRAP_TOKEN: id.tokenFile,
    ...(id.ttl && { SECRET_TTL: id.ttl }),
  };
  return b;
}

export interface CaMesh {
  ca: ControlForTest;
  app: EchoApp;
  a: StartedSidecar;
  b: StartedSidecar;
  outPort: number;
  close(): Promise<void>;
}

/** app ← B (reviews, inbound mTLS) ← A (frontend, outbound), both identities from the mesh CA. */
export async function startCaMesh(o: { ttl?: string; ca?: ControlForTest } = {}): Promise<CaMesh> {
  const ca = o.ca ?? (await startControl());
  const app = await startEchoApp('reviews-app');
  const unused = { chain: '', key: '', root: '' };
  const b = await runSidecar(sdsBootstrap(inboundBootstrap({ appPort: app.port, files: unused }), ca, { ns: 'default', sa: 'reviews', tokenFile: await ca.token('default/reviews'), ttl: o.ttl }));
  const a = await runSidecar(
    sdsBootstrap(outboundBootstrap({ peerPort: b.port('inbound'), files: unused, peerMatcher: { exact: REVIEWS_ID } }), ca, { ns: 'default', sa: 'frontend', tokenFile: await ca.token('default/frontend'), ttl: o.ttl }),
  );
  return {
    ca,
    app,
    a,
    b,
    outPort: a.port('outbound'),
    async close() {
      await a.shutdown();
      await b.shutdown();
      await app.close();
      if (!o.ca) await ca.close();
    },
  };
}

