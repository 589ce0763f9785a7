// Decodes envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import type { ForwardClientCertDetails, HttpConnectionManager, HttpFilterConfig } from '../../model/types.js';
import { unpackAny, type ProtoObj } from '../canonical.js';
import { FILTER_ORDER, filterShortName } from '../../model/filter-order.js';
import { httpFilterDecoder } from '../http-filters/index.js';
import { ROUTER_TYPE_URL } from '../http-filters/router.js';
import {
  Issues,
  adsConfigSource,
  bool,
  boolValue,
  durationMs,
  enumOf,
  http2Options,
  idleTimeoutMs,
  joinPath,
  list,
  msg,
  onlyFields,
  requireOne,
  required,
  str,
  u32Value,
} from './common.js';
import { decodeRouteConfiguration } from './route.js';

export const HTTP_CONNECTION_MANAGER_TYPE_URL =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

const HANDLED = [
  'stat_prefix',
  'codec_type',
  'route_config',
  'rds',
  'http_filters',
  'forward_client_cert_details',
  'set_current_client_cert_details',
  'common_http_protocol_options',
  'stream_idle_timeout',
  'request_timeout',
  'max_request_headers_kb',
  'http2_protocol_options',
  'generate_request_id',
  'use_remote_address',
  'upgrade_configs',
];

const FCC: readonly ForwardClientCertDetails[] = ['SANITIZE', 'FORWARD_ONLY', 'APPEND_FORWARD', 'SANITIZE_SET', 'ALWAYS_FORWARD_ONLY'];

// Envoy's documented defaults for the fields below.
const DEFAULT_STREAM_IDLE_TIMEOUT_MS = 300_000;
const DEFAULT_MAX_REQUEST_HEADERS_KB = 60;
/** max_request_headers_kb validate rule: gt 0, lte 8192. */
const MAX_REQUEST_HEADERS_KB_LIMIT = 8192;

export function decodeHttpConnectionManager(o: ProtoObj, path: string): Result<HttpConnectionManager, FieldIssue> {
  const issues = new Issues();
  const clean = onlyFields(o, path, HANDLED, issues);
  const statPrefix = required(o, 'stat_prefix', path, issues);
  requireOne(o, path, ['route_config', 'rds'], clean, issues);
  const inline = msg(o, 'route_config');
  const rds = msg(o, 'rds');
  let route: HttpConnectionManager['route'] | undefined;
  if (inline) {
    const config = issues.take(decodeRouteConfiguration(inline, joinPath(path, 'route_config')));
    if (config) route = { kind: 'inline', config };
  } else if (rds) {
    route = decodeRds(rds, joinPath(path, 'rds'), issues);
  }
  const maxKb = u32Value(o, 'max_request_headers_kb') ?? DEFAULT_MAX_REQUEST_HEADERS_KB;
  if (maxKb < 1 || maxKb > MAX_REQUEST_HEADERS_KB_LIMIT) {
    issues.add(joinPath(path, 'max_request_headers_kb'), `${maxKb} is outside [1, ${MAX_REQUEST_HEADERS_KB_LIMIT}]`);
  }
  const value = {
    statPrefix,
    codecType: enumOf(o, 'codec_type', path, ['AUTO', 'HTTP1', 'HTTP2'], 'AUTO', issues),
    httpFilters: decodeHttpFilters(list(o, 'http_filters'), joinPath(path, 'http_filters'), issues),
    forwardClientCertDetails: enumOf(o, 'forward_client_cert_details', path, FCC, 'SANITIZE', issues),
    setCurrentClientCertDetails: certDetails(msg(o, 'set_current_client_cert_details') ?? {}),
    idleTimeoutMs: idleTimeoutMs(msg(o, 'common_http_protocol_options'), joinPath(path, 'common_http_protocol_options'), issues),
    streamIdleTimeoutMs: durationMs(o, 'stream_idle_timeout', path, issues) ?? DEFAULT_STREAM_IDLE_TIMEOUT_MS,
    requestTimeoutMs: durationMs(o, 'request_timeout', path, issues) ?? 0,
    maxRequestHeadersKb: maxKb,
    http2: http2Options(msg(o, 'http2_protocol_options'), joinPath(path, 'http2_protocol_options'), issues),
    generateRequestId: boolValue(o, 'generate_request_id') ?? true,
    useRemoteAddress: boolValue(o, 'use_remote_address') ?? false,
    upgradeTypes: upgradeTypes(list(o, 'upgrade_configs'), joinPath(path, 'upgrade_configs'), issues),
  };
  return issues.result(() => ({ ...value, route: route! }));
}

/** Rds: the route table comes over ADS (config_source `ads: {}`); its name and how long to wait for it. */
function decodeRds(o: ProtoObj, path: string, issues: Issues): { kind: 'rds'; name: string; initialFetchTimeoutMs: number } {
  onlyFields(o, path, ['route_config_name', 'config_source'], issues);
  const initialFetchTimeoutMs = adsConfigSource(msg(o, 'config_source'), joinPath(path, 'config_source'), issues);
  return { kind: 'rds', name: required(o, 'route_config_name', path, issues), initialFetchTimeoutMs };
}

/** SetCurrentClientCertDetails: which parts of the peer certificate go into x-forwarded-client-cert. */
function certDetails(o: ProtoObj): HttpConnectionManager['setCurrentClientCertDetails'] {
  return { subject: boolValue(o, 'subject') ?? false, cert: bool(o, 'cert'), chain: bool(o, 'chain'), dns: bool(o, 'dns'), uri: bool(o, 'uri') };
}

/** UpgradeConfig entries that are enabled (default true); per-upgrade filter chains are not supported. */
function upgradeTypes(configs: readonly ProtoObj[], path: string, issues: Issues): string[] {
  return configs.flatMap((u, i) => {
    const p = `${path}[${i}]`;
    onlyFields(u, p, ['upgrade_type', 'enabled'], issues);
    const type = required(u, 'upgrade_type', p, issues).toLowerCase();
    return boolValue(u, 'enabled') === false ? [] : [type];
  });
}

/**
 * http_filters through the registry. An unknown filter is an error unless is_optional, in which case it is
 * skipped, as Envoy does. The router must be the last filter (Envoy: the terminal filter ends the chain), and
 * the known filters come in FILTER_ORDER.
 */
function decodeHttpFilters(filters: readonly ProtoObj[], path: string, issues: Issues): HttpFilterConfig[] {
  const out: HttpFilterConfig[] = [];
  let last: { rank: number; index: number } | undefined;
  filters.forEach((f, i) => {
    const p = `${path}[${i}]`;
    const clean = onlyFields(f, p, ['name', 'typed_config', 'is_optional'], issues);
    const name = required(f, 'name', p, issues);
    requireOne(f, p, ['typed_config'], clean, issues);
    const optional = bool(f, 'is_optional');
    const any = msg(f, 'typed_config');
    const anyPath = joinPath(p, 'typed_config');
    if (any === undefined) return;
    const typeUrl = str(any, 'type_url');
    const decoder = httpFilterDecoder(typeUrl);
    if (!decoder) {
      if (!optional) issues.add(anyPath, `HTTP filter ${typeUrl} is not supported (set is_optional: true to skip it)`);
      return;
    }
    if (typeUrl === ROUTER_TYPE_URL && i !== filters.length - 1) issues.add(p, 'the router must be the last HTTP filter');
    const rank = FILTER_ORDER.indexOf(typeUrl);
    if (last && rank >= 0 && rank < last.rank) {
      const order = FILTER_ORDER.map(filterShortName).join(' → ');
      issues.add(p, `${filterShortName(typeUrl)} must come before ${filterShortName(FILTER_ORDER[last.rank]!)} (http_filters[${last.index}]): the order is ${order}`);
    }
    if (rank >= 0 && (!last || rank >= last.rank)) last = { rank, index: i };
    const unpacked = issues.take(unpackAny(any, anyPath));
    const config = unpacked && issues.take(decoder.decode(unpacked.value, anyPath));
    if (config) out.push({ name, typeUrl, optional, config });
  });
  if (!filters.some((f) => msg(f, 'typed_config')?.type_url === ROUTER_TYPE_URL)) {
    issues.add(path, 'the router (envoy.filters.http.router) is required as the last HTTP filter');
  }
  return out;
}
