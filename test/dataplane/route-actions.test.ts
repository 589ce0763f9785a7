// Route actions: header edits (every append action, levels in Envoy's order), path rewrites by match kind, redirect URLs.
import t from 'tap';
import type { OutgoingHttpHeaders } from 'node:http';
import { compileHeaderEditor, compilePathRewrite, compileRedirect, redirectReply } from '../../src/dataplane/route-actions.js';
import type { HeaderMutations, PathMatch, RedirectAction, Route, RouteAction } from '../../src/model/types.js';

const none = { requestHeadersToAdd: [], requestHeadersToRemove: [], responseHeadersToAdd: [], responseHeadersToRemove: [] };
const muts = (m: Partial<HeaderMutations>): HeaderMutations => ({ ...none, ...m });

t.test('header edits: each append action, empty values skipped, remove before add, cluster level before route level', (t) => {
  const edit = compileHeaderEditor(
    [
      muts({
        requestHeadersToAdd: [
          { name: 'a', value: '1', appendAction: 'APPEND_IF_EXISTS_OR_ADD' },
          { name: 'b', value: 'new', appendAction: 'ADD_IF_ABSENT' },
          { name: 'c', value: 'new', appendAction: 'ADD_IF_ABSENT' },
          { name: 'd', value: 'new', appendAction: 'OVERWRITE_IF_EXISTS' },
          { name: 'e', value: 'new', appendAction: 'OVERWRITE_IF_EXISTS' },
          { name: 'f', value: '', appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
          { name: 'g', value: '2', appendAction: 'APPEND_IF_EXISTS_OR_ADD' },
          { name: 'h', value: 'cluster', appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
          { name: 'k', value: 'x', appendAction: 'APPEND_IF_EXISTS_OR_ADD' },
        ],
        requestHeadersToRemove: ['gone'],
      }),
      undefined,
      muts({ requestHeadersToAdd: [{ name: 'h', value: 'route', appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' }], requestHeadersToRemove: ['k'] }),
    ],
    'request',
  )!;
  const h: OutgoingHttpHeaders = { b: 'old', d: 'old', g: ['0', '1'], gone: 'x' };
  edit(h);
  t.strictSame(h, { a: '1', b: 'old', c: 'new', d: 'new', g: ['0', '1', '2'], h: 'route' }, 'the route level runs last, so its overwrite wins and its remove sees the cluster add');
  const two: OutgoingHttpHeaders = { a: '0' };
  edit(two);
  t.strictSame(two.a, ['0', '1'], 'append adds a second value');
  t.equal(compileHeaderEditor([muts({ responseHeadersToAdd: [{ name: 'x', value: 'y', appendAction: 'APPEND_IF_EXISTS_OR_ADD' }] })], 'request'), undefined, 'nothing for this direction: no editor');
  const resp = compileHeaderEditor([muts({ responseHeadersToRemove: ['server'] })], 'response')!;
  const r: OutgoingHttpHeaders = { server: 'app', 'x-a': '1' };
  resp(r);
  t.strictSame(r, { 'x-a': '1' });
  t.end();
});

const routeOf = (path: PathMatch, action: Partial<RouteAction>): Route => ({
  name: '',
  match: { path, caseSensitive: true, headers: [] },
  action: { kind: 'route', action: { cluster: 'c', timeoutMs: 0, hashPolicy: [], ...action } },
});

t.test("path rewrites follow Envoy's prefix_rewrite rule per match kind, and keep the query", (t) => {
  t.equal(compilePathRewrite(routeOf({ kind: 'prefix', value: '/api/' }, { prefixRewrite: '/' }))!('/api/x?q=1'), '/x?q=1');
  t.equal(compilePathRewrite(routeOf({ kind: 'path', value: '/old' }, { prefixRewrite: '/new' }))!('/old?q=1'), '/new?q=1', 'exact match: the whole path');
  t.equal(compilePathRewrite(routeOf({ kind: 'regex', regex: '/i/[0-9]+' }, { prefixRewrite: '/item' }))!('/i/42'), '/item', 'regex match: the whole path');
  t.equal(compilePathRewrite(routeOf({ kind: 'prefix', value: '/' }, { regexRewrite: { regex: '^/a/([^/]+)$', substitution: '/b/\\1' } }))!('/a/x?z=/a/y'), '/b/x?z=/a/y', 'regex_rewrite never touches the query');
  t.equal(compilePathRewrite(routeOf({ kind: 'prefix', value: '/' }, {})), undefined);
  t.equal(compilePathRewrite({ ...routeOf({ kind: 'prefix', value: '/' }, {}), action: { kind: 'direct_response', status: 200 } }), undefined);
  t.end();
});

t.test("redirect Location by Envoy's rules: scheme, host, port, path, query", (t) => {
  const loc = (r: Partial<RedirectAction>, authority = 'svc:9080', path = '/p?q=1', scheme = 'http') => compileRedirect({ status: 301, stripQuery: false, ...r })({ scheme, authority, path });
  t.equal(loc({ path: '/n' }), 'http://svc:9080/n?q=1', 'path replaced, query kept');
  t.equal(loc({ path: '/n?x=2' }), 'http://svc:9080/n?x=2', "a query in path_redirect replaces the request's");
  t.equal(loc({ stripQuery: true }), 'http://svc:9080/p');
  t.equal(loc({ host: 'other' }), 'http://other/p?q=1', 'host_redirect replaces host and port');
  t.equal(loc({ port: 8443 }), 'http://svc:8443/p?q=1');
  t.equal(loc({ host: 'other', port: 1 }), 'http://other:1/p?q=1');
  t.equal(loc({ scheme: 'https' }, 'svc:80'), 'https://svc/p?q=1', "the old scheme's default port is dropped when the scheme changes");
  t.equal(loc({ scheme: 'http' }, 'svc:443', '/', 'https'), 'http://svc/');
  t.equal(loc({ scheme: 'https' }, 'svc:9080'), 'https://svc:9080/p?q=1', 'another port is kept');
  t.equal(loc({}, 'svc:80'), 'http://svc:80/p?q=1', 'same scheme: the port stays as written');
  t.equal(loc({ port: 8080 }, '[::1]:80'), 'http://[::1]:8080/p?q=1', 'IPv6 literal');
  t.equal(loc({ port: 8080 }, '[::1]'), 'http://[::1]:8080/p?q=1');
  t.strictSame(redirectReply(302, 'http://x/'), { status: 302, code: 'direct_response', message: '', flag: '-', details: 'direct_response', headers: { location: 'http://x/' } });
  t.end();
});
