// Decodes an outrigger.dev/v1alpha1 RateLimitPolicy spec: per-workload local rate limits (Istio needs an EnvoyFilter).
import { joinPath } from '../../xds/json.js';
import { Reader, defined, type Shape } from './schema.js';
import type { RateLimitPolicy, RateLimitRule } from './types.js';
import { stringMatch } from './virtual-service.js';

export const RATE_LIMIT_API_VERSION = 'outrigger.dev/v1alpha1';

const POLICY: Shape = { fields: ['workloadSelector', 'rules'] };
const SELECTOR: Shape = { fields: ['labels'] };
const RULE: Shape = { fields: ['name', 'match', 'tokenBucket', 'perKey', 'shadow'] };
const MATCH: Shape = { fields: ['path', 'method', 'headers', 'sourcePrincipal'] };
const PATH: Shape = { fields: ['exact', 'prefix'] };
const BUCKET: Shape = { fields: ['maxTokens', 'tokensPerFill', 'fillInterval'] };
const PER_KEY: Shape = { fields: ['header', 'sourcePrincipal'] };

/** Envoy's fill timer granularity: a fill interval below it is refused by the sidecar (and by Envoy). */
export const MIN_FILL_INTERVAL_MS = 50;
const MAX_UINT32 = 2 ** 32 - 1;
const METHOD = /^[A-Z]+$/;
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
/** `<trust domain>/ns/<namespace>/sa/<service account>`, Istio's principal form (AuthorizationPolicy `principals`). */
const PRINCIPAL = /^[^/\s]+\/ns\/[^/\s]+\/sa\/[^/\s]+$/;

export type RateLimitPolicySpec = Omit<RateLimitPolicy, 'kind' | 'meta'>;

export function decodeRateLimitPolicy(r: Reader, v: unknown, path: string): RateLimitPolicySpec | undefined {
  const o = r.object(v, path, POLICY);
  if (!o) return undefined;
  let workloadSelector: RateLimitPolicySpec['workloadSelector'];
  if (o.workloadSelector !== undefined && o.workloadSelector !== null) {
    const sp = joinPath(path, 'workloadSelector');
    const s = r.object(o.workloadSelector, sp, SELECTOR);
    if (s) workloadSelector = { labels: r.labels(s, 'labels', sp) ?? {} };
  }
  if (r.need(o, 'rules', path) && Array.isArray(o.rules) && o.rules.length === 0) r.issue(joinPath(path, 'rules'), 'at least one rule is required');
  const grid = fillGrid(r);
  const rules = r.list(o, 'rules', path, (rv, p) => grid(rule(r, rv, p), p));
  return defined({ workloadSelector, rules });
}

function rule(r: Reader, v: unknown, path: string): RateLimitRule | undefined {
  const o = r.object(v, path, RULE);
  if (!o) return undefined;
  const m = o.match === undefined || o.match === null ? {} : r.object(o.match, joinPath(path, 'match'), MATCH);
  const match = m && matchOf(r, m, joinPath(path, 'match'));
  r.need(o, 'tokenBucket', path);
  const bp = joinPath(path, 'tokenBucket');
  const b = o.tokenBucket === undefined || o.tokenBucket === null ? undefined : r.object(o.tokenBucket, bp, BUCKET);
  let tokenBucket: RateLimitRule['tokenBucket'] | undefined;
  if (b) {
    r.need(b, 'maxTokens', bp);
    // A rate limit is a number of tokens per interval: without the interval there is no rate (Envoy requires it too).
    r.need(b, 'fillInterval', bp);
    const maxTokens = r.int(b, 'maxTokens', bp, 1, MAX_UINT32);
    const tokensPerFill = r.int(b, 'tokensPerFill', bp, 1, MAX_UINT32) ?? 1;
    let fillIntervalMs = r.duration(b, 'fillInterval', bp);
    if (fillIntervalMs !== undefined && fillIntervalMs < MIN_FILL_INTERVAL_MS) fillIntervalMs = r.issue(joinPath(bp, 'fillInterval'), `must be at least ${MIN_FILL_INTERVAL_MS}ms (Envoy's fill timer granularity)`);
    if (maxTokens !== undefined && fillIntervalMs !== undefined) tokenBucket = { maxTokens, tokensPerFill, fillIntervalMs };
  }
  const perKey = perKeyOf(r, o.perKey, joinPath(path, 'perKey'));
  if (perKey && 'sourcePrincipal' in perKey && match?.sourcePrincipal !== undefined) {
    r.issue(joinPath(path, 'perKey.sourcePrincipal'), 'the rule matches one source principal, so it has one bucket already');
  }
  const name = r.string(o, 'name', path);
  const shadow = r.bool(o, 'shadow', path) ?? false;
  if (!match || !tokenBucket) return undefined;
  return defined({ name, match, tokenBucket, perKey, shadow });
}

function matchOf(r: Reader, m: Readonly<Record<string, unknown>>, path: string): RateLimitRule['match'] | undefined {
  let p: RateLimitRule['match']['path'];
  if (m.path !== undefined && m.path !== null) {
    const pp = joinPath(path, 'path');
    const po = r.object(m.path, pp, PATH);
    const set = PATH.fields.filter((k) => po?.[k] !== undefined && po[k] !== null);
    if (po && set.length !== 1) r.issue(pp, set.length === 0 ? 'one of exact, prefix is required' : 'only one of exact, prefix may be set');
    const key = set[0] as 'exact' | 'prefix' | undefined;
    const value = key && po && r.string(po, key, pp, (s) => (s.startsWith('/') ? undefined : 'must start with /'));
    if (key && value !== undefined) p = { [key]: value } as RateLimitRule['match']['path'];
  }
  const headers = r.map(m, 'headers', path, (h, hp, name) => (HEADER_NAME.test(name.toLowerCase()) ? stringMatch(r, h, hp, 'header') : r.issue(hp, `${JSON.stringify(name)} is not a header name`)));
  return defined({
    path: p,
    method: r.string(m, 'method', path, (s) => (METHOD.test(s) ? undefined : `${JSON.stringify(s)} is not an HTTP method (upper case, e.g. GET)`)),
    headers: Object.fromEntries(Object.entries(headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
    sourcePrincipal: r.string(m, 'sourcePrincipal', path, principalProblem),
  });
}

function principalProblem(s: string): string | undefined {
  if (s.startsWith('spiffe://')) return `write the principal as Istio does, without spiffe:// (${s.slice('spiffe://'.length)})`;
  return PRINCIPAL.test(s) ? undefined : `${JSON.stringify(s)} is not a principal (<trust domain>/ns/<namespace>/sa/<service account>)`;
}

function perKeyOf(r: Reader, v: unknown, path: string): RateLimitRule['perKey'] | undefined {
  if (v === undefined || v === null) return undefined;
  const o = r.object(v, path, PER_KEY);
  if (!o) return undefined;
  const set = PER_KEY.fields.filter((k) => o[k] !== undefined && o[k] !== null);
  if (set.length !== 1) return r.issue(path, set.length === 0 ? 'one of header, sourcePrincipal is required' : 'only one of header, sourcePrincipal may be set');
  if (set[0] === 'header') {
    const h = r.string(o, 'header', path, (s) => (HEADER_NAME.test(s.toLowerCase()) ? undefined : `${JSON.stringify(s)} is not a header name`));
    return h === undefined ? undefined : { header: h.toLowerCase() };
  }
  const sp = r.bool(o, 'sourcePrincipal', path);
  if (sp === false) return r.issue(joinPath(path, 'sourcePrincipal'), 'must be true (leave perKey out for one shared bucket)');
  return sp ? { sourcePrincipal: true } : undefined;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * In Envoy one fill timer drives all the buckets of a filter, ticking at the filter's interval, which every rule's
 * interval must be a multiple of. The translator uses the rules' greatest common divisor: it must still be 50 ms
 * or more, or the sidecar would refuse the filter. Returns a pass-through check for each decoded rule in turn.
 */
function fillGrid(r: Reader): (rule: RateLimitRule | undefined, path: string) => RateLimitRule | undefined {
  let g = 0;
  return (rule, path) => {
    if (!rule) return undefined;
    const next = gcd(rule.tokenBucket.fillIntervalMs, g);
    if (next < MIN_FILL_INTERVAL_MS) {
      return r.issue(
        joinPath(path, 'tokenBucket.fillInterval'),
        `the rules' fill intervals share one Envoy fill timer at their greatest common divisor, which would be ${next}ms (< ${MIN_FILL_INTERVAL_MS}ms); use multiples of a common interval of at least ${MIN_FILL_INTERVAL_MS}ms`,
      );
    }
    g = next;
    return rule;
  };
}
