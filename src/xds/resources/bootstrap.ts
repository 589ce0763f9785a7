// Decodes envoy.config.bootstrap.v3.Bootstrap (node, static_resources, admin) and checks the resources agree.
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import { parseDurationMs } from '../../core/duration.js';
import type { AdminConfig, Bootstrap, CaConfig, Cluster, CommonTls, Listener, NodeInfo } from '../../model/types.js';
import type { ProtoObj } from '../canonical.js';
import { Issues, joinPath, list, locality, msg, num, onlyFields, socketAddress, str, structToPlain } from './common.js';
import { decodeCluster } from './cluster.js';
import { decodeListener, listenerClusterRefs } from './listener.js';

export function decodeBootstrapMessage(o: ProtoObj, path: string): Result<Bootstrap, FieldIssue> {
  const issues = new Issues();
  onlyFields(o, path, ['node', 'static_resources', 'admin'], issues);
  const node = decodeNode(msg(o, 'node') ?? {}, joinPath(path, 'node'), issues);
  const srPath = joinPath(path, 'static_resources');
  const sr = msg(o, 'static_resources') ?? {};
  onlyFields(sr, srPath, ['listeners', 'clusters'], issues);
  const listeners = list(sr, 'listeners').map((l, i) => issues.take(decodeListener(l, `${srPath}.listeners[${i}]`)));
  const clusters = list(sr, 'clusters').map((c, i) => issues.take(decodeCluster(c, `${srPath}.clusters[${i}]`)));
  uniqueNames(list(sr, 'listeners'), `${srPath}.listeners`, 'listener', issues);
  uniqueNames(list(sr, 'clusters'), `${srPath}.clusters`, 'cluster', issues);
  uniquePorts(list(sr, 'listeners'), `${srPath}.listeners`, issues);
  // Every route must name a cluster that exists (go-control-plane's Snapshot.Consistent, for the static case).
  // Names come from the raw clusters so that one broken cluster does not also make its routes "dangling".
  const clusterNames = new Set(list(sr, 'clusters').map((c) => str(c, 'name')));
  listeners.forEach((l, i) => {
    // The HCM decoder takes `rds` (ADS will serve it); a static bootstrap has no dynamic_resources yet, so
    // such a listener could never get routes: refuse it at load rather than 404 every request.
    if (l?.filterChain.hcm.route.kind === 'rds') {
      issues.add(`${srPath}.listeners[${i}].filter_chains[0].filters[0].typed_config.rds`, 'RDS needs dynamic_resources (ADS), which this sidecar does not support yet; use an inline route_config');
    }
    for (const ref of l ? listenerClusterRefs(l, `${srPath}.listeners[${i}]`) : []) {
      if (!clusterNames.has(ref.cluster)) issues.add(ref.path, `unknown cluster ${JSON.stringify(ref.cluster)} (not in static_resources.clusters)`);
    }
  });
  clusters.forEach((c, i) => {
    // As for RDS above: nothing could ever deliver an EDS cluster's endpoints without an ADS stream.
    if (c?.type === 'EDS') issues.add(`${srPath}.clusters[${i}].type`, 'EDS needs dynamic_resources (ADS), which this sidecar does not support yet; use STATIC with a load_assignment');
  });
  const a = msg(o, 'admin');
  const admin = a && decodeAdmin(a, joinPath(path, 'admin'), issues);
  const usesSds = [...listeners.map((l) => l?.filterChain.tls?.common), ...clusters.map((c) => c?.tls?.common)].some((c) => c && usesSdsSecrets(c));
  const ca = decodeCaConfig(node, joinPath(path, 'node.metadata'), usesSds, issues);
  return issues.result(() => ({
    node,
    ...(ca && { ca }),
    listeners: listeners as Listener[],
    clusters: clusters as Cluster[],
    ...(admin && { admin }),
  }));
}

/** Node: identity and locality a proxy reports (bootstrap, and the first DiscoveryRequest); metadata (a Struct) becomes plain data. */
export function decodeNode(o: ProtoObj, path: string, issues: Issues): NodeInfo {
  onlyFields(o, path, ['id', 'cluster', 'locality', 'metadata'], issues);
  const l = msg(o, 'locality');
  const m = msg(o, 'metadata');
  return {
    id: str(o, 'id'),
    cluster: str(o, 'cluster'),
    ...(l && { locality: locality(l, joinPath(path, 'locality'), issues) }),
    metadata: m ? structToPlain(m) : {},
  };
}

function usesSdsSecrets(c: CommonTls): boolean {
  return c.sdsCertificate !== undefined || c.validation?.sdsBundle !== undefined;
}

const DEFAULT_SECRET_TTL_MS = 3600_000;

/**
 * The mesh CA, from node metadata in istio-agent's names: CA_ADDR, CA_ROOT_CERT, CA_SERVER_NAME,
 * BOOTSTRAP_TOKEN, SECRET_TTL, and the identity from TRUST_DOMAIN / NAMESPACE / SERVICE_ACCOUNT (Istio's
 * node metadata keys). Required when an SDS secret is named; nothing else could resolve it.
 */
function decodeCaConfig(node: NodeInfo, path: string, usesSds: boolean, issues: Issues): CaConfig | undefined {
  const md = node.metadata;
  const text = (k: string) => (typeof md[k] === 'string' ? (md[k] as string) : undefined);
  const address = text('CA_ADDR');
  // Only a context that names an SDS secret needs an identity from the CA; without one, waiting for an
  // SVID would only delay the start for nothing.
  if (!usesSds) return undefined;
  if (!address) {
    issues.add(joinPath(path, 'CA_ADDR'), 'is required: a TLS context names the SDS secrets "default"/"ROOTCA", which the identity manager gets from the mesh CA at this host:port');
    return undefined;
  }
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(address)) issues.add(joinPath(path, 'CA_ADDR'), `must be host:port, not ${JSON.stringify(address)}`);
  const rootCertFile = text('CA_ROOT_CERT');
  if (!rootCertFile) issues.add(joinPath(path, 'CA_ROOT_CERT'), 'is required: the PEM file with the root that signs the CA\'s serving certificate');
  let spiffeId = '';
  const ns = text('NAMESPACE');
  const sa = text('SERVICE_ACCOUNT');
  if (!ns) issues.add(joinPath(path, 'NAMESPACE'), 'is required: the workload identity is spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT');
  if (!sa) issues.add(joinPath(path, 'SERVICE_ACCOUNT'), 'is required: the workload identity is spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT');
  // The SPIFFE-ID rules (identity/spiffe.ts) are applied where the identity manager starts: xds/ does not
  // reach into identity/.
  if (ns && sa) spiffeId = `spiffe://${text('TRUST_DOMAIN') ?? 'cluster.local'}/ns/${ns}/sa/${sa}`;
  const ttlText = text('SECRET_TTL');
  const ttlMs = ttlText === undefined ? DEFAULT_SECRET_TTL_MS : parseDurationMs(ttlText);
  if (ttlMs === undefined || ttlMs <= 0) issues.add(joinPath(path, 'SECRET_TTL'), `must be a positive duration such as 1h or 90m, not ${JSON.stringify(ttlText)}`);
  const serverName = text('CA_SERVER_NAME');
  const tokenFile = text('BOOTSTRAP_TOKEN');
  return {
    address,
    rootCertFile: rootCertFile ?? '',
    spiffeId,
    ttlMs: ttlMs ?? DEFAULT_SECRET_TTL_MS,
    ...(serverName && { serverName }),
    ...(tokenFile && { tokenFile }),
  };
}

/**
 * Admin: the admin endpoints can drain and stop the sidecar and dump its config, with no authentication, so
 * they must only be reachable from the pod itself: a loopback address (127.0.0.0/8 or ::1). No address = no admin.
 */
function decodeAdmin(o: ProtoObj, path: string, issues: Issues): AdminConfig | undefined {
  onlyFields(o, path, ['address'], issues);
  if (o.address === undefined) return undefined;
  const address = socketAddress(msg(o, 'address'), joinPath(path, 'address'), issues, { portZeroOk: true });
  const loopback = address.host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(address.host);
  if (address.host !== '' && !loopback) {
    issues.add(joinPath(path, 'address.socket_address.address'), `admin must listen on a loopback address (127.0.0.0/8 or ::1), not ${address.host}`);
  }
  return { address };
}

function uniqueNames(items: readonly ProtoObj[], path: string, what: string, issues: Issues): void {
  const seen = new Map<string, number>();
  items.forEach((it, i) => {
    const name = str(it, 'name');
    const first = seen.get(name);
    if (first !== undefined) issues.add(`${path}[${i}].name`, `duplicate ${what} name ${JSON.stringify(name)} (also ${path}[${first}])`);
    else if (name !== '') seen.set(name, i);
  });
}

const UNSPECIFIED = new Set(['0.0.0.0', '::']);

/**
 * Two listeners cannot bind one port on the same (or a wildcard) address. Port 0 means "any free port".
 * Read from the raw listeners so that a conflict is reported even when a listener has other problems.
 */
function uniquePorts(listeners: readonly ProtoObj[], path: string, issues: Issues): void {
  const bound = listeners.map((l) => {
    const sa = msg(msg(l, 'address') ?? {}, 'socket_address') ?? {};
    return { host: str(sa, 'address'), port: num(sa, 'port_value') };
  });
  bound.forEach((a, i) => {
    const clash = (b: { host: string; port: number }) => b.port === a.port && (b.host === a.host || UNSPECIFIED.has(b.host) || UNSPECIFIED.has(a.host));
    const j = a.port === 0 ? -1 : bound.findIndex((b, k) => k < i && clash(b));
    if (j >= 0) issues.add(`${path}[${i}].address.socket_address.port_value`, `port ${a.port} is already used by ${path}[${j}] (${str(listeners[j]!, 'name')})`);
  });
}
