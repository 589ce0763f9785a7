// grpc-js-xds's own resource validators, as a real client runs them on every resource it receives.
import { createRequire } from 'node:module';
import type { Test } from 'tap';
import type { NodeSnapshot } from '../../../src/control/snapshot.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL } from '../../../src/xds/protos.js';

interface Decoded {
  name: string;
  value?: Record<string, unknown>;
  error?: string;
}
interface ResourceType {
  decode(context: unknown, resource: { type_url: string; value: Uint8Array }): Decoded;
}

// The validators grpc-js-xds runs on every resource it receives (build/src/xds-resource-type/*), after the
// register() every client application calls (it installs the router and the other HTTP filters).
const require = createRequire(import.meta.url);
require('@grpc/grpc-js-xds').register();
const base = '@grpc/grpc-js-xds/build/src/xds-resource-type';
const VALIDATORS: Record<string, ResourceType> = {
  [LISTENER_TYPE_URL]: require(`${base}/listener-resource-type.js`).ListenerResourceType.get(),
  [ROUTE_CONFIGURATION_TYPE_URL]: require(`${base}/route-config-resource-type.js`).RouteConfigurationResourceType.get(),
  [CLUSTER_TYPE_URL]: require(`${base}/cluster-resource-type.js`).ClusterResourceType.get(),
  [CLUSTER_LOAD_ASSIGNMENT_TYPE_URL]: require(`${base}/endpoint-resource-type.js`).EndpointResourceType.get(),
};
/** What XdsClient passes: the bootstrap's certificate providers (Istio's gRPC bootstrap names its provider "default"). */
const CONTEXT = { bootstrap: { certificateProviders: { default: { plugin_name: 'file_watcher', config: {} } } }, server: {} };

/** Every resource of the snapshot through grpc-js-xds's decode(); fails the test with the client's own message. */
export function grpcAccepts(t: Test, s: NodeSnapshot): Map<string, Map<string, Record<string, unknown>>> {
  const out = new Map<string, Map<string, Record<string, unknown>>>();
  const refused: string[] = [];
  for (const [type, resources] of s.resources) {
    const m = new Map<string, Record<string, unknown>>();
    for (const [name, value] of resources) {
      const d = VALIDATORS[type]!.decode(CONTEXT, { type_url: type, value });
      if (d.error !== undefined) refused.push(`${name}: ${d.error}`);
      // The name gRPC files the resource under must be the one it subscribed to.
      else if (d.name !== name) refused.push(`${name}: gRPC sees it as ${d.name}`);
      else m.set(name, d.value!);
    }
    out.set(type, m);
  }
  t.strictSame(refused, [], 'grpc-js-xds accepts every resource');
  return out;
}

