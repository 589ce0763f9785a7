// DiscoveryResponse bodies encoded once per (resources, version, selection) and shared by every stream that is sent them.
import { encodeResponseBody } from './protocol.js';

/** What one stream is subscribed to for one type (see TypeState in stream.ts). */
export interface Selection {
  readonly wildcard: boolean;
  readonly names: ReadonlySet<string>;
}

/** Bodies kept per resources map and version; named selections vary per proxy, so this is bounded. */
const MAX_PER_MAP = 256;

export class ResponseCache {
  // Keyed by the snapshot's own map: the source caches snapshots per proxy kind, so 2,000 sidecars of a few
  // kinds share a few maps, and a map (with its bodies) is collected once no snapshot holds it.
  private readonly bodies = new WeakMap<ReadonlyMap<string, Uint8Array>, Map<string, Buffer>>();

  /**
   * The body for a selection. SotW: a wildcard gets every resource; a named subscription gets the names
   * that exist, and a name that does not exist is simply absent (xDS protocol, "Knowing When a Requested
   * Resource Does Not Exist"). A wildcard plus names is still every resource, as names are a subset.
   */
  body(typeUrl: string, resources: ReadonlyMap<string, Uint8Array>, version: string, sel: Selection): Buffer {
    const names = sel.wildcard ? undefined : [...sel.names].filter((n) => resources.has(n)).sort();
    const key = JSON.stringify(names === undefined ? [version] : [version, names]);
    let perMap = this.bodies.get(resources);
    if (!perMap) {
      perMap = new Map();
      this.bodies.set(resources, perMap);
    }
    let body = perMap.get(key);
    if (!body) {
      const selected = names ?? [...resources.keys()];
      body = encodeResponseBody(typeUrl, version, selected.map((n) => ({ type_url: typeUrl, value: resources.get(n)! })));
      if (perMap.size >= MAX_PER_MAP) perMap.delete(perMap.keys().next().value!);
      perMap.set(key, body);
    }
    return body;
  }
}
