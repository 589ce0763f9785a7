// Replies the proxy makes itself: JSON {code,message,request_id} for HTTP, trailers-only grpc-status for gRPC.

/** Envoy response flags (https://www.envoyproxy.io/docs/envoy/latest/configuration/observability/access_log/usage). */
export type ResponseFlag = '-' | 'NR' | 'NC' | 'UF' | 'UC' | 'UT' | 'UH' | 'UO' | 'RL' | 'DC' | 'URX' | 'DPE' | 'UPE' | 'SI' | 'FI' | 'DI';

export interface LocalReply {
  readonly status: number;
  /** Stable machine-readable code, e.g. "no_route", "upstream_connect_failure". */
  readonly code: string;
  readonly message: string;
  readonly flag: ResponseFlag;
  /** gRPC status for gRPC callers; defaults from the HTTP status (Envoy's mapping). */
  readonly grpcStatus?: number;
  /** Envoy's response_code_details for the access log. */
  readonly details: string;
  /** Extra response headers a filter sends with its reply (RateLimit-*, WWW-Authenticate). */
  readonly headers?: Readonly<Record<string, string>>;
}

export const GRPC = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** Envoy's HTTP→gRPC status mapping for local replies (grpc/http_to_grpc in Envoy's Grpc::Utility). */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400:
      return GRPC.INTERNAL;
    case 401:
      return GRPC.UNAUTHENTICATED;
    case 403:
      return GRPC.PERMISSION_DENIED;
    case 404:
      return GRPC.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC.UNAVAILABLE;
    default:
      return GRPC.UNKNOWN;
  }
}

export const Replies = {
  noRoute: (): LocalReply => ({ status: 404, code: 'no_route', message: 'no route matched the request', flag: 'NR', details: 'route_not_found' }),
  /** Envoy's NC: the route names a cluster the proxy does not have (a control plane that broke make-before-break). */
  noCluster: (cluster: string): LocalReply => ({ status: 503, code: 'no_cluster', message: `cluster ${cluster} is not known`, flag: 'NC', details: 'cluster_not_found' }),
  noHealthyUpstream: (): LocalReply => ({ status: 503, code: 'no_healthy_upstream', message: 'no healthy upstream', flag: 'UH', details: 'no_healthy_upstream' }),
  connectFailure: (reason: string): LocalReply => ({
    status: 503,
    code: 'upstream_connect_failure',
    message: `upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: ${reason}`,
    flag: 'UF',
    details: 'upstream_reset_before_response_started{connection_failure}',
  }),
  upstreamReset: (reason: string): LocalReply => ({
    status: 503,
    code: 'upstream_reset',
    message: `upstream connect error or disconnect/reset before headers. reset reason: ${reason}`,
    flag: 'UC',
    details: 'upstream_reset_before_response_started{connection_termination}',
  }),
  /** A full circuit breaker (max_pending_requests, max_requests): Envoy's overflow reset, 503 UO at once. */
  overflow: (): LocalReply => ({ status: 503, code: 'upstream_overflow', message: 'upstream connect error or disconnect/reset before headers. reset reason: overflow', flag: 'UO', details: 'upstream_reset_before_response_started{overflow}' }),
  timeout: (): LocalReply => ({ status: 504, code: 'upstream_timeout', message: 'upstream request timeout', flag: 'UT', grpcStatus: GRPC.DEADLINE_EXCEEDED, details: 'upstream_response_timeout' }),
  badRequest: (message: string, details = 'bad_request'): LocalReply => ({ status: 400, code: 'bad_request', message, flag: 'DPE', details }),
  headersTooLarge: (): LocalReply => ({ status: 431, code: 'headers_too_large', message: 'request headers too large', flag: 'DPE', details: 'request_headers_too_large' }),
  /** A filter that threw: a bug, answered 500 rather than letting an unchecked request through. */
  filterFailed: (filter: string): LocalReply => ({ status: 500, code: 'filter_failed', message: `HTTP filter ${filter} failed`, flag: '-', details: 'filter_failed' }),
  /**
   * The RBAC filter's denial: Envoy's text and response_code_details naming the effective policy ("none" when an
   * ALLOW set matched nothing). A DENY policy that matched is named in the message too (`shownAs`): the caller
   * learns which rule refused it, which is what an operator debugging a 403 needs; an ALLOW set that matched
   * nothing has no policy to name, and names none. 403 maps to PERMISSION_DENIED for gRPC callers.
   */
  rbacDenied: (policy: string | undefined, shownAs?: string): LocalReply => ({
    status: 403,
    code: 'rbac_denied',
    message: shownAs ? `RBAC: access denied by ${shownAs}` : 'RBAC: access denied',
    flag: '-',
    details: `rbac_access_denied_matched_policy[${policy ?? 'none'}]`,
  }),
  /**
   * jwt_authn refused the token (Envoy: 401, or 403 for audiences not allowed; response_code_details
   * jwt_authn_access_denied{...}); gRPC callers get UNAUTHENTICATED / PERMISSION_DENIED by the usual mapping.
   */
  jwtInvalid: (status: 401 | 403, reason: string, message: string, wwwAuthenticate: string): LocalReply => ({
    status,
    code: 'jwt_invalid',
    message: `${message} (${reason})`,
    flag: '-',
    details: `jwt_authn_access_denied{${reason}}`,
    headers: { 'www-authenticate': wwwAuthenticate },
  }),
  direct: (status: number, body: string): LocalReply => ({ status, code: 'direct_response', message: body, flag: '-', details: 'direct_response' }),
} as const;

export function isGrpcContentType(ct: string | string[] | undefined): boolean {
  return typeof ct === 'string' && ct.startsWith('application/grpc');
}

export interface RenderedReply {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Renders a local reply for an HTTP or a gRPC caller. gRPC gets HTTP 200 with a trailers-only status. */
export function renderLocalReply(r: LocalReply, requestId: string, grpc: boolean): RenderedReply {
  if (grpc) {
    return {
      status: 200,
      headers: {
        'content-type': 'application/grpc',
        'grpc-status': String(r.grpcStatus ?? grpcStatusForHttp(r.status)),
        // grpc-message is percent-encoded (gRPC over HTTP/2 spec, "Responses"). encodeURI, not encodeURIComponent:
        // grpc-js decodes with decodeURI, which leaves %3A, %2F ... as they are ("RBAC%3A access denied").
        'grpc-message': encodeURI(r.message),
        'x-request-id': requestId,
        ...r.headers,
      },
      body: '',
    };
  }
  if (r.code === 'direct_response') {
    return { status: r.status, headers: { 'content-type': 'text/plain', 'x-request-id': requestId, ...r.headers }, body: r.message };
  }
  return {
    status: r.status,
    headers: { 'content-type': 'application/json', 'x-request-id': requestId, ...r.headers },
    body: JSON.stringify({ code: r.code, message: r.message, request_id: requestId }),
  };
}
