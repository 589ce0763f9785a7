// Decodes envoy.config.bootstrap.v3.Bootstrap (node, static_resources, dynamic_resources, admin) and checks the resources agree.
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import { parseDurationMs } from '../../core/duration.js';
import { chainField, listenerChains, type AdminConfig, type AdsConfig, type Bootstrap, type CaConfig, type Cluster, type CommonTls, type Listener, type NodeInfo } from '../../model/types.js';
import type { ProtoObj } from '../canonical.js';
import { DEFAULT_INITIAL_FETCH_TIMEOUT_MS, Issues, adsConfigSource, enumOf, joinPath, list, locality, msg, num, onlyFields, requireOne, required, socketAddress, str, structToPlain } from './common.js';
import { SDS_BUNDLE, SDS_CERTIFICATE } from './tls.js';
import { decodeCluster } from './cluster.js';
import { decodeListener, listenerClusterRefs } from './listener.js';

/** Options that come from the command line rather than the file. */
export interface BootstrapDecodeOptions {
  /** `--xds grpc://host:port` (plaintext) or `grpcs://host:port` (mTLS with the workload SVID). */
  readonly xds?: XdsTarget;
}

/** The control server named by `--xds`. */
export interface XdsTarget {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
}

export function decodeBootstrapMessage(o: ProtoObj, path: string, opts: BootstrapDecodeOptions = {}): Result<Bootstrap, FieldIssue> {
  const issues = new Issues();
  onlyFields(o, path, ['node', 'static_resources', 'dynamic_resources', 'admin'], issues);
  const node = decodeNode(msg(o, 'node') ?? {}, joinPath(path, 'node'), issues);
  const srPath = joinPath(path, 'static_resources');
  const sr = msg(o, 'static_resources') ?? {};
  onlyFields(sr, srPath, ['listeners', 'clusters'], issues);
  const listeners = list(sr, 'listeners').map((l, i) => issues.take(decodeListener(l, `${srPath}.listeners[${i}]`)));
  const clusters = list(sr, 'clusters').map((c, i) => issues.take(decodeCluster(c, `${srPath}.clusters[${i}]`)));
  uniqueNames(list(sr, 'listeners'), `${srPath}.listeners`, 'listener', issues);
  uniqueNames(list(sr, 'clusters'), `${srPath}.clusters`, 'cluster', issues);
  uniquePorts(list(sr, 'listeners'), `${srPath}.listeners`, issues);
  const dr = msg(o, 'dynamic_resources');
  const drPath = joinPath(path, 'dynamic_resources');
  if (dr && opts.xds) issues.add(drPath, 'the control server is given by --xds; remove dynamic_resources from the file or drop --xds');
  const ads = opts.xds ? xdsFlagConfig(opts.xds) : dr && decodeDynamicResources(dr, drPath, list(sr, 'clusters'), clusters, `${srPath}.clusters`, issues);
  if (!dr && !opts.xds) staticOnlyRules(listeners, clusters, list(sr, 'clusters'), srPath, issues);
  const a = msg(o, 'admin');
  const admin = a && decodeAdmin(a, joinPath(path, 'admin'), issues);
  const usesSds = [...listeners.flatMap((l) => (l ? listenerChains(l).map((c) => c.tls?.common) : [])), ...clusters.map((c) => c?.tls?.common), ads?.tls?.common].some((c) => c && usesSdsSecrets(c));
  // Dynamic resources may name the SDS secrets at any time (Istio's always do), so with ADS the CA is
  // configured whenever node metadata names one, even if nothing static needs it yet.
  const wantsCa = usesSds || (ads !== undefined && node.metadata.CA_ADDR !== undefined);
  const why = opts.xds?.tls
    ? 'is required: --xds grpcs:// authenticates to the control server with the workload SVID, which the identity manager gets from the mesh CA at this host:port'
    : 'is required: a TLS context names the SDS secrets "default"/"ROOTCA", which the identity manager gets from the mesh CA at this host:port';
  const ca = wantsCa ? decodeCaConfig(node, joinPath(path, 'node.metadata'), why, issues) : undefined;
  return issues.result(() => ({
    node,
    ...(ca && { ca }),
    ...(ads && { ads }),
    listeners: listeners as Listener[],
    clusters: clusters as Cluster[],
    ...(admin && { admin }),
  }));
}

/**
 * Without dynamic_resources nothing could ever deliver RDS routes or EDS endpoints, and every route must
 * name a cluster that exists (go-control-plane's Snapshot.Consistent, for the static case). Names come
 * from the raw clusters so that one broken cluster does not also make its routes "dangling".
 */
function staticOnlyRules(listeners: readonly (Listener | undefined)[], clusters: readonly (Cluster | undefined)[], raw: readonly ProtoObj[], srPath: string, issues: Issues): void {
  const clusterNames = new Set(raw.map((c) => str(c, 'name')));
  listeners.forEach((l, i) => {
    (l ? listenerChains(l) : []).forEach((c, j) => {
      if (c.hcm.route.kind !== 'rds') return;
      issues.add(`${srPath}.listeners[${i}].${chainField(l!, j)}.filters[0].typed_config.rds`, 'RDS needs dynamic_resources (ADS); use an inline route_config in a static bootstrap');
    });
    for (const ref of l ? listenerClusterRefs(l, `${srPath}.listeners[${i}]`) : []) {
      if (!clusterNames.has(ref.cluster)) issues.add(ref.path, `unknown cluster ${JSON.stringify(ref.cluster)} (not in static_resources.clusters)`);
    }
  });
  clusters.forEach((c, i) => {
    if (c?.type === 'EDS') issues.add(`${srPath}.clusters[${i}].type`, 'EDS needs dynamic_resources (ADS); use STATIC with a load_assignment in a static bootstrap');
  });
}

/** ApiConfigSource.api_type and GrpcService fields of Istio's ads_config; anything else is another transport. */
const ADS_CONFIG_FIELDS = ['api_type', 'transport_api_version', 'grpc_services', 'set_node_on_first_message_only'];

/**
 * dynamic_resources in Istio's bootstrap shape: `ads_config {api_type: GRPC, transport_api_version: V3,
 * grpc_services: [{envoy_grpc: {cluster_name}}]}` plus `lds_config`/`cds_config` `{ads: {}}`. The named
 * cluster must be a STATIC one in static_resources: its first endpoint is the control server, and its
 * UpstreamTlsContext (if any) says how to authenticate (SDS `default`/`ROOTCA` = the workload SVID).
 */
function decodeDynamicResources(o: ProtoObj, path: string, raw: readonly ProtoObj[], clusters: readonly (Cluster | undefined)[], clustersPath: string, issues: Issues): AdsConfig | undefined {
  onlyFields(o, path, ['ads_config', 'lds_config', 'cds_config'], issues);
  for (const k of ['ads_config', 'lds_config', 'cds_config']) if (o[k] === undefined) issues.add(joinPath(path, k), 'is required (this sidecar takes listeners and clusters over one ADS stream)');
  const ldsInitialFetchTimeoutMs = adsConfigSource(msg(o, 'lds_config'), joinPath(path, 'lds_config'), issues);
  const cdsInitialFetchTimeoutMs = adsConfigSource(msg(o, 'cds_config'), joinPath(path, 'cds_config'), issues);
  const a = msg(o, 'ads_config');
  if (!a) return undefined;
  const p = joinPath(path, 'ads_config');
  onlyFields(a, p, ADS_CONFIG_FIELDS, issues);
  // ApiConfigSource.api_type: GRPC is the state-of-the-world variant (DELTA_GRPC is incremental xDS).
  if (a.api_type !== 'GRPC') issues.add(joinPath(p, 'api_type'), a.api_type === undefined ? 'is required (GRPC)' : `${String(a.api_type)} is not supported (only GRPC, state of the world)`);
  enumOf(a, 'transport_api_version', p, ['V3'], 'V3', issues);
  const services = list(a, 'grpc_services');
  const sPath = joinPath(p, 'grpc_services');
  if (services.length !== 1) issues.add(sPath, `exactly one gRPC service is supported (got ${services.length})`);
  let clusterName = '';
  if (services[0]) {
    const g = services[0];
    const gPath = `${sPath}[0]`;
    const clean = onlyFields(g, gPath, ['envoy_grpc'], issues);
    requireOne(g, gPath, ['envoy_grpc'], clean, issues);
    const eg = msg(g, 'envoy_grpc');
    if (eg) {
      onlyFields(eg, joinPath(gPath, 'envoy_grpc'), ['cluster_name'], issues);
      clusterName = required(eg, 'cluster_name', joinPath(gPath, 'envoy_grpc'), issues);
    }
  }
  const index = raw.findIndex((c) => str(c, 'name') === clusterName);
  const target = index < 0 ? undefined : clusters[index];
  const namePath = `${sPath}[0].envoy_grpc.cluster_name`;
  if (clusterName !== '' && index < 0) issues.add(namePath, `unknown cluster ${JSON.stringify(clusterName)} (the control server must be a STATIC cluster in ${clustersPath})`);
  const endpoint = target?.loadAssignment?.localities.flatMap((l) => l.endpoints)[0];
  if (target && target.type !== 'STATIC') issues.add(`${clustersPath}[${index}].type`, `the ADS cluster ${JSON.stringify(clusterName)} must be STATIC (its first endpoint is the control server)`);
  else if (target && !endpoint) issues.add(`${clustersPath}[${index}].load_assignment`, `the ADS cluster ${JSON.stringify(clusterName)} needs an endpoint: the control server's address`);
  if (!endpoint) return undefined;
  return {
    clusterName,
    address: endpoint.address,
    ...(target?.tls && { tls: target.tls }),
    ldsInitialFetchTimeoutMs,
    cdsInitialFetchTimeoutMs,
    setNodeOnFirstMessageOnly: a.set_node_on_first_message_only === true,
  };
}

/**
 * `--xds`: the same as a bootstrap ADS cluster with that address; grpcs:// carries Istio's SDS names, so the
 * stream authenticates with the workload SVID and checks the server against the mesh's trust bundle, as
 * istio-agent does for istiod's 15012.
 */
function xdsFlagConfig(x: XdsTarget): AdsConfig {
  const tls = x.tls
    ? { tls: { sni: '', common: { certificates: [], sdsCertificate: SDS_CERTIFICATE, validation: { sdsBundle: SDS_BUNDLE, uriSanMatchers: [] }, alpnProtocols: ['h2'] } } }
    : {};
  return {
    clusterName: '',
    address: { host: x.host, port: x.port },
    ...tls,
    ldsInitialFetchTimeoutMs: DEFAULT_INITIAL_FETCH_TIMEOUT_MS,
    cdsInitialFetchTimeoutMs: DEFAULT_INITIAL_FETCH_TIMEOUT_MS,
    setNodeOnFirstMessageOnly: true,
  };
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
 * node metadata keys). Required when an SDS secret is named; nothing else could resolve it. Only decoded
 * when something needs it: without one, waiting for an SVID would only delay the start for nothing.
 */
function decodeCaConfig(node: NodeInfo, path: string, why: string, issues: Issues): CaConfig | undefined {
  const md = node.metadata;
  const text = (k: string) => (typeof md[k] === 'string' ? (md[k] as string) : undefined);
  const address = text('CA_ADDR');
  if (!address) {
    issues.add(joinPath(path, 'CA_ADDR'), why);
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
