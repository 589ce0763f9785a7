// The SnapshotSource the ADS server reads: the current mesh config version, translated per proxy kind on demand.
import type { MeshConfig } from '../mesh/types.js';
import type { NodeSnapshot, ProxyNode, SnapshotSource } from '../snapshot.js';
import { translate, type TranslateOptions } from './index.js';

/** TranslateOptions, with domainSuffix defaulting to the config's own (Istio's cluster.local); call keysChanged() when jwks' keys change. */
export type MeshSnapshotsOptions = Omit<TranslateOptions, 'domainSuffix'> & { readonly domainSuffix?: string };

/**
 * Snapshots per config version, cached by ProxyNode.cacheKey: proxies that would get the same resources share
 * one translation, so a config change costs one translation per kind of proxy, not one per connection. A new
 * config drops the cache (it is rebuilt lazily as proxies ask) and tells the listeners, which re-ask for every
 * connected proxy; versions are content hashes, so proxies the change does not touch get nothing new.
 */
export class MeshSnapshots implements SnapshotSource {
  private mesh: MeshConfig;
  private cache = new Map<string, NodeSnapshot>();
  private readonly listeners = new Set<() => void>();
  private generation = 1;
  private translations = 0;

  constructor(
    private readonly opts: MeshSnapshotsOptions,
    initial: MeshConfig,
  ) {
    this.mesh = initial;
  }

  /** Makes `mesh` the current config and notifies every listener (after the switch, so they read the new one). */
  setConfig(mesh: MeshConfig): void {
    this.mesh = mesh;
    this.generation++;
    this.keysChanged();
  }

  /**
   * The JWKS resolver fetched new keys: same config, new inline keys. The cache goes and every connected proxy
   * is re-asked; only those whose jwt_authn filter names the changed keys get a new listener version.
   */
  keysChanged(): void {
    this.cache = new Map();
    for (const fn of [...this.listeners]) fn();
  }

  snapshotFor(node: ProxyNode): NodeSnapshot {
    let s = this.cache.get(node.cacheKey);
    if (!s) {
      s = translate(this.mesh, node, { ...this.opts, domainSuffix: this.opts.domainSuffix ?? this.mesh.domainSuffix });
      this.translations++;
      this.cache.set(node.cacheKey, s);
    }
    return s;
  }

  onChange(listener: () => void): () => void {
    // A wrapper per subscription, so subscribing one function twice needs two unsubscribes, as callers expect.
    const fn = () => listener();
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }

  /** Config versions seen and translations done so far (for /status and tests of the cache). */
  stats(): { readonly generation: number; readonly translations: number; readonly cached: number } {
    return { generation: this.generation, translations: this.translations, cached: this.cache.size };
  }
}
