// What every connected proxy holds per xDS type (JSON for /status) and its istioctl proxy-status style table.
import type { XdsTypeLabel } from '../../telemetry/metrics.js';

/**
 * Per type, as istioctl proxy-status reports it:
 * - SYNCED: the proxy ACKed the version last sent, and that is the current version for it;
 * - STALE: a response is not ACKed yet, or the current version has not been sent yet;
 * - NACKED: the proxy rejected the last response (it keeps its last ACKed config);
 * - NOT_SENT: the proxy has not subscribed to the type, or subscribes to nothing.
 */
export type XdsSyncState = 'SYNCED' | 'STALE' | 'NACKED' | 'NOT_SENT';

export interface XdsTypeStatus {
  readonly type_url: string;
  readonly state: XdsSyncState;
  /** The version this proxy should have now (the snapshot's version for the type). */
  readonly current_version: string;
  readonly sent_version?: string;
  readonly acked_version?: string;
  readonly last_push?: string;
  readonly wildcard: boolean;
  /** How many names the proxy subscribes to (besides the wildcard). */
  readonly subscribed_names: number;
  /** The last rejection on this stream; state is NACKED while it is about the latest response. */
  readonly nack?: { readonly version: string; readonly code: number; readonly message: string; readonly at: string };
}

/**
 * The security policy a sidecar enforces (AuthorizationPolicy, RequestAuthentication, PeerAuthentication as
 * they reach its inbound listeners): versions are policyVersionOf hashes. A sidecar ACKs a Listener response
 * only after applying it, so enforced_version is the policy of the listeners it ACKed last (absent before
 * its first ACK on this stream). state: SYNCED when that is current_version; NACKED when the latest listener
 * push was rejected (it goes on enforcing enforced_version); NOT_SENT before listeners were asked for; else STALE.
 */
export interface XdsPolicyStatus {
  readonly current_version: string;
  readonly enforced_version?: string;
  readonly state: XdsSyncState;
}

export interface XdsNodeStatus {
  readonly connection_id: string;
  readonly node_id: string;
  readonly kind: 'sidecar' | 'proxyless';
  readonly namespace: string;
  readonly service_account: string;
  readonly spiffe_id: string;
  readonly connected_at: string;
  readonly peer: string;
  readonly transport: 'mtls' | 'plaintext';
  readonly types: Partial<Record<XdsTypeLabel, XdsTypeStatus>>;
  /** Sidecars only (proxyless clients get no inbound policy). */
  readonly policy?: XdsPolicyStatus;
}

export interface XdsStatus {
  readonly connected: number;
  readonly nodes: readonly XdsNodeStatus[];
}

/** Column order of istioctl proxy-status. */
const COLUMNS: readonly XdsTypeLabel[] = ['cds', 'lds', 'eds', 'rds'];

const cell = (t: XdsTypeStatus | undefined): string => (t ? t.state.replace('_', ' ') : 'NOT SENT');

/** POLICY: the enforced version when it is the current one, else also the state and the current version; "-" for proxyless. */
function policyCell(p: XdsPolicyStatus | undefined): string {
  if (!p) return '-';
  return p.state === 'SYNCED' ? p.current_version : `${p.enforced_version ?? '-'} (${p.state.replace('_', ' ')}, current ${p.current_version})`;
}

/**
 * NAME CDS LDS EDS RDS POLICY, one row per stream (a proxy that reconnected before its old stream closed shows
 * twice), sorted by name; a NACKED row is followed by one indented line per rejected type with the version
 * and the proxy's error text.
 */
export function renderXdsStatus(status: XdsStatus): string {
  const nodes = [...status.nodes].sort((a, b) => a.node_id.localeCompare(b.node_id) || a.connection_id.localeCompare(b.connection_id));
  const rows = [['NAME', ...COLUMNS.map((c) => c.toUpperCase()), 'POLICY'], ...nodes.map((n) => [n.node_id, ...COLUMNS.map((c) => cell(n.types[c])), policyCell(n.policy)])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((v, i) => (i === r.length - 1 ? v : v.padEnd(widths[i]! + 3))).join('');
  const out = [line(rows[0]!)];
  nodes.forEach((n, i) => {
    out.push(line(rows[i + 1]!));
    for (const c of COLUMNS) {
      const t = n.types[c];
      if (t?.state === 'NACKED' && t.nack) out.push(`    ${c.toUpperCase()} rejected version ${t.nack.version}: ${t.nack.message.replace(/\s*\n\s*/g, ' ')}`);
    }
  });
  if (nodes.length === 0) out.push('(no proxies connected)');
  return out.join('\n') + '\n';
}
