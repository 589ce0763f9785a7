// proto3 JSON (as parsed from YAML or JSON) -> a plain protobufjs message, driven by reflection, every error by path.
import protobuf from 'protobufjs';
import type { Enum, Field, Type } from 'protobufjs';
import type { FieldIssue } from '../core/errors.js';
import { fail, ok, type Result } from '../core/result.js';
import { typeForUrl } from './protos.js';

/** A message as Type.encode() takes it: proto field names, enums as numbers, nested messages as plain objects. */
export type PlainMessage = Record<string, unknown>;

/** Called with each converted message of one type (keyed by full name, no leading dot); may rewrite it. */
export type MessageHook = (message: PlainMessage, path: string) => void;

export interface JsonOptions {
  readonly hooks?: Readonly<Record<string, MessageHook>>;
}

export function joinPath(base: string, key: string): string {
  return base === '' ? key : `${base}.${key}`;
}

/** proto3 JSON names a field by its lowerCamelCase form; parsers also accept the proto name. */
export const lowerCamel = (name: string) => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

const fieldIndex = new WeakMap<Type, Map<string, Field>>();
function fieldsByJsonName(type: Type): Map<string, Field> {
  let m = fieldIndex.get(type);
  if (!m) {
    m = new Map();
    for (const f of type.fieldsArray) {
      m.set(f.name, f);
      m.set(lowerCamel(f.name), f);
    }
    fieldIndex.set(type, m);
  }
  return m;
}

/** A JSON value as an error message names it: `5`, `"x"`, `a list`, `an object`. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return JSON.stringify(v);
}

/** A JSON object: YAML's !!binary (Uint8Array) and the like are not. */
export const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && [Object.prototype, null].includes(Object.getPrototypeOf(v));

const INT_RANGES: Record<string, readonly [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};

/**
 * A proto3 scalar without presence that holds its default is not serialized (protobuf's encoding rules), so
 * `codec_type: AUTO` in a file and an AUTO left off the wire by a control plane decode to the same object.
 */
function isImplicitDefault(f: Field, v: unknown): boolean {
  return !f.repeated && !(f.resolvedType instanceof protobuf.Type) && isZero(v);
}
const isZero = (v: unknown) => v === 0 || v === false || v === '' || (v instanceof Uint8Array && v.length === 0);

/** The same rule for the scalar fields of Duration and the wrappers, which we build by hand. */
const dropZeros = (m: PlainMessage): PlainMessage => Object.fromEntries(Object.entries(m).filter(([, v]) => !isZero(v)));

const DURATION = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Well-known types whose JSON form is not an object of their fields (protobuf's JSON mapping table). */
const SPECIAL_JSON = new Set(
  ['Any', 'Duration', 'Timestamp', 'FieldMask', 'Struct', 'Value', 'ListValue']
    .concat(['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map((w) => `${w}Value`))
    .map((n) => `.google.protobuf.${n}`),
);

class Converter {
  readonly issues: FieldIssue[] = [];

  constructor(private readonly opts: JsonOptions) {}

  private issue(path: string, message: string): undefined {
    this.issues.push({ path, message });
    return undefined;
  }

  /** `skip` is the "@type" key when the message is the payload of an Any written inline. */
  message(type: Type, json: unknown, path: string, skip?: string): PlainMessage | undefined {
    const out = SPECIAL_JSON.has(type.fullName) ? this.wellKnown(type, json, path) : this.fields(type, json, path, skip);
    const hook = this.opts.hooks?.[type.fullName.slice(1)];
    if (out && hook) hook(out, path);
    return out;
  }

  private fields(type: Type, json: unknown, path: string, skip: string | undefined): PlainMessage | undefined {
    if (!isObject(json)) return this.issue(path, `expected an object (${type.fullName.slice(1)}), got ${describe(json)}`);
    const out: PlainMessage = {};
    const writtenAs = new Map<string, string>();
    const oneofSetBy = new Map<string, string>();
    for (const [key, value] of Object.entries(json)) {
      if (key === skip) continue;
      const p = joinPath(path, key);
      const field = fieldsByJsonName(type).get(key);
      if (!field) {
        this.issue(p, 'unknown field');
        continue;
      }
      const earlier = writtenAs.get(field.name);
      if (earlier !== undefined) {
        this.issue(p, `field is set twice (also as '${earlier}')`);
        continue;
      }
      writtenAs.set(field.name, key);
      field.resolve();
      // proto3 JSON: null means "not set", except for google.protobuf.Value where it is a value. (undefined can
      // only come from an in-memory object and means the same.)
      if (value === undefined || (value === null && field.resolvedType?.fullName !== '.google.protobuf.Value')) continue;
      const oneof = field.partOf;
      if (oneof) {
        const other = oneofSetBy.get(oneof.name);
        if (other !== undefined) {
          this.issue(p, `only one of '${other}' and '${key}' may be set (oneof ${oneof.name})`);
          continue;
        }
        oneofSetBy.set(oneof.name, key);
      }
      const v = this.field(field, value, p);
      if (v !== undefined && !(oneof === null && isImplicitDefault(field, v))) out[field.name] = v;
    }
    return out;
  }

  private field(f: Field, json: unknown, path: string): unknown {
    if (f instanceof protobuf.MapField) {
      if (!isObject(json)) return this.issue(path, `expected an object (map), got ${describe(json)}`);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(json)) {
        const p = `${path}[${JSON.stringify(k)}]`;
        if (f.keyType !== 'string' && this.scalar(f.keyType, k, p) === undefined) continue;
        const value = this.single(f, v, p);
        if (value !== undefined) out[k] = value;
      }
      return out;
    }
    if (f.repeated) {
      if (!Array.isArray(json)) return this.issue(path, `expected a list, got ${describe(json)}`);
      const out: unknown[] = [];
      json.forEach((v, i) => {
        const value = this.single(f, v, `${path}[${i}]`);
        if (value !== undefined) out.push(value);
      });
      return out;
    }
    return this.single(f, json, path);
  }

  private single(f: Field, json: unknown, path: string): unknown {
    const t = f.resolvedType;
    if (t instanceof protobuf.Type) return this.message(t, json, path);
    if (t instanceof protobuf.Enum) return this.enumValue(t, json, path);
    return this.scalar(f.type, json, path);
  }

  private enumValue(e: Enum, json: unknown, path: string): number | undefined {
    if (typeof json === 'string' && Object.hasOwn(e.values, json)) return e.values[json];
    if (typeof json === 'number' && Object.hasOwn(e.valuesById, json)) return json;
    return this.issue(path, `${describe(json)} is not a valid ${e.name} (one of ${Object.keys(e.values).join(', ')})`);
  }

  private scalar(type: string, json: unknown, path: string): unknown {
    const range = INT_RANGES[type];
    if (range) return this.integer(type, range, json, path);
    switch (type) {
      case 'string':
        return typeof json === 'string' ? json : this.issue(path, `expected a string, got ${describe(json)}`);
      case 'bool':
        return typeof json === 'boolean' ? json : this.issue(path, `expected true or false, got ${describe(json)}`);
      case 'double':
      case 'float': {
        if (typeof json === 'number') return json;
        const n = typeof json === 'string' && json.trim() !== '' ? Number(json) : NaN;
        if (!Number.isNaN(n) || json === 'NaN') return n;
        return this.issue(path, `expected a number, got ${describe(json)}`);
      }
      default: // bytes
        if (typeof json === 'string' && BASE64.test(json)) return Buffer.from(json, 'base64');
        return this.issue(path, `expected base64 bytes, got ${describe(json)}`);
    }
  }

  /** int64 kinds arrive as numbers or (for values beyond 2^53) decimal strings; both are range-checked. */
  private integer(type: string, [min, max]: readonly [bigint, bigint], json: unknown, path: string): unknown {
    const text = typeof json === 'number' ? (Number.isInteger(json) ? json.toFixed(0) : '') : typeof json === 'string' ? json : '';
    if (!/^-?\d+$/.test(text)) return this.issue(path, `expected an integer, got ${describe(json)}`);
    const n = BigInt(text);
    if (n < min || n > max) return this.issue(path, `${text} is out of range for ${type}`);
    // Beyond 2^53 the decimal string is kept: protobufjs encodes it through Long without losing digits.
    return Number.isSafeInteger(Number(text)) ? Number(text) : text;
  }

  private wellKnown(type: Type, json: unknown, path: string): PlainMessage | undefined {
    const name = type.fullName.slice('.google.protobuf.'.length);
    switch (name) {
      case 'Any':
        return this.any(json, path);
      case 'Duration': {
        const m = typeof json === 'string' ? DURATION.exec(json) : null;
        if (!m) return this.issue(path, `invalid duration ${describe(json)} (expected e.g. "1.5s")`);
        const sign = m[1] ? -1 : 1;
        return dropZeros({ seconds: sign * Number(m[2]), nanos: sign * Number((m[3] ?? '').padEnd(9, '0')) });
      }
      case 'Struct':
        if (!isObject(json)) return this.issue(path, `expected an object, got ${describe(json)}`);
        return { fields: this.mapOf(json, path, (v, p) => this.value(v, p)) };
      case 'ListValue':
        if (!Array.isArray(json)) return this.issue(path, `expected a list, got ${describe(json)}`);
        return { values: json.map((v, i) => this.value(v, `${path}[${i}]`)) };
      case 'Value':
        return this.value(json, path);
      case 'Timestamp':
      case 'FieldMask':
        return this.issue(path, `google.protobuf.${name} values are not supported`);
      default: {
        // google.protobuf.*Value wrappers: the JSON form is the bare scalar.
        const value = this.scalar(type.fields.value!.type, json, path);
        return value === undefined ? undefined : dropZeros({ value });
      }
    }
  }

  private mapOf(json: Record<string, unknown>, path: string, each: (v: unknown, p: string) => unknown): Record<string, unknown> {
    return Object.fromEntries(Object.entries(json).map(([k, v]) => [k, each(v, joinPath(path, k))]));
  }

  private value(json: unknown, path: string): PlainMessage {
    if (json === null) return { null_value: 0 };
    switch (typeof json) {
      case 'number':
        return { number_value: json };
      case 'string':
        return { string_value: json };
      case 'boolean':
        return { bool_value: json };
    }
    if (Array.isArray(json)) return { list_value: { values: json.map((v, i) => this.value(v, `${path}[${i}]`)) } };
    if (isObject(json)) return { struct_value: { fields: this.mapOf(json, path, (v, p) => this.value(v, p)) } };
    this.issue(path, `${describe(json)} is not a JSON value`);
    return {};
  }

  /** {"@type": url, ...fields} (or {"@type", "value"} for the special well-known types) -> {type_url, value: bytes}. */
  private any(json: unknown, path: string): PlainMessage | undefined {
    if (!isObject(json)) return this.issue(path, `expected an object with "@type", got ${describe(json)}`);
    const url = json['@type'];
    const urlPath = joinPath(path, '@type');
    if (typeof url !== 'string') return this.issue(url === undefined ? path : urlPath, `"@type" (a type URL) is required`);
    const type = typeForUrl(url);
    if (!type) return this.issue(urlPath, `unknown type ${JSON.stringify(url)}`);
    let inner: PlainMessage | undefined;
    if (SPECIAL_JSON.has(type.fullName)) {
      for (const k of Object.keys(json)) if (k !== '@type' && k !== 'value') this.issue(joinPath(path, k), 'unknown field');
      inner = this.message(type, json.value, joinPath(path, 'value'));
    } else {
      inner = this.message(type, json, path, '@type');
    }
    return inner && { type_url: url, value: type.encode(inner).finish() };
  }
}

/**
 * Converts proto3 JSON into a message of `type`. Field names may be snake_case or lowerCamelCase; every problem
 * is reported with its path spelled as the user wrote it (`static_resources.clusters[1].lbPolicy: ...`).
 */
export function jsonToMessage(type: Type, json: unknown, path: string, opts: JsonOptions = {}): Result<PlainMessage, FieldIssue> {
  const c = new Converter(opts);
  const msg = c.message(type, json, path);
  return msg && c.issues.length === 0 ? ok(msg) : fail(c.issues);
}
