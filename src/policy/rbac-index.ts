// A path index over RBAC policies: which policies a request's path leaves in play, so 50 policies cost a few lookups.
import type { Permission } from '../model/rbac.js';

/** A literal the path (without query) must match: exact, prefix or suffix, case-sensitive. */
type PathKey = { readonly kind: 'exact' | 'prefix' | 'suffix'; readonly value: string };

type Node = { readonly kind: string; readonly [k: string]: unknown };

/**
 * A necessary condition on the path for `t` to match: "the path matches one of these keys", or undefined when
 * `t` may match whatever the path (no url_path restriction that a literal key expresses). An AND needs each
 * member, so any member's keys do (the fewest are taken); an OR needs one member, so every member must have keys.
 */
export function pathKeys(t: Node): PathKey[] | undefined {
  switch (t.kind) {
    case 'url_path': {
      const m = t.matcher as { kind: string; value?: string; ignoreCase?: boolean };
      return (m.kind === 'exact' || m.kind === 'prefix' || m.kind === 'suffix') && !m.ignoreCase ? [{ kind: m.kind, value: m.value! }] : undefined;
    }
    case 'or': {
      const all: PathKey[] = [];
      for (const r of t.rules as Node[]) {
        const k = pathKeys(r);
        if (!k) return undefined;
        all.push(...k);
      }
      return all;
    }
    case 'and': {
      let best: PathKey[] | undefined;
      for (const r of t.rules as Node[]) {
        const k = pathKeys(r);
        if (k && (!best || k.length < best.length)) best = k;
      }
      return best;
    }
  }
  return undefined;
}

/** Keys of one kind grouped by length: a path is looked up once per distinct length, never tested per policy. */
class ByLength {
  private readonly byLen = new Map<number, Map<string, number[]>>();

  add(value: string, policy: number): void {
    let m = this.byLen.get(value.length);
    if (!m) this.byLen.set(value.length, (m = new Map()));
    const list = m.get(value);
    if (list) list.push(policy);
    else m.set(value, [policy]);
  }

  mark(path: string, cut: (path: string, len: number) => string, mark: (policies: readonly number[]) => void): void {
    for (const [len, m] of this.byLen) {
      if (len > path.length) continue;
      const hit = m.get(cut(path, len));
      if (hit) mark(hit);
    }
  }
}

/**
 * The policies (by position) a path can match. Policies without path keys are always in play. Marks carry an
 * epoch so the scratch array is never cleared: evaluation is synchronous, so one array serves every request.
 */
export class PathIndex {
  private readonly exact = new Map<string, number[]>();
  private readonly prefix = new ByLength();
  private readonly suffix = new ByLength();
  private readonly marks: Uint32Array;
  private epoch = 0;
  private readonly always: readonly number[];
  /** False when no policy has path keys: the index would only cost time. */
  readonly useful: boolean;

  constructor(permissions: readonly (readonly Permission[])[]) {
    const always: number[] = [];
    permissions.forEach((perms, i) => {
      const keys = pathKeys({ kind: 'or', rules: perms });
      if (!keys) return void always.push(i);
      for (const k of keys) {
        if (k.kind === 'exact') {
          const list = this.exact.get(k.value);
          if (list) list.push(i);
          else this.exact.set(k.value, [i]);
        } else (k.kind === 'prefix' ? this.prefix : this.suffix).add(k.value, i);
      }
    });
    this.always = always;
    this.useful = always.length < permissions.length;
    this.marks = new Uint32Array(permissions.length);
  }

  /** Marks the policies in play for `path`; then inPlay(i) answers for this request. */
  select(path: string): void {
    if (++this.epoch === 0xffffffff) {
      this.marks.fill(0);
      this.epoch = 1;
    }
    const e = this.epoch;
    const marks = this.marks;
    const mark = (list: readonly number[]) => {
      for (let i = 0; i < list.length; i++) marks[list[i]!] = e;
    };
    mark(this.always);
    const hit = this.exact.get(path);
    if (hit) mark(hit);
    this.prefix.mark(path, (p, len) => p.slice(0, len), mark);
    this.suffix.mark(path, (p, len) => p.slice(p.length - len), mark);
  }

  inPlay(i: number): boolean {
    return this.marks[i] === this.epoch;
  }
}
