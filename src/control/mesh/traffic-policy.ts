// Decodes DestinationRule trafficPolicy (load balancer, connection pool, outlier detection, TLS, per-port overrides).
import { joinPath } from '../../xds/json.js';
import { Reader, defined, keyPath, type Obj, type Shape } from './schema.js';
import type {
  ConnectionPoolSettings,
  ConsistentHashLb,
  LoadBalancerSettings,
  LocalityLbSetting,
  OutlierDetection,
  PolicySettings,
  PortTrafficPolicy,
  SimpleLb,
  TrafficPolicy,
} from './types.js';
import { portSelector } from './virtual-service.js';

// The shapes of istio.networking.v1 destination_rule.proto, field by field.
const POLICY = ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls'] as const;
const TRAFFIC_POLICY: Shape = { fields: [...POLICY, 'portLevelSettings'], notYet: ['tunnel', 'proxyProtocol'] };
const PORT_POLICY: Shape = { fields: ['port', ...POLICY] };
// warmupDurationSecs / warmup (Envoy slow_start_config): Outrigger's pickers have no slow start, so they are
// refused rather than ignored.
const LOAD_BALANCER: Shape = { fields: ['simple', 'consistentHash', 'localityLbSetting'], notYet: ['warmupDurationSecs', 'warmup'] };
const CONSISTENT_HASH: Shape = {
  fields: ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName', 'ringHash', 'maglev', 'minimumRingSize'],
};
const HASH_KEYS = ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'] as const;
const HTTP_COOKIE: Shape = { fields: ['name', 'path', 'ttl'], notYet: ['attributes'] };
const RING_HASH: Shape = { fields: ['minimumRingSize'] };
const MAGLEV: Shape = { fields: ['tableSize'] };
const LOCALITY_LB: Shape = { fields: ['enabled', 'distribute', 'failover', 'failoverPriority'] };
const DISTRIBUTE: Shape = { fields: ['from', 'to'] };
const FAILOVER: Shape = { fields: ['from', 'to'] };
const CONNECTION_POOL: Shape = { fields: ['tcp', 'http'] };
const TCP: Shape = { fields: ['maxConnections', 'connectTimeout', 'tcpKeepalive', 'maxConnectionDuration', 'idleTimeout'] };
const TCP_KEEPALIVE: Shape = { fields: ['probes', 'time', 'interval'] };
const HTTP: Shape = {
  fields: ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries', 'idleTimeout', 'h2UpgradePolicy', 'useClientProtocol', 'maxConcurrentStreams'],
};
const OUTLIER: Shape = {
  fields: ['consecutiveGatewayErrors', 'consecutive5xxErrors', 'consecutiveLocalOriginFailures', 'splitExternalLocalOriginErrors', 'interval', 'baseEjectionTime', 'maxEjectionPercent', 'minHealthPercent'],
  deprecated: { consecutiveErrors: 'use consecutive5xxErrors or consecutiveGatewayErrors' },
};
const CLIENT_TLS: Shape = {
  fields: ['mode'],
  notYet: ['clientCertificate', 'privateKey', 'caCertificates', 'credentialName', 'subjectAltNames', 'sni', 'insecureSkipVerify', 'caCrl'],
};

const SIMPLE: readonly SimpleLb[] = ['UNSPECIFIED', 'LEAST_REQUEST', 'RANDOM', 'ROUND_ROBIN', 'LEAST_CONN', 'PEAK_EWMA'];
/**
 * istiod turns PASSTHROUGH into an ORIGINAL_DST cluster: the connection's original destination address. Apps reach
 * Outrigger's sidecar on 15001 explicitly (no iptables redirect), so that address is the sidecar itself.
 */
const PASSTHROUGH = 'not supported (an ORIGINAL_DST cluster needs a redirected connection; apps address the sidecar on 15001 directly)';
const TLS_UNSUPPORTED = 'not supported (Outrigger originates Istio mutual TLS (ISTIO_MUTUAL) or plaintext (DISABLE))';
const INT32 = 2 ** 31 - 1;
const UINT32 = 2 ** 32 - 1;
const MAX_RING = 8 * 1024 * 1024;
/** Envoy's Maglev table size bound (Istio validateLoadBalancer). */
const MAGLEV_MAX = 5000011;
/** Topology labels that `failover` already orders by; Istio refuses them next to it in failoverPriority. */
const TOPOLOGY_LABELS = ['topology.kubernetes.io/region', 'topology.kubernetes.io/zone', 'topology.istio.io/subzone'];

export function decodeTrafficPolicy(r: Reader, v: unknown, path: string): TrafficPolicy | undefined {
  const o = r.object(v, path, TRAFFIC_POLICY);
  if (!o) return undefined;
  const settings = policySettings(r, o, path);
  nonEmpty(r, o, path, TRAFFIC_POLICY.fields, 'a traffic policy');
  const ports = new Set<number>();
  const portLevelSettings = r.list(o, 'portLevelSettings', path, (pv, p): PortTrafficPolicy | undefined => {
    const po = r.object(pv, p, PORT_POLICY);
    if (!po) return undefined;
    nonEmpty(r, po, p, POLICY, 'a port traffic policy');
    const port = r.need(po, 'port', p) ? portSelector(r, po.port, joinPath(p, 'port')) : undefined;
    if (port !== undefined && ports.has(port)) r.issue(joinPath(p, 'port.number'), `port ${port} has two portLevelSettings`);
    if (port !== undefined) ports.add(port);
    return { port: port ?? 0, ...policySettings(r, po, p) };
  });
  return { ...settings, portLevelSettings };
}

/** Istio's "traffic policy must have at least one field" (and the same for port policies and pools). */
function nonEmpty(r: Reader, o: Obj, path: string, fields: readonly string[], what: string): void {
  if (!fields.some((k) => o[k] !== undefined && o[k] !== null)) r.issue(path, `${what} must set at least one of ${fields.join(', ')}`);
}

function sub(r: Reader, o: Obj, key: string, base: string, shape: Shape): Obj | undefined {
  const v = o[key];
  return v === undefined || v === null ? undefined : r.object(v, joinPath(base, key), shape);
}

function policySettings(r: Reader, o: Obj, path: string): PolicySettings {
  const tls = sub(r, o, 'tls', path, CLIENT_TLS);
  return defined({
    loadBalancer: loadBalancer(r, o, path),
    connectionPool: connectionPool(r, o, path),
    outlierDetection: outlierDetection(r, o, path),
    // ClientTLSSettings.mode is a proto3 enum: left out it is DISABLE.
    tls: tls && { mode: r.enumOf(tls, 'mode', joinPath(path, 'tls'), ['DISABLE', 'ISTIO_MUTUAL'] as const, { SIMPLE: TLS_UNSUPPORTED, MUTUAL: TLS_UNSUPPORTED }) ?? 'DISABLE' },
  });
}

function loadBalancer(r: Reader, parent: Obj, base: string): LoadBalancerSettings | undefined {
  const path = joinPath(base, 'loadBalancer');
  const o = sub(r, parent, 'loadBalancer', base, LOAD_BALANCER);
  if (!o) return undefined;
  if (o.simple != null && o.consistentHash != null) r.issue(joinPath(path, 'consistentHash'), 'only one of simple, consistentHash may be set');
  return defined({
    simple: r.enumOf(o, 'simple', path, SIMPLE, { PASSTHROUGH }),
    consistentHash: consistentHash(r, o, path),
    localityLbSetting: localityLb(r, o, path, parent.outlierDetection),
  });
}

function consistentHash(r: Reader, parent: Obj, base: string): ConsistentHashLb | undefined {
  const path = joinPath(base, 'consistentHash');
  const o = sub(r, parent, 'consistentHash', base, CONSISTENT_HASH);
  if (!o) return undefined;
  const keys = HASH_KEYS.filter((k) => o[k] !== undefined && o[k] !== null);
  if (keys.length === 0) r.issue(path, `one of ${HASH_KEYS.join(', ')} is required`);
  if (keys.length > 1) r.issue(joinPath(path, keys[1]!), `only one of ${keys.join(', ')} may be set`);
  const algorithms = ['ringHash', 'maglev', 'minimumRingSize'].filter((k) => o[k] !== undefined && o[k] !== null);
  if (algorithms.length > 1) r.issue(joinPath(path, algorithms[1]!), `only one of ${algorithms.join(', ')} may be set`);
  const cookie = sub(r, o, 'httpCookie', path, HTTP_COOKIE);
  const cookiePath = joinPath(path, 'httpCookie');
  if (cookie) r.need(cookie, 'name', cookiePath);
  const ring = sub(r, o, 'ringHash', path, RING_HASH);
  const maglev = sub(r, o, 'maglev', path, MAGLEV);
  const maglevPath = joinPath(path, 'maglev');
  if (maglev) r.need(maglev, 'tableSize', maglevPath);
  const tableSize = maglev && r.int(maglev, 'tableSize', maglevPath, 1, MAGLEV_MAX - 1);
  if (tableSize !== undefined && !isPrime(tableSize)) r.issue(joinPath(maglevPath, 'tableSize'), `${tableSize} is not a prime number (Maglev needs one)`);
  // The deprecated top-level minimumRingSize means what ringHash.minimumRingSize means now.
  // Envoy's RingHashLbConfig.minimum_ring_size is at most 8M (validate rule lte 8388608), gRPC's too (gRFC A42).
  const minimumRingSize = ring ? r.int(ring, 'minimumRingSize', joinPath(path, 'ringHash'), 0, MAX_RING) : r.int(o, 'minimumRingSize', path, 0, MAX_RING);
  return defined({
    httpHeaderName: r.string(o, 'httpHeaderName', path),
    httpCookie: cookie && defined({ name: r.string(cookie, 'name', cookiePath) ?? '', path: r.string(cookie, 'path', cookiePath), ttlMs: r.duration(cookie, 'ttl', cookiePath, { zeroOk: true }) }),
    useSourceIp: r.bool(o, 'useSourceIp', path),
    httpQueryParameterName: r.string(o, 'httpQueryParameterName', path),
    ringHash: ring || minimumRingSize !== undefined ? defined({ minimumRingSize }) : undefined,
    maglev: maglev && { tableSize: tableSize ?? 0 },
  });
}

/** Envoy's IsPrime, which Istio copies to check Maglev table sizes. */
function isPrime(n: number): boolean {
  if (n < 4) return n > 1;
  if (n % 2 === 0) return false;
  for (let f = 3; f * f <= n; f += 2) if (n % f === 0) return false;
  return true;
}

/** LocalityLoadBalancerSetting, with Istio's ValidateLocalityLbSetting rules. */
function localityLb(r: Reader, parent: Obj, base: string, outlier: unknown): LocalityLbSetting | undefined {
  const path = joinPath(base, 'localityLbSetting');
  const o = sub(r, parent, 'localityLbSetting', base, LOCALITY_LB);
  if (!o) return undefined;
  const distribute = r.list(o, 'distribute', path, (v, p) => {
    const d = r.object(v, p, DISTRIBUTE);
    if (!d) return undefined;
    const from = r.string(d, 'from', p, localityPatternProblem) ?? '';
    const to = r.map(d, 'to', p, (w, wp, loc) => {
      const problem = localityPatternProblem(loc);
      return problem ? r.issue(wp, problem) : r.intValue(w, wp, 1, 100);
    });
    const sum = Object.values(to ?? {}).reduce((s, w) => s + w, 0);
    if (to && sum !== 100) r.issue(joinPath(p, 'to'), `weights add up to ${sum}, not 100`);
    if (to) overlaps(r, Object.keys(to), (i) => keyPath(joinPath(p, 'to'), Object.keys(to)[i]!));
    return { from, to: to ?? {} };
  });
  overlaps(r, distribute.map((d) => d.from), (i) => joinPath(path, `distribute[${i}].from`));
  const failover = r.list(o, 'failover', path, (v, p) => {
    const f = r.object(v, p, FAILOVER);
    if (!f) return undefined;
    const region = (s: string) => (s.includes('/') || s.includes('*') ? 'must be a region (no "/" or "*")' : undefined);
    const from = r.string(f, 'from', p, region) ?? '';
    const to = r.string(f, 'to', p, region) ?? '';
    if (from !== '' && from === to) r.issue(joinPath(p, 'to'), 'must differ from "from"');
    return { from, to };
  });
  const failoverPriority = r.strings(o, 'failoverPriority', path);
  if (distribute.length > 0 && failover.length > 0) r.issue(joinPath(path, 'failover'), 'only one of distribute and failover may be set');
  if (failover.length > 0) {
    failoverPriority.forEach((l, i) => {
      if (TOPOLOGY_LABELS.includes(l)) r.issue(joinPath(path, `failoverPriority[${i}]`), `${l} cannot be used together with failover`);
    });
  }
  // Failover needs ejections to notice unhealthy endpoints; without outlier detection it never triggers.
  if ((failover.length > 0 || failoverPriority.length > 0) && (outlier === undefined || outlier === null)) {
    r.issue(path, 'failover and failoverPriority need outlierDetection in the same traffic policy');
  }
  return defined({ enabled: r.bool(o, 'enabled', path), distribute, failover, failoverPriority });
}

/** `*`, `region`, `region/*`, `region/zone`, `region/zone/*`, `region/zone/subzone`: a trailing wildcard only. */
function localityPatternProblem(l: string): string | undefined {
  const parts = l.split('/');
  const bad = parts.length > 3 || parts.some((p, i) => p === '' || (p.includes('*') && (p !== '*' || i !== parts.length - 1)));
  return bad ? `${JSON.stringify(l)} is not a locality (region/zone/subzone, each optional after the region; "*" only as the last part)` : undefined;
}

/** Istio refuses locality patterns that cover one another (us-west and us-west/zone1) in one list. */
function overlaps(r: Reader, patterns: readonly string[], pathOf: (i: number) => string): void {
  const prefix = (l: string) => l.split('/').filter((p) => p !== '*');
  const covers = (a: string[], b: string[]) => a.length <= b.length && a.every((p, i) => p === b[i]);
  patterns.forEach((l, i) => {
    if (localityPatternProblem(l)) return;
    const j = patterns.findIndex((m, k) => k < i && !localityPatternProblem(m) && (covers(prefix(m), prefix(l)) || covers(prefix(l), prefix(m))));
    if (j >= 0) r.issue(pathOf(i), `locality ${l} overlaps ${patterns[j]}`);
  });
}

function connectionPool(r: Reader, parent: Obj, base: string): ConnectionPoolSettings | undefined {
  const path = joinPath(base, 'connectionPool');
  const o = sub(r, parent, 'connectionPool', base, CONNECTION_POOL);
  if (!o) return undefined;
  nonEmpty(r, o, path, CONNECTION_POOL.fields, 'a connection pool');
  const tcpPath = joinPath(path, 'tcp');
  const tcp = sub(r, o, 'tcp', path, TCP);
  const ka = tcp && sub(r, tcp, 'tcpKeepalive', tcpPath, TCP_KEEPALIVE);
  const kaPath = joinPath(tcpPath, 'tcpKeepalive');
  const httpPath = joinPath(path, 'http');
  const http = sub(r, o, 'http', path, HTTP);
  if (http?.h2UpgradePolicy === 'UPGRADE' && http.useClientProtocol === true) r.issue(joinPath(httpPath, 'useClientProtocol'), 'must not be true when h2UpgradePolicy is UPGRADE');
  return defined({
    tcp:
      tcp &&
      defined({
        maxConnections: r.int(tcp, 'maxConnections', tcpPath, 0, INT32),
        connectTimeoutMs: r.duration(tcp, 'connectTimeout', tcpPath),
        tcpKeepalive: ka && defined({ probes: r.int(ka, 'probes', kaPath, 0, UINT32), timeMs: r.duration(ka, 'time', kaPath), intervalMs: r.duration(ka, 'interval', kaPath) }),
        maxConnectionDurationMs: r.duration(tcp, 'maxConnectionDuration', tcpPath),
        // Istio: "If set to 0s, the timeout will be disabled."
        idleTimeoutMs: r.duration(tcp, 'idleTimeout', tcpPath, { zeroOk: true }),
      }),
    http:
      http &&
      defined({
        http1MaxPendingRequests: r.int(http, 'http1MaxPendingRequests', httpPath, 0, INT32),
        http2MaxRequests: r.int(http, 'http2MaxRequests', httpPath, 0, INT32),
        maxRequestsPerConnection: r.int(http, 'maxRequestsPerConnection', httpPath, 0, INT32),
        maxRetries: r.int(http, 'maxRetries', httpPath, 0, INT32),
        idleTimeoutMs: r.duration(http, 'idleTimeout', httpPath),
        h2UpgradePolicy: r.enumOf(http, 'h2UpgradePolicy', httpPath, ['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE'] as const),
        useClientProtocol: r.bool(http, 'useClientProtocol', httpPath),
        maxConcurrentStreams: r.int(http, 'maxConcurrentStreams', httpPath, 0, INT32),
      }),
  });
}

function outlierDetection(r: Reader, parent: Obj, base: string): OutlierDetection | undefined {
  const path = joinPath(base, 'outlierDetection');
  const o = sub(r, parent, 'outlierDetection', base, OUTLIER);
  if (!o) return undefined;
  const split = r.bool(o, 'splitExternalLocalOriginErrors', path);
  const localOrigin = r.int(o, 'consecutiveLocalOriginFailures', path, 0, UINT32);
  // Istio: local-origin failures are only counted apart when splitExternalLocalOriginErrors is on.
  if (localOrigin && !split) r.issue(joinPath(path, 'consecutiveLocalOriginFailures'), 'needs splitExternalLocalOriginErrors: true');
  return defined({
    consecutiveGatewayErrors: r.int(o, 'consecutiveGatewayErrors', path, 0, UINT32),
    consecutive5xxErrors: r.int(o, 'consecutive5xxErrors', path, 0, UINT32),
    consecutiveLocalOriginFailures: localOrigin,
    splitExternalLocalOriginErrors: split,
    intervalMs: r.duration(o, 'interval', path),
    baseEjectionTimeMs: r.duration(o, 'baseEjectionTime', path),
    maxEjectionPercent: r.int(o, 'maxEjectionPercent', path, 0, 100),
    minHealthPercent: r.int(o, 'minHealthPercent', path, 0, 100),
  });
}
