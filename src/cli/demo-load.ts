// The demo's load driver (a steady rate of requests to the frontends) and what it saw: per-second windows,
// totals, the reviews split per phase of the script, and the live view (a redrawn table, or plain lines).
import http from 'node:http';
import type { AppAnswer } from './demo-apps.js';

/** One answered (or failed) request to a frontend. */
export interface Outcome {
  readonly ok: boolean;
  readonly ms: number;
  /**
   * The script phase (LoadDriver.phase) the request was both sent and answered in, else "transition": only a
   * request answered before a change was routed by the old config for sure, and only one sent after every
   * sidecar had the new config was routed by the new one, however long requests queue on a busy machine.
   */
  readonly phase: string;
  readonly answer?: AppAnswer;
  readonly error?: string;
  /** The frontend it was sent to, and when (the driver's clock): the failover step follows one region's callers. */
  readonly host?: string;
  readonly sentAtMs?: number;
}

export interface Target {
  readonly host: string;
  readonly port: number;
}

export interface LoadDriverOptions {
  readonly targets: readonly Target[];
  /** Requests per second, spread over the targets in turn. */
  readonly rate: number;
  /** Milliseconds, monotonic (performance.now in the CLI). */
  readonly now: () => number;
  readonly onOutcome: (o: Outcome) => void;
  /**
   * Above this many requests in flight a due request is skipped (counted), so a stalled or overloaded mesh is
   * not buried under a growing queue (default: two seconds' worth, at least 64).
   */
  readonly maxInFlight?: number;
}

/** The path the driver asks a frontend for; bookinfo's page. */
const PAGE = '/productpage';
/** How often the driver wakes to send what is due: fine enough for a smooth rate, coarse enough to cost nothing. */
const TICK_MS = 10;

/**
 * Sends `rate` requests per second: every tick, as many as are due since the start, so the rate holds however
 * late timers fire on a busy machine. Plain HTTP to the frontend apps (as an ingress would reach them); from
 * there every hop is sidecar to sidecar over mTLS.
 */
export class LoadDriver {
  /** Tags each request sent from now on: the script's phases ("before", "after" a change). */
  phase = 'start';
  sent = 0;
  skipped = 0;
  private inFlight = 0;
  private next = 0;
  private started = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  private idle: (() => void) | undefined;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  constructor(private readonly o: LoadDriverOptions) {}

  start(): void {
    this.started = this.o.now();
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  private tick(): void {
    const due = Math.floor(((this.o.now() - this.started) / 1000) * this.o.rate);
    const max = this.o.maxInFlight ?? Math.max(64, 2 * this.o.rate);
    while (this.sent + this.skipped < due) {
      if (this.inFlight >= max) this.skipped++;
      else this.send(this.o.targets[this.next++ % this.o.targets.length]!);
    }
  }

  /** One request with optional headers (the walkthrough's `end-user: jason`); resolves with its outcome. */
  request(t: Target, headers: Record<string, string> = {}): Promise<Outcome> {
    const t0 = this.o.now();
    const phase = this.phase;
    return new Promise<Outcome>((resolve) => {
      const done = (o: Omit<Outcome, 'ms' | 'phase'>) => resolve({ ...o, ms: this.o.now() - t0, phase: this.phase === phase ? phase : 'transition', host: t.host, sentAtMs: t0 });
      const req = http.request({ host: t.host, port: t.port, path: PAGE, headers, agent: this.agent, timeout: 15_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          if (res.statusCode !== 200) return done({ ok: false, error: `${t.host}: ${res.statusCode} ${body.slice(0, 400)}` });
          try {
            done({ ok: true, answer: JSON.parse(body) as AppAnswer });
          } catch (e) {
            done({ ok: false, error: `${t.host}: unreadable answer: ${(e as Error).message}` });
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error('no answer within 15 s')));
      req.on('error', (e) => done({ ok: false, error: `${t.host}: ${e.message}` }));
      req.end();
    });
  }

  private send(t: Target): void {
    this.sent++;
    this.inFlight++;
    void this.request(t).then((o) => {
      this.o.onOutcome(o);
      if (--this.inFlight === 0) this.idle?.();
    });
  }

  /** Stops sending; resolves once every request already sent has its answer. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    if (this.inFlight > 0) await new Promise<void>((r) => (this.idle = r));
    this.agent.destroy();
  }
}

/** Answers of the called services (every hop past the frontend), and how many came from another region than their caller's. */
export interface CrossCloud {
  cross: number;
  total: number;
}

/** Counts by key, in first-seen order. */
type Counts = Map<string, number>;
const bump = (m: Counts, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

export interface WindowStats {
  readonly ok: number;
  readonly failed: number;
  readonly p50: number;
  readonly p99: number;
  readonly versions: Counts;
  /** Per service (frontend, reviews, ratings): which region answered, and how often in the caller's own region. */
  readonly regions: ReadonlyMap<string, Counts>;
  readonly sameRegion: ReadonlyMap<string, number>;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * What the driver saw: a window that rolls every second for the live view, totals, the reviews versions per
 * script phase (the canary split before and after a change), the identities the apps saw calling them, and
 * the first failure's cause (worth more than a count when a newcomer asks why).
 */
export class LoadStats {
  ok = 0;
  failed = 0;
  firstFailure: string | undefined;
  readonly versionsByPhase = new Map<string, Counts>();
  /** "caller SPIFFE ID -> service" pairs as the called apps reported them. */
  readonly peers = new Set<string>();
  /** The script's period an answer is counted in, by when it came back ("before" / "during" / "after" a failure). */
  period = 'before';
  /** Cross-cloud hops per period: what crossing clouds costs, before, during and after a locality failure. */
  readonly crossByPeriod = new Map<string, CrossCloud>();
  /** Called with every outcome after it is counted (the failover step watches one region's frontends). */
  readonly observers = new Set<(o: Outcome) => void>();
  private lat: number[] = [];
  private win = LoadStats.emptyWindow();

  private static emptyWindow() {
    return { ok: 0, failed: 0, versions: new Map() as Counts, regions: new Map<string, Counts>(), same: new Map<string, number>() };
  }

  record(o: Outcome): void {
    this.count(o);
    for (const f of this.observers) f(o);
  }

  private count(o: Outcome): void {
    const w = this.win;
    if (!o.ok || !o.answer) {
      this.failed++;
      w.failed++;
      this.firstFailure ??= o.error;
      return;
    }
    const cross = this.crossByPeriod.get(this.period) ?? this.crossByPeriod.set(this.period, { cross: 0, total: 0 }).get(this.period)!;
    this.ok++;
    w.ok++;
    this.lat.push(o.ms);
    const fe = o.answer;
    bump(w.regions.get('frontend') ?? w.regions.set('frontend', new Map()).get('frontend')!, fe.region);
    const walk = (from: AppAnswer) => {
      for (const [svc, a] of Object.entries(from.calls)) {
        bump(w.regions.get(svc) ?? w.regions.set(svc, new Map()).get(svc)!, a.region);
        cross.total++;
        if (a.region === from.region) w.same.set(svc, (w.same.get(svc) ?? 0) + 1);
        else cross.cross++;
        if (a.caller) this.peers.add(`${a.caller} -> ${svc}`);
        walk(a);
      }
    };
    walk(fe);
    const reviews = fe.calls.reviews;
    if (reviews) {
      bump(w.versions, reviews.version);
      bump(this.versionsByPhase.get(o.phase) ?? this.versionsByPhase.set(o.phase, new Map()).get(o.phase)!, reviews.version);
    }
  }

  /** The last window, and a fresh one. */
  roll(): WindowStats {
    const w = this.win;
    const s = this.lat.sort((a, b) => a - b);
    this.win = LoadStats.emptyWindow();
    this.lat = [];
    return { ok: w.ok, failed: w.failed, p50: percentile(s, 50), p99: percentile(s, 99), versions: w.versions, regions: w.regions, sameRegion: w.same };
  }
}

const pct = (n: number, total: number) => (total ? `${((100 * n) / total).toFixed(0)} %` : '-');

/** "12 % (34 of 280)": the share of the called services' answers that came from another cloud than their caller's. */
export function crossText(c: CrossCloud | undefined): string {
  return c?.total ? `${pct(c.cross, c.total)} (${c.cross} of ${c.total})` : '(no answers)';
}

/** The window's cross-cloud share over every called service (a hop's caller in one region, its answer from another). */
function windowCross(h: ViewHeader, w: WindowStats): string {
  let cross = 0;
  let total = 0;
  for (const s of h.services.filter((x) => x !== 'frontend')) {
    const n = [...(w.regions.get(s)?.values() ?? [])].reduce((a, b) => a + b, 0);
    total += n;
    cross += n - (w.sameRegion.get(s) ?? 0);
  }
  return pct(cross, total);
}

/** "v1 90 % v2 10 %" over every version seen, in version order. */
export function splitText(c: ReadonlyMap<string, number> | undefined, withCounts = false): string {
  if (!c || c.size === 0) return '(no answers)';
  const total = [...c.values()].reduce((a, b) => a + b, 0);
  return [...c.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([v, n]) => `${v} ${pct(n, total)}${withCounts ? ` (${n})` : ''}`)
    .join('  ');
}

export interface ViewHeader {
  readonly elapsedS: number;
  readonly sent: number;
  readonly failed: number;
  readonly skipped: number;
  /** Regions in the order to show them (the frontends' order). */
  readonly regions: readonly string[];
  /** Services in the order to show them. */
  readonly services: readonly string[];
  /** All reviews versions there are, so a version that gets nothing shows 0 instead of vanishing. */
  readonly versions: readonly string[];
  /** Once a change has been made: the reviews split before it and after it so far (a last table line). */
  readonly split?: { readonly before: ReadonlyMap<string, number> | undefined; readonly after: ReadonlyMap<string, number> | undefined };
}

/** The live table, one second of traffic; a fixed number of lines so it can be redrawn in place. */
export function renderTable(h: ViewHeader, w: WindowStats): string[] {
  const n = w.ok + w.failed;
  const head = `t=${String(h.elapsedS).padStart(3)}s ${String(n).padStart(5)} req/s  ok ${n ? ((100 * w.ok) / n).toFixed(1) : '-'} %  p50 ${w.p50.toFixed(1)} ms  p99 ${w.p99.toFixed(1)} ms  cross-cloud ${windowCross(h, w)}  sent ${h.sent}  failed ${h.failed}${h.skipped ? `  skipped ${h.skipped} (too many in flight)` : ''}`;
  const vTotal = [...w.versions.values()].reduce((a, b) => a + b, 0);
  const versions = `reviews version  ${h.versions.map((v) => `${v} ${String(w.versions.get(v) ?? 0).padStart(4)} ${pct(w.versions.get(v) ?? 0, vTotal).padStart(5)}`).join('   ')}`;
  const col = Math.max(14, ...h.regions.map((r) => r.length + 2));
  const rows = [`${'answered from'.padEnd(16)}${h.regions.map((r) => r.padStart(col)).join('')}${'same region'.padStart(14)}`];
  for (const s of h.services) {
    const c = w.regions.get(s);
    const total = c ? [...c.values()].reduce((a, b) => a + b, 0) : 0;
    const same = s === 'frontend' ? '' : pct(w.sameRegion.get(s) ?? 0, total);
    rows.push(`${s.padEnd(16)}${h.regions.map((r) => String(c?.get(r) ?? 0).padStart(col)).join('')}${same.padStart(14)}`.trimEnd());
  }
  const split = h.split ? [`canary split     before: ${splitText(h.split.before, true)}   after: ${splitText(h.split.after, true)}`] : [];
  return [head, versions, ...rows, ...split];
}

/** The same second as one plain line, for logs and pipes. */
export function renderLine(h: ViewHeader, w: WindowStats): string {
  const n = w.ok + w.failed;
  const regions = h.services
    .filter((s) => s !== 'frontend')
    .map((s) => {
      const c = w.regions.get(s);
      const total = c ? [...c.values()].reduce((a, b) => a + b, 0) : 0;
      return `${s} ${h.regions.map((r) => `${r} ${c?.get(r) ?? 0}`).join(' ')} (same region ${pct(w.sameRegion.get(s) ?? 0, total)})`;
    });
  return [
    `[t=${h.elapsedS}s] ${n} req/s ok ${n ? ((100 * w.ok) / n).toFixed(1) : '-'}% p50 ${w.p50.toFixed(1)}ms p99 ${w.p99.toFixed(1)}ms cross-cloud ${windowCross(h, w).replace(' ', '')} sent ${h.sent} failed ${h.failed}${h.skipped ? ` skipped ${h.skipped}` : ''}`,
    `reviews ${h.versions.map((v) => `${v} ${w.versions.get(v) ?? 0}`).join(' ')}`,
    ...regions,
  ].join(' | ');
}

/**
 * Where the demo writes: on a terminal, events scroll above a table redrawn in place (ANSI cursor-up and
 * erase-below); otherwise every line is printed as it comes, tables as one plain line per second.
 */
export class View {
  private frame: string[] = [];

  constructor(
    private readonly write: (text: string) => void,
    readonly tty: boolean,
    /** The terminal's width: longer table lines are cut, since a wrapped line would break the redraw. */
    private readonly columns = 0,
  ) {}

  /** A line that stays (setup, walkthrough, the script's events, the summary). */
  event(line: string): void {
    if (!this.tty) return this.write(`${line}\n`);
    this.write(`${this.erase()}${line}\n${this.frame.map((l) => `${l}\n`).join('')}`);
  }

  /** Replaces the live table (TTY) or prints the plain line. */
  show(table: readonly string[], line: string): void {
    if (!this.tty) return this.write(`${line}\n`);
    const erase = this.erase();
    this.frame = table.map((l) => (this.columns > 1 && l.length >= this.columns ? l.slice(0, this.columns - 1) : l));
    this.write(`${erase}${this.frame.map((l) => `${l}\n`).join('')}`);
  }

  /** Leaves the last table on screen, below which normal output continues. */
  end(): void {
    this.frame = [];
  }

  private erase(): string {
    return this.frame.length ? `\x1b[${this.frame.length}A\x1b[J` : '';
  }
}
