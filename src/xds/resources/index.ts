// xDS resources by type URL: wire bytes (ADS) -> model through the one decoder per type; proto3 JSON -> bytes.
import { errorMessage, type FieldIssue } from '../../core/errors.js';
import { fail, ok, type Result } from '../../core/result.js';
import type { Cluster, ClusterLoadAssignment, Listener, RouteConfiguration } from '../../model/types.js';
import { decodeCanonical, type ProtoObj } from '../canonical.js';
import { jsonToMessage } from '../json.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL, typeForUrl } from '../protos.js';
import { decodeCluster } from './cluster.js';
import { decodeClusterLoadAssignment } from './endpoint.js';
import { decodeListener } from './listener.js';
import { decodeRouteConfiguration } from './route.js';

export interface ResourceModels {
  [LISTENER_TYPE_URL]: Listener;
  [ROUTE_CONFIGURATION_TYPE_URL]: RouteConfiguration;
  [CLUSTER_TYPE_URL]: Cluster;
  [CLUSTER_LOAD_ASSIGNMENT_TYPE_URL]: ClusterLoadAssignment;
}
export type ResourceTypeUrl = keyof ResourceModels;

const DECODERS: { [U in ResourceTypeUrl]: (o: ProtoObj, path: string) => Result<ResourceModels[U], FieldIssue> } = {
  [LISTENER_TYPE_URL]: decodeListener,
  [ROUTE_CONFIGURATION_TYPE_URL]: decodeRouteConfiguration,
  [CLUSTER_TYPE_URL]: decodeCluster,
  [CLUSTER_LOAD_ASSIGNMENT_TYPE_URL]: decodeClusterLoadAssignment,
};

/** One resource as it arrives in a DiscoveryResponse (Any.value bytes) -> frozen model, or every issue. */
export function decodeResource<U extends ResourceTypeUrl>(typeUrl: U, bytes: Uint8Array, path = ''): Result<ResourceModels[U], FieldIssue> {
  const type = typeForUrl(typeUrl)!;
  let o: ProtoObj;
  try {
    o = decodeCanonical(type, bytes);
  } catch (e) {
    return fail([{ path, message: `malformed ${type.name}: ${errorMessage(e)}` }]);
  }
  return DECODERS[typeUrl](o, path);
}

/** A resource written as proto3 JSON (Envoy's YAML/JSON form) -> wire bytes, or every JSON-level issue. */
export function encodeResourceJson(typeUrl: ResourceTypeUrl, json: unknown, path = ''): Result<Uint8Array, FieldIssue> {
  const type = typeForUrl(typeUrl)!;
  const r = jsonToMessage(type, json, path);
  return r.ok ? ok(type.encode(r.value).finish()) : r;
}
