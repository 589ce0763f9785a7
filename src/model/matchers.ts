// Compiles model matchers into predicates once per config version (never per request).
import { createRequire } from 'node:module';
import type { RE2 as RE2Type } from 're2-wasm';
import type { HeaderMatcher, StringMatcher } from './types.js';

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

/**
 * RE2, as Envoy's safe_regex: linear-time matching, so a hostile path cannot make a route table
 * backtrack. Envoy matches the whole value, hence the anchors.
 */
export function compileRegex(regex: string): Predicate {
  const re = new (re2())(`^(?:${regex})$`, 'u');
  return (s) => re.test(s);
}

export function compileStringMatcher(m: StringMatcher): Predicate {
  if (m.kind === 'regex') return compileRegex(m.regex);
  const v = m.ignoreCase ? m.value.toLowerCase() : m.value;
  const norm = m.ignoreCase ? (s: string) => s.toLowerCase() : (s: string) => s;
  switch (m.kind) {
    case 'exact':
      return (s) => norm(s) === v;
    case 'prefix':
      return (s) => norm(s).startsWith(v);
    case 'suffix':
      return (s) => norm(s).endsWith(v);
    case 'contains':
      return (s) => norm(s).includes(v);
  }
}

export type HeaderGetter = (name: string) => string | undefined;

/** envoy.config.route.v3.HeaderMatcher semantics: a missing header never matches a value matcher. */
export function compileHeaderMatcher(h: HeaderMatcher): (get: HeaderGetter) => boolean {
  const name = h.name.toLowerCase();
  if (h.match.kind === 'present') {
    const want = h.match.present;
    return (get) => (get(name) !== undefined) === want !== h.invert;
  }
  const p = compileStringMatcher(h.match.matcher);
  return (get) => {
    const v = get(name);
    if (v === undefined) return false;
    return p(v) !== h.invert;
  };
}
