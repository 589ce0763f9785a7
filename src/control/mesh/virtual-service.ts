// Decodes a VirtualService spec: hosts and HTTP routes (uri/header/port matches, weighted destinations, timeout, retries).
import { STATUS_CODES } from 'node:http';
import { errorMessage } from '../../core/errors.js';
import { compileRegex } from '../../model/matchers.js';
import { RETRY_ON_GRPC, RETRY_ON_HTTP } from '../../model/types.js';
import { joinPath } from '../../xds/json.js';
import { httpFault } from './fault.js';
import { hostProblem, readExportTo, resolveHost } from './hosts.js';
import { MIRROR_FIELDS, httpMirrors } from './mirror.js';
import { Reader, defined, dnsLabelProblem, type Shape } from './schema.js';
import type { Destination, HTTPMatchRequest, HTTPRetry, HTTPRoute, HTTPRouteDestination, StringMatch, VirtualService } from './types.js';

/** istio.networking.v1.VirtualService; TCP and TLS routes arrive with a later issue. */
const VIRTUAL_SERVICE: Shape = { fields: ['hosts', 'gateways', 'http', 'exportTo'], notYet: ['tcp', 'tls'] };
/** HTTPRoute: route actions other than forwarding, and request/response manipulation, arrive later. */
const HTTP_ROUTE: Shape = {
  fields: ['name', 'match', 'route', 'timeout', 'retries', 'fault', ...MIRROR_FIELDS],
  notYet: ['redirect', 'directResponse', 'delegate', 'rewrite', 'corsPolicy', 'headers'],
};
const HTTP_MATCH: Shape = {
  fields: ['name', 'uri', 'headers', 'port'],
  notYet: ['scheme', 'method', 'authority', 'queryParams', 'ignoreUriCase', 'withoutHeaders', 'sourceLabels', 'gateways', 'sourceNamespace', 'statPrefix'],
};
const ROUTE_DESTINATION: Shape = { fields: ['destination', 'weight'], notYet: ['headers'] };
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
  // Istio: "HTTP route or redirect is required"; redirect is not supported yet, so route is.
  if (r.need(o, 'route', path) && Array.isArray(o.route) && o.route.length === 0) r.issue(joinPath(path, 'route'), 'must list at least one destination');
  const written = r.list(o, 'route', path, (d, p) => routeDestination(r, d, p, ns, domainSuffix));
  const route = weigh(r, written, o.route, joinPath(path, 'route'));
  const retries = o.retries === undefined || o.retries === null ? undefined : httpRetry(r, o.retries, joinPath(path, 'retries'));
  const fault = o.fault === undefined || o.fault === null ? undefined : httpFault(r, o.fault, joinPath(path, 'fault'));
  const mirrors = httpMirrors(r, o, path, (d, p) => destination(r, d, p, ns, domainSuffix));
  return defined({ name: r.string(o, 'name', path), match, route, timeoutMs: r.duration(o, 'timeout', path), retries, fault, mirrors });
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
function weigh(r: Reader, written: readonly { d: Destination; weight?: number }[], raw: unknown, path: string): HTTPRouteDestination[] {
  // An empty or failed list is already reported.
  if (written.length === 0 || written.length !== (Array.isArray(raw) ? raw.length : 0)) return [];
  if (written.length === 1 && written[0]!.weight === undefined) return [{ destination: written[0]!.d, weight: 100 }];
  const route = written.map(({ d, weight }) => ({ destination: d, weight: weight ?? 0 }));
  const sum = route.reduce((s, d) => s + d.weight, 0);
  if (sum !== 100) r.issue(path, `weights add up to ${sum}, not 100`);
  return route;
}

function routeDestination(r: Reader, v: unknown, path: string, ns: string, domainSuffix: string): { d: Destination; weight?: number } | undefined {
  const o = r.object(v, path, ROUTE_DESTINATION);
  if (!o || !r.need(o, 'destination', path)) return undefined;
  const d = destination(r, o.destination, joinPath(path, 'destination'), ns, domainSuffix);
  const weight = r.int(o, 'weight', path, 0, 100);
  // A bad weight is reported; summing without it would only add a second, misleading issue.
  if (!d || (weight === undefined && o.weight !== undefined && o.weight !== null)) return undefined;
  return weight === undefined ? { d } : { d, weight };
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
  const seen = new Map<string, string>();
  const headers = r.map(o, 'headers', path, (h, p, name) => {
    if (!HEADER_NAME.test(name)) return r.issue(p, `${JSON.stringify(name)} is not a header name (letters, digits, '-' and '_')`);
    // Header names are case-insensitive (RFC 9110 §5.1); the model holds them lowercased, as HTTP/2 sends them.
    const lower = name.toLowerCase();
    if (seen.has(lower)) return r.issue(p, `header ${lower} is matched twice (also as ${seen.get(lower)})`);
    seen.set(lower, name);
    return stringMatch(r, h, p, 'header');
  });
  return defined({
    name: r.string(o, 'name', path),
    uri: o.uri === undefined || o.uri === null ? undefined : stringMatch(r, o.uri, joinPath(path, 'uri'), 'uri'),
    headers: Object.fromEntries(Object.entries(headers ?? {}).map(([k, m]) => [k.toLowerCase(), m])),
    port: r.int(o, 'port', path, 1, 65535),
  });
}

/** StringMatch: exactly one of exact, prefix, regex; a regex must be valid RE2 (Envoy's safe_regex). */
export function stringMatch(r: Reader, v: unknown, path: string, what: 'uri' | 'header'): StringMatch | undefined {
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

function regexProblem(re: string): string | undefined {
  try {
    compileRegex(re);
    return undefined;
  } catch (e) {
    return `not a valid RE2 regular expression: ${errorMessage(e)}`;
  }
}
