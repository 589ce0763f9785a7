// Decodes a VirtualService spec: hosts and HTTP routes (matches, weighted destinations, redirect, direct response,
// rewrite, header edits, timeout, retries), checked as istiod's validation does.
import { STATUS_CODES } from 'node:http';
import { re2Problem } from '../../model/matchers.js';
import { RETRY_ON_GRPC, RETRY_ON_HTTP } from '../../model/types.js';
import { joinPath } from '../../xds/json.js';
import { httpFault } from './fault.js';
import { hostProblem, readExportTo, resolveHost } from './hosts.js';
import { MIRROR_FIELDS, httpMirrors } from './mirror.js';
import { Reader, defined, dnsLabelProblem, type Shape } from './schema.js';
import type {
  Destination,
  HTTPDirectResponse,
  HTTPMatchRequest,
  HTTPRedirect,
  HTTPRetry,
  HTTPRewrite,
  HTTPRoute,
  HTTPRouteDestination,
  HeaderEdits,
  HeaderOperations,
  StringMatch,
  VirtualService,
} from './types.js';

/** istio.networking.v1.VirtualService; TCP and TLS routes arrive with a later issue. */
const VIRTUAL_SERVICE: Shape = { fields: ['hosts', 'gateways', 'http', 'exportTo'], notYet: ['tcp', 'tls'] };
const HTTP_ROUTE: Shape = {
  fields: ['name', 'match', 'route', 'redirect', 'directResponse', 'rewrite', 'headers', 'timeout', 'retries', 'fault', ...MIRROR_FIELDS],
  notYet: ['delegate', 'corsPolicy'],
};
const HTTP_MATCH: Shape = {
  fields: ['name', 'uri', 'headers', 'port', 'method', 'authority', 'queryParams', 'ignoreUriCase', 'withoutHeaders'],
  notYet: ['scheme', 'sourceLabels', 'gateways', 'sourceNamespace', 'statPrefix'],
};
const ROUTE_DESTINATION: Shape = { fields: ['destination', 'weight', 'headers'] };
const HEADERS: Shape = { fields: ['request', 'response'] };
const HEADER_OPERATIONS: Shape = { fields: ['set', 'add', 'remove'] };
const HTTP_REDIRECT: Shape = { fields: ['uri', 'authority', 'port', 'derivePort', 'scheme', 'redirectCode'] };
const HTTP_DIRECT_RESPONSE: Shape = { fields: ['status', 'body'] };
const HTTP_BODY: Shape = { fields: ['string'], notYet: ['bytes'] };
const HTTP_REWRITE: Shape = { fields: ['uri', 'authority', 'uriRegexRewrite'] };
const REGEX_REWRITE: Shape = { fields: ['match', 'rewrite'] };
/** The redirect codes Envoy's RedirectAction.response_code can send (istiod maps exactly these). */
const REDIRECT_CODES = [301, 302, 303, 307, 308] as const;
const DESTINATION: Shape = { fields: ['host', 'subset', 'port'] };
const PORT_SELECTOR: Shape = { fields: ['number'] };
const STRING_MATCH: Shape = { fields: ['exact', 'prefix', 'regex'] };
const HTTP_RETRY: Shape = { fields: ['attempts', 'perTryTimeout', 'retryOn', 'retryRemoteLocalities', 'retryIgnorePreviousHosts', 'backoff'] };
/** Istio's supportedRetryOnPolicies: exactly Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on conditions. */
const RETRY_CONDITIONS: ReadonlySet<string> = new Set([...RETRY_ON_HTTP, ...RETRY_ON_GRPC]);

/** Istio's header-name rule (ValidateHTTPHeaderName). */
const HEADER_NAME = /^[-_A-Za-z0-9]+$/;

export type VirtualServiceSpec = Omit<VirtualService, 'kind' | 'meta'>;

export function decodeVirtualService(r: Reader, v: unknown, path: string, ns: string, domainSuffix: string): VirtualServiceSpec | undefined {
  const o = r.object(v, path, VIRTUAL_SERVICE);
  if (!o) return undefined;
  const hosts = r.need(o, 'hosts', path) ? r.strings(o, 'hosts', path, hostProblem) : [];
  if (Array.isArray(o.hosts) && o.hosts.length === 0) r.issue(joinPath(path, 'hosts'), 'must list at least one host');
  const fqdns = hosts.map((h) => resolveHost(h, ns, domainSuffix));
  fqdns.forEach((f, i) => {
    if (fqdns.indexOf(f) < i) r.issue(joinPath(path, `hosts[${i}]`), `duplicate host ${f}`);
  });
  // Without `gateways` a VirtualService applies to the sidecars ("mesh"); Outrigger has no gateways yet.
  r.strings(o, 'gateways', path, (g) => (g === 'mesh' ? undefined : `gateway ${JSON.stringify(g)}: not supported yet (Outrigger has no gateways; only "mesh" is accepted)`));
  readExportTo(r, o, path);
  if (r.need(o, 'http', path) && Array.isArray(o.http) && o.http.length === 0) r.issue(joinPath(path, 'http'), 'must list at least one route');
  const http = r.list(o, 'http', path, (h, p) => httpRoute(r, h, p, ns, domainSuffix));
  return { hosts, fqdns, http };
}

function httpRoute(r: Reader, v: unknown, path: string, ns: string, domainSuffix: string): HTTPRoute | undefined {
  const o = r.object(v, path, HTTP_ROUTE);
  if (!o) return undefined;
  const match = r.list(o, 'match', path, (m, p) => matchRequest(r, m, p));
  const set = (k: string) => o[k] !== undefined && o[k] !== null;
  // istiod's validateHTTPRoute: exactly one of route, redirect, directResponse; rewrite does not go with a redirect.
  const actions = ['route', 'redirect', 'directResponse'].filter(set);
  if (actions.length === 0) r.issue(path, 'one of route, redirect, directResponse is required');
  if (actions.length > 1) r.issue(joinPath(path, actions[1]!), `only one of ${actions.join(', ')} may be set`);
  if (set('redirect') && set('rewrite')) r.issue(joinPath(path, 'rewrite'), 'cannot be used with a redirect');
  if (Array.isArray(o.route) && o.route.length === 0) r.issue(joinPath(path, 'route'), 'must list at least one destination');
  const written = r.list(o, 'route', path, (d, p) => routeDestination(r, d, p, ns, domainSuffix));
  const route = weigh(r, written, o.route, joinPath(path, 'route'));
  const retries = set('retries') ? httpRetry(r, o.retries, joinPath(path, 'retries')) : undefined;
  const fault = set('fault') ? httpFault(r, o.fault, joinPath(path, 'fault')) : undefined;
  const mirrors = httpMirrors(r, o, path, (d, p) => destination(r, d, p, ns, domainSuffix));
  return defined({
    name: r.string(o, 'name', path),
    match,
    route,
    redirect: set('redirect') ? redirect(r, o.redirect, joinPath(path, 'redirect')) : undefined,
    directResponse: set('directResponse') ? directResponse(r, o.directResponse, joinPath(path, 'directResponse')) : undefined,
    rewrite: set('rewrite') ? rewrite(r, o.rewrite, joinPath(path, 'rewrite')) : undefined,
    headers: set('headers') ? headerEdits(r, o.headers, joinPath(path, 'headers'), 'route') : undefined,
    timeoutMs: r.duration(o, 'timeout', path),
    retries,
    fault,
    mirrors,
  });
}

/** HTTPRedirect: at least one of uri, authority, scheme, port (istiod); redirectCode one Envoy can send. */
function redirect(r: Reader, v: unknown, path: string): HTTPRedirect | undefined {
  const o = r.object(v, path, HTTP_REDIRECT);
  if (!o) return undefined;
  if (!['uri', 'authority', 'scheme', 'port', 'derivePort'].some((k) => o[k] !== undefined && o[k] !== null)) r.issue(path, 'must set at least one of uri, authority, scheme, port, derivePort');
  if (o.port !== undefined && o.derivePort !== undefined) r.issue(joinPath(path, 'derivePort'), 'only one of port, derivePort may be set');
  const code = r.int(o, 'redirectCode', path, 0, 999);
  if (code !== undefined && code !== 0 && !(REDIRECT_CODES as readonly number[]).includes(code)) r.issue(joinPath(path, 'redirectCode'), `${code} is not one of ${REDIRECT_CODES.join(', ')}`);
  const uri = r.string(o, 'uri', path, (u) => (u.startsWith('/') ? undefined : 'must start with /'));
  return defined({
    uri,
    authority: r.string(o, 'authority', path, authorityProblem),
    port: r.int(o, 'port', path, 1, 65535),
    derivePort: r.enumOf(o, 'derivePort', path, ['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT'] as const),
    scheme: r.string(o, 'scheme', path, (sc) => (/^[A-Za-z][A-Za-z0-9+.-]*$/.test(sc) ? undefined : `${JSON.stringify(sc)} is not a URI scheme`)),
    redirectCode: (code || 301) as HTTPRedirect['redirectCode'],
  });
}

/** HTTPDirectResponse: status in [200, 599] (Istio's and Envoy's rule), body.string. */
function directResponse(r: Reader, v: unknown, path: string): HTTPDirectResponse | undefined {
  const o = r.object(v, path, HTTP_DIRECT_RESPONSE);
  if (!o) return undefined;
  r.need(o, 'status', path);
  const status = r.int(o, 'status', path, 200, 599);
  let body: string | undefined;
  if (o.body !== undefined && o.body !== null) {
    const b = r.object(o.body, joinPath(path, 'body'), HTTP_BODY);
    body = b && r.string(b, 'string', joinPath(path, 'body'));
  }
  return status === undefined ? undefined : defined({ status, body });
}

/** HTTPRewrite: uri or uriRegexRewrite (not both), authority. */
function rewrite(r: Reader, v: unknown, path: string): HTTPRewrite | undefined {
  const o = r.object(v, path, HTTP_REWRITE);
  if (!o) return undefined;
  if (o.uri !== undefined && o.uriRegexRewrite !== undefined) r.issue(joinPath(path, 'uriRegexRewrite'), 'only one of uri, uriRegexRewrite may be set');
  let uriRegexRewrite: HTTPRewrite['uriRegexRewrite'];
  if (o.uriRegexRewrite !== undefined && o.uriRegexRewrite !== null) {
    const p = joinPath(path, 'uriRegexRewrite');
    const x = r.object(o.uriRegexRewrite, p, REGEX_REWRITE);
    if (x && r.need(x, 'match', p) && r.need(x, 'rewrite', p)) {
      const match = r.string(x, 'match', p, regexProblem);
      const to = r.string(x, 'rewrite', p);
      if (match !== undefined && to !== undefined) uriRegexRewrite = { match, rewrite: to };
    }
  }
  return defined({ uri: r.string(o, 'uri', path), authority: r.string(o, 'authority', path, authorityProblem), uriRegexRewrite });
}

function authorityProblem(a: string): string | undefined {
  return /^[^\s/?#@]+$/.test(a) ? undefined : `${JSON.stringify(a)} is not a host[:port]`;
}

/**
 * Headers {request, response} {set, add, remove}. Names as Istio checks them; `host` (or `:authority`) may
 * only be set or added on a route's request, where istiod turns it into the authority rewrite. Values are
 * Envoy formatter strings: %% is a literal %, and Envoy's command operators are not supported, so refused.
 */
function headerEdits(r: Reader, v: unknown, path: string, level: 'route' | 'destination'): HeaderEdits | undefined {
  const o = r.object(v, path, HEADERS);
  if (!o) return undefined;
  const ops = (dir: 'request' | 'response'): HeaderOperations | undefined => {
    const p = joinPath(path, dir);
    if (o[dir] === undefined || o[dir] === null) return undefined;
    const x = r.object(o[dir], p, HEADER_OPERATIONS);
    if (!x) return undefined;
    const hostOk = (kind: 'set' | 'add' | 'remove') => dir === 'request' && kind !== 'remove' && level === 'route';
    const name = (kind: 'set' | 'add' | 'remove') => (n: string) => {
      if (!HEADER_NAME.test(n)) return `${JSON.stringify(n)} is not a header name (letters, digits, '-' and '_')`;
      if (n.toLowerCase() === 'host' && !hostOk(kind)) return `host can only be set on a route's request headers (it becomes the authority rewrite)`;
      return undefined;
    };
    const values = (kind: 'set' | 'add') =>
      r.map(x, kind, p, (val, vp, k) => {
        const problem = name(kind)(k);
        if (problem) return r.issue(vp, problem);
        return r.stringValue(val, vp, (s) => (/[\0\r\n]/.test(s) ? 'must not contain NUL, CR or LF' : s.replace(/%%/g, '').includes('%') ? `${JSON.stringify(s)}: Envoy's %COMMAND% operators are not supported; write %% for a literal %` : undefined));
      });
    const lower = (m: Record<string, string> | undefined) => m && Object.fromEntries(Object.entries(m).map(([k, val]) => [k.toLowerCase(), val]));
    return defined({ set: lower(values('set')), add: lower(values('add')), remove: x.remove === undefined || x.remove === null ? undefined : r.strings(x, 'remove', p, name('remove')).map((n) => n.toLowerCase()) });
  };
  return defined({ request: ops('request'), response: ops('response') });
}

/**
 * HTTPRetry, checked as Istio's validateHTTPRetry: attempts not negative; perTryTimeout, retryOn and
 * retryRemoteLocalities only with attempts > 0 (attempts 0 disables retries, so they would be dead letters);
 * every retryOn token an Envoy retry condition or an HTTP status code. Envoy would silently ignore an unknown
 * condition, and a typo ("5XX") would quietly turn off the retries the author counted on.
 */
function httpRetry(r: Reader, v: unknown, path: string): HTTPRetry | undefined {
  const o = r.object(v, path, HTTP_RETRY);
  if (!o) return undefined;
  const attempts = r.int(o, 'attempts', path, -(2 ** 31), 2 ** 31 - 1);
  if (attempts !== undefined && attempts < 0) r.issue(joinPath(path, 'attempts'), 'cannot be negative');
  const set = ['perTryTimeout', 'retryOn', 'retryRemoteLocalities'].filter((k) => o[k] !== undefined && o[k] !== null);
  if (!attempts && set.length) r.issue(joinPath(path, 'attempts'), `is 0, which disables retries, but ${set.join(', ')} ${set.length > 1 ? 'are' : 'is'} set: write attempts >= 1, or remove them`);
  const text = r.string(o, 'retryOn', path);
  return defined({
    attempts: Math.max(0, attempts ?? 0),
    perTryTimeoutMs: r.duration(o, 'perTryTimeout', path),
    retryOn: text === undefined ? undefined : retryOn(r, text, joinPath(path, 'retryOn')),
    retryRemoteLocalities: r.bool(o, 'retryRemoteLocalities', path),
    retryIgnorePreviousHosts: r.bool(o, 'retryIgnorePreviousHosts', path),
    backoffMs: r.duration(o, 'backoff', path),
  });
}

/** retryOn: comma-separated Envoy conditions and HTTP status codes (istiod's parseRetryOn); spaces around a token are dropped, as istiod does. */
function retryOn(r: Reader, text: string, path: string): HTTPRetry['retryOn'] {
  const conditions: string[] = [];
  const statusCodes: number[] = [];
  for (const raw of text.split(',')) {
    const token = raw.trim();
    if (/^[0-9]+$/.test(token) && STATUS_CODES[Number(token)] !== undefined) statusCodes.push(Number(token));
    else if (RETRY_CONDITIONS.has(token)) conditions.push(token);
    else r.issue(path, `${JSON.stringify(token)} is not a valid retryOn policy (an HTTP status code, or one of Envoy's conditions: ${[...RETRY_CONDITIONS].join(', ')})`);
  }
  return { conditions, statusCodes };
}

/**
 * A lone destination without a weight takes all traffic; otherwise an unset weight is 0 and the weights must
 * add up to 100 (Istio's rule before it began normalising them, kept here so a typo cannot skew a canary).
 */
function weigh(r: Reader, written: readonly Written[], raw: unknown, path: string): HTTPRouteDestination[] {
  // An empty or failed list is already reported.
  if (written.length === 0 || written.length !== (Array.isArray(raw) ? raw.length : 0)) return [];
  const dest = ({ d, weight, headers }: Written, dflt: number): HTTPRouteDestination => defined({ destination: d, weight: weight ?? dflt, headers });
  if (written.length === 1 && written[0]!.weight === undefined) return [dest(written[0]!, 100)];
  const route = written.map((w) => dest(w, 0));
  const sum = route.reduce((s, d) => s + d.weight, 0);
  if (sum !== 100) r.issue(path, `weights add up to ${sum}, not 100`);
  return route;
}

interface Written {
  readonly d: Destination;
  readonly weight?: number;
  readonly headers?: HeaderEdits;
}

function routeDestination(r: Reader, v: unknown, path: string, ns: string, domainSuffix: string): Written | undefined {
  const o = r.object(v, path, ROUTE_DESTINATION);
  if (!o || !r.need(o, 'destination', path)) return undefined;
  const headers = o.headers === undefined || o.headers === null ? undefined : headerEdits(r, o.headers, joinPath(path, 'headers'), 'destination');
  const d = destination(r, o.destination, joinPath(path, 'destination'), ns, domainSuffix);
  const weight = r.int(o, 'weight', path, 0, 100);
  // A bad weight is reported; summing without it would only add a second, misleading issue.
  if (!d || (weight === undefined && o.weight !== undefined && o.weight !== null)) return undefined;
  return defined({ d, weight, headers });
}

/** Destination {host, subset, port}, the host resolved against the VirtualService's namespace. */
function destination(r: Reader, v: unknown, dPath: string, ns: string, domainSuffix: string): Destination | undefined {
  const d = r.object(v, dPath, DESTINATION);
  if (!d) return undefined;
  r.need(d, 'host', dPath);
  const host = r.string(d, 'host', dPath, hostProblem) ?? '';
  const port = d.port === undefined || d.port === null ? undefined : portSelector(r, d.port, joinPath(dPath, 'port'));
  return defined({
    host,
    fqdn: resolveHost(host, ns, domainSuffix),
    subset: r.string(d, 'subset', dPath, dnsLabelProblem),
    port,
  });
}

/** PortSelector {number}: the port of the destination service. */
export function portSelector(r: Reader, v: unknown, path: string): number | undefined {
  const o = r.object(v, path, PORT_SELECTOR);
  if (!o || !r.need(o, 'number', path)) return undefined;
  return r.int(o, 'number', path, 1, 65535);
}

function matchRequest(r: Reader, v: unknown, path: string): HTTPMatchRequest | undefined {
  const o = r.object(v, path, HTTP_MATCH);
  if (!o) return undefined;
  const headerMap = (key: string) => {
    const seen = new Map<string, string>();
    const m = r.map(o, key, path, (h, p, name) => {
      if (!HEADER_NAME.test(name)) return r.issue(p, `${JSON.stringify(name)} is not a header name (letters, digits, '-' and '_')`);
      // Header names are case-insensitive (RFC 9110 §5.1); the model holds them lowercased, as HTTP/2 sends them.
      const lower = name.toLowerCase();
      if (seen.has(lower)) return r.issue(p, `header ${lower} is matched twice (also as ${seen.get(lower)})`);
      seen.set(lower, name);
      return stringMatch(r, h, p, 'header');
    });
    return m && Object.fromEntries(Object.entries(m).map(([k, x]) => [k.toLowerCase(), x]));
  };
  const one = (key: 'uri' | 'method' | 'authority') => (o[key] === undefined || o[key] === null ? undefined : stringMatch(r, o[key], joinPath(path, key), key));
  return defined({
    name: r.string(o, 'name', path),
    uri: one('uri'),
    headers: headerMap('headers') ?? {},
    port: r.int(o, 'port', path, 1, 65535),
    queryParams: r.map(o, 'queryParams', path, (q, p) => stringMatch(r, q, p, 'queryParam')),
    method: one('method'),
    authority: one('authority'),
    ignoreUriCase: r.bool(o, 'ignoreUriCase', path) || undefined,
    withoutHeaders: headerMap('withoutHeaders'),
  });
}

/** StringMatch: exactly one of exact, prefix, regex; a regex must be valid RE2 (Envoy's safe_regex). */
export function stringMatch(r: Reader, v: unknown, path: string, what: 'uri' | 'header' | 'queryParam' | 'method' | 'authority'): StringMatch | undefined {
  const o = r.object(v, path, STRING_MATCH);
  if (!o) return undefined;
  const set = STRING_MATCH.fields.filter((k) => o[k] !== undefined && o[k] !== null);
  if (set.length === 0) {
    // Istio reads an empty header match as "header present"; that matcher is not in the model yet.
    return r.issue(path, what === 'header' ? 'a presence match ({}) is not supported yet; use one of exact, prefix, regex' : 'one of exact, prefix, regex is required');
  }
  if (set.length > 1) return r.issue(joinPath(path, set[1]!), `only one of ${set.join(', ')} may be set`);
  const key = set[0] as 'exact' | 'prefix' | 'regex';
  const value = r.string(o, key, path, key === 'regex' ? regexProblem : undefined);
  if (value === undefined) return undefined;
  return { [key]: value } as StringMatch;
}

/** What RE2 says of the pattern itself (not wrapped in anchors, where `a)|(b` would read as valid). */
function regexProblem(re: string): string | undefined {
  const problem = re2Problem(re);
  return problem === undefined ? undefined : `not a valid RE2 regular expression: ${problem}`;
}
