// What a matched route does to a request besides picking a cluster: header mutations, path rewrites, redirects.
// Everything here is compiled once per route table; the per-request parts are plain loops over frozen arrays.
import type { OutgoingHttpHeaders } from 'node:http';
import { compileRegexRewrite } from '../model/matchers.js';
import type { HeaderMutations, HeaderValueOption, RedirectAction, Route } from '../model/types.js';
import type { LocalReply } from './local-reply.js';

/** Applies one direction's header mutations (request or response) to an outgoing header object, in place. */
export type HeaderEditor = (h: OutgoingHttpHeaders) => void;

function addHeader(h: OutgoingHttpHeaders, o: HeaderValueOption): void {
  // keep_empty_value is false by default: Envoy adds nothing for an empty value.
  if (o.value === '') return;
  const cur = h[o.name];
  switch (o.appendAction) {
    case 'APPEND_IF_EXISTS_OR_ADD':
      // Another entry of the same name, as Envoy adds it (HTTP/1.1 sends one line per value).
      if (cur === undefined) h[o.name] = o.value;
      else h[o.name] = Array.isArray(cur) ? [...cur, o.value] : [String(cur), o.value];
      return;
    case 'ADD_IF_ABSENT':
      if (cur === undefined) h[o.name] = o.value;
      return;
    case 'OVERWRITE_IF_EXISTS_OR_ADD':
      h[o.name] = o.value;
      return;
    case 'OVERWRITE_IF_EXISTS':
      if (cur !== undefined) h[o.name] = o.value;
      return;
  }
}

/**
 * One direction's edits over several levels, most specific first (a ClusterWeight's, then the Route's), as
 * Envoy's finalizeRequestHeaders / finalizeResponseHeaders apply them; each level removes, then adds. So by
 * default the outer level's overwrite wins (Envoy's most_specific_header_mutations_wins = false).
 * Undefined when there is nothing to do, so the request path can skip the call.
 */
export function compileHeaderEditor(levels: readonly (HeaderMutations | undefined)[], dir: 'request' | 'response'): HeaderEditor | undefined {
  const steps = levels.flatMap((l) => {
    if (!l) return [];
    const remove = dir === 'request' ? l.requestHeadersToRemove : l.responseHeadersToRemove;
    const add = dir === 'request' ? l.requestHeadersToAdd : l.responseHeadersToAdd;
    return remove.length || add.length ? [{ remove, add }] : [];
  });
  if (steps.length === 0) return undefined;
  return (h) => {
    for (const s of steps) {
      for (const n of s.remove) delete h[n];
      for (const o of s.add) addHeader(h, o);
    }
  };
}

/**
 * The upstream path of a route (RouteAction.prefix_rewrite / regex_rewrite); undefined = unchanged. As in
 * Envoy, prefix_rewrite replaces what was matched: the prefix of a prefix match, the whole path of a path or
 * safe_regex match (Istio's `rewrite.uri` relies on this: with an exact or regex uri it replaces the path).
 * regex_rewrite substitutes within the path. The query string is kept either way.
 */
export function compilePathRewrite(r: Route): ((path: string) => string) | undefined {
  if (r.action.kind !== 'route') return undefined;
  const { prefixRewrite, regexRewrite } = r.action.action;
  const splitQuery = (path: string): [string, string] => {
    const q = path.indexOf('?');
    return q < 0 ? [path, ''] : [path.slice(0, q), path.slice(q)];
  };
  if (regexRewrite) {
    const rewrite = compileRegexRewrite(regexRewrite);
    return (path) => {
      const [p, q] = splitQuery(path);
      return rewrite(p) + q;
    };
  }
  if (prefixRewrite === undefined) return undefined;
  const m = r.match.path;
  if (m.kind === 'prefix') {
    const n = m.value.length;
    return (path) => prefixRewrite + path.slice(n);
  }
  return (path) => prefixRewrite + splitQuery(path)[1];
}

/** What a redirect needs to know about the request. */
export interface RedirectRequest {
  /** The request's scheme: x-forwarded-proto when present, else the downstream connection's. */
  readonly scheme: string;
  readonly authority: string;
  readonly path: string;
}

function splitPort(authority: string): [host: string, port: string] {
  // An IPv6 literal keeps its colons: the port is only after "]".
  const colon = authority.lastIndexOf(':');
  if (colon < 0 || authority.lastIndexOf(']') > colon) return [authority, ''];
  return [authority.slice(0, colon), authority.slice(colon)];
}

/**
 * RedirectAction -> the Location URL, by Envoy's rules (RouteEntryImplBase::newUri / processRequestHost): the
 * request's host keeps its port unless port_redirect replaces it, or the scheme changes and the port is the
 * old scheme's default (":80" for http, ":443" for https); host_redirect replaces the host as written;
 * path_redirect replaces the path, and its own query string (if any) replaces the request's; strip_query drops it.
 */
export function compileRedirect(r: RedirectAction): (req: RedirectRequest) => string {
  return (req) => {
    const scheme = r.scheme ?? req.scheme;
    let host: string;
    if (r.host !== undefined) host = r.host;
    else {
      const [h, port] = splitPort(req.authority);
      const defaultPort = (req.scheme === 'https' && port === ':443') || (req.scheme === 'http' && port === ':80');
      host = r.port !== undefined || (scheme !== req.scheme && defaultPort) ? h : req.authority;
    }
    if (r.port !== undefined) host = `${splitPort(host)[0]}:${r.port}`;
    const q = req.path.indexOf('?');
    const reqPath = q < 0 ? req.path : req.path.slice(0, q);
    const reqQuery = q < 0 || r.stripQuery ? '' : req.path.slice(q);
    let path = reqPath + reqQuery;
    if (r.path !== undefined) path = r.path.includes('?') ? r.path : r.path + reqQuery;
    return `${scheme}://${host}${path}`;
  };
}

/** The reply a redirect route sends: its status, a Location header and no body (details as Envoy logs them). */
export function redirectReply(status: number, location: string): LocalReply {
  // Rendered as a direct response with an empty body: no JSON error document for what is not an error.
  return { status, code: 'direct_response', message: '', flag: '-', details: 'direct_response', headers: { location } };
}
