// Decodes envoy.config.listener.v3.Listener (the LDS resource, and static_resources.listeners[]).
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import { chainField, filterChainMatchKey, listenerChains, type FilterChain, type FilterChainMatch, type Listener } from '../../model/types.js';
import type { ProtoObj } from '../canonical.js';
import { Issues, bool, decodeTypedExtension, durationMs, enumOf, joinPath, list, msg, onlyFields, required, socketAddress, str, strings, u32Value } from './common.js';
import { HTTP_CONNECTION_MANAGER_TYPE_URL, decodeHttpConnectionManager } from './hcm.js';
import { routeClusterRefs } from './route.js';
import { DOWNSTREAM_TLS_CONTEXT_TYPE_URL, decodeDownstreamTlsContext } from './tls.js';

export const TLS_INSPECTOR_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';
/** Listener.listener_filters_timeout's default (Envoy docs: 15 s). */
export const DEFAULT_LISTENER_FILTERS_TIMEOUT_MS = 15_000;

export function decodeListener(o: ProtoObj, path: string): Result<Listener, FieldIssue> {
  const issues = new Issues();
  onlyFields(
    o,
    path,
    ['name', 'address', 'traffic_direction', 'filter_chains', 'default_filter_chain', 'listener_filters', 'listener_filters_timeout', 'continue_on_listener_filters_timeout'],
    issues,
  );
  const name = required(o, 'name', path, issues);
  const address = socketAddress(msg(o, 'address'), joinPath(path, 'address'), issues, { portZeroOk: true });
  const trafficDirection = enumOf(o, 'traffic_direction', path, ['UNSPECIFIED', 'INBOUND', 'OUTBOUND'], 'UNSPECIFIED', issues);
  const raw = list(o, 'filter_chains');
  if (raw.length === 0) issues.add(joinPath(path, 'filter_chains'), 'at least one filter chain is required');
  const chains = raw.map((c, i) => issues.take(decodeFilterChain(c, joinPath(path, `filter_chains[${i}]`))));
  const dflt = msg(o, 'default_filter_chain');
  const dp = joinPath(path, 'default_filter_chain');
  const defaultFilterChain = dflt && issues.take(decodeFilterChain(dflt, dp));
  if (dflt?.filter_chain_match !== undefined) issues.add(joinPath(dp, 'filter_chain_match'), 'the default filter chain serves what no chain matches; it takes no filter_chain_match');
  uniqueMatches(chains, path, issues);
  const tlsInspector = listenerFilters(o, path, issues);
  return issues.result(() => ({
    name,
    address,
    trafficDirection,
    filterChain: chains[0]!,
    filterChains: chains as FilterChain[],
    ...(defaultFilterChain && { defaultFilterChain }),
    ...(tlsInspector && { tlsInspector }),
  }));
}

/**
 * listener_filters: only tls_inspector (Istio's inbound listener uses it to tell mTLS from plaintext), and the
 * listener_filters_timeout it runs under. Returns the inspector's settings, or undefined without one.
 */
function listenerFilters(o: ProtoObj, path: string, issues: Issues): Listener['tlsInspector'] {
  const filters = list(o, 'listener_filters');
  filters.forEach((f, i) => {
    const p = joinPath(path, `listener_filters[${i}]`);
    issues.take(decodeTypedExtension(f, p, TLS_INSPECTOR_TYPE_URL, noSettings));
  });
  if (filters.length > 1) issues.add(joinPath(path, 'listener_filters'), `tls_inspector may be listed once (got ${filters.length} filters)`);
  const timeoutMs = durationMs(o, 'listener_filters_timeout', path, issues) ?? DEFAULT_LISTENER_FILTERS_TIMEOUT_MS;
  return filters.length ? { timeoutMs, continueOnTimeout: bool(o, 'continue_on_listener_filters_timeout') } : undefined;
}

/** TlsInspector's own knobs (JA3 fingerprints, the initial read buffer) change nothing we act on: refused when set. */
function noSettings(c: ProtoObj, path: string): Result<true, FieldIssue> {
  const issues = new Issues();
  onlyFields(c, path, [], issues);
  return issues.result(() => true);
}

/** Envoy refuses a listener whose chains share the same match: which one serves would be undefined. */
function uniqueMatches(chains: readonly (FilterChain | undefined)[], path: string, issues: Issues): void {
  const seen = new Map<string, number>();
  chains.forEach((c, i) => {
    if (!c) return;
    const key = filterChainMatchKey(c.match);
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else issues.add(joinPath(path, `filter_chains[${i}].filter_chain_match`), `the same match as filter_chains[${first}]: multiple filter chains with the same matching rules are not allowed`);
  });
}

/** FilterChain: exactly one network filter, the HttpConnectionManager, behind an optional TLS transport socket. */
function decodeFilterChain(o: ProtoObj, path: string): Result<FilterChain, FieldIssue> {
  const issues = new Issues();
  onlyFields(o, path, ['name', 'filters', 'transport_socket', 'filter_chain_match'], issues);
  const filters = list(o, 'filters');
  if (filters.length !== 1) issues.add(joinPath(path, 'filters'), `exactly one filter (the HTTP connection manager) is supported (got ${filters.length})`);
  // envoy.filters.network.http_connection_manager, the one network filter of the subset.
  const hcm = filters[0] && issues.take(decodeTypedExtension(filters[0], joinPath(path, 'filters[0]'), HTTP_CONNECTION_MANAGER_TYPE_URL, decodeHttpConnectionManager));
  const ts = msg(o, 'transport_socket');
  const tls = ts && issues.take(decodeDownstreamTlsSocket(ts, joinPath(path, 'transport_socket')));
  const m = msg(o, 'filter_chain_match');
  const match = m && filterChainMatch(m, joinPath(path, 'filter_chain_match'), issues);
  return issues.result(() => ({ name: str(o, 'name'), hcm: hcm!, ...(tls && { tls }), ...(match && { match }) }));
}

const decodeDownstreamTlsSocket = (ts: ProtoObj, path: string) => decodeTypedExtension(ts, path, DOWNSTREAM_TLS_CONTEXT_TYPE_URL, decodeDownstreamTlsContext);

/** FilterChainMatch: destination_port, transport_protocol (tls / raw_buffer) and application_protocols. */
function filterChainMatch(m: ProtoObj, path: string, issues: Issues): FilterChainMatch | undefined {
  onlyFields(m, path, ['destination_port', 'transport_protocol', 'application_protocols'], issues);
  const destinationPort = u32Value(m, 'destination_port');
  if (destinationPort !== undefined && (destinationPort < 1 || destinationPort > 65535)) issues.add(joinPath(path, 'destination_port'), `${destinationPort} is outside [1, 65535]`);
  const tp = str(m, 'transport_protocol');
  // Envoy's two built-in values: `tls` (set by tls_inspector) and `raw_buffer` (everything else).
  if (tp !== '' && tp !== 'tls' && tp !== 'raw_buffer') issues.add(joinPath(path, 'transport_protocol'), `${JSON.stringify(tp)} is not supported (tls or raw_buffer)`);
  const applicationProtocols = strings(m, 'application_protocols');
  return {
    ...(destinationPort !== undefined && { destinationPort }),
    ...(tp !== '' && { transportProtocol: tp as 'tls' | 'raw_buffer' }),
    applicationProtocols,
  };
}

/** The clusters a listener's inline route tables name, each with the field path of its reference. */
export function listenerClusterRefs(l: Listener, path: string): { cluster: string; path: string }[] {
  return listenerChains(l).flatMap((c, i) => {
    const route = c.hcm.route;
    return route.kind === 'inline' ? routeClusterRefs(route.config, joinPath(path, `${chainField(l, i)}.filters[0].typed_config.route_config`)) : [];
  });
}
