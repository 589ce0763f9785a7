// The control server's JWKS resolver (istiod's JwksResolver): fetches each RequestAuthentication jwksUri, keeps the last good keys, refreshes them.
import type { Clock, Timer } from '../core/clock.js';
import { OutriggerError, errorMessage } from '../core/errors.js';
import type { Logger } from '../telemetry/logger.js';
import type { JwksMetrics } from '../telemetry/metrics.js';
import { parseJwks as parseSidecarJwks } from '../xds/http-filters/jwt-authn.js';

/** The keys the translator inlines for a jwksUri: the JWKS JSON text, or undefined while none was ever fetched. */
export type JwksLookup = (jwksUri: string) => string | undefined;

/**
 * What istiod inlines (its FakeJwks) while a jwksUri's keys are not known yet: a valid JWKS whose key nobody can
 * sign with, so every token fails verification (closed) and a request without a token still passes authn, as
 * with real keys. Unlike istiod's, only the public half exists: the private key was discarded when this was
 * generated, so no one can ever mint a token it verifies. Constant, so config versions stay equal across restarts.
 */
export const FAKE_JWKS = JSON.stringify({
  keys: [
    {
      kty: 'RSA',
      kid: 'outrigger-keys-not-fetched-yet',
      alg: 'RS256',
      use: 'sig',
      e: 'AQAB',
      n:
        '2bXHEXoFevGWEm-HwKH57UxXIIwArlw4uYNh3HOo3gNVnug2o0okhX8LRTazXLYPLyDN3vr9CLXpNhqnMCimxDtqM2OTjDbM-f8bgKHiS_rjL_eGj4V1Y56j7_nHUjd7Oxw' +
        'TBalNvnVHl_Ses-3l3aSJDtmdZHDVvQib3GjRKcGVdFYyG4dMOp7ReUXGOAXWWuuxOTqmHfHHsq0RbxSxxm2vIn8Vk2i_8ALeOb4ZM8iBgRVtj0XOZ2wDPIqMI-gCJC1Fr7UDinU' +
        'vTr-BKOziJUcHIbeXM5vztgj8WnvqqDyeRCiYM6Gpd916oN8qywWdi3MedoM0-wryg3ErInmJvQ',
    },
  ],
});

export type ParsedJwks = { readonly ok: true; readonly keyCount: number; readonly kids: readonly string[] } | { readonly ok: false; readonly message: string };

/**
 * A JWKS as the sidecar's jwt_authn decoder reads it (xds/http-filters/jwt-authn.ts, the same function): a key set
 * the control server accepts, from a file or a fetch, is then one every sidecar accepts too. A second, laxer check
 * here would let through a set (say, HMAC keys only) that sidecars refuse, and that NACK would hold back the whole
 * inbound listener, every other policy change with it.
 */
export function parseJwks(text: string): ParsedJwks {
  const r = parseSidecarJwks(text);
  if (!r.ok) return { ok: false, message: r.errors.join('; ') };
  return { ok: true, keyCount: r.value.length, kids: r.value.flatMap((k) => (k.kid !== undefined ? [k.kid] : [])) };
}

/** Why one fetch failed, as the metric's bounded result label. */
export type FetchFailure = 'http_error' | 'network_error' | 'timeout' | 'too_large' | 'invalid';

export class JwksFetchError extends OutriggerError {
  constructor(
    readonly reason: FetchFailure,
    message: string,
    opts: { cause?: unknown } = {},
  ) {
    super('JWKS_FETCH_FAILED', message, { ...opts, details: { reason } });
    this.name = 'JwksFetchError';
  }
}

/** One jwksUri as `outrigger status` shows it. */
export interface JwksUriStatus {
  readonly uri: string;
  readonly issuers: readonly string[];
  /**
   * pending: the first fetch is running (the fail-closed keys serve); failing: no fetch ever succeeded (still
   * fail-closed); ok: the last fetch succeeded; stale: it failed, the last good keys keep serving.
   */
  readonly state: 'pending' | 'ok' | 'stale' | 'failing';
  readonly keys: number;
  readonly kids: readonly string[];
  readonly last_success?: string;
  readonly last_error?: { readonly at: string; readonly message: string };
  readonly next_refresh?: string;
}

/** The outcome of one unknown-kid refresh request for one jwksUri. */
export type RefreshOutcome = 'fetching' | 'cooldown' | 'known_kid';

export interface JwksResolverOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: JwksMetrics;
  /** Called after the keys of some jwksUri changed (first fetch included): the snapshots are rebuilt and pushed. */
  readonly onKeysChanged: () => void;
  /** istiod's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL: 20 minutes. */
  readonly refreshIntervalMs?: number;
  /** After a failed fetch, the next try (istiod's JwtPubKeyRefreshIntervalOnFailure: 1 minute). */
  readonly retryIntervalMs?: number;
  /** At most one unknown-kid fetch per jwksUri this often (default 60 s; see requestRefresh). */
  readonly unknownKidCooldownMs?: number;
  /** One fetch's deadline, headers and body (istiod's default JWTRule timeout: 5 s). */
  readonly timeoutMs?: number;
  /** The largest JWKS body read (default 1 MiB; real key sets are a few KiB). */
  readonly maxBytes?: number;
}

interface Entry {
  readonly uri: string;
  issuers: Set<string>;
  /** The last good JWKS, as fetched (the sidecar parses it again). */
  keys?: string;
  kids: readonly string[];
  keyCount: number;
  lastSuccess?: number;
  lastError?: { at: number; message: string };
  /** The last fetch failed (the last good keys, or the fail-closed ones, keep serving). */
  failing: boolean;
  /** When the last unknown-kid fetch started (the cooldown runs from here). */
  lastOnDemand?: number;
  inflight?: Promise<void>;
  timer?: Timer;
  nextAt?: number;
  removed: boolean;
}

export const DEFAULT_REFRESH_INTERVAL_MS = 20 * 60_000;
export const DEFAULT_UNKNOWN_KID_COOLDOWN_MS = 60_000;

export class JwksResolver {
  private readonly entries = new Map<string, Entry>();
  private readonly refreshMs: number;
  private readonly retryMs: number;
  private readonly cooldownMs: number;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private closed = false;

  constructor(private readonly o: JwksResolverOptions) {
    this.refreshMs = o.refreshIntervalMs ?? DEFAULT_REFRESH_INTERVAL_MS;
    this.retryMs = o.retryIntervalMs ?? 60_000;
    this.cooldownMs = o.unknownKidCooldownMs ?? DEFAULT_UNKNOWN_KID_COOLDOWN_MS;
    this.timeoutMs = o.timeoutMs ?? 5_000;
    this.maxBytes = o.maxBytes ?? 1024 * 1024;
  }

  /** For the translator: the last good keys of a jwksUri, or undefined (it then inlines FAKE_JWKS). */
  readonly lookup: JwksLookup = (uri) => this.entries.get(uri)?.keys;

  /**
   * The (issuer, jwksUri) pairs of the config now serving. New URIs are fetched at once, in the background:
   * the config serves meanwhile with the fail-closed keys. URIs no policy names any more are dropped.
   */
  sync(rules: Iterable<{ readonly issuer: string; readonly jwksUri?: string }>): void {
    const wanted = new Map<string, Set<string>>();
    for (const r of rules) {
      if (r.jwksUri === undefined) continue;
      let s = wanted.get(r.jwksUri);
      if (!s) wanted.set(r.jwksUri, (s = new Set()));
      s.add(r.issuer);
    }
    for (const [uri, e] of this.entries) {
      if (wanted.has(uri)) continue;
      e.removed = true;
      if (e.timer) this.o.clock.clearTimeout(e.timer);
      this.entries.delete(uri);
    }
    for (const [uri, issuers] of wanted) {
      const e = this.entries.get(uri);
      if (e) {
        e.issuers = issuers;
        continue;
      }
      const fresh: Entry = { uri, issuers, kids: [], keyCount: 0, failing: false, removed: false };
      this.entries.set(uri, fresh);
      void this.fetch(fresh);
    }
  }

  /**
   * A sidecar met a token whose `kid` none of its keys for `issuer` has: the issuer may have rotated its keys
   * since our last fetch. Each jwksUri of the issuer is fetched now unless its current keys have that kid (the
   * sidecar is then only behind on config, which is on its way) or an unknown-kid fetch of it started less than
   * the cooldown ago. The cooldown is per jwksUri, not per sidecar or kid: tokens with made-up kids are free to
   * mint, and without it every one of them, from every sidecar, would be a request to the IdP. 60 s bounds that
   * to one fetch a minute per URI, mesh-wide, while a real key rotation still reaches every sidecar within about
   * a minute instead of the 20-minute refresh.
   */
  requestRefresh(issuer: string, kid: string): { uri: string; outcome: RefreshOutcome }[] {
    const now = this.o.clock.monotonic();
    const out: { uri: string; outcome: RefreshOutcome }[] = [];
    for (const e of this.entries.values()) {
      if (!e.issuers.has(issuer)) continue;
      let outcome: RefreshOutcome;
      if (e.keys !== undefined && kid !== '' && e.kids.includes(kid)) outcome = 'known_kid';
      else if (e.inflight || (e.lastOnDemand !== undefined && now - e.lastOnDemand < this.cooldownMs)) outcome = 'cooldown';
      else {
        outcome = 'fetching';
        e.lastOnDemand = now;
        void this.fetch(e);
      }
      this.o.metrics.refreshRequests.inc({ result: outcome });
      out.push({ uri: e.uri, outcome });
    }
    if (out.length === 0) this.o.metrics.refreshRequests.inc({ result: 'unknown_issuer' });
    return out;
  }

  /** Counts a refresh request turned away before it reached the resolver (no SVID, bad arguments). */
  refused(): void {
    this.o.metrics.refreshRequests.inc({ result: 'refused' });
  }

  /** Resolves when no fetch is running (tests, shutdown). */
  async settled(): Promise<void> {
    for (;;) {
      const running = [...this.entries.values()].flatMap((e) => (e.inflight ? [e.inflight] : []));
      if (running.length === 0) return;
      await Promise.all(running);
    }
  }

  status(): JwksUriStatus[] {
    const iso = (ms: number) => new Date(ms).toISOString();
    // next_refresh is on the monotonic clock; shown as wall time by its distance from now.
    const wall = (mono: number) => iso(this.o.clock.now() + (mono - this.o.clock.monotonic()));
    return [...this.entries.values()]
      .sort((a, b) => a.uri.localeCompare(b.uri))
      .map((e) => ({
        uri: e.uri,
        issuers: [...e.issuers].sort(),
        state: e.keys === undefined ? (e.failing ? 'failing' : 'pending') : e.failing ? 'stale' : 'ok',
        keys: e.keyCount,
        kids: e.kids,
        ...(e.lastSuccess !== undefined && { last_success: iso(e.lastSuccess) }),
        ...(e.lastError && { last_error: { at: iso(e.lastError.at), message: e.lastError.message } }),
        ...(e.nextAt !== undefined && { next_refresh: wall(e.nextAt) }),
      }));
  }

  close(): void {
    this.closed = true;
    for (const e of this.entries.values()) if (e.timer) this.o.clock.clearTimeout(e.timer);
  }

  /** One fetch of `e`, joined by anyone asking while it runs; reschedules the next one when it ends. */
  private fetch(e: Entry): Promise<void> {
    if (e.inflight) return e.inflight;
    if (e.timer) this.o.clock.clearTimeout(e.timer);
    e.timer = e.nextAt = undefined;
    e.inflight = this.fetchOnce(e.uri).then(
      (text) => this.accept(e, text),
      (err: unknown) => this.fail(e, err),
    );
    void e.inflight.finally(() => {
      e.inflight = undefined;
    });
    return e.inflight;
  }

  private accept(e: Entry, text: string): void {
    if (e.removed || this.closed) return;
    const parsed = parseJwks(text);
    if (!parsed.ok) return this.fail(e, new JwksFetchError('invalid', `not a valid JWKS: ${parsed.message}`));
    const changed = e.keys !== text;
    e.keys = text;
    e.kids = parsed.kids;
    e.keyCount = parsed.keyCount;
    e.lastSuccess = this.o.clock.now();
    e.failing = false;
    this.o.metrics.fetches.inc({ result: changed ? 'ok' : 'unchanged' });
    this.schedule(e, this.refreshMs);
    if (!changed) return;
    this.o.logger.info({ jwksUri: e.uri, issuers: [...e.issuers], keys: e.keyCount, kids: e.kids }, 'JWKS fetched; pushing the new keys');
    this.o.onKeysChanged();
  }

  private fail(e: Entry, err: unknown): void {
    if (e.removed || this.closed) return;
    const reason: FetchFailure = err instanceof JwksFetchError ? err.reason : 'network_error';
    const message = errorMessage(err);
    e.lastError = { at: this.o.clock.now(), message };
    e.failing = true;
    this.o.metrics.fetches.inc({ result: reason });
    this.o.logger.warn({ jwksUri: e.uri, reason, error: message, keeping: e.keys === undefined ? 'fail-closed keys (no key fetched yet)' : `${e.keyCount} last good key(s)` }, 'JWKS fetch failed');
    this.schedule(e, Math.min(this.retryMs, this.refreshMs));
  }

  private schedule(e: Entry, ms: number): void {
    e.nextAt = this.o.clock.monotonic() + ms;
    e.timer = this.o.clock.setTimeout(() => void this.fetch(e), ms);
    e.timer.unref();
  }

  /** GET `uri` within the deadline and size cap; the body as text. */
  private async fetchOnce(uri: string): Promise<string> {
    const ac = new AbortController();
    let timedOut = false;
    const timer = this.o.clock.setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, this.timeoutMs);
    try {
      const res = await fetch(uri, { signal: ac.signal, headers: { accept: 'application/json, application/jwk-set+json' } });
      if (!res.ok) {
        await res.body?.cancel();
        throw new JwksFetchError('http_error', `${uri} answered HTTP ${res.status}`);
      }
      const declared = Number(res.headers.get('content-length') ?? NaN);
      if (declared > this.maxBytes) {
        await res.body?.cancel();
        throw new JwksFetchError('too_large', `${uri} sent ${declared} bytes, more than the ${this.maxBytes} allowed`);
      }
      return await this.readCapped(res, uri);
    } catch (e) {
      if (e instanceof JwksFetchError) throw e;
      if (timedOut) throw new JwksFetchError('timeout', `${uri} did not answer within ${this.timeoutMs} ms`, { cause: e });
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new JwksFetchError('network_error', `cannot fetch ${uri}: ${cause?.code ?? cause?.message ?? errorMessage(e)}`, { cause: e });
    } finally {
      this.o.clock.clearTimeout(timer);
    }
  }

  /** The body, refusing it once it passes maxBytes (a chunked response declares no length). */
  private async readCapped(res: Response, uri: string): Promise<string> {
    const chunks: Uint8Array[] = [];
    let size = 0;
    if (!res.body) return '';
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > this.maxBytes) {
        await reader.cancel();
        throw new JwksFetchError('too_large', `${uri} sent more than the ${this.maxBytes} bytes allowed`);
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks).toString('utf8');
  }
}
