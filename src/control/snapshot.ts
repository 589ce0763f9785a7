// The contract between translation and the ADS server: what one proxy should have, per xDS type, and who it is.
import type { Locality } from '../model/types.js';

/** The four SotW types the control server serves, in Envoy's make-before-break order (CDS, EDS, LDS, RDS). */
export const SERVED_TYPES = [
  'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  'type.googleapis.com/envoy.config.listener.v3.Listener',
  'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
] as const;
export type ServedType = (typeof SERVED_TYPES)[number];

/**
 * Everything one proxy should have under one config version. Resources are encoded messages (the bytes of
 * the google.protobuf.Any value), keyed by resource name. A type's version is a hash of its resources, so it
 * is the same for the same content: it survives reconnects and control-server restarts, and a push that
 * changes nothing for this proxy sends nothing.
 */
export interface NodeSnapshot {
  readonly resources: ReadonlyMap<ServedType, ReadonlyMap<string, Uint8Array>>;
  readonly versions: ReadonlyMap<ServedType, string>;
  /** Sidecars: the security-policy version its listeners carry (policyVersionOf); a sidecar enforces it once it ACKed them. */
  readonly policyVersion?: string;
}

/**
 * Who a connecting proxy is, from Envoy node metadata in Istio's keys (NAMESPACE, SERVICE_ACCOUNT, LABELS,
 * INSTANCE_IPS, POD_PORTS, GENERATOR) and node.locality. Proxyless gRPC clients are recognised as istiod
 * does: metadata GENERATOR = "grpc".
 */
export interface ProxyNode {
  readonly id: string;
  readonly kind: 'sidecar' | 'proxyless';
  readonly namespace: string;
  readonly serviceAccount: string;
  /** spiffe://<trust domain>/ns/<namespace>/sa/<service account>: checked against the mTLS peer on 15012. */
  readonly spiffeId: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly locality: Locality;
  /** metadata NETWORK (istio-agent's ISTIO_META_NETWORK): the topology.istio.io/network failoverPriority compares. */
  readonly network?: string;
  /** The pod's addresses; a sidecar binds its listeners and reaches its app on the first. */
  readonly ips: readonly string[];
  /** The app's ports (a sidecar routes inbound traffic to them). */
  readonly appPorts: readonly { readonly name: string; readonly port: number; readonly protocol: string }[];
  /**
   * The key translation results are cached by: everything above that changes what the proxy gets. 2,000
   * proxies of a few kinds cost a few translations per config change, not 2,000.
   */
  readonly cacheKey: string;
}

/** Where the ADS server gets snapshots; the mesh config watcher implements it. */
export interface SnapshotSource {
  /** The current snapshot for this proxy (cached by node.cacheKey per config version). */
  snapshotFor(node: ProxyNode): NodeSnapshot;
  /** Called after a new config version became current; returns an unsubscribe function. */
  onChange(listener: () => void): () => void;
}
