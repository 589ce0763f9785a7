// Compiles model matchers into predicates once per config version (never per request).
import { RE2 } from 're2-wasm';
import type { HeaderMatcher, StringMatcher } from './types.js';

export type Predicate = (s: string) => boolean;

/**
 * RE2, as Envoy's safe_regex: linear-time matching, so a hostile path cannot make a route table
 * backtrack. Envoy matches the whole value, hence the anchors.
 */
export function compileRegex(regex: string): Predicate {
  const re = new RE2(`^(?:${regex})$`, 'u');
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
