// VirtualService http routes: the routing fields into the model, and bad config refused with file:line:field.
import t from 'tap';
import { check, doc, valid, withBase } from './helpers.js';

/** A reviews VirtualService with one http route written as `route` (block style, indented 2); its first line is line 8 of mesh/x.yaml. */
const vsWith = (route: string) => withBase(doc('VirtualService', 'r', `  hosts: [reviews]\n  http:\n${route}`));
const httpOf = (route: string) => valid(vsWith(route)).virtualServices[0]!.http[0]!;
const P = 'mesh/x.yaml';

t.test('matches: uri, headers, queryParams, method, authority, ignoreUriCase, withoutHeaders', (t) => {
  const h = httpOf(`  - match:
    - uri: {prefix: /api}
      headers: {X-User: {exact: ann}}
      queryParams: {v: {regex: "[12]"}, Debug: {prefix: t}}
      method: {exact: POST}
      authority: {prefix: reviews}
      ignoreUriCase: true
      withoutHeaders: {X-Block: {exact: "1"}}
    - uri: {exact: /b}
      ignoreUriCase: false
    route: [{destination: {host: reviews}}]
`);
  t.strictSame(h.match, [
    {
      uri: { prefix: '/api' },
      headers: { 'x-user': { exact: 'ann' } },
      queryParams: { v: { regex: '[12]' }, Debug: { prefix: 't' } },
      method: { exact: 'POST' },
      authority: { prefix: 'reviews' },
      ignoreUriCase: true,
      withoutHeaders: { 'x-block': { exact: '1' } },
    },
    { uri: { exact: '/b' }, headers: {} },
  ]);
  t.end();
});

t.test('actions: redirect, directResponse, rewrite, headers at route and destination level', (t) => {
  t.strictSame(httpOf('  - redirect: {uri: /n, authority: "b.example:8080", scheme: https, port: 8443, redirectCode: 308}\n').redirect, { uri: '/n', authority: 'b.example:8080', port: 8443, scheme: 'https', redirectCode: 308 });
  t.strictSame(httpOf('  - redirect: {derivePort: FROM_REQUEST_PORT}\n').redirect, { derivePort: 'FROM_REQUEST_PORT', redirectCode: 301 });
  t.strictSame(httpOf('  - directResponse: {status: 503, body: {string: down}}\n').directResponse, { status: 503, body: 'down' });
  t.strictSame(httpOf('  - directResponse: {status: 204}\n').directResponse, { status: 204 });
  const h = httpOf(`  - rewrite: {uri: /v2, authority: internal}
    headers:
      request: {set: {X-A: "1"}, add: {x-b: "50%% off"}, remove: [X-C]}
      response: {remove: [server]}
    route:
    - destination: {host: reviews, subset: v1}
      weight: 90
      headers: {response: {set: {x-v: v1}}}
    - destination: {host: reviews, subset: v2}
      weight: 10
`);
  t.strictSame(h.rewrite, { uri: '/v2', authority: 'internal' });
  t.strictSame(h.headers, { request: { set: { 'x-a': '1' }, add: { 'x-b': '50%% off' }, remove: ['x-c'] }, response: { remove: ['server'] } });
  t.strictSame(h.route[0]!.headers, { response: { set: { 'x-v': 'v1' } } });
  t.equal(h.route[1]!.headers, undefined);
  t.strictSame(httpOf('  - rewrite: {uriRegexRewrite: {match: "^/a/(.*)$", rewrite: "/b/\\\\1"}}\n    route: [{destination: {host: reviews}}]\n').rewrite, { uriRegexRewrite: { match: '^/a/(.*)$', rewrite: '/b/\\1' } });
  t.end();
});

t.test('bad config is refused with file:line:field: weights, regexes, durations, actions, headers', (t) => {
  t.strictSame(check(vsWith('  - route:\n    - {destination: {host: reviews, subset: v1}, weight: 90}\n    - {destination: {host: reviews, subset: v2}, weight: 20}\n')), [
    `${P}:8 VirtualService r: spec.http[0].route: weights add up to 110, not 100`,
  ]);
  t.strictSame(check(vsWith('  - match: [{uri: {regex: "a)|(b"}}]\n    route: [{destination: {host: reviews}}]\n')), [
    `${P}:8 VirtualService r: spec.http[0].match[0].uri.regex: not a valid RE2 regular expression: unexpected ): a)|(b`,
  ]);
  t.strictSame(check(vsWith('  - match: [{headers: {x: {regex: "(?=a)"}}, queryParams: {q: {regex: "(a)\\\\1"}}}]\n    route: [{destination: {host: reviews}}]\n')), [
    `${P}:8 VirtualService r: spec.http[0].match[0].headers.x.regex: not a valid RE2 regular expression: invalid perl operator: (?=`,
    `${P}:8 VirtualService r: spec.http[0].match[0].queryParams.q.regex: not a valid RE2 regular expression: invalid escape sequence: \\1`,
  ]);
  t.strictSame(check(vsWith('  - route: [{destination: {host: reviews}}]\n    timeout: -1s\n')), [
    `${P}:9 VirtualService r: spec.http[0].timeout: invalid duration "-1s" (write it as Istio does: 5s, 250ms, 1m30s, 1h)`,
  ]);
  t.strictSame(check(vsWith('  - name: nothing\n')), [`${P}:8 VirtualService r: spec.http[0]: one of route, redirect, directResponse is required`]);
  t.strictSame(check(vsWith('  - route: [{destination: {host: reviews}}]\n    redirect: {uri: /x}\n    directResponse: {status: 200}\n')), [
    `${P}:9 VirtualService r: spec.http[0].redirect: only one of route, redirect, directResponse may be set`,
  ]);
  t.strictSame(check(vsWith('  - redirect: {redirectCode: 300, port: 1, derivePort: FROM_REQUEST_PORT, uri: x, scheme: "1x", authority: "a/b"}\n    rewrite: {uri: /y}\n')), [
    `${P}:8 VirtualService r: spec.http[0].redirect.derivePort: only one of port, derivePort may be set`,
    `${P}:8 VirtualService r: spec.http[0].redirect.redirectCode: 300 is not one of 301, 302, 303, 307, 308`,
    `${P}:8 VirtualService r: spec.http[0].redirect.uri: must start with /`,
    `${P}:8 VirtualService r: spec.http[0].redirect.authority: "a/b" is not a host[:port]`,
    `${P}:8 VirtualService r: spec.http[0].redirect.scheme: "1x" is not a URI scheme`,
    `${P}:9 VirtualService r: spec.http[0].rewrite: cannot be used with a redirect`,
  ]);
  t.strictSame(check(vsWith('  - redirect: {}\n')), [`${P}:8 VirtualService r: spec.http[0].redirect: must set at least one of uri, authority, scheme, port, derivePort`]);
  t.strictSame(check(vsWith('  - directResponse: {status: 600, body: {bytes: eA==}}\n  - directResponse: {}\n')), [
    `${P}:8 VirtualService r: spec.http[0].directResponse.status: must be 200..599`,
    `${P}:8 VirtualService r: spec.http[0].directResponse.body.bytes: not supported yet`,
    `${P}:9 VirtualService r: spec.http[1].directResponse.status: is required`,
  ]);
  t.strictSame(check(vsWith('  - route: []\n')), [`${P}:8 VirtualService r: spec.http[0].route: must list at least one destination`]);
  t.strictSame(check(vsWith('  - route: [{destination: {host: reviews}}]\n    rewrite: {uri: /a, uriRegexRewrite: {match: "(", rewrite: x}}\n  - route: [{destination: {host: reviews}}]\n    rewrite: {uriRegexRewrite: {match: a}}\n')), [
    `${P}:9 VirtualService r: spec.http[0].rewrite.uriRegexRewrite: only one of uri, uriRegexRewrite may be set`,
    `${P}:9 VirtualService r: spec.http[0].rewrite.uriRegexRewrite.match: not a valid RE2 regular expression: missing ): (`,
    `${P}:11 VirtualService r: spec.http[1].rewrite.uriRegexRewrite.rewrite: is required`,
  ]);
  t.strictSame(
    check(
      vsWith(`  - headers:
      request: {set: {"a b": x, y: "%REQ(:path)%", z: "a\\nb"}, remove: [host]}
      response: {set: {host: x}, get: {}}
    route:
    - destination: {host: reviews}
      headers: {request: {set: {host: other}}}
`),
    ),
    [
      `${P}:9 VirtualService r: spec.http[0].headers.request.set["a b"]: "a b" is not a header name (letters, digits, '-' and '_')`,
      `${P}:9 VirtualService r: spec.http[0].headers.request.set.y: "%REQ(:path)%": Envoy's %COMMAND% operators are not supported; write %% for a literal %`,
      `${P}:9 VirtualService r: spec.http[0].headers.request.set.z: must not contain NUL, CR or LF`,
      `${P}:9 VirtualService r: spec.http[0].headers.request.remove[0]: host can only be set on a route's request headers (it becomes the authority rewrite)`,
      `${P}:10 VirtualService r: spec.http[0].headers.response.get: unknown field`,
      `${P}:10 VirtualService r: spec.http[0].headers.response.set.host: host can only be set on a route's request headers (it becomes the authority rewrite)`,
      `${P}:13 VirtualService r: spec.http[0].route[0].headers.request.set.host: host can only be set on a route's request headers (it becomes the authority rewrite)`,
    ],
  );
  t.strictSame(check(vsWith('  - redirect: 3\n  - directResponse: x\n  - route: [{destination: {host: reviews}, headers: 1}]\n    rewrite: [1]\n    headers: {request: 2, response: {remove: [a], set: null}}\n  - route: [{destination: {host: reviews}}]\n    rewrite: {uriRegexRewrite: 4}\n')), [
    `${P}:8 VirtualService r: spec.http[0].redirect: expected an object, got 3`,
    `${P}:9 VirtualService r: spec.http[1].directResponse: expected an object, got "x"`,
    `${P}:10 VirtualService r: spec.http[2].route[0].headers: expected an object, got 1`,
    `${P}:11 VirtualService r: spec.http[2].rewrite: expected an object, got a list`,
    `${P}:12 VirtualService r: spec.http[2].headers.request: expected an object, got 2`,
    `${P}:14 VirtualService r: spec.http[3].rewrite.uriRegexRewrite: expected an object, got 4`,
  ]);
  t.end();
});
