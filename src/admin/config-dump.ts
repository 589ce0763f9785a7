// /config_dump: the decoded model as JSON in Envoy's ConfigDump shape (static and dynamic resources, their
// versions, warming/draining/error states and xDS client status), with inline key material redacted.
import type { Bootstrap, SocketAddress } from '../model/types.js';
import type { ListenerStateView } from '../dataplane/listener-manager.js';
import type { RouteSlot } from '../dataplane/route-store.js';
import type { AssignmentView, ClusterView } from '../upstream/cluster-manager.js';
import type { AdsClientStatus } from '../xds/ads-client.js';
import type { ResourceStatus, ResourceStatusView, TypeStatusView } from '../xds/ads-state.js';
import type { Cluster, Listener } from '../model/types.js';

const REDACTED = '[redacted]';

/** Replaces every inline DataSource value (and anything under a privateKey) with a marker; files stay named. */
function redact(v: unknown, underKey = false): unknown {
  if (Array.isArray(v)) return v.map((x) => redact(x, underKey));
  if (v === null || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  if (o.kind === 'inline' && typeof o.value === 'string') return { kind: 'inline', value: REDACTED };
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) {
    const isKey = underKey || k === 'privateKey';
    out[k] = isKey && typeof x === 'string' ? REDACTED : redact(x, isKey);
  }
  return out;
}

/** Everything the dump shows, read from the live runtime and the ADS client. */
export interface DumpSources {
  readonly bootstrap: Bootstrap;
  readonly clusters: { readonly static: readonly Cluster[]; readonly active: readonly ClusterView[]; readonly warming: readonly ClusterView[]; readonly assignments: readonly (AssignmentView & { name: string })[] };
  readonly listeners: { readonly static: readonly { readonly listener: Listener; readonly address: SocketAddress | undefined }[]; readonly dynamic: readonly ListenerStateView[] };
  readonly routes: readonly RouteSlot[];
  readonly ads?: AdsClientStatus;
}

const ADMIN = 'type.googleapis.com/envoy.admin.v3';
const time = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

/** envoy.admin.v3.ClientResourceStatus names. */
const CLIENT_STATUS: Record<ResourceStatus, string> = { requested: 'REQUESTED', acked: 'ACKED', nacked: 'NACKED', 'does-not-exist': 'DOES_NOT_EXIST' };

/** envoy.admin.v3.UpdateFailureState: the rejected version, why, and when. */
function failure(r: { version: string; details: string; at: number } | undefined) {
  return r && { version_info: r.version, details: r.details, last_update_attempt: time(r.at) };
}

export function configDump(s: DumpSources): unknown {
  const types = new Map<string, TypeStatusView>((s.ads?.types ?? []).map((t) => [t.type, t]));
  const resource = (type: string, name: string): ResourceStatusView | undefined => types.get(type)?.resources.find((r) => r.name === name);
  const status = (type: string, name: string) => {
    const r = resource(type, name);
    return r ? { client_status: CLIENT_STATUS[r.status], ...(r.error && { error_state: failure(r.error) }) } : {};
  };
  /** Per type: the ACKed version_info and, after a NACK, the rejected update (Envoy's error_state). */
  const typeState = (type: string) => {
    const t = types.get(type);
    return t ? { version_info: t.version, last_updated: time(t.lastUpdated), ...(t.rejected && { error_state: failure(t.rejected) }) } : {};
  };
  const dyn = (v: { version: string; lastUpdated: number }) => ({ version_info: v.version, last_updated: time(v.lastUpdated) });
  return {
    configs: [
      { '@type': `${ADMIN}.BootstrapConfigDump`, bootstrap: redact(s.bootstrap) },
      {
        '@type': `${ADMIN}.ClustersConfigDump`,
        ...typeState('cds'),
        static_clusters: s.clusters.static.map((c) => ({ cluster: redact(c) })),
        dynamic_active_clusters: s.clusters.active.map((c) => ({ ...dyn(c), cluster: redact(c.cluster), ...status('cds', c.cluster.name) })),
        dynamic_warming_clusters: s.clusters.warming.map((c) => ({ ...dyn(c), cluster: redact(c.cluster), ...status('cds', c.cluster.name) })),
      },
      {
        '@type': `${ADMIN}.EndpointsConfigDump`,
        ...typeState('eds'),
        dynamic_endpoint_configs: s.clusters.assignments.map((a) => ({ ...dyn(a), endpoint_config: a.assignment, ...status('eds', a.name) })),
      },
      {
        '@type': `${ADMIN}.ListenersConfigDump`,
        ...typeState('lds'),
        static_listeners: s.listeners.static.map((l) => ({ listener: redact(l.listener), address: l.address })),
        dynamic_listeners: s.listeners.dynamic.map((l) => {
          const clientError = resource('lds', l.name)?.error;
          return {
            name: l.name,
            ...(l.active && { active_state: { ...dyn(l.active), listener: redact(l.active.listener), address: l.active.address } }),
            ...(l.warming && { warming_state: { ...dyn(l.warming), listener: redact(l.warming.listener) } }),
            ...(l.draining.length && { draining_state: l.draining.map((d) => ({ ...dyn(d), listener: redact(d.listener) })) }),
            // A listener that could not bind, or whose last update was refused (NACK).
            ...(l.error
              ? { error_state: { version_info: l.error.version, details: l.error.details, last_update_attempt: time(l.error.lastUpdated), failed_configuration: redact(l.error.listener) } }
              : clientError && { error_state: failure(clientError) }),
            ...status('lds', l.name),
          };
        }),
      },
      {
        '@type': `${ADMIN}.RoutesConfigDump`,
        ...typeState('rds'),
        dynamic_route_configs: s.routes.map((r) => ({ ...dyn(r), route_config: r.config, ...status('rds', r.name) })),
      },
      ...(s.ads
        ? [
            {
              // The stream itself and every subscribed resource, requested ones too (Envoy's CSDS view).
              '@type': 'outrigger.admin.AdsClientStatus',
              target: s.ads.target,
              connected: s.ads.connected,
              types: s.ads.types.map((t) => ({
                type: t.type,
                version_info: t.version,
                subscribed: t.subscribed ?? null,
                ...(t.rejected && { error_state: failure(t.rejected) }),
                resources: t.resources.map((r) => ({ name: r.name, client_status: CLIENT_STATUS[r.status], ...(r.version !== undefined && { version_info: r.version }), ...(r.error && { error_state: failure(r.error) }) })),
              })),
            },
          ]
        : []),
    ],
  };
}
