// Decodes envoy.config.cluster.v3.Cluster (the CDS resource, and static_resources.clusters[]).
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import { HTTP2_DEFAULTS, type Cluster, type Http2Options } from '../../model/types.js';
import { unpackAs, type ProtoObj } from '../canonical.js';
import {
  DEFAULT_IDLE_TIMEOUT_MS,
  Issues,
  adsConfigSource,
  decodeTypedExtension,
  durationMs,
  http2Options,
  joinPath,
  msg,
  onlyFields,
  requireOne,
  required,
  str,
  u32Value,
} from './common.js';
import { decodeCircuitBreakers } from './circuit-breakers.js';
import { CLUSTER_LB_FIELDS, decodeClusterLb } from './cluster-lb.js';
import { decodeClusterLoadAssignment } from './endpoint.js';
import { decodeOutlierDetection } from './outlier-detection.js';
import { UPSTREAM_TLS_CONTEXT_TYPE_URL, decodeUpstreamTlsContext } from './tls.js';

const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const HTTP_PROTOCOL_OPTIONS_TYPE_URL = `type.googleapis.com/${HTTP_PROTOCOL_OPTIONS}`;

/** Cluster.connect_timeout default (Envoy docs: 5 s). */
const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

interface UpstreamHttp {
  readonly protocol: Cluster['protocol'];
  readonly http2: Http2Options;
  readonly idleTimeoutMs: number;
  /** common_http_protocol_options.max_requests_per_connection; 0 = unlimited, as in Envoy. */
  readonly maxRequestsPerConnection: number;
}

export function decodeCluster(o: ProtoObj, path: string): Result<Cluster, FieldIssue> {
  const issues = new Issues();
  onlyFields(
    o,
    path,
    [
      'name',
      'type',
      'eds_cluster_config',
      'connect_timeout',
      ...CLUSTER_LB_FIELDS,
      'outlier_detection',
      'circuit_breakers',
      'max_requests_per_connection',
      'load_assignment',
      'typed_extension_protocol_options',
      'transport_socket',
    ],
    issues,
  );
  const name = required(o, 'name', path, issues);
  // STATIC and EDS (endpoints over ADS); DNS types need a resolver loop.
  if (o.type !== undefined && o.type !== 'STATIC' && o.type !== 'EDS') issues.add(joinPath(path, 'type'), `${String(o.type)} is not supported yet`);
  const type = o.type === 'EDS' ? 'EDS' : 'STATIC';
  const connectTimeoutMs = durationMs(o, 'connect_timeout', path, issues) ?? DEFAULT_CONNECT_TIMEOUT_MS;
  if (connectTimeoutMs === 0) issues.add(joinPath(path, 'connect_timeout'), 'must be greater than 0');
  const la = msg(o, 'load_assignment');
  const loadAssignment = la && issues.take(decodeClusterLoadAssignment(la, joinPath(path, 'load_assignment')));
  const eds = edsClusterConfig(o, path, type, name, issues);
  const ts = msg(o, 'transport_socket');
  const tls = ts && issues.take(decodeTypedExtension(ts, joinPath(path, 'transport_socket'), UPSTREAM_TLS_CONTEXT_TYPE_URL, decodeUpstreamTlsContext));
  const http = upstreamHttp(o, joinPath(path, 'typed_extension_protocol_options'), issues);
  const lb = decodeClusterLb(o, path, issues);
  // Envoy: outlier_detection unset means no outlier detection; set (even empty) means its defaults.
  const od = msg(o, 'outlier_detection');
  const outlierDetection = od && decodeOutlierDetection(od, joinPath(path, 'outlier_detection'), issues);
  const cb = msg(o, 'circuit_breakers');
  const circuitBreakers = cb && decodeCircuitBreakers(cb, joinPath(path, 'circuit_breakers'), issues);
  // The deprecated Cluster.max_requests_per_connection (older istiod writes it) yields to the protocol options'.
  const maxRequestsPerConnection = http.maxRequestsPerConnection || u32Value(o, 'max_requests_per_connection') || undefined;
  return issues.result(() => ({
    name,
    type,
    ...(eds && { eds }),
    connectTimeoutMs,
    lbPolicy: lb.policy,
    lb,
    ...(outlierDetection && { outlierDetection }),
    ...(loadAssignment && { loadAssignment }),
    protocol: http.protocol,
    http2: http.http2,
    idleTimeoutMs: http.idleTimeoutMs,
    ...(maxRequestsPerConnection && { maxRequestsPerConnection }),
    ...(circuitBreakers && { circuitBreakers }),
    ...(tls && { tls }),
  }));
}

/**
 * Cluster.EdsClusterConfig: where an EDS cluster's ClusterLoadAssignment comes from (`eds_config: {ads: {}}`)
 * and its name (service_name, defaulting to the cluster name, as Envoy does). Only EDS clusters have one,
 * and their endpoints come from EDS alone: an inline load_assignment would be silently replaced.
 */
function edsClusterConfig(o: ProtoObj, path: string, type: Cluster['type'], name: string, issues: Issues): Cluster['eds'] {
  const e = msg(o, 'eds_cluster_config');
  const p = joinPath(path, 'eds_cluster_config');
  if (type !== 'EDS') {
    if (e) issues.add(p, 'only a cluster of type EDS takes eds_cluster_config');
    return undefined;
  }
  if (o.load_assignment !== undefined) issues.add(joinPath(path, 'load_assignment'), 'an EDS cluster gets its endpoints from EDS; load_assignment is not allowed');
  if (e === undefined) {
    issues.add(p, 'is required for type EDS (eds_config: {ads: {}})');
    return undefined;
  }
  onlyFields(e, p, ['eds_config', 'service_name'], issues);
  requireOne(e, p, ['eds_config'], true, issues);
  const initialFetchTimeoutMs = adsConfigSource(msg(e, 'eds_config'), joinPath(p, 'eds_config'), issues);
  return { serviceName: str(e, 'service_name') || name, initialFetchTimeoutMs };
}

/**
 * typed_extension_protocol_options: only envoy.extensions.upstreams.http.v3.HttpProtocolOptions, with an
 * explicit HTTP/1.1 or HTTP/2 choice and the upstream idle timeout. Without it Envoy speaks HTTP/1.1.
 */
function upstreamHttp(o: ProtoObj, path: string, issues: Issues): UpstreamHttp {
  const options = (o.typed_extension_protocol_options as Record<string, ProtoObj> | undefined) ?? {};
  let result: UpstreamHttp = { protocol: 'HTTP1', http2: HTTP2_DEFAULTS, idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS, maxRequestsPerConnection: 0 };
  for (const [key, any] of Object.entries(options)) {
    const p = `${path}[${JSON.stringify(key)}]`;
    if (key !== HTTP_PROTOCOL_OPTIONS) {
      issues.add(p, `protocol options ${JSON.stringify(key)} are not supported`);
      continue;
    }
    const opts = issues.take(unpackAs(any, p, HTTP_PROTOCOL_OPTIONS_TYPE_URL));
    if (opts) result = httpProtocolOptions(opts, p, issues);
  }
  return result;
}

function httpProtocolOptions(o: ProtoObj, path: string, issues: Issues): UpstreamHttp {
  const clean = onlyFields(o, path, ['common_http_protocol_options', 'explicit_http_config'], issues);
  requireOne(o, path, ['explicit_http_config'], clean, issues);
  const explicit = msg(o, 'explicit_http_config') ?? {};
  const ePath = joinPath(path, 'explicit_http_config');
  if (o.explicit_http_config !== undefined) {
    const eClean = onlyFields(explicit, ePath, ['http_protocol_options', 'http2_protocol_options'], issues);
    requireOne(explicit, ePath, ['http_protocol_options', 'http2_protocol_options'], eClean, issues);
  }
  const h1 = msg(explicit, 'http_protocol_options');
  // Http1ProtocolOptions knobs (header case, absolute URLs, ...) are not implemented.
  if (h1) onlyFields(h1, joinPath(ePath, 'http_protocol_options'), [], issues);
  const h2 = msg(explicit, 'http2_protocol_options');
  const common = msg(o, 'common_http_protocol_options') ?? {};
  const cPath = joinPath(path, 'common_http_protocol_options');
  onlyFields(common, cPath, ['idle_timeout', 'max_requests_per_connection'], issues);
  return {
    protocol: h2 ? 'HTTP2' : 'HTTP1',
    http2: http2Options(h2, joinPath(ePath, 'http2_protocol_options'), issues),
    idleTimeoutMs: durationMs(common, 'idle_timeout', cPath, issues) ?? DEFAULT_IDLE_TIMEOUT_MS,
    maxRequestsPerConnection: u32Value(common, 'max_requests_per_connection') ?? 0,
  };
}
