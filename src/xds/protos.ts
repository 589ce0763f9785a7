// Loads Envoy's v3 protos in place from @grpc/grpc-js-xds's deps/ (never copied), once, and only what we decode.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';
import type { INamespace, Root, Type } from 'protobufjs';

export const LISTENER_TYPE_URL = 'type.googleapis.com/envoy.config.listener.v3.Listener';
export const ROUTE_CONFIGURATION_TYPE_URL = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';
export const CLUSTER_TYPE_URL = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
export const CLUSTER_LOAD_ASSIGNMENT_TYPE_URL = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
export const SECRET_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';

/** bootstrap.proto imports every resource type; the rest are the typed_config payloads we decode. */
const ENTRY_FILES = [
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
];

const require = createRequire(import.meta.url);
const pkgDir = (name: string) => path.dirname(require.resolve(`${name}/package.json`));
const DEPS = path.join(pkgDir('@grpc/grpc-js-xds'), 'deps');
/** protobufjs bundles any/duration/struct/wrappers, but not descriptor.proto (imported by the annotations). */
const INCLUDE_DIRS = [
  ...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(DEPS, d)),
  pkgDir('protobufjs'),
];

let root: Root | undefined;
const loadedFiles = new Set<string>();
const scannedDirs = new Set<string>();

function readInclude(file: string): string | undefined {
  for (const dir of INCLUDE_DIRS) {
    try {
      return readFileSync(path.join(dir, file), 'utf8');
    } catch {
      // not in this include dir; try the next
    }
  }
  return undefined;
}

const snakeCase = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * protobufjs bundles the well-known types as JSON with camelCase field names (Value.nullValue), while every
 * other file is parsed with keepCase. Renaming them back to the .proto names keeps one naming rule for all.
 */
function protoFieldNames(json: INamespace): INamespace {
  const walk = (v: unknown, key: string): unknown => {
    if (Array.isArray(v)) return key === 'oneof' ? v.map((n: string) => snakeCase(n)) : v;
    if (typeof v !== 'object' || v === null) return v;
    const entries = Object.entries(v).map(([k, x]) => [key === 'fields' ? snakeCase(k) : k, key === 'fields' ? x : walk(x, k)]);
    return Object.fromEntries(entries);
  };
  return walk(json, '') as INamespace;
}

/**
 * Parses one file and its imports into the root. Unlike Root.loadSync this skips resolveAll(), which
 * would resolve and build a constructor for each of the ~460 message types bootstrap.proto pulls in
 * (measured: ~100 ms on top of ~150 ms of parsing); protobufjs resolves a type lazily the first time it
 * encodes or decodes one, and the JSON converter resolves the fields it meets.
 */
function loadFile(r: Root, file: string): void {
  if (loadedFiles.has(file)) return;
  loadedFiles.add(file);
  const bundled = protobuf.common.get(file);
  if (bundled) {
    r.addJSON(protoFieldNames(bundled).nested ?? {});
    return;
  }
  const source = readInclude(file);
  if (source === undefined) throw new Error(`proto file ${file} not found under ${INCLUDE_DIRS.join(', ')}`);
  const parsed = protobuf.parse(source, r, { keepCase: true });
  for (const dep of [...(parsed.imports ?? []), ...(parsed.weakImports ?? [])]) loadFile(r, dep);
}

/** The shared Root (field names as in the .proto files, i.e. snake_case). Loaded on first use. */
export function getRoot(): Root {
  if (!root) {
    const r = new protobuf.Root();
    for (const f of ENTRY_FILES) loadFile(r, f);
    root = r;
  }
  return root;
}

/**
 * Loads every .proto in the package directory of `fullName` (envoy.extensions.filters.http.fault.v3.HTTPFault
 * -> envoy/extensions/filters/http/fault/v3/), so a typed_config of a type we do not preload can still be
 * parsed, and then named precisely as unsupported.
 */
function loadPackageOf(r: Root, fullName: string): void {
  const parts = fullName.replace(/^\./, '').split('.');
  const pkg = parts.slice(0, parts.findIndex((p) => /^[A-Z]/.test(p)));
  // Only plain package names become directories: a user-written @type never reaches outside the includes.
  if (pkg.length === 0 || !pkg.every((p) => /^[a-z_][a-z0-9_]*$/.test(p))) return;
  const dir = pkg.join('/');
  if (scannedDirs.has(dir)) return;
  scannedDirs.add(dir);
  for (const inc of INCLUDE_DIRS) {
    let files: string[];
    try {
      files = readdirSync(path.join(inc, dir));
    } catch {
      continue;
    }
    for (const f of files) if (f.endsWith('.proto')) loadFile(r, `${dir}/${f}`);
  }
}

function find(r: Root, fullName: string): Type | undefined {
  const t = r.lookup(fullName.replace(/^\.?/, '.'));
  return t instanceof protobuf.Type ? t : undefined;
}

/** A message type by full name (with or without the leading dot), or undefined if Envoy's protos lack it. */
export function lookupType(fullName: string): Type | undefined {
  const r = getRoot();
  const t = find(r, fullName);
  if (t) return t;
  loadPackageOf(r, fullName);
  return find(r, fullName);
}

/** google.protobuf.Any type_url -> message type: the full name is everything after the last '/'. */
export function typeForUrl(typeUrl: string): Type | undefined {
  const slash = typeUrl.lastIndexOf('/');
  return slash < 0 ? undefined : lookupType(typeUrl.slice(slash + 1));
}

export function typeUrlOf(t: Type): string {
  return `type.googleapis.com/${t.fullName.slice(1)}`;
}
