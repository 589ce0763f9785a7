// envoy.filters.http.jwt_authn at run time: strip spoofable headers, find the tokens, check the rule's requirement, publish the claims.
import { queryGetter, requestHeaderGetter } from '../../model/matchers.js';
import { ISTIO_AUTHN_METADATA, JWT_AUTHN_TYPE_URL, type JwtAuthnConfig, type JwtProvider, type JwtRequirement } from '../../model/jwt.js';
import { JWT_FAILURE_MESSAGES, JwtVerifier, freezeJson, unverifiedIssuer, type JwtFailure, type VerifiedJwt } from '../../policy/jwt.js';
import type { Tally } from '../../telemetry/metrics.js';
import type { RequestRecord } from '../exchange.js';
import { cookieValue, firstValue } from '../headers.js';
import { Replies, type LocalReply } from '../local-reply.js';
import { compileRouteMatch } from '../router.js';
import type { FilterDeps, FilterRequest, HttpFilter, HttpFilterFactory } from './filter.js';

export { JWT_AUTHN_TYPE_URL };

/** Envoy's dynamic metadata namespace of this filter (payload_in_metadata entries live under it). */
export const JWT_AUTHN_METADATA = 'envoy.filters.http.jwt_authn';
export { ISTIO_AUTHN_METADATA };

/** A token found in the request, and where: a header token can be removed before forwarding. */
interface FoundToken {
  readonly token: string;
  /** The header it came from (undefined: a query parameter or cookie, which Envoy leaves in place). */
  readonly header?: string;
}

interface Verified {
  readonly provider: JwtProvider;
  readonly jwt: VerifiedJwt;
  readonly found: FoundToken;
}

type Outcome = { readonly ok: true } | { readonly ok: false; readonly reason: JwtFailure; readonly issuer?: string };
const OK: Outcome = { ok: true };
const MISSING: Outcome = { ok: false, reason: 'jwt_missing' };

/**
 * A claim as istio_authn publishes it under request.auth.claims: strings and scalars as a list of strings (so
 * istiod's list matchers apply), lists as lists of strings, nested objects kept as objects of the same.
 */
function claimValue(v: unknown): unknown {
  if (Array.isArray(v)) return v.filter((x) => x !== null && typeof x !== 'object').map(String);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, claimValue(x)]));
  return v === null ? [] : [String(v)];
}

/** claim_to_headers: a dotted path into the payload; strings, numbers and booleans (lists joined by ','). */
function claimHeader(payload: Readonly<Record<string, unknown>>, path: string): string | undefined {
  let v: unknown = payload;
  for (const k of path.split('.')) v = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>)[k] : undefined;
  const scalar = (x: unknown) => (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean' ? String(x) : undefined);
  if (Array.isArray(v)) {
    const items = v.map(scalar);
    return items.every((x) => x !== undefined) && items.length > 0 ? items.join(',') : undefined;
  }
  return scalar(v);
}

/** The istio_authn layout (see the shared contract in the README's JWT section). */
export function istioAuthnMetadata(payload: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const { iss, sub, aud, azp } = payload;
  const first = Array.isArray(aud) ? aud[0] : aud;
  return {
    ...(typeof iss === 'string' && typeof sub === 'string' && { 'request.auth.principal': `${iss}/${sub}` }),
    ...(typeof first === 'string' && { 'request.auth.audiences': first }),
    ...(typeof azp === 'string' && { 'request.auth.presenter': azp }),
    'request.auth.claims': claimValue(payload),
    'request.auth.raw_claims': JSON.stringify(payload),
  };
}

/**
 * istio_authn of a verified token, built once per token: the verifier's cache hands back the same VerifiedJwt for
 * a reused token, and building the claims lists and raw_claims was most of the filter's cost for it (measured).
 * Frozen, since every request with that token shares it; readers (rbac) only read.
 */
const istioAuthnOf = new WeakMap<VerifiedJwt, Readonly<Record<string, unknown>>>();
function sharedIstioAuthn(jwt: VerifiedJwt): Readonly<Record<string, unknown>> {
  let m = istioAuthnOf.get(jwt);
  if (!m) istioAuthnOf.set(jwt, (m = freezeJson(istioAuthnMetadata(jwt.payload))));
  return m;
}

/** How much a failure says about the token: 0 none was found, 1 it belongs elsewhere, 2 it is bad. */
function telling(r: JwtFailure): number {
  return r === 'jwt_missing' ? 0 : r === 'jwt_issuer_mismatch' || r === 'jwt_unknown_issuer' ? 1 : 2;
}

/** One request's evaluation: tokens found per provider and results per (provider, token), each at most once. */
class Evaluation {
  readonly verified: Verified[] = [];
  private readonly found = new Map<JwtProvider, FoundToken[]>();
  private readonly results = new Map<string, Outcome>();
  private query: ((name: string) => string | undefined) | undefined;

  constructor(
    private readonly f: JwtAuthnFilter,
    private readonly rec: RequestRecord,
    private readonly nowMs: number,
  ) {}

  tokens(p: JwtProvider): FoundToken[] {
    let out = this.found.get(p);
    if (out) return out;
    out = [];
    const rec = this.rec;
    for (const h of p.fromHeaders) {
      const v = firstValue(rec.headers[h.name]);
      if (v === undefined) continue;
      // The default Authorization location takes the Bearer scheme in any case (RFC 6750 §2.1 / RFC 9110 §11.1).
      const pre = h.valuePrefix;
      const at = h.name === 'authorization' ? v.slice(0, pre.length).toLowerCase() === pre.toLowerCase() : v.startsWith(pre);
      if (at && v.length > pre.length) out.push({ token: v.slice(pre.length).trim(), header: h.name });
    }
    if (p.fromParams.length > 0) {
      const q = rec.path.indexOf('?');
      this.query ??= q < 0 ? () => undefined : queryGetter(rec.path, q + 1);
      for (const name of p.fromParams) {
        const v = this.query(name);
        if (v) out.push({ token: v });
      }
    }
    for (const name of p.fromCookies) {
      const v = cookieValue(firstValue(rec.headers.cookie), name);
      if (v) out.push({ token: v });
    }
    this.found.set(p, out);
    return out;
  }

  /** Verifies one token with one provider (memoized: istiod's multi-provider shape names each provider twice). */
  private check(p: JwtProvider, found: FoundToken, audiences?: readonly string[]): Outcome {
    const key = audiences ? undefined : `${p.name}\0${found.token}`;
    const memo = key !== undefined ? this.results.get(key) : undefined;
    if (memo) return memo;
    const r = this.f.verifier(p).verify(found.token, this.nowMs, audiences);
    let out: Outcome;
    if (r.ok) {
      out = OK;
      if (!this.verified.some((v) => v.provider === p && v.found.token === found.token)) this.verified.push({ provider: p, jwt: r.jwt, found });
    } else {
      out = { ok: false, reason: r.reason, issuer: p.issuer };
      if (r.reason === 'jwt_unknown_kid') this.f.unknownKid(p.issuer, r.kid!);
    }
    if (key !== undefined) this.results.set(key, out);
    return out;
  }

  /** Every token at the provider's locations must verify (Envoy: a good token must not smuggle a bad one in). */
  private provider(name: string, audiences?: readonly string[]): Outcome {
    const p = this.f.provider(name);
    const found = this.tokens(p);
    if (found.length === 0) return MISSING;
    for (const t of found) {
      const r = this.check(p, t, audiences);
      if (!r.ok) return r;
    }
    return OK;
  }

  /**
   * allow_missing(_or_failed): every token at any provider's location is verified by the provider of its issuer,
   * which must be one that looks there (Envoy's JwtLocation issuer check); no token at all is fine.
   */
  private anyProvider(): Outcome {
    const seen = new Set<string>();
    for (const p of this.f.providers) {
      for (const t of this.tokens(p)) {
        if (seen.has(t.token)) continue;
        seen.add(t.token);
        const iss = unverifiedIssuer(t.token);
        const owners = this.f.providers.filter((q) => (q.issuer === iss || q.issuer === '') && this.tokens(q).some((x) => x.token === t.token));
        // No issuer to go by (unparseable, or no iss): the provider that found it says what is wrong with it.
        if (owners.length === 0) return iss === undefined ? this.check(p, t) : { ok: false, reason: 'jwt_unknown_issuer', issuer: iss };
        const r = this.check(owners[0]!, t);
        if (!r.ok) return r;
      }
    }
    return OK;
  }

  run(req: JwtRequirement): Outcome {
    switch (req.kind) {
      case 'provider':
        return this.provider(req.provider, req.audiences);
      case 'allow_missing':
        return this.anyProvider();
      case 'allow_missing_or_failed':
        this.anyProvider();
        return OK;
      case 'any': {
        // Envoy's AnyVerifier: the first success wins. When all fail, the most telling error is reported: what is
        // wrong with a token under its own provider, before "not this provider's issuer", before "missing".
        let failure = MISSING as Outcome & { ok: false };
        for (const r of req.requirements) {
          const o = this.run(r);
          if (o.ok) return o;
          if (telling(o.reason) > telling(failure.reason)) failure = o;
        }
        return failure;
      }
      case 'all':
        for (const r of req.requirements) {
          const o = this.run(r);
          if (!o.ok) return o;
        }
        return OK;
    }
  }
}

interface CompiledRule {
  readonly matches: ReturnType<typeof compileRouteMatch>;
  readonly requires: JwtRequirement | undefined;
}

class JwtAuthnFilter implements HttpFilter {
  readonly providers: readonly JwtProvider[];
  private readonly byName: ReadonlyMap<string, JwtProvider>;
  private readonly verifiers = new Map<JwtProvider, JwtVerifier>();
  private readonly rules: readonly CompiledRule[];
  /** Every header this config may write: removed from each request on entry, whatever happens next. */
  private readonly outputHeaders: readonly string[];
  private readonly tallies: { allowed: Tally; missing: Tally; denied: Map<JwtFailure, Tally> };

  constructor(
    readonly name: string,
    private readonly cfg: JwtAuthnConfig,
    private readonly deps: FilterDeps,
  ) {
    this.providers = cfg.providers;
    this.byName = new Map(cfg.providers.map((p) => [p.name, p]));
    // Built now, once per config version: each verifier holds its provider's imported keys and token cache.
    for (const p of cfg.providers) this.verifiers.set(p, new JwtVerifier(p));
    this.rules = cfg.rules.map((r) => ({ matches: compileRouteMatch(r.match), requires: r.requires }));
    this.outputHeaders = [...new Set(cfg.providers.flatMap((p) => [...(p.forwardPayloadHeader ? [p.forwardPayloadHeader] : []), ...p.claimToHeaders.map((c) => c.headerName)]))];
    const t = deps.metrics.jwtAuthn;
    const tally = (outcome: string, reason: string) => t.tally({ listener: deps.listenerName, outcome, reason });
    this.tallies = { allowed: tally('allowed', 'none'), missing: tally('missing', 'none'), denied: new Map() };
  }

  provider(name: string): JwtProvider {
    // The decoder refused requirements naming unknown providers.
    return this.byName.get(name)!;
  }

  verifier(p: JwtProvider): JwtVerifier {
    return this.verifiers.get(p)!;
  }

  unknownKid(issuer: string, kid: string): void {
    // Fire and forget: the control server refetches (with its cooldown); this request is answered now.
    this.deps.onUnknownJwksKey?.(issuer, kid);
  }

  decodeHeaders(req: FilterRequest): LocalReply | undefined {
    const rec = req.rec;
    for (const h of this.outputHeaders) delete rec.headers[h];
    if (this.cfg.bypassCorsPreflight && rec.method === 'OPTIONS' && rec.headers.origin !== undefined && rec.headers['access-control-request-method'] !== undefined) return undefined;
    const requires = this.ruleFor(rec);
    if (!requires) return undefined;
    const ev = new Evaluation(this, rec, this.deps.clock.now());
    const o = ev.run(requires);
    if (!o.ok) return this.deny(rec, o.reason, o.issuer);
    for (const v of ev.verified) this.publish(rec, v, ev);
    if (ev.verified.length > 0) {
      rec.dynamicMetadata ??= {};
      rec.dynamicMetadata[ISTIO_AUTHN_METADATA] = sharedIstioAuthn(ev.verified[0]!.jwt);
      this.tallies.allowed.n++;
    } else this.tallies.missing.n++;
    return undefined;
  }

  /** RequirementRule: the first rule whose RouteMatch fits decides; none, or one without requires: no JWT needed. */
  private ruleFor(rec: RequestRecord): JwtRequirement | undefined {
    if (this.rules.length === 0) return undefined;
    const q = rec.path.indexOf('?');
    const noQuery = q < 0 ? rec.path : rec.path.slice(0, q);
    const get = requestHeaderGetter(rec);
    const query = q < 0 ? undefined : queryGetter(rec.path, q + 1);
    for (const r of this.rules) if (r.matches(rec.path, noQuery, get, query)) return r.requires;
    return undefined;
  }

  /** A verified token's effects: metadata, payload and claim headers, the token itself removed unless forward. */
  private publish(rec: RequestRecord, v: Verified, ev: Evaluation): void {
    const p = v.provider;
    if (p.payloadInMetadata !== undefined) {
      rec.dynamicMetadata ??= {};
      (rec.dynamicMetadata[JWT_AUTHN_METADATA] ??= {})[p.payloadInMetadata] = v.jwt.payload;
    }
    if (p.forwardPayloadHeader) {
      const b = v.jwt.payloadB64;
      rec.headers[p.forwardPayloadHeader] = p.padForwardPayloadHeader ? b.padEnd(Math.ceil(b.length / 4) * 4, '=') : b;
    }
    for (const c of p.claimToHeaders) {
      const value = claimHeader(v.jwt.payload, c.claimName);
      if (value !== undefined) rec.headers[c.headerName] = value;
    }
    // Every header of this provider that carried the token (the same token may sit in several).
    if (!p.forward) for (const f of ev.tokens(p)) if (f.header !== undefined && f.token === v.found.token) delete rec.headers[f.header];
  }

  private deny(rec: RequestRecord, reason: JwtFailure, issuer: string | undefined): LocalReply {
    let t = this.tallies.denied.get(reason);
    if (!t) this.tallies.denied.set(reason, (t = this.deps.metrics.jwtAuthn.tally({ listener: this.deps.listenerName, outcome: 'denied', reason })));
    t.n++;
    const q = rec.path.indexOf('?');
    const path = q < 0 ? rec.path : rec.path.slice(0, q);
    // One line per denial; never the token (a bearer credential), only what it was refused for.
    this.deps.logger.warn({ filter: this.name, reason, issuer, path, request_id: rec.requestId }, 'JWT refused');
    // Envoy: realm is the request URL without its query; a missing token gets no error attribute (RFC 6750 §3.1).
    const xfp = firstValue(rec.headers['x-forwarded-proto']);
    const scheme = xfp === 'http' || xfp === 'https' ? xfp : rec.conn.tls ? 'https' : 'http';
    const www = `Bearer realm="${scheme}://${rec.authority}${path}"${reason === 'jwt_missing' ? '' : ', error="invalid_token"'}`;
    // Envoy answers 403 only for audiences not allowed (the token is valid, just not for this service).
    return Replies.jwtInvalid(reason === 'jwt_audience_mismatch' ? 403 : 401, reason, JWT_FAILURE_MESSAGES[reason], www);
  }
}

export const jwtAuthnFactory: HttpFilterFactory = {
  typeUrl: JWT_AUTHN_TYPE_URL,
  create: (config, deps) => new JwtAuthnFilter(config.name, config.config as unknown as JwtAuthnConfig, deps),
};
