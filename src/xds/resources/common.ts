// Shared pieces of the resource decoders: issue collection, the "every set field is handled" rule, core v3 types.
import { isIP } from 'node:net';
import { durationMsgToMs, type DurationMsg } from '../../core/duration.js';
import type { FieldIssue } from '../../core/errors.js';
import { fail, ok, type Result } from '../../core/result.js';
import { HTTP2_DEFAULTS, type DataSource, type Http2Options, type Locality, type SocketAddress } from '../../model/types.js';
import { unpackAs, type ProtoObj } from '../canonical.js';
import { joinPath } from '../json.js';

export { joinPath };

/** Collects every issue of one decoder run; sub-decoder results are merged with take(). */
export class Issues {
  readonly list: FieldIssue[] = [];

  add(path: string, message: string): void {
    this.list.push({ path, message });
  }

  /** A sub-decoder's value, or undefined after recording its issues. */
  take<T>(r: Result<T, FieldIssue>): T | undefined {
    if (r.ok) return r.value;
    this.list.push(...r.errors);
    return undefined;
  }

  /** Every issue, or the deep-frozen model value; `build` runs only when nothing went wrong. */
  result<T>(build: () => T): Result<T, FieldIssue> {
    return this.list.length > 0 ? fail(this.list) : ok(deepFreeze(build()));
  }
}

/**
 * The supported subset, enforced: any field present in `o` that the decoder does not list is an error, so a
 * setting we would not honour is never silently dropped.
 */
export function onlyFields(o: ProtoObj, path: string, handled: readonly string[], issues: Issues, why: Readonly<Record<string, string>> = {}): boolean {
  const extra = Object.keys(o).filter((k) => !handled.includes(k));
  // `why`: a decoder's own reason for a field it knows and refuses (e.g. RBAC's CEL `condition`).
  for (const k of extra) issues.add(joinPath(path, k), (Object.hasOwn(why, k) ? why[k] : undefined) ?? `field '${k}' is not supported`);
  return extra.length === 0;
}

/**
 * A required field or oneof: `<path>.a: is required` or `<path>: one of a, b is required`. Skipped when
 * `clean` is false, i.e. an unsupported alternative was set and has already been reported.
 */
export function requireOne(o: ProtoObj, path: string, members: readonly string[], clean: boolean, issues: Issues): void {
  if (!clean || members.some((k) => o[k] !== undefined)) return;
  if (members.length === 1) issues.add(joinPath(path, members[0]!), 'is required');
  else issues.add(path, `one of ${members.join(', ')} is required`);
}

export function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

// Typed reads of the canonical shape (see canonical.ts): absent fields read as their proto3 default.
export const str = (o: ProtoObj, k: string): string => (typeof o[k] === 'string' ? (o[k] as string) : '');
export const num = (o: ProtoObj, k: string): number => (typeof o[k] === 'number' ? (o[k] as number) : 0);
export const bool = (o: ProtoObj, k: string): boolean => o[k] === true;
export const msg = (o: ProtoObj, k: string): ProtoObj | undefined => o[k] as ProtoObj | undefined;
export const list = (o: ProtoObj, k: string): readonly ProtoObj[] => (o[k] as ProtoObj[] | undefined) ?? [];
export const strings = (o: ProtoObj, k: string): readonly string[] => (o[k] as string[] | undefined) ?? [];
/** A google.protobuf.*Value wrapper: undefined when unset, else its value (an empty wrapper holds the default). */
export const u32Value = (o: ProtoObj, k: string): number | undefined => (o[k] === undefined ? undefined : num(o[k] as ProtoObj, 'value'));
export const boolValue = (o: ProtoObj, k: string): boolean | undefined => (o[k] === undefined ? undefined : bool(o[k] as ProtoObj, 'value'));

/** A google.protobuf.Duration field in ms; undefined when unset. None of the fields we accept may be negative. */
export function durationMs(o: ProtoObj, k: string, path: string, issues: Issues): number | undefined {
  const d = o[k] as DurationMsg | undefined;
  if (d === undefined) return undefined;
  const ms = durationMsgToMs(d);
  if (ms < 0) issues.add(joinPath(path, k), 'must not be negative');
  return ms;
}

/** An enum field restricted to the values we implement; anything else set is `<VALUE> is not supported`. */
export function enumOf<T extends string>(o: ProtoObj, k: string, path: string, allowed: readonly T[], dflt: T, issues: Issues): T {
  const v = o[k];
  if (v === undefined) return dflt;
  if ((allowed as readonly unknown[]).includes(v)) return v as T;
  issues.add(joinPath(path, k), `${String(v)} is not supported`);
  return dflt;
}

/** A required string (Envoy's `min_len: 1`). */
export function required(o: ProtoObj, k: string, path: string, issues: Issues): string {
  const v = str(o, k);
  if (v === '') issues.add(joinPath(path, k), 'is required');
  return v;
}

/** envoy.config.core.v3.Address with a socket_address; the address must be an IP (no DNS for STATIC). */
export function socketAddress(a: ProtoObj | undefined, path: string, issues: Issues, o: { portZeroOk: boolean }): SocketAddress {
  if (a === undefined) {
    issues.add(path, 'is required');
    return { host: '', port: 0 };
  }
  requireOne(a, path, ['socket_address'], onlyFields(a, path, ['socket_address'], issues), issues);
  const sa = msg(a, 'socket_address');
  const p = joinPath(path, 'socket_address');
  if (sa === undefined) return { host: '', port: 0 };
  onlyFields(sa, p, ['address', 'port_value', 'protocol'], issues);
  enumOf(sa, 'protocol', p, ['TCP'], 'TCP', issues);
  const host = str(sa, 'address');
  if (isIP(host) === 0) issues.add(joinPath(p, 'address'), `${JSON.stringify(host)} is not an IP address`);
  const port = num(sa, 'port_value');
  if (port > 65535) issues.add(joinPath(p, 'port_value'), `port ${port} out of range`);
  else if (port === 0 && !o.portZeroOk) issues.add(joinPath(p, 'port_value'), 'a port is required');
  return { host, port };
}

/** envoy.config.core.v3.Locality */
export function locality(l: ProtoObj, path: string, issues: Issues): Locality {
  onlyFields(l, path, ['region', 'zone', 'sub_zone'], issues);
  return { region: str(l, 'region'), zone: str(l, 'zone'), subZone: str(l, 'sub_zone') };
}

/** envoy.config.core.v3.DataSource: a file (already absolute for a bootstrap) or an inline string. */
export function dataSource(d: ProtoObj | undefined, path: string, issues: Issues): DataSource {
  if (d === undefined) {
    issues.add(path, 'is required');
    return { kind: 'inline', value: '' };
  }
  requireOne(d, path, ['filename', 'inline_string'], onlyFields(d, path, ['filename', 'inline_string'], issues), issues);
  if (typeof d.filename === 'string') return { kind: 'file', path: d.filename };
  return { kind: 'inline', value: str(d, 'inline_string') };
}

/** Envoy's bounds for the HTTP/2 SETTINGS we honour (Http2ProtocolOptions validate rules). */
const H2_LIMITS: Record<string, readonly [number, number]> = {
  max_concurrent_streams: [1, 2147483647],
  initial_stream_window_size: [65535, 2147483647],
  initial_connection_window_size: [65535, 2147483647],
};

/** envoy.config.core.v3.Http2ProtocolOptions; unset knobs take HTTP2_DEFAULTS (see model/types.ts for why). */
export function http2Options(h: ProtoObj | undefined, path: string, issues: Issues): Http2Options {
  if (h === undefined) return HTTP2_DEFAULTS;
  onlyFields(h, path, Object.keys(H2_LIMITS), issues);
  const get = (k: string): number | undefined => {
    const v = u32Value(h, k);
    const [min, max] = H2_LIMITS[k]!;
    if (v !== undefined && (v < min || v > max)) issues.add(joinPath(path, k), `${v} is outside [${min}, ${max}]`);
    return v;
  };
  return {
    maxConcurrentStreams: get('max_concurrent_streams') ?? HTTP2_DEFAULTS.maxConcurrentStreams,
    initialStreamWindowSize: get('initial_stream_window_size') ?? HTTP2_DEFAULTS.initialStreamWindowSize,
    initialConnectionWindowSize: get('initial_connection_window_size') ?? HTTP2_DEFAULTS.initialConnectionWindowSize,
  };
}

/** Envoy's default for HttpProtocolOptions.idle_timeout (downstream and upstream connections): 1 h. */
export const DEFAULT_IDLE_TIMEOUT_MS = 3_600_000;

/** envoy.config.core.v3.HttpProtocolOptions: only idle_timeout (0 disables it, as in Envoy). */
export function idleTimeoutMs(common: ProtoObj | undefined, path: string, issues: Issues): number {
  if (common === undefined) return DEFAULT_IDLE_TIMEOUT_MS;
  onlyFields(common, path, ['idle_timeout'], issues);
  return durationMs(common, 'idle_timeout', path, issues) ?? DEFAULT_IDLE_TIMEOUT_MS;
}

/** google.protobuf.Struct (canonical shape) -> plain JSON-like data. */
export function structToPlain(s: ProtoObj): Record<string, unknown> {
  const fields = (s.fields as Record<string, ProtoObj> | undefined) ?? {};
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, valueToPlain(v)]));
}

function valueToPlain(v: ProtoObj): unknown {
  if (v.struct_value !== undefined) return structToPlain(v.struct_value as ProtoObj);
  if (v.list_value !== undefined) return list(v.list_value as ProtoObj, 'values').map(valueToPlain);
  return v.number_value ?? v.string_value ?? v.bool_value ?? null;
}

/**
 * Envoy's TypedExtensionConfig shape (`name` + `typed_config`), as network filters and transport sockets
 * carry it. The extension is recognised by its typed_config type URL, as Envoy does; the name is free text.
 */
export function decodeTypedExtension<T>(
  o: ProtoObj,
  path: string,
  typeUrl: string,
  decode: (config: ProtoObj, path: string) => Result<T, FieldIssue>,
): Result<T, FieldIssue> {
  const issues = new Issues();
  const clean = onlyFields(o, path, ['name', 'typed_config'], issues);
  required(o, 'name', path, issues);
  requireOne(o, path, ['typed_config'], clean, issues);
  const any = msg(o, 'typed_config');
  const p = joinPath(path, 'typed_config');
  const config = any && issues.take(unpackAs(any, p, typeUrl));
  const value = config && issues.take(decode(config, p));
  return issues.result(() => value!);
}

/** ConfigSource.initial_fetch_timeout default (Envoy docs: 15 s); the xDS protocol doc recommends the same. */
export const DEFAULT_INITIAL_FETCH_TIMEOUT_MS = 15_000;

/**
 * envoy.config.core.v3.ConfigSource restricted to `ads: {}`, the one source this sidecar speaks (Istio's
 * shape: `{ads: {}, initial_fetch_timeout, resource_api_version: V3}`). Returns initial_fetch_timeout in ms.
 */
export function adsConfigSource(o: ProtoObj | undefined, path: string, issues: Issues): number {
  if (o === undefined) return DEFAULT_INITIAL_FETCH_TIMEOUT_MS;
  const clean = onlyFields(o, path, ['ads', 'resource_api_version', 'initial_fetch_timeout'], issues);
  requireOne(o, path, ['ads'], clean, issues);
  const ads = msg(o, 'ads');
  // AggregatedConfigSource has no fields; anything set is from a newer proto we do not know.
  if (ads) onlyFields(ads, joinPath(path, 'ads'), [], issues);
  enumOf(o, 'resource_api_version', path, ['V3'], 'V3', issues);
  return durationMs(o, 'initial_fetch_timeout', path, issues) ?? DEFAULT_INITIAL_FETCH_TIMEOUT_MS;
}
