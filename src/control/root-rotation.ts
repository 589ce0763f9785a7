// Root rotation without downtime: add the new root, wait until every sidecar trusts it, switch issuance, wait for renewals, drop the old root.
import type { Clock, Timer } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import type { CaMetrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/logger.js';
import type { CaAuthority } from './ca-authority.js';
import type { Watcher } from './ca-service.js';

/** The five steps of issue 3, by the state each one reaches. */
export const ROTATION_PHASES = ['idle', 'bundle_added', 'bundle_distributed', 'issuer_switched', 'renewed', 'old_root_removed'] as const;
export type RotationPhase = (typeof ROTATION_PHASES)[number];

export interface RotationStatus {
  readonly state: 'idle' | 'running' | 'done' | 'failed';
  readonly phase: RotationPhase;
  /** When each phase was reached, ISO time. */
  readonly reached: Partial<Record<RotationPhase, string>>;
  /** What the current wait is for, and who has not caught up yet. */
  readonly waiting?: { readonly for: string; readonly sidecars: number; readonly caughtUp: number; readonly behind: readonly { spiffeId: string; instance: string }[] };
  readonly error?: string;
}

export interface RotationOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: CaMetrics;
  /** How long one wait (distribution, renewal) may take before the rotation stops, safely, where it is. */
  readonly stepTimeoutMs: number;
  /**
   * After the control server starts, how long before "every connected sidecar" means every sidecar: the
   * ones that were connected before a restart need this long to reconnect (their watch backoff tops out
   * at 30 s). Default 30 s.
   */
  readonly reconnectGraceMs?: number;
}

export class RootRotation {
  private state: RotationStatus['state'] = 'idle';
  private phase: RotationPhase = 'idle';
  private reached: Partial<Record<RotationPhase, string>> = {};
  private waitingFor: { what: string; test: (w: Watcher) => boolean } | undefined;
  private error: string | undefined;
  private running: Promise<void> | undefined;
  private readonly startedAt: number;
  private source: string | undefined;

  constructor(
    private readonly authority: CaAuthority,
    private readonly watchers: () => Iterable<Watcher>,
    private readonly o: RotationOptions,
  ) {
    this.startedAt = o.clock.now();
    // A restart in the middle of a rotation shows where the files say it stands.
    const stored = authority.storedPhase;
    if (stored !== 'idle') this.enter(stored);
    else this.observe();
  }

  status(): RotationStatus {
    const w = this.waitingFor;
    let waiting: RotationStatus['waiting'];
    if (w) {
      const all = [...this.watchers()];
      const behind = all.filter((x) => !w.test(x)).map((x) => ({ spiffeId: x.spiffeId, instance: x.instance }));
      waiting = { for: w.what, sidecars: all.length, caughtUp: all.length - behind.length, behind };
    }
    return { state: this.state, phase: this.phase, reached: { ...this.reached }, ...(waiting && { waiting }), ...(this.error && { error: this.error }) };
  }

  /** Why a request for a rotation from `source` cannot join the one running, if it cannot. */
  conflict(source: string | undefined): string | undefined {
    if (!this.running || source === undefined || source === this.source) return undefined;
    return `a root rotation is already running${this.source ? ` with --new-ca ${this.source}` : ' with a new self-signed root'}; wait for it (outrigger status) before starting another`;
  }

  /**
   * Runs the rotation to the end (or resumes one the CA directory shows half done). Resolves when the old
   * root is gone; rejects, leaving the mesh working in the phase reached, when a wait times out.
   */
  start(source?: string): Promise<void> {
    const conflict = this.conflict(source);
    if (conflict) return Promise.reject(new Error(conflict));
    if (this.running) return this.running;
    this.source = source;
    this.state = 'running';
    this.error = undefined;
    this.running = this.run(source).then(
      () => {
        this.state = 'done';
        this.running = undefined;
      },
      (e) => {
        this.state = 'failed';
        this.error = errorMessage(e);
        this.waitingFor = undefined;
        this.running = undefined;
        this.o.logger.error({ phase: this.phase, error: this.error }, 'root rotation stopped; the mesh keeps working in this phase, run rotate-root again to resume');
        throw e;
      },
    );
    return this.running;
  }

  private async run(source: string | undefined): Promise<void> {
    const a = this.authority;
    const hasBundle = (w: Watcher) => w.bundleVersion === a.bundleVersion;
    if (a.storedPhase === 'idle') {
      this.reached = {};
      await a.addIncoming(source);
      this.enter('bundle_added');
    }
    if (a.storedPhase === 'bundle_added') {
      await this.waitFor('every sidecar to trust the new root', hasBundle);
      this.enter('bundle_distributed');
      await a.switchIssuer();
      this.enter('issuer_switched');
    }
    await this.waitFor('every sidecar to renew from the new CA', (w) => hasBundle(w) && w.issuerFingerprint === a.issuerFingerprint);
    this.enter('renewed');
    await a.removeOldRoots();
    await this.waitFor('every sidecar to drop the old root', hasBundle);
    this.enter('old_root_removed');
  }

  private enter(p: RotationPhase): void {
    this.phase = p;
    this.reached[p] = new Date(this.o.clock.now()).toISOString();
    this.o.logger.info({ phase: p }, 'root rotation phase reached');
    this.observe();
  }

  private observe(): void {
    for (const p of ROTATION_PHASES) this.o.metrics.rotationPhase.set({ phase: p }, p === this.phase ? 1 : 0);
  }

  /** Resolves once every connected sidecar passes `test`; re-checked on every ack and disconnect. */
  private waitFor(what: string, test: (w: Watcher) => boolean): Promise<void> {
    this.waitingFor = { what, test };
    return new Promise<void>((resolve, reject) => {
      let timer: Timer | undefined;
      let graceTimer: Timer | undefined;
      const check = () => {
        const graceLeft = this.startedAt + (this.o.reconnectGraceMs ?? 30_000) - this.o.clock.now();
        if (graceLeft > 0) {
          graceTimer ??= this.o.clock.setTimeout(check, graceLeft);
          return;
        }
        for (const w of this.watchers()) if (!test(w)) return;
        finish();
        resolve();
      };
      const finish = () => {
        this.authority.off('progress', check);
        this.authority.off('change', check);
        if (timer) this.o.clock.clearTimeout(timer);
        if (graceTimer) this.o.clock.clearTimeout(graceTimer);
        this.waitingFor = undefined;
      };
      timer = this.o.clock.setTimeout(() => {
        const s = this.status().waiting;
        finish();
        reject(new Error(`timed out waiting for ${what}: ${s ? `${s.caughtUp}/${s.sidecars} caught up; behind: ${s.behind.map((b) => b.spiffeId).join(', ')}` : ''}`));
      }, this.o.stepTimeoutMs);
      timer.unref();
      this.authority.on('progress', check);
      this.authority.on('change', check);
      check();
    });
  }
}
