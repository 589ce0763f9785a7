// Translation of the mesh model into one proxy's Envoy v3 resources (a consistent, versioned NodeSnapshot).
import { createHash } from 'node:crypto';
import type { MeshConfig } from '../mesh/types.js';
import { SERVED_TYPES, type NodeSnapshot, type ProxyNode, type ServedType } from '../snapshot.js';
import { inboundCluster, outboundClusterPlans, proxylessCluster, sidecarCluster } from './clusters.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL, encode, type Built, type Ctx } from './common.js';
import { checkConsistent } from './consistency.js';
import { loadAssignment } from './endpoints.js';
import { TranslateError } from './errors.js';
import { meshIndex } from './mesh-index.js';
import { proxylessListenersAndRoutes } from './proxyless.js';
import { inboundRoutes, outboundRouteConfig } from './routes.js';
import { sidecarListeners } from './sidecar-listeners.js';

export { checkConsistent } from './consistency.js';
export { proxyNodeFrom } from './node.js';
export { TranslateError } from './errors.js';

export interface TranslateOptions {
  readonly trustDomain: string;
  /** Istio's cluster.local: `<name>.<ns>.svc.<domainSuffix>` hosts get the short forms. */
  readonly domainSuffix: string;
}

type Resources = Record<ServedType, Built[]>;

/** A sidecar: its two listeners, route tables `outbound` / `inbound`, outbound EDS and inbound STATIC clusters. */
function sidecar(ctx: Ctx): Resources {
  const plans = outboundClusterPlans(ctx);
  const inbound = inboundRoutes(ctx);
  return {
    [LISTENER_TYPE_URL]: sidecarListeners(ctx),
    [ROUTE_CONFIGURATION_TYPE_URL]: [outboundRouteConfig(ctx), inbound.routeConfig],
    [CLUSTER_TYPE_URL]: [...plans.map((p) => sidecarCluster(ctx, p)), ...[...inbound.appPorts].map(([port, h2]) => inboundCluster(ctx, port, h2))],
    [CLUSTER_LOAD_ASSIGNMENT_TYPE_URL]: plans.map(loadAssignment),
  };
}

/** A proxyless gRPC client: API listeners and route tables per target name, EDS clusters and their endpoints. */
function proxyless(ctx: Ctx): Resources {
  const plans = outboundClusterPlans(ctx);
  const { listeners, routes } = proxylessListenersAndRoutes(ctx);
  return {
    [LISTENER_TYPE_URL]: listeners,
    [ROUTE_CONFIGURATION_TYPE_URL]: routes,
    [CLUSTER_TYPE_URL]: plans.map((p) => proxylessCluster(ctx, p)),
    [CLUSTER_LOAD_ASSIGNMENT_TYPE_URL]: plans.map(loadAssignment),
  };
}

/**
 * A type's version: sha256 over its (name, bytes) pairs in name order, first 16 hex digits. Equal content gives
 * an equal version across reconnects and control-server restarts, and a push that changes nothing for a proxy
 * leaves its versions alone. Lengths are hashed too, so no two different sets can run together into one input.
 */
export function versionOf(resources: ReadonlyMap<string, Uint8Array>): string {
  const h = createHash('sha256');
  for (const name of [...resources.keys()].sort()) {
    const bytes = resources.get(name)!;
    h.update(`${Buffer.byteLength(name)}:${name}:${bytes.length}:`);
    h.update(bytes);
  }
  return h.digest('hex').slice(0, 16);
}

function assemble(built: Resources): NodeSnapshot {
  const resources = new Map<ServedType, ReadonlyMap<string, Uint8Array>>();
  const versions = new Map<ServedType, string>();
  for (const type of SERVED_TYPES) {
    const m = new Map<string, Uint8Array>();
    for (const r of built[type]) {
      if (m.has(r.name)) throw new TranslateError('TRANSLATE_INCONSISTENT', `two ${type} resources are named ${JSON.stringify(r.name)}`);
      m.set(r.name, encode(type, r));
    }
    resources.set(type, m);
    versions.set(type, versionOf(m));
  }
  return { resources, versions };
}

/**
 * Everything one proxy should have under this config. Throws TranslateError only on a translator bug (a
 * resource that does not encode, or an inconsistent snapshot); a valid MeshConfig always translates.
 */
export function translate(mesh: MeshConfig, node: ProxyNode, opts: TranslateOptions): NodeSnapshot {
  const ctx: Ctx = { mesh: meshIndex(mesh), node, trustDomain: opts.trustDomain, domainSuffix: opts.domainSuffix };
  const snapshot = assemble(node.kind === 'sidecar' ? sidecar(ctx) : proxyless(ctx));
  // ARCHITECTURE house style 3: only consistent snapshots are ever served.
  const problems = checkConsistent(snapshot);
  if (problems.length > 0) throw new TranslateError('TRANSLATE_INCONSISTENT', `snapshot for ${node.id} is inconsistent:\n${problems.join('\n')}`);
  return snapshot;
}
