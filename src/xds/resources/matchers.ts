// Decodes envoy.type.matcher.v3.StringMatcher / RegexMatcher and envoy.config.route.v3.HeaderMatcher.
import type { FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import type { HeaderMatcher, PathMatch, QueryParameterMatcher, RouteMatch, StringMatcher } from '../../model/types.js';
import type { ProtoObj } from '../canonical.js';
import { re2Problem } from '../../model/matchers.js';
import { Issues, bool, boolValue, joinPath, list, msg, onlyFields, requireOne, required, str } from './common.js';

/**
 * RegexMatcher: `regex` in RE2 syntax, checked with RE2 itself (as Envoy and grpc-js-xds do), so a pattern
 * is refused here rather than at first match. `google_re2: {}` is the deprecated engine marker; Envoy's
 * max_program_size inside it is not supported.
 */
export function decodeRegexMatcher(o: ProtoObj, path: string): Result<string, FieldIssue> {
  const issues = new Issues();
  onlyFields(o, path, ['regex', 'google_re2'], issues);
  const engine = msg(o, 'google_re2');
  if (engine) onlyFields(engine, joinPath(path, 'google_re2'), [], issues);
  const regex = required(o, 'regex', path, issues);
  const problem = regex === '' ? undefined : re2Problem(regex);
  if (problem !== undefined) issues.add(joinPath(path, 'regex'), `invalid RE2 regex ${JSON.stringify(regex)}: ${problem}`);
  return issues.result(() => regex);
}

const STRING_KINDS = ['exact', 'prefix', 'suffix', 'contains'] as const;

/** StringMatcher: exact | prefix | suffix | contains | safe_regex, with ignore_case (not for regexes). */
export function decodeStringMatcher(o: ProtoObj, path: string): Result<StringMatcher, FieldIssue> {
  const issues = new Issues();
  const clean = onlyFields(o, path, [...STRING_KINDS, 'safe_regex', 'ignore_case'], issues);
  requireOne(o, path, [...STRING_KINDS, 'safe_regex'], clean, issues);
  const ignoreCase = bool(o, 'ignore_case');
  const re = msg(o, 'safe_regex');
  if (re) {
    const regex = issues.take(decodeRegexMatcher(re, joinPath(path, 'safe_regex')));
    // Envoy documents ignore_case as having no effect on safe_regex; say so instead of dropping it.
    if (ignoreCase) issues.add(joinPath(path, 'ignore_case'), 'has no effect on safe_regex (use (?i) in the regex)');
    return issues.result(() => ({ kind: 'regex', regex: regex!, ignoreCase: false }));
  }
  const kind = STRING_KINDS.find((k) => o[k] !== undefined);
  if (kind === undefined) return issues.result(() => ({ kind: 'exact', value: '', ignoreCase }));
  const value = str(o, kind);
  // Envoy's validate rules: prefix, suffix and contains need at least one character; exact may be empty.
  if (kind !== 'exact' && value === '') issues.add(joinPath(path, kind), 'must not be empty');
  return issues.result(() => ({ kind, value, ignoreCase }));
}

/** The deprecated one-word HeaderMatcher specifiers, each a case-sensitive StringMatcher. */
const LEGACY_HEADER = { exact_match: 'exact', prefix_match: 'prefix', suffix_match: 'suffix', contains_match: 'contains' } as const;

/**
 * HeaderMatcher: string_match | present_match | safe_regex_match | the legacy *_match strings, and invert_match.
 * No specifier at all means "header is present", as in Envoy.
 */
export function decodeHeaderMatcher(o: ProtoObj, path: string): Result<HeaderMatcher, FieldIssue> {
  const issues = new Issues();
  onlyFields(o, path, ['name', 'string_match', 'present_match', 'safe_regex_match', 'invert_match', ...Object.keys(LEGACY_HEADER)], issues);
  const name = required(o, 'name', path, issues);
  let match: HeaderMatcher['match'] = { kind: 'present', present: true };
  const legacy = (Object.keys(LEGACY_HEADER) as (keyof typeof LEGACY_HEADER)[]).find((k) => o[k] !== undefined);
  if (o.string_match !== undefined) {
    const m = issues.take(decodeStringMatcher(o.string_match as ProtoObj, joinPath(path, 'string_match')));
    if (m) match = { kind: 'string', matcher: m };
  } else if (o.present_match !== undefined) {
    match = { kind: 'present', present: bool(o, 'present_match') };
  } else if (o.safe_regex_match !== undefined) {
    const regex = issues.take(decodeRegexMatcher(o.safe_regex_match as ProtoObj, joinPath(path, 'safe_regex_match')));
    if (regex !== undefined) match = { kind: 'string', matcher: { kind: 'regex', regex, ignoreCase: false } };
  } else if (legacy) {
    const value = str(o, legacy);
    if (legacy !== 'exact_match' && value === '') issues.add(joinPath(path, legacy), 'must not be empty');
    match = { kind: 'string', matcher: { kind: LEGACY_HEADER[legacy], value, ignoreCase: false } };
  }
  return issues.result(() => ({ name, match, invert: bool(o, 'invert_match') }));
}

/** QueryParameterMatcher: name, and string_match or present_match (neither = present, as Envoy reads it). */
export function decodeQueryParameterMatcher(o: ProtoObj, path: string): Result<QueryParameterMatcher, FieldIssue> {
  const issues = new Issues();
  onlyFields(o, path, ['name', 'string_match', 'present_match'], issues);
  const name = required(o, 'name', path, issues);
  let match: QueryParameterMatcher['match'] = { kind: 'present' };
  const sm = msg(o, 'string_match');
  if (sm) {
    const m = issues.take(decodeStringMatcher(sm, joinPath(path, 'string_match')));
    if (m) match = { kind: 'string', matcher: m };
  } else if (o.present_match !== undefined && !bool(o, 'present_match')) {
    // Envoy's QueryParameterMatcher has no "absent" form: present_match false would match every request.
    issues.add(joinPath(path, 'present_match'), 'false is not supported (it can only be true)');
  }
  return issues.result(() => ({ name, match }));
}

/** envoy.config.route.v3.RouteMatch: the routes' matcher, also used by jwt_authn's rules. */
export function decodeRouteMatch(o: ProtoObj, path: string): Result<RouteMatch, FieldIssue> {
  const issues = new Issues();
  const clean = onlyFields(o, path, ['prefix', 'path', 'safe_regex', 'case_sensitive', 'headers', 'query_parameters'], issues);
  requireOne(o, path, ['prefix', 'path', 'safe_regex'], clean, issues);
  let pathMatch: PathMatch | undefined;
  const re = msg(o, 'safe_regex');
  if (typeof o.prefix === 'string') pathMatch = { kind: 'prefix', value: o.prefix };
  else if (typeof o.path === 'string') pathMatch = { kind: 'path', value: o.path };
  else if (re) {
    const regex = issues.take(decodeRegexMatcher(re, joinPath(path, 'safe_regex')));
    if (regex !== undefined) pathMatch = { kind: 'regex', regex };
  }
  const headers = list(o, 'headers').map((h, i) => issues.take(decodeHeaderMatcher(h, joinPath(path, `headers[${i}]`))));
  const query = list(o, 'query_parameters').map((q, i) => issues.take(decodeQueryParameterMatcher(q, joinPath(path, `query_parameters[${i}]`))));
  return issues.result(() => ({
    path: pathMatch!,
    caseSensitive: boolValue(o, 'case_sensitive') ?? true,
    headers: headers as HeaderMatcher[],
    ...(query.length && { queryParameters: query as QueryParameterMatcher[] }),
  }));
}
