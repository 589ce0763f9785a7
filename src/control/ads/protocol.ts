// The ADS wire layer: DiscoveryRequest/Response through the project's one proto root, and responses encoded once and stamped with a nonce per stream.
import type * as grpc from '@grpc/grpc-js';
import type { Type } from 'protobufjs';
import { errorMessage } from '../../core/errors.js';
import { decodeCanonical, type ProtoObj } from '../../xds/canonical.js';
import { lookupType } from '../../xds/protos.js';

export const ADS_SERVICE = 'envoy.service.discovery.v3.AggregatedDiscoveryService';
export const SOTW_METHOD = 'StreamAggregatedResources';
export const DELTA_METHOD = 'DeltaAggregatedResources';

/**
 * envoy.service.discovery.v3.DiscoveryRequest in the canonical shape (src/xds/canonical.ts): proto field
 * names, only fields present on the wire (so a NACK is a request *with* error_detail, and an empty
 * resource_names is absent), enums as names, 64-bit integers as strings, bytes as Buffers. `node` goes
 * straight into decodeNode, Struct metadata included.
 *
 * Not @grpc/proto-loader: it takes the well-known types from protobufjs's bundle, whose field names are
 * camelCase (Value.stringValue), so node metadata would reach the decoder in a second shape.
 */
export interface DiscoveryRequest {
  readonly version_info?: string;
  readonly node?: ProtoObj;
  readonly resource_names?: readonly string[];
  readonly type_url?: string;
  readonly response_nonce?: string;
  /** google.rpc.Status: set only on a NACK. */
  readonly error_detail?: { readonly code?: number; readonly message?: string };
}

/** A request that could not be parsed; the stream ends with INVALID_ARGUMENT instead of grpc-js's bare INTERNAL. */
export interface MalformedRequest {
  readonly malformed: string;
}

export interface AnyResource {
  readonly type_url: string;
  readonly value: Uint8Array;
}

export interface DiscoveryResponse {
  readonly version_info: string;
  readonly resources: readonly AnyResource[];
  readonly type_url: string;
  readonly nonce: string;
}

let messages: { request: Type; response: Type } | undefined;

/** discovery.proto from @grpc/grpc-js-xds's deps/, loaded into the shared root on first use. */
function types(): { request: Type; response: Type } {
  messages ??= {
    request: lookupType('envoy.service.discovery.v3.DiscoveryRequest')!,
    response: lookupType('envoy.service.discovery.v3.DiscoveryResponse')!,
  };
  return messages;
}

const toBuffer = (u: Uint8Array): Buffer => (Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength));

/** DiscoveryRequest bytes -> canonical object; throws on malformed input. */
export function decodeRequest(bytes: Uint8Array): DiscoveryRequest {
  return decodeCanonical(types().request, bytes) as DiscoveryRequest;
}

/** A DiscoveryRequest (proto field names, Struct values as string_value...) -> bytes: how tests and clients speak raw requests. */
export function encodeRequest(req: object): Buffer {
  const t = types().request;
  return toBuffer(t.encode(t.fromObject(req)).finish());
}

/** DiscoveryResponse bytes -> object, Any.value kept as bytes. */
export function decodeResponse(bytes: Uint8Array): DiscoveryResponse {
  const o = decodeCanonical(types().response, bytes) as Partial<DiscoveryResponse>;
  return { version_info: o.version_info ?? '', resources: o.resources ?? [], type_url: o.type_url ?? '', nonce: o.nonce ?? '' };
}

/**
 * The DiscoveryResponse without its nonce: version_info, the resources as google.protobuf.Any whose value is
 * the snapshot's bytes as they are (a bytes field is copied, the message is not re-encoded), and type_url.
 * Built once per (resources, version, selection) and shared by every stream that gets it.
 */
export function encodeResponseBody(typeUrl: string, version: string, resources: readonly AnyResource[]): Buffer {
  return toBuffer(types().response.encode({ version_info: version, resources, type_url: typeUrl }).finish());
}

/**
 * One stream's response: the shared body followed by field 5 (nonce). Concatenated encodings parse as one
 * message with the fields of both (protobuf encoding guide, "Last One Wins": concatenating two messages
 * merges them), and the body carries no nonce, so this is exactly the message with the nonce set.
 */
export function withNonce(body: Buffer, nonce: string): Buffer {
  return Buffer.concat([body, toBuffer(types().response.encode({ nonce }).finish())]);
}

const identity = (b: Buffer): Buffer => b;

/**
 * The service definition for grpc.Server.addService. Responses are written as ready bytes (withNonce); a
 * request that does not parse becomes a MalformedRequest value, so the handler ends the stream with a status
 * it chooses and counts it. Delta requests are never parsed: that method only answers UNIMPLEMENTED.
 */
export function adsServiceDefinition(): grpc.ServiceDefinition {
  const bidi = { requestStream: true, responseStream: true, responseSerialize: identity, responseDeserialize: identity };
  return {
    [SOTW_METHOD]: {
      ...bidi,
      path: `/${ADS_SERVICE}/${SOTW_METHOD}`,
      originalName: 'streamAggregatedResources',
      requestSerialize: encodeRequest,
      requestDeserialize: (bytes: Buffer): DiscoveryRequest | MalformedRequest => {
        try {
          return decodeRequest(bytes);
        } catch (e) {
          return { malformed: errorMessage(e) };
        }
      },
    },
    [DELTA_METHOD]: { ...bidi, path: `/${ADS_SERVICE}/${DELTA_METHOD}`, originalName: 'deltaAggregatedResources', requestSerialize: identity, requestDeserialize: identity },
  };
}

export function isMalformed(r: DiscoveryRequest | MalformedRequest): r is MalformedRequest {
  return (r as MalformedRequest).malformed !== undefined;
}
