// Watches the mesh config directory: debounced reloads (istiod's 100 ms quiet / 10 s max), all-or-nothing acceptance.
import { readdirSync, watch, type Dirent, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Clock, Timer } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import type { ConfigMetrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/logger.js';
import type { MeshResult } from './mesh/loader.js';
import { formatMeshIssue, type MeshConfig } from './mesh/types.js';

export type MeshLoad = MeshResult;

export interface ConfigWatchOptions {
  readonly dir: string;
  /** Reads and validates the whole directory (the mesh loader). */
  readonly load: () => Promise<MeshLoad>;
  /** Called with every accepted config, in order; the snapshot source publishes it. */
  readonly onConfig: (config: MeshConfig) => void;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: ConfigMetrics;
  /**
   * istiod's PILOT_DEBOUNCE_AFTER (100 ms): a reload waits until the directory has been quiet this long, so
   * an editor's save or a `kubectl cp` of ten files is one push, not ten.
   */
  readonly debounceMs?: number;
  /** istiod's PILOT_DEBOUNCE_MAX (10 s): a directory that never goes quiet is still reloaded this often. */
  readonly debounceMaxMs?: number;
}

/** What `outrigger status` shows about the config: what serves, and why the last change did not. */
export interface ConfigStatus {
  readonly dir: string;
  /** Increments with every accepted change; 1 is the config the server started with. */
  readonly generation: number;
  readonly accepted_at: string;
  readonly resources: { readonly ServiceEntry: number; readonly WorkloadEntry: number; readonly VirtualService: number; readonly DestinationRule: number };
  /** Set while the newest change on disk is rejected: the previous config keeps serving. */
  readonly rejected?: { readonly at: string; readonly issues: readonly string[] };
}

export class ConfigWatcher {
  /** One watcher per directory the loader reads: the root and its subdirectories (see watchTree). */
  private readonly dirWatchers = new Map<string, FSWatcher>();
  private quietTimer: Timer | undefined;
  private maxTimer: Timer | undefined;
  private loading: Promise<void> | undefined;
  /** A change arrived while a load was running: load again when it ends. */
  private again = false;
  private closed = false;
  private current: { config: MeshConfig; at: number } | undefined;
  private generation = 0;
  private rejected: { at: number; issues: readonly string[] } | undefined;
  private readonly debounceMs: number;
  private readonly debounceMaxMs: number;
  private reloadWaiters: (() => void)[] = [];

  constructor(private readonly o: ConfigWatchOptions) {
    this.debounceMs = o.debounceMs ?? 100;
    this.debounceMaxMs = o.debounceMaxMs ?? 10_000;
  }

  /**
   * The first load. An invalid directory at startup is returned (the caller refuses to start, exit 2),
   * because there is no previous config to keep serving.
   */
  async start(): Promise<MeshLoad> {
    const first = await this.o.load();
    if (!first.ok) return first;
    this.accept(first.config);
    this.watchTree();
    return first;
  }

  /**
   * Watches every directory the loader reads (the root and its subdirectories, dot directories excepted, as
   * the loader skips them), each with its own non-recursive watcher, and stops watching directories that are
   * gone. A directory watch (inotify on Linux) reports every entry created, written, renamed over or removed
   * in it, so an atomic save (a temp file renamed over x.yaml: editors, config tools, and a Kubernetes
   * ConfigMap volume swapping its `..data` symlink in the root) is seen every time. Node 20's
   * `recursive: true` on Linux is emulated with a watch per file, bound to the file's inode, which goes deaf
   * to a file once a rename has replaced it. Rescanned before every reload, so a new subdirectory is watched
   * from then on (what was written into it before is read by that reload).
   */
  private watchTree(): void {
    const seen = new Set<string>();
    const visit = (dir: string): void => {
      seen.add(dir);
      if (!this.dirWatchers.has(dir)) {
        try {
          const w = watch(dir, () => this.changed());
          w.on('error', (e) => this.o.logger.error({ dir, err: errorMessage(e) }, 'mesh config watch failed; changes in this directory are no longer picked up'));
          this.dirWatchers.set(dir, w);
        } catch (e) {
          this.o.logger.error({ dir, err: errorMessage(e) }, 'cannot watch a mesh config directory; changes in it are not picked up');
        }
      }
      let entries: Dirent[] = [];
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        // Gone or unreadable: the reload reports it (the loader names the directory).
      }
      for (const e of entries) if (e.isDirectory() && !e.name.startsWith('.')) visit(path.join(dir, e.name));
    };
    visit(this.o.dir);
    for (const [dir, w] of this.dirWatchers) {
      if (seen.has(dir)) continue;
      w.close();
      this.dirWatchers.delete(dir);
    }
  }

  /** A change on disk: (re)arm the quiet timer, and the max timer if this starts a burst. */
  changed(): void {
    if (this.closed) return;
    if (this.quietTimer) this.o.clock.clearTimeout(this.quietTimer);
    this.quietTimer = this.o.clock.setTimeout(() => this.fire(), this.debounceMs);
    this.maxTimer ??= this.o.clock.setTimeout(() => this.fire(), this.debounceMaxMs);
  }

  private fire(): void {
    if (this.quietTimer) this.o.clock.clearTimeout(this.quietTimer);
    if (this.maxTimer) this.o.clock.clearTimeout(this.maxTimer);
    this.quietTimer = this.maxTimer = undefined;
    this.watchTree();
    if (this.loading) {
      this.again = true;
      return;
    }
    this.loading = this.reload().finally(() => {
      this.loading = undefined;
      if (this.again && !this.closed) {
        this.again = false;
        this.fire();
      }
    });
  }

  /** Resolves when no reload is running or scheduled (tests, and a clean shutdown). */
  async settled(): Promise<void> {
    while (this.loading) await this.loading;
  }

  /** Resolves after the next reload finished, accepted or rejected (tests, and the demo's scripted change). */
  nextReload(): Promise<void> {
    return new Promise((r) => this.reloadWaiters.push(r));
  }

  private async reload(): Promise<void> {
    try {
      await this.reloadOnce();
    } finally {
      for (const w of this.reloadWaiters.splice(0)) w();
    }
  }

  private async reloadOnce(): Promise<void> {
    let r: MeshLoad;
    try {
      r = await this.o.load();
    } catch (e) {
      r = { ok: false, issues: [{ file: this.o.dir, path: '', message: `cannot load: ${errorMessage(e)}` }] };
    }
    if (this.closed) return;
    if (r.ok) {
      this.accept(r.config);
      return;
    }
    const issues = r.issues.map(formatMeshIssue);
    this.rejected = { at: this.o.clock.now(), issues };
    this.o.metrics.reloads.inc({ result: 'rejected' });
    this.o.metrics.lastReloadSuccessful.set(0);
    this.o.metrics.issues.set(issues.length);
    this.o.logger.error({ dir: this.o.dir, issues, serving_generation: this.generation }, 'mesh config change rejected; the previous config keeps serving');
  }

  private accept(config: MeshConfig): void {
    this.current = { config, at: this.o.clock.now() };
    this.generation++;
    this.rejected = undefined;
    this.o.metrics.reloads.inc({ result: 'ok' });
    this.o.metrics.lastReloadSuccessful.set(1);
    this.o.metrics.lastReloadTimestamp.set(Math.floor(this.current.at / 1000));
    this.o.metrics.issues.set(0);
    this.o.logger.info({ dir: this.o.dir, generation: this.generation, ...counts(config) }, 'mesh config accepted');
    this.o.onConfig(config);
  }

  status(): ConfigStatus {
    const c = this.current;
    return {
      dir: this.o.dir,
      generation: this.generation,
      accepted_at: c ? new Date(c.at).toISOString() : '',
      resources: c ? counts(c.config) : { ServiceEntry: 0, WorkloadEntry: 0, VirtualService: 0, DestinationRule: 0 },
      ...(this.rejected && { rejected: { at: new Date(this.rejected.at).toISOString(), issues: this.rejected.issues } }),
    };
  }

  close(): void {
    this.closed = true;
    for (const w of this.dirWatchers.values()) w.close();
    this.dirWatchers.clear();
    if (this.quietTimer) this.o.clock.clearTimeout(this.quietTimer);
    if (this.maxTimer) this.o.clock.clearTimeout(this.maxTimer);
  }
}

function counts(c: MeshConfig) {
  return { ServiceEntry: c.serviceEntries.length, WorkloadEntry: c.workloadEntries.length, VirtualService: c.virtualServices.length, DestinationRule: c.destinationRules.length };
}
