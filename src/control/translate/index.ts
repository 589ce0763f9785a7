// Translation of the mesh model into one proxy's Envoy v3 resources (a consistent, versioned NodeSnapshot).
import { createHash } from 'node:crypto';
import type { JwksLookup } from '../jwks.js';
import type { MeshConfig } from '../mesh/types.js';
import { SERVED_TYPES, type NodeSnapshot, type ProxyNode, type ServedType } from '../snapshot.js';
import { inboundCluster, outboundClusterPlans, proxylessCluster, sidecarCluster } from './clusters.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL, encode, type Built, type Ctx, type NodeCtx } from './common.js';
import { checkConsistent } from './consistency.js';
import { loadAssignment, topologyLabels, type EdsCaller } from './endpoints.js';
import { TranslateError } from './errors.js';
import { meshIndex, type MeshIndex } from './mesh-index.js';
import { policyVersionOf } from './policy-version.js';
import { proxylessListenersAndRoutes } from './proxyless.js';
import { inboundRoutes, outboundRouteConfig } from './routes.js';
import { sidecarListeners } from './sidecar-listeners.js';
import { inboundMtls, plaintextInboundRoutes } from './peer-authn.js';

export { checkConsistent } from './consistency.js';
export { proxyNodeFrom } from './node.js';
export { TranslateError } from './errors.js';

export interface TranslateOptions {
  readonly trustDomain: string;
  /** Istio's cluster.local: `<name>.<ns>.svc.<domainSuffix>` hosts get the short forms. */
  readonly domainSuffix: string;
  /** The control server's fetched JWKS by jwksUri (RequestAuthentication); see Ctx.jwks. */
  readonly jwks?: JwksLookup;
  /** Istio's meshConfig.rootNamespace (default istio-system): where mesh-wide security policies live. */
  readonly rootNamespace?: string;
}

type Resources = Record<ServedType, Built[]>;
type Encoded = Record<ServedType, readonly (readonly [string, Uint8Array])[]>;

/**
 * What every proxy of one kind in one namespace gets alike. Sidecar: the outbound route table and clusters.
 * Proxyless: listeners, routes and clusters (a gRPC client names no address of its own). Endpoints are not
 * here: their priorities depend on where the caller is (callerEndpoints).
 */
function shared(ctx: Ctx): Resources {
  const plans = outboundClusterPlans(ctx);
  if (ctx.caller.kind === 'sidecar') {
    return {
      [LISTENER_TYPE_URL]: [],
      [ROUTE_CONFIGURATION_TYPE_URL]: [outboundRouteConfig(ctx)],
      [CLUSTER_TYPE_URL]: plans.map((p) => sidecarCluster(ctx, p)),
      [CLUSTER_LOAD_ASSIGNMENT_TYPE_URL]: [],
    };
  }
  // A proxyless client gets API listeners and route tables per target name (gRFC A27/A28).
  const { listeners, routes } = proxylessListenersAndRoutes(ctx);
  return {
    [LISTENER_TYPE_URL]: listeners,
    [ROUTE_CONFIGURATION_TYPE_URL]: routes,
    [CLUSTER_TYPE_URL]: plans.map((p) => proxylessCluster(ctx, p)),
    [CLUSTER_LOAD_ASSIGNMENT_TYPE_URL]: [],
  };
}

/** EDS for one caller: every outbound cluster's endpoints with priorities relative to the caller's locality. */
function callerEndpoints(ctx: Ctx, caller: EdsCaller): Resources {
  return {
    [LISTENER_TYPE_URL]: [],
    [ROUTE_CONFIGURATION_TYPE_URL]: [],
    [CLUSTER_TYPE_URL]: [],
    [CLUSTER_LOAD_ASSIGNMENT_TYPE_URL]: outboundClusterPlans(ctx).map((p) => loadAssignment(p, caller)),
  };
}

/** A sidecar's own part: its two listeners, the `inbound` route table and the STATIC clusters to its app. */
function sidecarOwn(ctx: NodeCtx): Resources {
  const inbound = inboundRoutes(ctx);
  const mtls = inboundMtls(ctx);
  return {
    [LISTENER_TYPE_URL]: sidecarListeners(ctx, mtls),
    [ROUTE_CONFIGURATION_TYPE_URL]: [inbound.routeConfig, ...plaintextInboundRoutes(inbound.routeConfig, mtls)],
    [CLUSTER_TYPE_URL]: [...inbound.appPorts].map(([port, h2]) => inboundCluster(ctx, port, h2)),
    [CLUSTER_LOAD_ASSIGNMENT_TYPE_URL]: [],
  };
}

/**
 * Encodings by (type, JSON text), kept for the config version being translated and the one before. After a
 * change elsewhere in the mesh most of a sidecar's own resources (its listeners on its address, the inbound
 * routes and clusters to its app) come out as the same JSON, and encoding through the proto3 JSON mapping
 * is most of what translating a sidecar costs; with 2,000 sidecars that is seconds per change. A hit also
 * returns the same bytes object, so its digest and its references stay cached too (digest(), refsOf()).
 * The JSON text is the whole input of encode (undefined members are absent from both, and the name only
 * labels errors), so a hit is exactly what encoding would return. When translation moves on to another
 * config version the current generation becomes the previous one: what the new version uses again is
 * carried over, the rest goes with the generation after that.
 */
class EncodingMemo {
  private index: MeshIndex | undefined;
  private current = new Map<string, Uint8Array>();
  private previous = new Map<string, Uint8Array>();

  use(index: MeshIndex): void {
    if (index === this.index) return;
    this.index = index;
    this.previous = this.current;
    this.current = new Map();
  }

  encode(type: ServedType, r: Built): Uint8Array {
    const key = `${type}\0${JSON.stringify(r.json)}`;
    let bytes = this.current.get(key);
    if (!bytes) {
      bytes = this.previous.get(key) ?? encode(type, r);
      this.current.set(key, bytes);
    }
    return bytes;
  }
}
const encodings = new EncodingMemo();

function encodeAll(built: Resources): Encoded {
  const out = {} as Record<ServedType, (readonly [string, Uint8Array])[]>;
  for (const type of SERVED_TYPES) out[type] = built[type].map((r) => [r.name, encodings.encode(type, r)] as const);
  return out;
}

/**
 * Encoded parts of a translation, kept as long as the config's index (a WeakMap on it), so a new config version
 * starts empty and the old one is collected with its config.
 */
const partCache = new WeakMap<MeshIndex, Map<string, Encoded>>();
function cachedPart(mesh: MeshIndex, key: string, build: () => Resources): Encoded {
  let perMesh = partCache.get(mesh);
  if (!perMesh) {
    perMesh = new Map();
    partCache.set(mesh, perMesh);
  }
  let e = perMesh.get(key);
  if (!e) {
    e = encodeAll(build());
    perMesh.set(key, e);
  }
  return e;
}

/** The shared part, encoded once per config version and (kind, namespace): a sidecar's translation then only builds what is its own. */
function sharedEncoded(ctx: Ctx): Encoded {
  return cachedPart(ctx.mesh, JSON.stringify(['shared', ctx.caller.kind, ctx.caller.namespace, ctx.trustDomain, ctx.domainSuffix]), () => shared(ctx));
}

/**
 * The caller's endpoints, encoded once per (kind, namespace, locality, network, and the values of the labels
 * some failoverPriority compares): that is all they depend on, so every sidecar of a namespace in one zone
 * shares them, however many there are (as istiod's EDS cache keys on locality and failover labels).
 */
function endpointsEncoded(ctx: Ctx, node: ProxyNode): Encoded {
  const labels = topologyLabels(node.labels, node.locality, node.network);
  const relevant = ctx.mesh.failoverLabels.map((k) => labels[k] ?? null);
  const l = node.locality;
  const key = JSON.stringify(['eds', ctx.caller.kind, ctx.caller.namespace, ctx.trustDomain, ctx.domainSuffix, l.region, l.zone, l.subZone, relevant]);
  const callerLabels = Object.fromEntries(ctx.mesh.failoverLabels.flatMap((k) => (labels[k] === undefined ? [] : [[k, labels[k]!]])));
  return cachedPart(ctx.mesh, key, () => callerEndpoints(ctx, { locality: l, labels: callerLabels }));
}

/** sha256 of one encoded resource, computed once per bytes object (shared resources are hashed once). */
const digests = new WeakMap<Uint8Array, Buffer>();
function digest(bytes: Uint8Array): Buffer {
  let d = digests.get(bytes);
  if (!d) {
    d = createHash('sha256').update(bytes).digest();
    digests.set(bytes, d);
  }
  return d;
}

/**
 * A type's version: sha256 over its (name, sha256(bytes)) pairs in name order, first 16 hex digits. Equal
 * content gives an equal version across reconnects and control-server restarts, and a push that changes
 * nothing for a proxy leaves its versions alone. Name lengths are hashed too, so no two different sets can
 * run together into one input.
 */
export function versionOf(resources: ReadonlyMap<string, Uint8Array>): string {
  const h = createHash('sha256');
  for (const name of [...resources.keys()].sort()) {
    h.update(`${Buffer.byteLength(name)}:${name}:`);
    h.update(digest(resources.get(name)!));
  }
  return h.digest('hex').slice(0, 16);
}

function assemble(parts: readonly Encoded[], policyVersion: string | undefined): NodeSnapshot {
  const resources = new Map<ServedType, ReadonlyMap<string, Uint8Array>>();
  const versions = new Map<ServedType, string>();
  for (const type of SERVED_TYPES) {
    const m = new Map<string, Uint8Array>();
    for (const part of parts) {
      for (const [name, bytes] of part[type]) {
        if (m.has(name)) throw new TranslateError('TRANSLATE_INCONSISTENT', `two ${type} resources are named ${JSON.stringify(name)}`);
        m.set(name, bytes);
      }
    }
    resources.set(type, m);
    versions.set(type, versionOf(m));
  }
  return { resources, versions, ...(policyVersion !== undefined && { policyVersion }) };
}

/**
 * Everything one proxy should have under this config. Throws TranslateError only on a translator bug (a
 * resource that does not encode, or an inconsistent snapshot); a valid MeshConfig always translates.
 */
export function translate(mesh: MeshConfig, node: ProxyNode, opts: TranslateOptions): NodeSnapshot {
  const index = meshIndex(mesh);
  encodings.use(index);
  // The options are the context's own fields (Ctx): a new one reaches the translators without being copied here.
  const ctx: NodeCtx = { ...opts, mesh: index, caller: { kind: node.kind, namespace: node.namespace }, node };
  const parts = [sharedEncoded(ctx), endpointsEncoded(ctx, node)];
  const own = node.kind === 'sidecar' ? sidecarOwn(ctx) : undefined;
  if (own) parts.push(encodeAll(own));
  const snapshot = assemble(parts, own && policyVersionOf(own[LISTENER_TYPE_URL]));
  // ARCHITECTURE house style 3: only consistent snapshots are ever served.
  const problems = checkConsistent(snapshot);
  if (problems.length > 0) throw new TranslateError('TRANSLATE_INCONSISTENT', `snapshot for ${node.id} is inconsistent:\n${problems.join('\n')}`);
  return snapshot;
}
