// Compiles model matchers into predicates once per config version (never per request).
import { createRequire } from 'node:module';
import type { RE2 as RE2Type } from 're2-wasm';
import type { HeaderMatcher, QueryParameterMatcher, RegexRewrite, StringMatcher } from './types.js';

/**
 * re2-wasm brings a WebAssembly memory of ~11 MB resident; most sidecars have no regex at all, so it is
 * loaded the first time a config needs one (the sidecar's memory budget is 80 MB under load).
 */
let RE2: typeof RE2Type | undefined;
export function re2(): typeof RE2Type {
  RE2 ??= (createRequire(import.meta.url)('re2-wasm') as { RE2: typeof RE2Type }).RE2;
  return RE2;
}

export type Predicate = (s: string) => boolean;

/** Escapes that mean the same to RE2 and to a JS RegExp in unicode mode, outside and inside a class. */
const SAFE_ESCAPES = new Set([...'dDwWnrtfv^$\\.*+?()[]{}|/']);
const SAFE_CLASS_ESCAPES = new Set([...SAFE_ESCAPES, '-']);

/**
 * The JS RegExp body equivalent to an RE2 pattern, or undefined when the pattern is outside the subset where
 * the two provably agree and cannot backtrack badly. re2-wasm costs ~2.5-5 µs per test; V8's RegExp ~50 ns.
 * The subset (everything else stays on RE2):
 * - literals; `.` (rewritten to `[^\n]`: JS's `.` also refuses \r, U+2028 and U+2029, RE2's only \n);
 *   `^`, `$` (single-line in both); `|`; `(...)` and `(?:...)`;
 * - the escapes \d \D \w \W (ASCII in both without case folding), \n \r \t \f \v and escaped punctuation;
 * - bracket classes of literals, ranges and those escapes (no `[:alpha:]`, no leading `]`);
 * - quantifiers `* + ? {n} {n,} {n,m}` (and their lazy forms) on a single atom, never on a group, and at most
 *   ONE variable quantifier in the whole pattern. Anchored at the start, a single variable quantifier bounds
 *   V8's backtracking to one pass per repetition count: linear in the input, as RE2 is.
 * Not in it, so on RE2: \s and \b (Perl vs JS Unicode definitions), \p, \pN, \x{..}, \Q..\E, \A, \z, \C,
 * (?P<name>), (?i) and other flags, POSIX classes, nested or quantified groups, two or more variable quantifiers.
 * The input was already accepted by RE2; whatever V8 refuses to compile also falls back to RE2.
 */
export function jsEquivalent(regex: string): string | undefined {
  let out = '';
  let variable = 0;
  let prev: 'atom' | 'group' | 'none' = 'none';
  for (let i = 0; i < regex.length; i++) {
    const c = regex[i]!;
    if (c === '\\') {
      const e = regex[i + 1];
      if (e === undefined || !SAFE_ESCAPES.has(e)) return undefined;
      out += c + e;
      i++;
      prev = 'atom';
    } else if (c === '[') {
      let j = i + 1;
      if (regex[j] === '^') j++;
      if (regex[j] === ']') return undefined;
      for (; j < regex.length && regex[j] !== ']'; j++) {
        if (regex[j] === '[') return undefined;
        if (regex[j] === '\\') {
          if (!SAFE_CLASS_ESCAPES.has(regex[j + 1] ?? '')) return undefined;
          j++;
        }
      }
      if (j >= regex.length) return undefined;
      out += regex.slice(i, j + 1);
      i = j;
      prev = 'atom';
    } else if (c === '(') {
      if (regex[i + 1] === '?') {
        if (regex[i + 2] !== ':') return undefined;
        out += '(?:';
        i += 2;
      } else out += c;
      prev = 'none';
    } else if (c === ')') {
      out += c;
      prev = 'group';
    } else if (c === '*' || c === '+' || c === '?' || c === '{') {
      if (prev !== 'atom') return undefined;
      let q = c;
      if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(regex.slice(i));
        if (!m) return undefined;
        q = m[0];
        if (m[2] !== undefined && m[3] !== m[1]) variable++;
      } else variable++;
      i += q.length - 1;
      if (regex[i + 1] === '?') {
        q += '?';
        i++;
      }
      out += q;
      prev = 'none';
    } else if (c === '.') {
      out += '[^\\n]';
      prev = 'atom';
    } else {
      // `]` and `}` alone are literals to RE2 but syntax errors to a unicode RegExp: V8 refuses, RE2 serves.
      out += c;
      prev = c === '|' || c === '^' || c === '$' ? 'none' : 'atom';
    }
  }
  return variable <= 1 ? out : undefined;
}

/** The JS RegExp for an RE2 pattern in the safe subset (flags added), or undefined. */
function jsRegExp(regex: string, wrap: (body: string) => string, flags: string): RegExp | undefined {
  const body = jsEquivalent(regex);
  if (body === undefined) return undefined;
  try {
    return new RegExp(wrap(body), flags);
  } catch {
    return undefined;
  }
}

/** RE2's own verdict on a pattern: undefined when valid, else its reason (for the decoders' messages). */
export function re2Problem(regex: string): string | undefined {
  try {
    new (re2())(regex, 'u');
    return undefined;
  } catch (e) {
    // re2-wasm says "Invalid regular expression: /<regex>/u: <reason>", with '/' escaped; the reason is what helps.
    const m = e instanceof Error ? e.message : String(e);
    return (m.split('/u: ').slice(1).join('/u: ') || m).replace(/\\\//g, '/');
  }
}

/**
 * RE2, as Envoy's safe_regex: linear-time matching, so a hostile path cannot make a route table backtrack.
 * Envoy matches the whole value, hence the anchors. The pattern is always checked by RE2 (what it rejects
 * throws); a pattern in jsEquivalent's subset then runs on V8's RegExp, which agrees on it and is ~50x faster.
 */
export function compileRegex(regex: string): Predicate {
  const re = new (re2())(`^(?:${regex})$`, 'u');
  const literal = literalRegex(regex);
  if (literal) return literal;
  const js = jsRegExp(regex, (b) => `^(?:${b})$`, 'u');
  if (js) return (s) => js.test(s);
  return (s) => re.test(s);
}

const REGEX_META = new Set([...'\\.+*?()|[]{}^$']);

// `.*L.*`, `L.*`, `.*L` and `L` for a literal L (punctuation escapes allowed) as plain string tests. istiod writes
// `.*/ns/<ns>/.*` for every AuthorizationPolicy namespace: two variable quantifiers, which would put it on RE2
// (~3 µs a test). RE2's `.` matches anything but '\n' and L holds no '\n', so each `.*` reads "no newline".
export function literalRegex(regex: string): Predicate | undefined {
  const lead = regex.startsWith('.*');
  let body = lead ? regex.slice(2) : regex;
  const trail = body.endsWith('.*') && !body.endsWith('\\.*');
  if (trail) body = body.slice(0, -2);
  let lit = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '\\') {
      const e = body[++i];
      if (e === undefined || !REGEX_META.has(e)) return undefined;
      lit += e;
    } else if (REGEX_META.has(c)) return undefined;
    else lit += c;
  }
  if (lead && trail) return (s) => s.includes(lit) && !s.includes('\n');
  if (lead) return (s) => s.endsWith(lit) && !s.includes('\n');
  if (trail) return (s) => s.startsWith(lit) && !s.includes('\n');
  return (s) => s === lit;
}

/**
 * RegexMatchAndSubstitute: every (non-overlapping) match replaced, as RE2::GlobalReplace does; in the
 * substitution `\1`..`\9` are groups and `\\` a backslash (Envoy's syntax), turned into String.replace's.
 */
export function compileRegexRewrite(r: RegexRewrite): (s: string) => string {
  const sub = r.substitution.replace(/\$/g, '$$$$').replace(/\\(\\|\d)/g, (_m, g: string) => (g === '\\' ? '\\' : `$${g}`));
  const js = jsRegExp(r.regex, (b) => b, 'gu');
  if (js) return (s) => s.replace(js, sub);
  const re = new (re2())(r.regex, 'gu');
  return (s) => re.replace(s, sub);
}

export function compileStringMatcher(m: StringMatcher): Predicate {
  if (m.kind === 'regex') return compileRegex(m.regex);
  // Without ignore_case, no normalising indirection: these run per route and per RBAC rule on the hot path.
  const norm = m.ignoreCase ? (s: string) => s.toLowerCase() : undefined;
  const v = norm ? norm(m.value) : m.value;
  switch (m.kind) {
    case 'exact':
      return norm ? (s) => norm(s) === v : (s) => s === v;
    case 'prefix':
      return norm ? (s) => norm(s).startsWith(v) : (s) => s.startsWith(v);
    case 'suffix':
      return norm ? (s) => norm(s).endsWith(v) : (s) => s.endsWith(v);
    case 'contains':
      return norm ? (s) => norm(s).includes(v) : (s) => s.includes(v);
  }
}

export type HeaderGetter = (name: string) => string | undefined;

/** What header matching reads of a request (a RequestRecord, an RbacInput). */
export interface RequestHead {
  readonly method: string;
  /** :path with its query string. */
  readonly path: string;
  readonly authority: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

type HeaderReader = (r: RequestHead) => string | undefined;
const PSEUDO: Readonly<Record<string, HeaderReader>> = { ':path': (r) => r.path, ':method': (r) => r.method, ':authority': (r) => r.authority, host: (r) => r.authority };

/**
 * One header's reader, chosen once per name, as Envoy's header map holds headers for matching: the pseudo-headers
 * :path (with the query), :method and :authority (also as `host`, which Envoy stores as :authority); repeated
 * values joined by ','.
 */
export function headerReader(name: string): HeaderReader {
  return Object.hasOwn(PSEUDO, name)
    ? PSEUDO[name]!
    : (r) => {
        const v = r.headers[name];
        return typeof v === 'string' ? v : Array.isArray(v) ? v.join(',') : undefined;
      };
}

/** A request's headers by name, read as headerReader reads them (only own values: `constructor` is no header). */
export function requestHeaderGetter(r: RequestHead): HeaderGetter {
  return (name) => {
    // Pseudo-headers start with ':'; `host` is the one other name read from the request line.
    if (name.charCodeAt(0) === 58 || name === 'host') {
      const read = PSEUDO[name];
      if (read) return read(r);
    }
    const v = r.headers[name];
    return typeof v === 'string' ? v : Array.isArray(v) ? v.join(',') : undefined;
  };
}

/**
 * envoy.config.route.v3.HeaderMatcher semantics (HeaderUtility::matchHeaders): a missing header fails a value
 * matcher, and passes an inverted one (Istio's withoutHeaders relies on that).
 */
export function compileHeaderMatcher(h: HeaderMatcher): (get: HeaderGetter) => boolean {
  const name = h.name.toLowerCase();
  const match = headerValueMatcher(h);
  return (get) => match(get(name));
}

/** The same decision on the header's value (undefined: absent), for callers that read the header themselves. */
export function headerValueMatcher(h: HeaderMatcher): (v: string | undefined) => boolean {
  const invert = h.invert;
  if (h.match.kind === 'present') {
    const want = h.match.present;
    return (v) => (v !== undefined) === want !== invert;
  }
  const p = compileStringMatcher(h.match.matcher);
  return (v) => (v === undefined ? invert : p(v) !== invert);
}

/** The raw query string (after '?', without '#'), looked up per parameter: first value, not percent-decoded, as Envoy. */
export type QueryGetter = (name: string) => string | undefined;

/**
 * A getter over the query string of `path` starting at `from` (after the '?'; a '#fragment' is not part of it).
 * Each lookup scans the `&`-separated parameters in place for the first with that name: no table is built for
 * a request whose route table asks about one or two parameters.
 */
export function queryGetter(path: string, from = 0): QueryGetter {
  const hash = path.indexOf('#', from);
  const end = hash < 0 ? path.length : hash;
  return (name) => {
    for (let i = from; i < end; ) {
      let amp = path.indexOf('&', i);
      if (amp < 0 || amp > end) amp = end;
      const after = i + name.length;
      if (after <= amp && path.startsWith(name, i)) {
        if (after === amp) return '';
        if (path.charCodeAt(after) === 61 /* = */) return path.slice(after + 1, amp);
      }
      i = amp + 1;
    }
    return undefined;
  };
}

/** envoy.config.route.v3.QueryParameterMatcher: present_match, or a string matcher on the first value. */
export function compileQueryParameterMatcher(q: QueryParameterMatcher): (get: QueryGetter) => boolean {
  const name = q.name;
  if (q.match.kind === 'present') return (get) => get(name) !== undefined;
  const p = compileStringMatcher(q.match.matcher);
  return (get) => {
    const v = get(name);
    return v !== undefined && p(v);
  };
}
