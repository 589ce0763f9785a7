// `outrigger control` and `outrigger status`: the control server process (mesh CA and xDS) and its status view.
import { Registry, collectDefaultMetrics } from 'prom-client';
import { systemClock } from '../core/clock.js';
import { renderXdsStatus } from '../control/ads/status.js';
import { dnsLabelProblem } from '../control/mesh/schema.js';
import { ControlServer, type ControlStatus } from '../control/server.js';
import { createLogger } from '../telemetry/logger.js';
import { UsageError, commandFlags, durationFlag } from './args.js';
import { CONTROL_HELP, STATUS_HELP } from './control-help.js';

function hostPort(flag: string, v: string | undefined, dflt: string): { host: string; port: number } {
  const text = v ?? dflt;
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  if (!m || Number(m[3]) > 65535) throw new UsageError(`--${flag} must be HOST:PORT, not ${JSON.stringify(text)}`);
  return { host: m[1] ?? m[2]!, port: Number(m[3]) };
}

/** --root-namespace names a Kubernetes namespace (a DNS-1123 label), as meshConfig.rootNamespace does. */
function rootNamespaceFlag(v: string): string {
  // The same rule as a namespace in the mesh YAML (metadata.namespace).
  if (dnsLabelProblem(v)) throw new UsageError(`--root-namespace must be a namespace name (a DNS-1123 label), not ${JSON.stringify(v)}`);
  return v;
}

export async function controlMain(argv: string[]): Promise<number> {
  const values = commandFlags(
    argv,
    {
      config: { type: 'string' },
      'ca-dir': { type: 'string' },
      'trust-domain': { type: 'string' },
      'grpc-address': { type: 'string' },
      'xds-address': { type: 'string' },
      'domain-suffix': { type: 'string' },
      'root-namespace': { type: 'string' },
      'monitoring-address': { type: 'string' },
      'server-name': { type: 'string', multiple: true },
      'default-ttl': { type: 'string' },
      'max-ttl': { type: 'string' },
      'rotation-step-timeout': { type: 'string' },
      'log-level': { type: 'string' },
    },
    CONTROL_HELP,
  );
  if (!values) return 0;
  const rootNamespace = values['root-namespace'] === undefined ? undefined : rootNamespaceFlag(values['root-namespace']);
  const defaultTtlMs = durationFlag('default-ttl', values['default-ttl'], 3600_000);
  const maxTtlMs = durationFlag('max-ttl', values['max-ttl'], 24 * 3600_000);
  if (defaultTtlMs > maxTtlMs) throw new UsageError(`--default-ttl (${defaultTtlMs / 1000}s) is above --max-ttl (${maxTtlMs / 1000}s)`);
  const logger = createLogger({ level: values['log-level'] ?? 'info' });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'outrigger_process_' });
  const server = await ControlServer.start({
    caDir: values['ca-dir'] ?? 'ca',
    trustDomain: values['trust-domain'] ?? 'cluster.local',
    grpcAddress: hostPort('grpc-address', values['grpc-address'], '127.0.0.1:15012'),
    ...(values.config && { configDir: values.config, xdsAddress: hostPort('xds-address', values['xds-address'], '127.0.0.1:15010') }),
    ...(values['domain-suffix'] && { domainSuffix: values['domain-suffix'] }),
    ...(rootNamespace && { rootNamespace }),
    monitoringAddress: hostPort('monitoring-address', values['monitoring-address'], '127.0.0.1:15014'),
    serverNames: values['server-name'] ?? ['localhost', '127.0.0.1', '::1'],
    defaultTtlMs,
    maxTtlMs,
    rotationStepTimeoutMs: durationFlag('rotation-step-timeout', values['rotation-step-timeout'], 600_000),
    clock: systemClock,
    logger,
    registry,
  });
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'stopping');
      void server.close().then(() => resolve(0));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

/** Fetches /status from a running control server; a connection failure names the address. */
export async function fetchStatus(base: string): Promise<ControlStatus> {
  let res: Response;
  try {
    res = await fetch(new URL('/status', base));
  } catch (e) {
    throw new Error(`cannot reach the control server at ${base}: ${(e as Error & { cause?: { code?: string } }).cause?.code ?? (e as Error).message}`);
  }
  if (!res.ok) throw new Error(`${base}/status answered HTTP ${res.status}`);
  return (await res.json()) as ControlStatus;
}

export function renderStatus(s: ControlStatus): string {
  const lines = [
    `CA           ${s.ca.mode}, trust domain ${s.ca.trust_domain}`,
    `signer       ${s.ca.signer.subject} (until ${s.ca.signer.not_after})`,
    `             ${s.ca.signer.fingerprint}`,
    `trust bundle version ${s.ca.bundle_version}, ${s.ca.roots.length} root(s):`,
    ...s.ca.roots.map((r) => `  - ${r.subject} (until ${r.not_after}) ${r.fingerprint}`),
    `SVID TTL     default ${s.ca.default_ttl_s}s, max ${s.ca.max_ttl_s}s`,
    `sidecars     ${s.sidecars.length} connected, ${s.sidecars.filter((x) => x.bundle_current && x.issuer_current).length} current`,
    ...s.sidecars.filter((x) => !x.bundle_current || !x.issuer_current).map((x) => `  - ${x.spiffe_id} (${x.instance.slice(0, 8)}): ${!x.bundle_current ? 'old bundle' : 'SVID from the old CA'}`),
    `root rotation ${s.root_rotation.state}, phase ${s.root_rotation.phase}`,
    ...Object.entries(s.root_rotation.reached).map(([p, at]) => `  ${p.padEnd(20)} ${at}`),
  ];
  const w = s.root_rotation.waiting;
  if (w) lines.push(`  waiting for ${w.for}: ${w.caughtUp}/${w.sidecars}`);
  if (s.root_rotation.error) lines.push(`  error: ${s.root_rotation.error}`);
  if (s.config) {
    const c = s.config;
    const r = c.resources;
    lines.push(
      '',
      `mesh config  ${c.dir}: generation ${c.generation} accepted ${c.accepted_at} (${r.ServiceEntry} ServiceEntry, ${r.WorkloadEntry} WorkloadEntry, ${r.VirtualService} VirtualService, ${r.DestinationRule} DestinationRule)`,
    );
    if (c.rejected) lines.push(`  REJECTED change at ${c.rejected.at}; the config above keeps serving:`, ...c.rejected.issues.map((i) => `    ${i}`));
  }
  if (s.xds) lines.push('', renderXdsStatus(s.xds).trimEnd());
  if (s.jwks?.length) {
    lines.push('', 'JWKS (RequestAuthentication jwksUri, fetched and inlined by the control server):');
    for (const j of s.jwks) {
      lines.push(`  ${j.uri} [${j.state}] ${j.keys} key(s)${j.last_success ? `, fetched ${j.last_success}` : ''}${j.next_refresh ? `, next ${j.next_refresh}` : ''} (issuer ${j.issuers.join(', ')})`);
      if (j.last_error && j.state !== 'ok') lines.push(`    last error at ${j.last_error.at}: ${j.last_error.message}`);
    }
  }
  return lines.join('\n') + '\n';
}

export async function statusMain(argv: string[]): Promise<number> {
  const values = commandFlags(argv, { control: { type: 'string' }, json: { type: 'boolean' } }, STATUS_HELP);
  if (!values) return 0;
  const s = await fetchStatus(values.control ?? 'http://127.0.0.1:15014');
  process.stdout.write(values.json ? JSON.stringify(s, null, 2) + '\n' : renderStatus(s));
  return 0;
}
