// Regexes that are literals with `.*` ends run as string tests, and agree with RE2 on every input.
import t from 'tap';
import { compileRegex, literalRegex, re2, requestHeaderGetter, headerReader } from '../../src/model/matchers.js';

t.test('literal forms agree with RE2, newlines included; anything else stays a regex', (t) => {
  const inputs = ['spiffe://td/ns/default/sa/a', '/ns/default/', 'x/ns/default/', '/ns/default/x', 'ns/default', 'a\n/ns/default/', '/ns/default/\nb', '', 'a.b', 'aXb', 'a*b', '\n'];
  for (const regex of ['.*/ns/default/.*', '/ns/default/.*', '.*/ns/default/', '/ns/default/', 'a\\.b', '.*', '.*.*', 'a\\*b']) {
    const fast = literalRegex(regex);
    t.ok(fast, `${regex} is a literal form`);
    const re = new (re2())(`^(?:${regex})$`, 'u');
    for (const s of inputs) t.equal(fast!(s), re.test(s), `${JSON.stringify(regex)} on ${JSON.stringify(s)}`);
    t.equal(compileRegex(regex)(inputs[0]!), re.test(inputs[0]!));
  }
  for (const regex of ['a.b', 'a+', '.*a|b', 'a\\d', 'a\\', 'a\\.*', '(a)', '[a]']) t.equal(literalRegex(regex), undefined, `${regex} is not`);
  t.end();
});

t.test('request headers: pseudo-headers from the request line, repeats joined', (t) => {
  const r = { method: 'GET', path: '/p?q', authority: 'svc', headers: { 'x-a': ['1', '2'], 'x-b': 'v' } };
  const get = requestHeaderGetter(r);
  t.strictSame([':method', ':path', ':authority', 'host', 'x-a', 'x-b', 'x-c'].map(get), ['GET', '/p?q', 'svc', 'svc', '1,2', 'v', undefined]);
  t.strictSame([':method', 'host', 'x-a', 'x-b', 'x-c', 'constructor'].map((n) => headerReader(n)(r)), ['GET', 'svc', '1,2', 'v', undefined, undefined]);
  t.end();
});
