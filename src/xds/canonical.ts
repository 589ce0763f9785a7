// The one object shape every resource decoder reads, whether the resource came from a file or an ADS stream.
import type { IConversionOptions, Type } from 'protobufjs';
import { errorMessage, type FieldIssue } from '../core/errors.js';
import { fail, ok, type Result } from '../core/result.js';
import { typeForUrl } from './protos.js';

/**
 * A decoded message as `Type.toObject(Type.decode(bytes), CANONICAL)` returns it:
 * - keys are the .proto field names (snake_case), and only fields present on the wire appear (defaults: false);
 *   a proto3 scalar holding its default is never on the wire, so it is absent here too;
 * - enums are their names (an enum number this proto version does not know stays a number);
 * - 64-bit integers are decimal strings (Duration.seconds too); bytes are Buffers;
 * - a oneof member appears under its own name; there is no virtual discriminator key (oneofs: false), so
 *   "every present key is handled" checks see exactly what the sender set;
 * - google.protobuf.Any is {type_url, value: Buffer}: decoders unpack it with unpackAny().
 * A static bootstrap is converted from JSON, encoded, and decoded again, so both sources reach this shape.
 */
export type ProtoObj = Readonly<Record<string, unknown>>;

const CANONICAL: IConversionOptions = { longs: String, enums: String, defaults: false, oneofs: false };

/** Decodes wire bytes into the canonical shape; throws on malformed input. */
export function decodeCanonical(type: Type, bytes: Uint8Array): ProtoObj {
  return type.toObject(type.decode(bytes), CANONICAL);
}

export interface Unpacked {
  readonly typeUrl: string;
  readonly value: ProtoObj;
}

/** google.protobuf.Any -> its message in canonical shape. Issues are at `path` (the Any's own field). */
export function unpackAny(any: ProtoObj, path: string): Result<Unpacked, FieldIssue> {
  const typeUrl = typeof any.type_url === 'string' ? any.type_url : '';
  const type = typeForUrl(typeUrl);
  if (!type) return fail([{ path, message: `unknown type URL ${JSON.stringify(typeUrl)}` }]);
  try {
    return ok({ typeUrl, value: decodeCanonical(type, (any.value as Uint8Array | undefined) ?? new Uint8Array()) });
  } catch (e) {
    return fail([{ path, message: `malformed ${type.name}: ${errorMessage(e)}` }]);
  }
}

/** unpackAny, requiring one type: `<path>: expected <want>, got <type URL>`. */
export function unpackAs(any: ProtoObj, path: string, want: string): Result<ProtoObj, FieldIssue> {
  if (any.type_url !== want) {
    return fail([{ path, message: `expected ${want.slice(want.lastIndexOf('.') + 1)}, got ${JSON.stringify(any.type_url ?? '')}` }]);
  }
  const r = unpackAny(any, path);
  return r.ok ? ok(r.value.value) : r;
}
