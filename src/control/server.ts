// The control server process: xDS (ADS) and the CA's gRPC services on the TLS port (15012), plaintext xDS (15010),
// the mesh config watcher feeding the snapshots, and the monitoring HTTP port (15014).
import http from 'node:http';
import { isLoopbackAddress } from '../core/net.js';
import * as grpc from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import type { Clock } from '../core/clock.js';
import { ConfigError } from '../core/errors.js';
import { caServices } from '../identity/ca-api.js';
import { TokenVerifier, loadOrCreateTokenKey } from '../identity/token.js';
import type { SocketAddress } from '../model/types.js';
import { createCaMetrics, createConfigMetrics, createJwksMetrics, createXdsMetrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/logger.js';
import { CaAuthority } from './ca-authority.js';
import { CaService } from './ca-service.js';
import { AdsServer } from './ads/server.js';
import type { XdsStatus } from './ads/status.js';
import { ConfigWatcher, type ConfigStatus } from './config-watch.js';
import { JwksResolver, type JwksUriStatus } from './jwks.js';
import { jwksRefreshHandlers, jwksRefreshService } from './jwks-service.js';
import { loadMeshDir } from './mesh/loader.js';
import type { MeshConfig, MeshIssue } from './mesh/types.js';
import { RootRotation, type RotationStatus } from './root-rotation.js';
import { proxyNodeFrom } from './translate/node.js';
import { MeshSnapshots } from './translate/snapshots.js';

export interface ControlServerOptions {
  readonly caDir: string;
  readonly trustDomain: string;
  /** The xDS + CA gRPC port over TLS (Istio's 15012). */
  readonly grpcAddress: SocketAddress;
  /**
   * The mesh config directory (Istio kinds). Without it the server is only the mesh CA; with it, it also
   * serves xDS on the TLS port and on `xdsAddress`.
   */
  readonly configDir?: string;
  /** Plaintext xDS (Istio's 15010): for local use and proxyless gRPC clients; no identity is proven on it. */
  readonly xdsAddress?: SocketAddress;
  /** The DNS suffix short host names resolve against (default cluster.local). */
  readonly domainSuffix?: string;
  /** Istio's meshConfig.rootNamespace: PeerAuthentication / AuthorizationPolicy there apply mesh-wide (default istio-system). */
  readonly rootNamespace?: string;
  /** Mesh config debounce (istiod's 100 ms quiet, 10 s max); tests shorten them. */
  readonly debounceMs?: number;
  readonly debounceMaxMs?: number;
  /** Monitoring: /metrics, /status, /ready and the rotate-root trigger (Istio's 15014). */
  readonly monitoringAddress?: SocketAddress;
  readonly serverNames: readonly string[];
  readonly defaultTtlMs: number;
  readonly maxTtlMs: number;
  readonly rotationStepTimeoutMs: number;
  /** See RootRotation: how long after a start before a rotation step trusts the set of connected sidecars. */
  readonly reconnectGraceMs?: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly registry: Registry;
}

export interface ControlStatus {
  readonly ca: {
    readonly mode: string;
    readonly trust_domain: string;
    readonly signer: { readonly subject: string; readonly fingerprint: string; readonly not_after: string };
    readonly roots: readonly { readonly subject: string; readonly fingerprint: string; readonly not_after: string }[];
    readonly bundle_version: string;
    readonly default_ttl_s: number;
    readonly max_ttl_s: number;
  };
  readonly sidecars: readonly { readonly spiffe_id: string; readonly instance: string; readonly bundle_current: boolean; readonly issuer_current: boolean }[];
  readonly root_rotation: RotationStatus;
  /** Present when the server serves xDS (--config). */
  readonly config?: ConfigStatus;
  readonly xds?: XdsStatus;
  /** RequestAuthentication jwksUri keys the control server fetches and inlines (with --config). */
  readonly jwks?: readonly JwksUriStatus[];
}

/** A mesh config issue as a ConfigError issue: the CLI prints `file:line Kind name: path: message` and exits 2. */
function fieldIssue(i: MeshIssue) {
  return { file: i.file, ...(i.line !== undefined && { line: i.line }), path: `${i.kind ? `${i.kind}${i.name ? ` ${i.name}` : ''}: ` : ''}${i.path || '(document)'}`, message: i.message };
}

export class ControlServer {
  private grpcServer: grpc.Server | undefined;
  private xdsServer: grpc.Server | undefined;
  private http: http.Server | undefined;
  grpcPort = 0;
  xdsPort = 0;
  monitoringPort = 0;
  /** Set with --config: the watcher, the per-proxy snapshots it feeds, and the ADS server reading them. */
  private mesh: { watcher: ConfigWatcher; snapshots: MeshSnapshots; ads: AdsServer; jwks: JwksResolver } | undefined;

  private constructor(
    private readonly o: ControlServerOptions,
    readonly authority: CaAuthority,
    readonly ca: CaService,
    readonly rotation: RootRotation,
  ) {}

  static async start(o: ControlServerOptions): Promise<ControlServer> {
    const metrics = createCaMetrics(o.registry);
    const authority = await CaAuthority.open(o.caDir, { trustDomain: o.trustDomain, clock: o.clock, logger: o.logger, metrics, serverNames: o.serverNames });
    const tokens = new TokenVerifier(await loadOrCreateTokenKey(o.caDir), { clock: o.clock, caDir: o.caDir });
    const ca = new CaService({ authority, tokens, logger: o.logger, metrics, defaultTtlMs: o.defaultTtlMs, maxTtlMs: o.maxTtlMs });
    const rotation = new RootRotation(authority, () => ca.watchers, { clock: o.clock, logger: o.logger, metrics, stepTimeoutMs: o.rotationStepTimeoutMs, ...(o.reconnectGraceMs !== undefined && { reconnectGraceMs: o.reconnectGraceMs }) });
    const s = new ControlServer(o, authority, ca, rotation);
    try {
      if (o.configDir) await s.loadMesh(o.configDir);
      await s.listen();
    } catch (e) {
      await s.close();
      throw e;
    }
    o.logger.info({ mode: authority.mode, trustDomain: o.trustDomain, grpc: `${o.grpcAddress.host}:${s.grpcPort}`, xds: s.xdsPort || undefined, monitoring: s.monitoringPort || undefined, roots: authority.roots.length }, 'control server ready');
    return s;
  }

  /**
   * The first load decides whether the server starts: an invalid directory is a ConfigError (exit 2, every
   * issue with file and line), since there is no previous config to keep serving. Later changes that fail
   * are rejected whole by the watcher while the previous snapshot keeps serving.
   */
  private async loadMesh(dir: string): Promise<void> {
    const o = this.o;
    let snapshots: MeshSnapshots | undefined;
    // Fetched keys reach proxies as a new snapshot; the first fetch never holds up the config (fail-closed keys meanwhile).
    const jwks = new JwksResolver({ clock: o.clock, logger: o.logger, metrics: createJwksMetrics(o.registry), onKeysChanged: () => snapshots?.keysChanged() });
    const onConfig = (c: MeshConfig) => {
      jwks.sync((c.requestAuthentications ?? []).flatMap((p) => p.jwtRules));
      if (snapshots) snapshots.setConfig(c);
      else snapshots = new MeshSnapshots({ trustDomain: o.trustDomain, ...(o.domainSuffix && { domainSuffix: o.domainSuffix }), ...(o.rootNamespace && { rootNamespace: o.rootNamespace }), jwks: jwks.lookup }, c);
    };
    const watcher = new ConfigWatcher({
      dir,
      load: () => loadMeshDir(dir, { ...(o.domainSuffix && { domainSuffix: o.domainSuffix }) }),
      onConfig,
      clock: o.clock,
      logger: o.logger,
      metrics: createConfigMetrics(o.registry),
      ...(o.debounceMs !== undefined && { debounceMs: o.debounceMs }),
      ...(o.debounceMaxMs !== undefined && { debounceMaxMs: o.debounceMaxMs }),
    });
    const first = await watcher.start();
    if (!first.ok || !snapshots) {
      watcher.close();
      jwks.close();
      throw new ConfigError(first.ok ? [] : first.issues.map(fieldIssue), 'MESH_CONFIG_INVALID');
    }
    const ads = new AdsServer({
      source: snapshots,
      identify: (node) => proxyNodeFrom(node, { trustDomain: o.trustDomain }),
      clock: o.clock,
      logger: o.logger,
      metrics: createXdsMetrics(o.registry),
    });
    this.mesh = { watcher, snapshots, ads, jwks };
  }

  private async listen(): Promise<void> {
    // Keepalive pings find sidecars that vanished without closing (a lost node): their watch must not hold
    // a root-rotation step until it times out.
    const server = new grpc.Server({ 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_timeout_ms': 10_000 });
    const h = this.ca.handlers();
    server.addService(caServices().certificate.service, h.certificate);
    server.addService(caServices().trustBundle.service, h.trustBundle);
    // On the TLS port a proxy proves who it is: its node identity must be its certificate's SPIFFE ID.
    this.mesh?.ads.attach(server, { requireIdentity: true });
    // A sidecar that met an unknown kid asks for a JWKS refresh; only over mTLS, as a workload of this mesh.
    if (this.mesh) server.addService(jwksRefreshService().service, jwksRefreshHandlers({ resolver: this.mesh.jwks, identify: (call) => this.ca.svidIdentity(call), logger: this.o.logger }));
    // Client certificates are requested but optional: a first request proves itself with a token instead.
    // grpc-js only reports a peer certificate that verified against the bundle (socket.authorized).
    const creds = grpc.experimental.createCertificateProviderServerCredentials(this.authority.credentials, this.authority.credentials, false);
    this.grpcServer = server;
    const a = this.o.grpcAddress;
    this.grpcPort = await bind(server, a, creds);
    if (this.mesh && this.o.xdsAddress) {
      const plain = new grpc.Server({ 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_timeout_ms': 10_000 });
      this.mesh.ads.attach(plain, { requireIdentity: false });
      this.xdsServer = plain;
      this.xdsPort = await bind(plain, this.o.xdsAddress, grpc.ServerCredentials.createInsecure());
    }
    if (this.o.monitoringAddress) {
      const hs = http.createServer((req, res) => void this.handle(req, res));
      this.http = hs;
      await new Promise<void>((resolve, reject) => {
        hs.once('error', reject);
        hs.listen({ host: this.o.monitoringAddress!.host, port: this.o.monitoringAddress!.port }, () => resolve());
      });
      this.monitoringPort = (hs.address() as { port: number }).port;
    }
  }

  /** The ADS server (with --config): it emits 'ack' and 'nack' as proxies answer, so tools can time convergence. */
  get ads(): AdsServer | undefined {
    return this.mesh?.ads;
  }

  /** Resolves after the next mesh config reload (accepted or rejected); immediately without --config. */
  nextConfigReload(): Promise<void> {
    return this.mesh?.watcher.nextReload() ?? Promise.resolve();
  }

  status(): ControlStatus {
    const a = this.authority;
    const desc = (c: { subject: string; fingerprint256: string; validTo: string }) => ({ subject: c.subject.replace(/\n/g, ', '), fingerprint: c.fingerprint256, not_after: new Date(c.validTo).toISOString() });
    const signer = a.signer.cert;
    return {
      ca: {
        mode: a.mode,
        trust_domain: a.trustDomain,
        signer: { subject: signer.subject, fingerprint: a.issuerFingerprint, not_after: signer.notAfter.toISOString() },
        roots: a.roots.map(desc),
        bundle_version: a.bundleVersion,
        default_ttl_s: this.o.defaultTtlMs / 1000,
        max_ttl_s: this.o.maxTtlMs / 1000,
      },
      sidecars: [...this.ca.watchers].map((w) => ({ spiffe_id: w.spiffeId, instance: w.instance, bundle_current: w.bundleVersion === a.bundleVersion, issuer_current: w.issuerFingerprint === a.issuerFingerprint })),
      root_rotation: this.rotation.status(),
      ...(this.mesh && { config: this.mesh.watcher.status(), xds: this.mesh.ads.status(), jwks: this.mesh.jwks.status() }),
    };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://control');
    const json = (code: number, body: unknown) => this.send(res, code, 'application/json', JSON.stringify(body, null, 2) + '\n');
    switch (url.pathname) {
      case '/ready':
        return this.send(res, 200, 'text/plain', 'ready\n');
      case '/metrics':
        return this.send(res, 200, this.o.registry.contentType, await this.o.registry.metrics());
      case '/status':
        return json(200, this.status());
      case '/ca/rotate-root': {
        // It changes who the mesh trusts: only from the control server's own host.
        if (!isLoopbackAddress(req.socket.remoteAddress)) return this.send(res, 403, 'text/plain', 'rotate-root is loopback-only\n');
        if (req.method !== 'POST') return this.send(res, 405, 'text/plain', 'POST only\n');
        // A browser on this host can send a plain cross-site POST, but not one with a custom header.
        if (req.headers['x-outrigger-admin'] !== 'rotate-root') return this.send(res, 403, 'text/plain', 'send the header x-outrigger-admin: rotate-root (outrigger certs rotate-root does)\n');
        const source = url.searchParams.get('source') ?? undefined;
        // Another --new-ca while one runs is refused; the rotation's own failures show in /status.
        const conflict = this.rotation.conflict(source);
        if (conflict) return this.send(res, 409, 'text/plain', `${conflict}\n`);
        this.rotation.start(source).catch(() => {});
        return json(202, this.rotation.status());
      }
      default:
        return this.send(res, 404, 'text/plain', 'control endpoints: /ready /metrics /status POST /ca/rotate-root\n');
    }
  }

  private send(res: http.ServerResponse, status: number, type: string, body: string): void {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  async close(): Promise<void> {
    this.mesh?.watcher.close();
    this.mesh?.jwks.close();
    // Ends every ADS stream with UNAVAILABLE, so proxies keep their config and reconnect.
    this.mesh?.ads.close();
    this.ca.close();
    this.authority.close();
    for (const g of [this.grpcServer, this.xdsServer]) {
      if (!g) continue;
      // Graceful first; a client that keeps its connection open must not hold the process forever.
      const t = this.o.clock.setTimeout(() => g.forceShutdown(), 2000);
      await new Promise<void>((r) => g.tryShutdown(() => r()));
      this.o.clock.clearTimeout(t);
    }
    const h = this.http;
    if (h) {
      await new Promise<void>((r) => {
        h.close(() => r());
        h.closeAllConnections();
      });
    }
  }
}

function bind(server: grpc.Server, a: SocketAddress, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise<number>((resolve, reject) => server.bindAsync(`${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`, creds, (err, port) => (err ? reject(err) : resolve(port))));
}
