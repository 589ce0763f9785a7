// Matchers: RE2 validation, the JS fast path and its exact subset (checked against RE2 itself), rewrites, query and header matchers.
import t from 'tap';
import {
  compileHeaderMatcher,
  compileQueryParameterMatcher,
  compileRegex,
  compileRegexRewrite,
  compileStringMatcher,
  jsEquivalent,
  queryGetter,
  re2,
  re2Problem,
} from '../../src/model/matchers.js';

t.test('RE2 decides validity: what RE2 rejects is an error with its reason, anchors cannot be escaped', (t) => {
  t.equal(re2Problem('/v[0-9]+'), undefined);
  t.equal(re2Problem('a)|(b'), 'unexpected ): a)|(b');
  t.match(re2Problem('(?=x)'), /invalid perl operator/);
  t.match(re2Problem('(a)\\1'), /invalid escape sequence/);
  t.throws(() => compileRegex('(?<!x)y'));
  // Wrapped in ^(?:…)$ the pattern `a)|(b` would be valid; it must be refused before it is ever wrapped.
  t.end();
});

t.test('the JS subset: what it lets through, and what stays on RE2', (t) => {
  const ok = ['/api/v[0-9]+', '/users/[^/]+', '.*\\.png', '/a/(b|c)/d*', 'x{3}y{2,2}z{1,}', '[a-z\\d\\-]+', 'a+?', '^/x$', '\\/\\.', '\\n\\t'];
  for (const p of ok) t.not(jsEquivalent(p), undefined, `JS: ${p}`);
  const re2Only = [
    '\\s+', // Perl \s is not JS's \s
    'a\\b', // word boundary: ASCII in RE2, may differ
    '\\pL', // single-letter Unicode class
    '(?i)abc', // flags
    '(?P<n>a)',
    '[[:alpha:]]+',
    '[]a]', // a leading ] is literal to RE2 only
    '(ab)+', // quantified group
    '[a-z]+/[0-9]+', // two variable quantifiers
    'a??b*', // two variable quantifiers
    '\\x{41}',
    '\\Qa.b\\E',
    '\\z',
    '*a', // a quantifier with nothing before it
    '(a)?', // quantified group
    'a{2,3', // not a repetition
    '[abc', // unterminated class
    'a\\', // trailing backslash
    '\\',
  ];
  for (const p of re2Only) t.equal(jsEquivalent(p), undefined, `RE2: ${p}`);
  t.equal(jsEquivalent('a.b'), 'a[^\\n]b', "'.' spelled as RE2 means it: anything but \\n");
  t.equal(jsEquivalent('(?:a|b)c'), '(?:a|b)c');
  t.end();
});

t.test('both engines give the same answer on a corpus of patterns and inputs', (t) => {
  const RE2 = re2();
  const patterns = ['/api/v[0-9]+', '/users/[^/]+', '.*\\.png', '/a/(b|c)/d*', 'x{3}y{2,2}z{1,}', '[a-z\\d\\-]+', 'a.c', '(a|ab)(c|bcd)', '\\w+@\\W', '[^a]b', 'a}', 'a]'];
  const inputs = ['', '/api/v1', '/api/v', '/api/v12x', '/users/ann', '/users/', '/users/a/b', 'x.png', '.png', 'png', '/a/b/dd', '/a/c/', '/a/d/', 'xxxyyz', 'xxxyyzzz', 'xxyyz', 'ab-9', 'AB', 'a\nc', 'a\rc', 'a\u2028c', 'abcd', 'abc', 'ab_c@!', '\nb', 'a}', 'a]'];
  let compared = 0;
  for (const p of patterns) {
    const fast = compileRegex(p);
    const slow = new RE2(`^(?:${p})$`, 'u');
    for (const s of inputs) {
      // U+2028 in a TAP message would read as a line break.
      t.equal(fast(s), slow.test(s), `${JSON.stringify(p)} on ${JSON.stringify(s).replace(/\u2028/g, '\\u2028')}`);
      compared++;
    }
  }
  t.ok(compared > 300);
  t.end();
});

t.test('a pattern outside the subset still matches, on RE2', (t) => {
  const m = compileRegex('\\s+/[a-z]+/[0-9]+');
  t.equal(m(' /ab/12'), true);
  t.equal(m('/ab/12'), false);
  t.end();
});

t.test('regex_rewrite: every match replaced, \\N groups, literal $ and \\\\, on both engines', (t) => {
  const js = compileRegexRewrite({ regex: '/([a-z]+)', substitution: '/$\\1\\\\' });
  t.equal(js('/ab/cd'), '/$ab\\/$cd\\');
  const slow = compileRegexRewrite({ regex: '\\s([a-z]+)(\\d)', substitution: '<\\2\\1>' });
  t.equal(slow('x ab1 cd2'), 'x<1ab><2cd>');
  t.end();
});

t.test('string matchers, header matchers (invert on a missing header matches), query parameters', (t) => {
  t.equal(compileStringMatcher({ kind: 'suffix', value: 'X', ignoreCase: true })('abx'), true);
  t.equal(compileStringMatcher({ kind: 'contains', value: 'b', ignoreCase: false })('abc'), true);
  t.equal(compileStringMatcher({ kind: 'regex', regex: 'a+', ignoreCase: false })('aa'), true);
  const without = compileHeaderMatcher({ name: 'X-Block', match: { kind: 'string', matcher: { kind: 'exact', value: '1', ignoreCase: false } }, invert: true });
  t.equal(without(() => undefined), true, 'absent: an inverted value matcher holds (Envoy, Istio withoutHeaders)');
  t.equal(without((n) => (n === 'x-block' ? '1' : undefined)), false);
  t.equal(without((n) => (n === 'x-block' ? '0' : undefined)), true);
  const q = queryGetter('a=1&b&a=2&&c=x%20y');
  t.equal(q('a'), '1', 'first value, as Envoy');
  t.equal(q('b'), '', 'no "=" is an empty value');
  t.equal(q('c'), 'x%20y', 'not percent-decoded');
  t.equal(q('d'), undefined);
  const present = compileQueryParameterMatcher({ name: 'b', match: { kind: 'present' } });
  t.equal(present(q), true);
  t.equal(present(queryGetter('')), false);
  const exact = compileQueryParameterMatcher({ name: 'a', match: { kind: 'string', matcher: { kind: 'exact', value: '1', ignoreCase: false } } });
  t.equal(exact(q), true);
  t.equal(exact(queryGetter('a=2')), false);
  t.equal(exact(queryGetter('z=1')), false);
  t.end();
});
