// Earliest-deadline-first scheduler (Envoy's EdfScheduler): smooth, deterministic weighted round robin in
// O(log n) per pick, on typed arrays so a pick allocates nothing.

/**
 * Each entry i with weight w_i is due at deadline d_i; a pick takes the earliest (ties by insertion order),
 * moves the scheduler's time to that deadline and re-queues the entry at time + 1 / w, where w is asked
 * again at that moment (LEAST_REQUEST's weight depends on the host's active requests). Over any window an
 * entry's share of picks is within one pick of w_i / Σw. Entries with weight 0 are never queued.
 */
export class EdfScheduler {
  private readonly deadline: Float64Array;
  private readonly order: Float64Array;
  private readonly entry: Int32Array;
  private size = 0;
  private now = 0;
  private seq = 0;

  /** weightOf(i) for i in [0, count): the weight an entry is queued with, each time it is queued. */
  constructor(count: number, private readonly weightOf: (i: number) => number) {
    this.deadline = new Float64Array(count);
    this.order = new Float64Array(count);
    this.entry = new Int32Array(count);
    for (let i = 0; i < count; i++) this.push(i);
  }

  /** True when no entry has a positive weight. */
  get empty(): boolean {
    return this.size === 0;
  }

  /** The index of the next entry by deadline; re-queues it. Precondition: !empty. */
  pick(): number {
    const i = this.entry[0]!;
    this.now = this.deadline[0]!;
    this.size--;
    if (this.size > 0) {
      this.move(this.size, 0);
      this.down(0);
    }
    this.push(i);
    return i;
  }

  private push(i: number): void {
    const w = this.weightOf(i);
    if (!(w > 0)) return;
    const at = this.size++;
    this.deadline[at] = this.now + 1 / w;
    this.order[at] = this.seq++;
    this.entry[at] = i;
    this.up(at);
  }

  private less(a: number, b: number): boolean {
    const da = this.deadline[a]!;
    const db = this.deadline[b]!;
    return da < db || (da === db && this.order[a]! < this.order[b]!);
  }

  private move(from: number, to: number): void {
    this.deadline[to] = this.deadline[from]!;
    this.order[to] = this.order[from]!;
    this.entry[to] = this.entry[from]!;
  }

  private swap(a: number, b: number): void {
    const d = this.deadline[a]!;
    const o = this.order[a]!;
    const e = this.entry[a]!;
    this.move(b, a);
    this.deadline[b] = d;
    this.order[b] = o;
    this.entry[b] = e;
  }

  private up(at: number): void {
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!this.less(at, parent)) return;
      this.swap(at, parent);
      at = parent;
    }
  }

  private down(at: number): void {
    for (;;) {
      const l = 2 * at + 1;
      if (l >= this.size) return;
      const r = l + 1;
      const c = r < this.size && this.less(r, l) ? r : l;
      if (!this.less(c, at)) return;
      this.swap(c, at);
      at = c;
    }
  }
}
