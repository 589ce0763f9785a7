// The ADS service (envoy.service.discovery.v3.AggregatedDiscoveryService) loaded with proto-loader from @grpc/grpc-js-xds's deps/, and its messages.
import { createRequire } from 'node:module';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { NodeInfo } from '../model/types.js';

/**
 * DiscoveryRequest as proto-loader takes it (keepCase: the .proto field names). Only the fields a SotW
 * client sends; resource_locators belong to xdstp:// naming, which this client does not use.
 */
export interface DiscoveryRequestMsg {
  version_info: string;
  node?: NodeMsg;
  resource_names: string[];
  type_url: string;
  response_nonce: string;
  /** google.rpc.Status; present exactly on a NACK. */
  error_detail?: { code: number; message: string };
}

/**
 * DiscoveryResponse; resources stay google.protobuf.Any with their bytes (decoded by decodeResource). As
 * received, a field holding its proto3 default (an empty list, version or nonce) is absent.
 */
export interface DiscoveryResponseMsg {
  version_info?: string;
  resources?: { type_url?: string; value?: Buffer }[];
  type_url?: string;
  nonce?: string;
}

/** google.protobuf.Value as proto-loader encodes it: protobufjs bundles the well-known types with camelCase names. */
type ValueMsg = { nullValue: 'NULL_VALUE' } | { numberValue: number } | { stringValue: string } | { boolValue: boolean } | { structValue: StructMsg } | { listValue: { values: ValueMsg[] } };
interface StructMsg {
  fields: Record<string, ValueMsg>;
}

export interface NodeMsg {
  id: string;
  cluster: string;
  metadata: StructMsg;
  locality?: { region: string; zone: string; sub_zone: string };
  user_agent_name: string;
}

export type AdsServiceClient = grpc.Client & {
  StreamAggregatedResources(options?: grpc.CallOptions): grpc.ClientDuplexStream<DiscoveryRequestMsg, DiscoveryResponseMsg>;
};

const require = createRequire(import.meta.url);
const DEPS = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');

let service: grpc.ServiceClientConstructor | undefined;

/**
 * The service constructor (its `.service` is the definition a server registers). Loaded once, ~100 ms.
 * Options: keepCase (the .proto names the decoders use), no `json` so every Any keeps its bytes, enums as
 * names, no defaults (absent = unset, as on the wire).
 */
export function adsService(): grpc.ServiceClientConstructor {
  if (service) return service;
  const def = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: false,
    oneofs: false,
    includeDirs: ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(DEPS, d)),
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: grpc.ServiceClientConstructor } } } } };
  service = pkg.envoy.service.discovery.v3.AggregatedDiscoveryService;
  return service;
}

function toValue(v: unknown): ValueMsg {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v as Record<string, unknown>) };
}

function toStruct(o: Readonly<Record<string, unknown>>): StructMsg {
  return { fields: Object.fromEntries(Object.entries(o).map(([k, v]) => [k, toValue(v)])) };
}

/** envoy.config.core.v3.Node from the bootstrap's node: id, cluster, locality and metadata (a Struct), as Envoy sends it. */
export function nodeMessage(n: NodeInfo): NodeMsg {
  return {
    id: n.id,
    cluster: n.cluster,
    metadata: toStruct(n.metadata),
    ...(n.locality && { locality: { region: n.locality.region, zone: n.locality.zone, sub_zone: n.locality.subZone } }),
    user_agent_name: 'outrigger',
  };
}
