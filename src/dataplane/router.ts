// Route table compiled once per RouteConfiguration: virtual host lookup by authority, then first matching route.
import { compileHeaderMatcher, compileRegex, type HeaderGetter } from '../model/matchers.js';
import type { Rng } from '../core/rng.js';
import type { Route, RouteConfiguration, VirtualHost } from '../model/types.js';

export interface CompiledRoute {
  readonly route: Route;
  readonly virtualHost: string;
  matches(path: string, pathNoQuery: string, get: HeaderGetter): boolean;
  /** The upstream cluster for one request: the route's cluster, or one of its weighted_clusters by weight. */
  pickCluster(rng: Rng): string;
}

/** weighted_clusters as a cumulative table built once per config, so a pick is one draw and a short scan. */
function clusterPicker(r: Route): (rng: Rng) => string {
  const action = r.action.kind === 'route' ? r.action.action : undefined;
  const weighted = action?.weightedClusters;
  if (!weighted) {
    const cluster = action?.cluster ?? '';
    return () => cluster;
  }
  const live = weighted.filter((c) => c.weight > 0);
  const total = live.reduce((s, c) => s + c.weight, 0);
  let sum = 0;
  const table = live.map((c) => ({ name: c.name, upTo: (sum += c.weight) }));
  return (rng) => {
    const x = rng.next() * total;
    return (table.find((e) => x < e.upTo) ?? table[table.length - 1]!).name;
  };
}

interface CompiledVhost {
  readonly name: string;
  readonly routes: readonly CompiledRoute[];
}

function compileRoute(r: Route, vhost: string): CompiledRoute {
  const headers = r.match.headers.map(compileHeaderMatcher);
  const p = r.match.path;
  let pathOk: (path: string, noQuery: string) => boolean;
  if (p.kind === 'regex') {
    // RouteMatch.safe_regex: "the entire path (without the query string) must match the regex".
    const re = compileRegex(p.regex);
    pathOk = (_path, noQuery) => re(noQuery);
  } else if (p.kind === 'path') {
    const v = r.match.caseSensitive ? p.value : p.value.toLowerCase();
    pathOk = r.match.caseSensitive ? (_path, nq) => nq === v : (_path, nq) => nq.toLowerCase() === v;
  } else {
    const v = r.match.caseSensitive ? p.value : p.value.toLowerCase();
    pathOk = r.match.caseSensitive ? (path) => path.startsWith(v) : (path) => path.toLowerCase().startsWith(v);
  }
  const pick = clusterPicker(r);
  return {
    route: r,
    virtualHost: vhost,
    pickCluster: pick,
    matches(path, noQuery, get) {
      if (!pathOk(path, noQuery)) return false;
      for (const h of headers) if (!h(get)) return false;
      return true;
    },
  };
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
    return { name: vh.name, routes: vh.routes.map((r) => compileRoute(r, vh.name)) };
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
    for (const r of vh.routes) if (r.matches(path, noQuery, get)) return r;
    return undefined;
  }
}
