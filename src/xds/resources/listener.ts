// Decodes envoy.config.listener.v3.Listener (the LDS resource, and static_resources.listeners[]).
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import type { FilterChain, Listener } from '../../model/types.js';
import type { ProtoObj } from '../canonical.js';
import { Issues, decodeTypedExtension, enumOf, joinPath, list, msg, onlyFields, required, socketAddress, str } from './common.js';
import { HTTP_CONNECTION_MANAGER_TYPE_URL, decodeHttpConnectionManager } from './hcm.js';
import { routeClusterRefs } from './route.js';
import { DOWNSTREAM_TLS_CONTEXT_TYPE_URL, decodeDownstreamTlsContext } from './tls.js';

export function decodeListener(o: ProtoObj, path: string): Result<Listener, FieldIssue> {
  const issues = new Issues();
  onlyFields(o, path, ['name', 'address', 'traffic_direction', 'filter_chains'], issues);
  const name = required(o, 'name', path, issues);
  const address = socketAddress(msg(o, 'address'), joinPath(path, 'address'), issues, { portZeroOk: true });
  const trafficDirection = enumOf(o, 'traffic_direction', path, ['UNSPECIFIED', 'INBOUND', 'OUTBOUND'], 'UNSPECIFIED', issues);
  // One chain until filter_chain_match is supported: with several, which one serves a connection is undefined.
  const chains = list(o, 'filter_chains');
  if (chains.length !== 1) issues.add(joinPath(path, 'filter_chains'), `exactly one filter chain is supported (got ${chains.length})`);
  const filterChain = chains[0] && issues.take(decodeFilterChain(chains[0], joinPath(path, 'filter_chains[0]')));
  return issues.result(() => ({ name, address, trafficDirection, filterChain: filterChain! }));
}

/** FilterChain: exactly one network filter, the HttpConnectionManager, behind an optional TLS transport socket. */
function decodeFilterChain(o: ProtoObj, path: string): Result<FilterChain, FieldIssue> {
  const issues = new Issues();
  onlyFields(o, path, ['name', 'filters', 'transport_socket'], issues);
  const filters = list(o, 'filters');
  if (filters.length !== 1) issues.add(joinPath(path, 'filters'), `exactly one filter (the HTTP connection manager) is supported (got ${filters.length})`);
  // envoy.filters.network.http_connection_manager, the one network filter of the subset.
  const hcm = filters[0] && issues.take(decodeTypedExtension(filters[0], joinPath(path, 'filters[0]'), HTTP_CONNECTION_MANAGER_TYPE_URL, decodeHttpConnectionManager));
  const ts = msg(o, 'transport_socket');
  const tls = ts && issues.take(decodeTypedExtension(ts, joinPath(path, 'transport_socket'), DOWNSTREAM_TLS_CONTEXT_TYPE_URL, decodeDownstreamTlsContext));
  return issues.result(() => ({ name: str(o, 'name'), hcm: hcm!, ...(tls && { tls }) }));
}

/** The clusters a listener's inline route table names, each with the field path of its reference. */
export function listenerClusterRefs(l: Listener, path: string): { cluster: string; path: string }[] {
  const route = l.filterChain.hcm.route;
  return route.kind === 'inline' ? routeClusterRefs(route.config, joinPath(path, 'filter_chains[0].filters[0].typed_config.route_config')) : [];
}
