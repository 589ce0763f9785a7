// Route table compiled once per RouteConfiguration: virtual host lookup by authority, then first matching route.
import { compileHeaderMatcher, compileQueryParameterMatcher, compileRegex, queryGetter, type HeaderGetter, type QueryGetter } from '../model/matchers.js';
import type { Rng } from '../core/rng.js';
import type { Route, RouteConfiguration, RouteMatch, VirtualHost } from '../model/types.js';
import { compileHeaderEditor, compilePathRewrite, compileRedirect, type HeaderEditor, type RedirectRequest } from './route-actions.js';

/** One cluster pick of a route, with the header edits that go with it (the ClusterWeight's, then the route's). */
export interface ClusterTarget {
  readonly name: string;
  readonly requestHeaders: HeaderEditor | undefined;
  readonly responseHeaders: HeaderEditor | undefined;
}

export interface CompiledRoute {
  readonly route: Route;
  readonly virtualHost: string;
  /** `query` reads the request's query parameters; needed only by routes with query_parameters. */
  matches(path: string, pathNoQuery: string, get: HeaderGetter, query?: QueryGetter): boolean;
  /** The upstream cluster for one request: the route's cluster, or one of its weighted_clusters by weight. */
  pickCluster(rng: Rng): string;
  /** As pickCluster, with the picked cluster's header edits. */
  pickTarget(rng: Rng): ClusterTarget;
  /** Route-level response header edits: for direct responses, redirects and replies made before a pick. */
  readonly responseHeaders: HeaderEditor | undefined;
  /** The upstream path (prefix_rewrite / regex_rewrite); undefined when the route does not rewrite. */
  readonly rewritePath: ((path: string) => string) | undefined;
  /** For a redirect route: the Location URL of a request. */
  readonly redirectLocation: ((req: RedirectRequest) => string) | undefined;
}

/** The targets of a route, and a cumulative weight table built once per config, so a pick is one draw and a short scan. */
function clusterPicker(r: Route): (rng: Rng) => ClusterTarget {
  const action = r.action.kind === 'route' ? r.action.action : undefined;
  const target = (name: string, own?: Route['headers']): ClusterTarget => ({
    name,
    requestHeaders: compileHeaderEditor([own, r.headers], 'request'),
    responseHeaders: compileHeaderEditor([own, r.headers], 'response'),
  });
  const weighted = action?.weightedClusters;
  if (!weighted) {
    const only = target(action?.cluster ?? '');
    return () => only;
  }
  const live = weighted.filter((c) => c.weight > 0);
  const total = live.reduce((s, c) => s + c.weight, 0);
  let sum = 0;
  const table = live.map((c) => ({ target: target(c.name, c.headers), upTo: (sum += c.weight) }));
  return (rng) => {
    const x = rng.next() * total;
    for (const e of table) if (x < e.upTo) return e.target;
    return table[table.length - 1]!.target;
  };
}

/** A RouteMatch as a predicate, built once per config; also what other RouteMatch users (jwt_authn rules) run. */
export function compileRouteMatch(m: RouteMatch): CompiledRoute['matches'] {
  const headers = m.headers.map(compileHeaderMatcher);
  const query = (m.queryParameters ?? []).map(compileQueryParameterMatcher);
  const p = m.path;
  let pathOk: (path: string, noQuery: string) => boolean;
  if (p.kind === 'regex') {
    // RouteMatch.safe_regex: "the entire path (without the query string) must match the regex".
    const re = compileRegex(p.regex);
    pathOk = (_path, noQuery) => re(noQuery);
  } else if (p.kind === 'path') {
    const v = m.caseSensitive ? p.value : p.value.toLowerCase();
    pathOk = m.caseSensitive ? (_path, nq) => nq === v : (_path, nq) => nq.length === v.length && nq.toLowerCase() === v;
  } else {
    const v = m.caseSensitive ? p.value : p.value.toLowerCase();
    pathOk = m.caseSensitive ? (path) => path.startsWith(v) : (path) => path.length >= v.length && path.slice(0, v.length).toLowerCase() === v;
  }
  return (path, noQuery, get, q) => {
    if (!pathOk(path, noQuery)) return false;
    for (const h of headers) if (!h(get)) return false;
    // No query string: every query parameter matcher fails (none is present).
    for (const qm of query) if (!q || !qm(q)) return false;
    return true;
  };
}

function compileRoute(r: Route, vhost: string): CompiledRoute {
  const pick = clusterPicker(r);
  return {
    route: r,
    virtualHost: vhost,
    pickTarget: pick,
    pickCluster: (rng) => pick(rng).name,
    responseHeaders: compileHeaderEditor([r.headers], 'response'),
    rewritePath: compilePathRewrite(r),
    redirectLocation: r.action.kind === 'redirect' ? compileRedirect(r.action.redirect) : undefined,
    matches: compileRouteMatch(r.match),
  };
}

/** A route with its position in the virtual host: the lower position wins (first match). */
interface Ranked {
  readonly r: CompiledRoute;
  readonly rank: number;
}

/**
 * A radix-trie node over ASCII-lowercased path characters: `label` is the text of the edge into it (chains
 * without routes are merged into one edge, so a walk mostly compares characters rather than looking up
 * children); `routes` are those whose literal prefix ends here, by rank.
 */
interface TrieNode {
  label: string;
  next: Map<number, TrieNode> | undefined;
  readonly routes: Ranked[];
}

/** Merges every route-less node with a single child into that child (once, after all routes are in). */
function compress(node: TrieNode): void {
  if (!node.next) return;
  for (const [c, child] of node.next) {
    let n = child;
    while (n.routes.length === 0 && n.next?.size === 1) {
      const only: TrieNode = n.next.values().next().value!;
      // A flat string (not a concatenation rope): the walk reads it character by character.
      only.label = [n.label, only.label].join('');
      n = only;
    }
    node.next.set(c, n);
    compress(n);
  }
}

const REGEX_SPECIAL = new Set([...'\\.^$|?*+()[]{}']);

/**
 * The literal text every path a route matches starts with, or undefined when there is none to index by. For a
 * regex: the characters before the first metacharacter, minus the last one when a quantifier follows it
 * (`/ab*` only promises `/a`); a pattern with `|` anywhere promises nothing.
 */
function literalPrefix(r: Route): string | undefined {
  const p = r.match.path;
  let lit: string;
  if (p.kind !== 'regex') lit = p.value;
  else {
    if (p.regex.includes('|')) return undefined;
    let i = 0;
    while (i < p.regex.length && !REGEX_SPECIAL.has(p.regex[i]!)) i++;
    const next = p.regex[i];
    lit = p.regex.slice(0, next === '?' || next === '*' || next === '{' ? Math.max(0, i - 1) : i);
  }
  // The trie folds ASCII case only; other characters of a case-insensitive route cannot be walked exactly.
  if (!r.match.caseSensitive && p.kind !== 'regex' && /[^\x00-\x7f]/.test(lit)) return undefined;
  return lit;
}

const lower = (c: number) => (c >= 65 && c <= 90 ? c + 32 : c);

/**
 * A virtual host's routes, indexed so a request does not test all of them: a trie of the routes' literal
 * prefixes (ASCII-lowercased; the route's own matcher then decides case), plus the routes without one
 * (`unindexed`). Walking the request path down the trie finds every route that can match; the answer is the
 * lowest-ranked of those that do, then any lower-ranked unindexed route that does, so first-match order is
 * exactly the configured one. Nothing is allocated per request (unless a route reads the query string).
 */
class CompiledVhost {
  private readonly root: TrieNode = { label: '', next: undefined, routes: [] };
  private readonly unindexed: Ranked[] = [];
  private readonly readsQuery: boolean;

  constructor(
    readonly name: string,
    routes: readonly Route[],
  ) {
    routes.forEach((route, rank) => {
      const r = compileRoute(route, name);
      const lit = literalPrefix(route);
      if (lit === undefined) return this.unindexed.push({ r, rank });
      let node = this.root;
      for (let i = 0; i < lit.length; i++) {
        const c = lower(lit.charCodeAt(i));
        node.next ??= new Map();
        let n = node.next.get(c);
        if (!n) node.next.set(c, (n = { label: String.fromCharCode(c), next: undefined, routes: [] }));
        node = n;
      }
      node.routes.push({ r, rank });
    });
    compress(this.root);
    this.readsQuery = routes.some((r) => r.match.queryParameters?.length);
  }

  /** `q` is the index of '?' in `path` (-1 when there is no query string). */
  match(path: string, noQuery: string, q: number, get: HeaderGetter): CompiledRoute | undefined {
    // Envoy's query_parameters read the query without a fragment (a client should not send one; some do).
    const query = this.readsQuery && q >= 0 ? queryGetter(path, q + 1) : undefined;
    let best: CompiledRoute | undefined;
    let bestRank = Infinity;
    let node: TrieNode | undefined = this.root;
    // `i`: how much of the path the walk has consumed on arriving at `node`.
    for (let i = 0; node; ) {
      const here = node.routes;
      for (let j = 0; j < here.length; j++) {
        const e = here[j]!;
        if (e.rank >= bestRank) break;
        if (e.r.matches(path, noQuery, get, query)) {
          best = e.r;
          bestRank = e.rank;
          break;
        }
      }
      if (i >= path.length) break;
      node = node.next?.get(lower(path.charCodeAt(i)));
      if (!node) break;
      const label = node.label;
      if (i + label.length > path.length) break;
      let k = 1; // the first character was the lookup key
      while (k < label.length && lower(path.charCodeAt(i + k)) === label.charCodeAt(k)) k++;
      if (k < label.length) break;
      i += label.length;
    }
    for (const e of this.unindexed) {
      if (e.rank >= bestRank) break;
      if (e.r.matches(path, noQuery, get, query)) return e.r;
    }
    return best;
  }
}

/**
 * Envoy's virtual host selection order: exact domain, then the longest suffix wildcard ("*.example.com"),
 * then the longest prefix wildcard ("example.*"), then "*". Matching is case-insensitive and includes the port.
 */
export class RouteTable {
  private readonly exact = new Map<string, CompiledVhost>();
  private readonly suffixes: { suffix: string; vh: CompiledVhost }[] = [];
  private readonly prefixes: { prefix: string; vh: CompiledVhost }[] = [];
  private readonly any: CompiledVhost | undefined;

  constructor(rc: RouteConfiguration) {
    let any: CompiledVhost | undefined;
    for (const vh of rc.virtualHosts) {
      const c = this.compileVhost(vh);
      for (const d of vh.domains) {
        const dom = d.toLowerCase();
        if (dom === '*') any = c;
        else if (dom.startsWith('*')) this.suffixes.push({ suffix: dom.slice(1), vh: c });
        else if (dom.endsWith('*')) this.prefixes.push({ prefix: dom.slice(0, -1), vh: c });
        else this.exact.set(dom, c);
      }
    }
    this.suffixes.sort((a, b) => b.suffix.length - a.suffix.length);
    this.prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
    this.any = any;
  }

  private compileVhost(vh: VirtualHost): CompiledVhost {
    return new CompiledVhost(vh.name, vh.routes);
  }

  private vhostFor(authority: string): CompiledVhost | undefined {
    const host = authority.toLowerCase();
    const e = this.exact.get(host);
    if (e) return e;
    // A wildcard must match at least one character (Envoy: "*.foo.com" does not match ".foo.com").
    for (const s of this.suffixes) if (host.length > s.suffix.length && host.endsWith(s.suffix)) return s.vh;
    for (const p of this.prefixes) if (host.length > p.prefix.length && host.startsWith(p.prefix)) return p.vh;
    return this.any;
  }

  match(authority: string, path: string, get: HeaderGetter): CompiledRoute | undefined {
    const vh = this.vhostFor(authority);
    if (!vh) return undefined;
    const q = path.indexOf('?');
    const noQuery = q < 0 ? path : path.slice(0, q);
    return vh.match(path, noQuery, q, get);
  }
}
