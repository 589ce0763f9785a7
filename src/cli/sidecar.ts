// `outrigger sidecar --config FILE [--xds URL]`: wires bootstrap, secrets, data plane, ADS client, admin and signals together.
import { Registry, collectDefaultMetrics } from 'prom-client';
import { systemClock } from '../core/clock.js';
import { ConfigError, errorMessage } from '../core/errors.js';
import { systemRng, type Rng } from '../core/rng.js';
import { SecretStore } from '../identity/secret-store.js';
import type { WorkloadIdentity } from '../identity/workload-identity.js';
import type { Bootstrap, CaConfig, CommonTls } from '../model/types.js';
import { AdminServer, type CertView, type ClusterView } from '../admin/server.js';
import { SidecarRuntime } from '../dataplane/sidecar.js';
import { AccessLog } from '../telemetry/access-log.js';
import { createLogger, type Logger } from '../telemetry/logger.js';
import { loadBootstrapFile, type XdsTarget } from '../xds/bootstrap.js';
import type { AdsClient } from '../xds/ads-client.js';
import type { JwksRefreshClient } from '../xds/jwks-refresh.js';
import { configDump } from '../admin/config-dump.js';
import { UsageError, commandFlags, durationFlag, numberFlag } from './args.js';

export const SIDECAR_HELP = `Usage: outrigger sidecar --config FILE [options]

Runs one sidecar from an Envoy v3 bootstrap (YAML or JSON, Envoy's field names). With dynamic_resources
(ADS) in the bootstrap, or --xds, listeners, routes, clusters and endpoints come from the control server
and change live.

Options:
  --config FILE             Envoy v3 bootstrap (node, static_resources, dynamic_resources, admin)
  --xds URL                 the control server's ADS: grpc://HOST:15010 (plaintext) or grpcs://HOST:15012
                            (mTLS with the workload SVID; needs the mesh CA in node metadata, CA_ADDR, ...)
  --drain-time DURATION     how long in-flight requests may take to finish on SIGTERM (default 5s)
  --access-log TARGET       stdout (default), stderr, off, or a file path
  --access-log-sample RATE  fraction of successful requests logged, 0..1 (errors are always logged; default 1)
  --log-level LEVEL         trace|debug|info|warn|error (default info)
  -h, --help                this help

Exit codes: 0 clean shutdown, 2 bad usage or config (file, line and field named), 1 runtime failure.
`;

export interface RunningSidecar {
  readonly runtime: SidecarRuntime;
  /** The ADS client, when the bootstrap has dynamic_resources (or --xds). */
  readonly ads: AdsClient | undefined;
  /** What /ready answers: listeners bound, identity issued, initial xDS config applied. */
  readonly ready: () => boolean;
  readonly admin: AdminServer;
  readonly adminAddress: { host: string; port: number } | undefined;
  /** Drain and stop; resolves true when in-flight requests finished within the drain time. */
  shutdown(): Promise<boolean>;
}

export interface SidecarOptions {
  bootstrap: Bootstrap;
  drainMs: number;
  accessLog: AccessLog;
  logger: Logger;
  registry?: Registry;
  /** Called once shutdown finished (the CLI exits here). */
  onExit?: (clean: boolean) => void;
  /** Jitter for load balancing and the ADS reconnect backoff (tests pass a seeded one). */
  rng?: Rng;
  /** ADS reconnect backoff (default 500 ms doubling up to 30 s, full jitter). */
  adsBackoffMs?: { base: number; max: number };
}

/** Starts a sidecar in this process. Used by the CLI, the demo and the end-to-end tests. */
export async function startSidecar(o: SidecarOptions): Promise<RunningSidecar> {
  const clock = systemClock;
  const registry = o.registry ?? new Registry();
  // With a mesh CA, nothing listens before the first SVID: a sidecar without an identity is not ready.
  const identity = o.bootstrap.ca ? await startIdentity(o.bootstrap.ca, o.logger, registry) : undefined;
  const secrets = new SecretStore({ clock, logger: o.logger, ...(identity && { identity }) });
  const rng = o.rng ?? systemRng;
  // Set once ADS is up (mTLS only); until then, and without it, an unknown kid is only a failed token.
  let jwksRefresh: JwksRefreshClient | undefined;
  const runtime = new SidecarRuntime(o.bootstrap, {
    onUnknownJwksKey: (issuer, kid) => void jwksRefresh?.request(issuer, kid),
    clock,
    rng,
    logger: o.logger,
    registry,
    accessLog: o.accessLog,
    materialFor: (common) => secrets.sourceFor(common),
    drainMs: o.drainMs,
  });
  secrets.bindMetrics(runtime.metrics);
  let ads: AdsClient | undefined;
  let shuttingDown: Promise<boolean> | undefined;
  // Envoy's init: not ready until the first full config is applied (identity issued, initial CDS, EDS, LDS and
  // RDS done, nothing warming or binding); from then on a cluster or listener warming later is no reason to
  // take the workload out of service. Draining always is.
  let live = false;
  const ready = () => runtime.serving && (live ||= (!identity || identity.hasSvid) && (!ads || ads.initialized) && runtime.settled);
  const admin = new AdminServer({
    ready,
    registry,
    configDump: () => {
      const listeners = runtime.listenerManager.views();
      return configDump({
        bootstrap: o.bootstrap,
        clusters: runtime.clusters.views(),
        listeners: { static: listeners.static.map((l) => ({ listener: l.listener, address: l.address() })), dynamic: listeners.dynamic },
        routes: runtime.routes.views(),
        ...(ads && { ads: ads.status() }),
      });
    },
    clusters: () => clusterViews(runtime),
    certs: (): CertView[] => secrets.views(clock.now()),
    quit: () => void shutdown(),
  });
  const shutdown = (): Promise<boolean> => {
    shuttingDown ??= (async () => {
      o.logger.info({ drainMs: o.drainMs }, 'draining');
      ads?.close();
      jwksRefresh?.close();
      const clean = await runtime.drain(o.drainMs);
      secrets.close();
      identity?.close();
      await admin.close();
      await o.accessLog.flush();
      o.logger.info({ clean }, 'stopped');
      o.onExit?.(clean);
      return clean;
    })();
    return shuttingDown;
  };
  try {
    secrets.start();
    await runtime.start();
    const b = o.bootstrap;
    if (b.ads) {
      // gRPC and the xDS protos load only for a sidecar that talks to a control server.
      const { startAds, startJwksRefresh } = await import('./sidecar-ads.js');
      const wiring = {
        bootstrap: { ...b, ads: b.ads },
        runtime,
        materialFor: (common: CommonTls) => secrets.sourceFor(common),
        clock,
        rng,
        logger: o.logger,
        registry,
        ...(o.adsBackoffMs && { backoffBaseMs: o.adsBackoffMs.base, backoffMaxMs: o.adsBackoffMs.max }),
      };
      ads = startAds(wiring);
      jwksRefresh = startJwksRefresh(wiring);
    }
  } catch (e) {
    ads?.close();
    runtime.close();
    secrets.close();
    identity?.close();
    throw e;
  }
  const adminAddress = o.bootstrap.admin ? await admin.start(o.bootstrap.admin.address) : undefined;
  if (adminAddress) o.logger.info({ address: `${adminAddress.host}:${adminAddress.port}` }, 'admin listening');
  return { runtime, ads, ready, admin, adminAddress, shutdown };
}

/**
 * The identity manager, loaded only when a CA is configured (it brings gRPC and the CSR code, which a
 * file-certificate sidecar never needs). Resolves with the first SVID.
 */
async function startIdentity(ca: CaConfig, logger: Logger, registry: Registry): Promise<WorkloadIdentity> {
  const [{ WorkloadIdentity }, { CaClient }, { parseSpiffeId }, { createIdentityMetrics }, { readFileSync }, { randomUUID }] = await Promise.all([
    import('../identity/workload-identity.js'),
    import('../identity/ca-client.js'),
    import('../identity/spiffe.js'),
    import('../telemetry/metrics.js'),
    import('node:fs'),
    import('node:crypto'),
  ]);
  let trustDomain: string;
  try {
    trustDomain = parseSpiffeId(ca.spiffeId).trustDomain;
  } catch (e) {
    throw new ConfigError([{ path: 'node.metadata', message: `TRUST_DOMAIN/NAMESPACE/SERVICE_ACCOUNT: ${errorMessage(e)}` }]);
  }
  let anchor: string;
  try {
    anchor = readFileSync(ca.rootCertFile, 'utf8');
  } catch (e) {
    throw new ConfigError([{ path: 'node.metadata.CA_ROOT_CERT', message: `cannot read ${ca.rootCertFile}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}` }]);
  }
  const m = createIdentityMetrics(registry);
  let identity: WorkloadIdentity | undefined;
  const client = new CaClient({
    address: ca.address,
    // The anchor from disk plus whatever the CA has since told us to trust (a rotated root).
    roots: () => anchor + (identity?.hasSvid ? (identity.current().caPem ?? '') : ''),
    clock: systemClock,
    trustDomain,
    ...(ca.serverName && { serverName: ca.serverName }),
  });
  identity = new WorkloadIdentity({
    spiffeId: ca.spiffeId,
    ttlMs: ca.ttlMs,
    client,
    ...(ca.tokenFile && { tokenFile: ca.tokenFile }),
    instance: randomUUID(),
    clock: systemClock,
    rng: systemRng,
    logger,
    events: { renewal: (result) => m.renewals.inc({ result }), bundle: () => m.bundleUpdates.inc() },
  });
  logger.info({ spiffeId: ca.spiffeId, ca: ca.address }, 'requesting an SVID from the mesh CA');
  await identity.start();
  return identity;
}

function clusterViews(runtime: SidecarRuntime): ClusterView[] {
  const out: ClusterView[] = [];
  for (const c of runtime.clusters.all()) {
    const lb = c.balancer.view();
    const ewma = new Map(lb.hosts.map((h) => [h.hostPort, h.ewmaMs]));
    out.push({
      name: c.cluster.name,
      lb_policy: lb.policy,
      healthy_panic: c.balancer.stats.healthyPanic,
      priorities: lb.priorities.map((p) => ({ priority: p.priority, hosts: p.hosts, available: p.available, health: p.health, load: p.load, panic: p.panic })),
      endpoints: c.endpoints.map((e) => {
        const s = e.pool.stats();
        const o = c.outlier?.view(e);
        return {
          address: e.hostPort,
          locality: { region: e.locality.region, zone: e.locality.zone, sub_zone: e.locality.subZone },
          priority: e.priority,
          weight: e.endpoint.weight,
          health_status: e.endpoint.healthStatus,
          rq_active: e.rqActive,
          rq_total: e.rqTotal,
          rq_error: e.rqError,
          cx_active: s.connections,
          cx_connect_fail: s.connectFailures,
          ejected: e.ejected,
          times_ejected: o?.timesEjected ?? 0,
          ejection_detector: o?.detector ?? null,
          success_rate: o?.successRate ?? -1,
          ewma_ms: ewma.get(e.hostPort) ?? null,
        };
      }),
    });
  }
  return out;
}

export async function sidecarMain(argv: string[]): Promise<number> {
  const values = commandFlags(
    argv,
    {
      config: { type: 'string' },
      xds: { type: 'string' },
      'drain-time': { type: 'string' },
      'access-log': { type: 'string' },
      'access-log-sample': { type: 'string' },
      'log-level': { type: 'string' },
    },
    SIDECAR_HELP,
  );
  if (!values) return 0;
  if (!values.config) throw new UsageError('--config FILE is required (an Envoy v3 bootstrap)');
  const drainMs = durationFlag('drain-time', values['drain-time'], 5000);
  const sample = numberFlag('access-log-sample', values['access-log-sample'], 1, 0, 1);
  const logger = createLogger({ level: values['log-level'] ?? 'info' });
  const xds = values.xds === undefined ? undefined : parseXdsUrl(values.xds);
  const bootstrap = loadBootstrapFile(values.config, xds ? { xds } : {});
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'outrigger_process_' });
  const accessLog = new AccessLog({ target: values['access-log'] ?? 'stdout', sampleRate: sample }, systemRng);
  let exit: (code: number) => void = () => {};
  const exited = new Promise<number>((r) => (exit = r));
  const running = await startSidecar({ bootstrap, drainMs, accessLog, logger, registry, onExit: () => exit(0) });
  const onSignal = (sig: string) => {
    logger.info({ signal: sig }, 'signal received');
    void running.shutdown();
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
  return exited;
}

const XDS_URL_HELP = 'use grpc://HOST:PORT (plaintext, Istio\'s 15010) or grpcs://HOST:PORT (mTLS with the workload SVID, 15012)';

/** `--xds`: grpc:// is plaintext, grpcs:// is TLS; anything else is refused rather than guessed at. */
export function parseXdsUrl(v: string): XdsTarget {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new UsageError(`--xds: ${JSON.stringify(v)} is not a URL; ${XDS_URL_HELP}`);
  }
  if (u.protocol !== 'grpc:' && u.protocol !== 'grpcs:') throw new UsageError(`--xds: scheme ${JSON.stringify(u.protocol.replace(/:$/, ''))} is not supported; ${XDS_URL_HELP}`);
  if (!u.hostname || !u.port) throw new UsageError(`--xds: ${JSON.stringify(v)} needs a host and a port; ${XDS_URL_HELP}`);
  if ((u.pathname !== '' && u.pathname !== '/') || u.search || u.hash || u.username || u.password) {
    throw new UsageError(`--xds: ${JSON.stringify(v)} must be only scheme://host:port; ${XDS_URL_HELP}`);
  }
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port), tls: u.protocol === 'grpcs:' };
}

export function isConfigError(e: unknown): e is ConfigError {
  return e instanceof ConfigError;
}

export { errorMessage };
