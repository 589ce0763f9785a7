// HTTP connection manager runtime: per request, route → cluster → endpoint → pool, streaming both ways,
// with local replies, timeouts, metrics and the access log. Built once per listener config version.
import http2 from 'node:http2';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { Clock } from '../core/clock.js';
import { uuid4, type Rng } from '../core/rng.js';
import type { HttpConnectionManager } from '../model/types.js';
import { requestHeaderGetter } from '../model/matchers.js';
import type { ClusterManager, EndpointRuntime } from '../upstream/cluster-manager.js';
import { UpstreamError } from '../upstream/errors.js';
import { httpStatusForGrpc } from '../upstream/outlier.js';
import type { UpstreamStream } from '../upstream/pool.js';
import type { AccessLog } from '../telemetry/access-log.js';
import type { Logger } from '../telemetry/logger.js';
import type { MeshMetrics, RequestRecorder } from '../telemetry/metrics.js';
import { H1Sink, H2Sink, RequestRecord, type ConnInfo, type DownstreamSink } from './exchange.js';
import { H1TunnelEnd, H2TunnelEnd, type TunnelEnd } from './tunnel.js';
import { firstValue, forwardRequestHeaders, forwardResponseHeaders, forwardTrailers, type ForwardingContext } from './headers.js';
import { Replies, isGrpcContentType, renderLocalReply, type LocalReply } from './local-reply.js';
import { hashOf } from './hash-policy.js';
import { backoffMs, retriableFailure, retriableResponse } from './retry.js';
import { DEFAULT_BUFFER_LIMIT_BYTES, ReplayableBody } from './replay-body.js';
import { startMirrors, type MirrorDeps } from './mirror.js';
import { requestTimeoutMs, upstreamGrpcTimeout } from './timeouts.js';
import { RouteTable, type CompiledRoute } from './router.js';
import { redirectReply, type RedirectRequest } from './route-actions.js';
import { buildFilterChain, type FilterChain } from './filters/index.js';
import type { FilterVerdict } from './filters/filter.js';

export interface HcmDeps {
  readonly listenerName: string;
  /** Istio's reporter label: "source" on outbound listeners, "destination" on inbound. */
  readonly reporter: 'source' | 'destination';
  readonly clusters: ClusterManager;
  readonly metrics: MeshMetrics;
  readonly recorder: RequestRecorder;
  readonly accessLog: AccessLog;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Picks among a route's weighted_clusters. */
  readonly rng: Rng;
  /** Our own SPIFFE ID on this listener, if it has a certificate. */
  readonly localUri: () => string | undefined;
  /** For an HCM with `rds`: the route store's slot of that name (RDS swaps its table). */
  readonly rdsSlot?: (name: string) => RouteHolder;
  /** Handed to the filters as FilterDeps.onUnknownJwksKey (jwt_authn's unknown-kid refresh request). */
  readonly onUnknownJwksKey?: (issuer: string, kid: string) => void;
}

/** Where an HCM reads its route table at request start: fixed for an inline route_config, swapped by RDS. */
export interface RouteHolder {
  readonly table: RouteTable | undefined;
}

const { NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** A redirect keeps the request's scheme as the caller saw it: x-forwarded-proto if an earlier hop set it. */
function redirectRequest(rec: RequestRecord): RedirectRequest {
  const xfp = firstValue(rec.headers['x-forwarded-proto']);
  return { scheme: xfp === 'https' || xfp === 'http' ? xfp : rec.conn.tls ? 'https' : 'http', authority: rec.authority, path: rec.path };
}

/**
 * previous_priorities with update_frequency f: the next attempt excludes the priorities of the first
 * ⌊tried / f⌋ × f attempts (Envoy updates the excluded set every f attempts). A bit per priority; levels past
 * 30 are never excluded.
 */
function excludedPriorities(f: number, tried: readonly EndpointRuntime[]): number {
  if (f <= 0) return 0;
  let bits = 0;
  const upTo = Math.floor(tried.length / f) * f;
  for (let i = 0; i < upTo; i++) if (tried[i]!.priority < 31) bits |= 1 << tried[i]!.priority;
  return bits;
}

export class HcmRuntime {
  readonly routes: RouteHolder;
  private readonly streamsGauge;
  private readonly localRepliesCounter;
  /** The http_filters before the router, built once for this config version. */
  private readonly filters: FilterChain;
  private readonly mirrorDeps: MirrorDeps;
  active = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    readonly cfg: HttpConnectionManager,
    private readonly d: HcmDeps,
  ) {
    if (cfg.route.kind === 'inline') this.routes = { table: new RouteTable(cfg.route.config) };
    else if (d.rdsSlot) this.routes = d.rdsSlot(cfg.route.name);
    else throw new Error(`route config ${cfg.route.name} comes from RDS, which needs the ADS client`);
    this.streamsGauge = d.metrics.downstreamStreamsActive.labels({ listener: d.listenerName });
    this.localRepliesCounter = d.metrics.localReplies;
    const mirrors = d.metrics.mirrorRequests;
    this.mirrorDeps = { clusters: d.clusters, rng: d.rng, clock: d.clock, count: (cluster, outcome) => mirrors.inc({ cluster, outcome }) };
    this.filters = buildFilterChain(cfg.httpFilters, {
      listenerName: d.listenerName, clock: d.clock, rng: d.rng, metrics: d.metrics, logger: d.logger,
      ...(d.onUnknownJwksKey && { onUnknownJwksKey: d.onUnknownJwksKey }),
    });
  }

  /** Resolves once no request is in flight (drain). */
  whenIdle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  // ---- downstream entry points -------------------------------------------------------------

  handleH1(req: IncomingMessage, res: ServerResponse, conn: ConnInfo): void {
    const h = req.headers;
    const authority = h.host ?? '';
    const te = h['transfer-encoding'];
    const cl = h['content-length'];
    const hasBody = te !== undefined || (cl !== undefined && cl !== '0');
    const rec = this.newRecord(req.method ?? 'GET', authority, req.url ?? '/', `HTTP/${req.httpVersion}`, h, conn);
    this.forward(rec, hasBody ? req : null, new H1Sink(res), (fn) => {
      res.once('close', () => {
        if (!res.writableFinished) fn();
      });
    });
  }

  handleH2(stream: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders, flags: number, conn: ConnInfo): void {
    const authority = (h[':authority'] as string | undefined) ?? firstValue(h.host) ?? '';
    const rec = this.newRecord((h[':method'] as string) ?? 'GET', authority, (h[':path'] as string) ?? '/', 'HTTP/2', h, conn);
    const hasBody = (flags & NGHTTP2_FLAG_END_STREAM) === 0;
    stream.on('error', () => {
      /* downstream resets are reported through 'close' */
    });
    if (rec.method === 'CONNECT') {
      const proto = h[':protocol'];
      const sink = new H2Sink(stream);
      if (typeof proto !== 'string') return this.localReply(rec, sink, null, Replies.badRequest('CONNECT without :protocol is not supported', 'connect_not_supported'));
      return this.tunnel(rec, proto.toLowerCase(), new H2TunnelEnd(stream, sink));
    }
    this.forward(rec, hasBody ? stream : null, new H2Sink(stream), (fn) => {
      stream.once('close', () => {
        if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR || !stream.writableFinished) fn();
      });
    });
  }

  /** An HTTP/1.1 Upgrade request (the server's 'upgrade' event). */
  handleH1Upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, conn: ConnInfo): void {
    const rec = this.newRecord(req.method ?? 'GET', req.headers.host ?? '', req.url ?? '/', `HTTP/${req.httpVersion}`, req.headers, conn);
    if (head.length) socket.unshift(head);
    this.tunnel(rec, String(req.headers.upgrade ?? '').toLowerCase(), new H1TunnelEnd(socket, req.headers));
  }

  /**
   * WebSocket in either shape: HTTP/1.1 Upgrade or RFC 8441 extended CONNECT, converted as the upstream
   * protocol needs. Only upgrade types listed in upgrade_configs are allowed, as in Envoy.
   */
  private tunnel(rec: RequestRecord, type: string, down: TunnelEnd): void {
    this.active++;
    this.streamsGauge.inc();
    const refuse = (r: LocalReply) => {
      rec.status = r.status;
      rec.flag = r.flag;
      rec.details = r.details;
      this.localRepliesCounter.inc({ listener: this.d.listenerName, response_flags: r.flag });
      down.refuse(renderLocalReply(r, rec.requestId, false));
      this.complete(rec);
    };
    if (type !== 'websocket' || !this.cfg.upgradeTypes.includes(type)) {
      return refuse({ status: 403, code: 'upgrade_not_allowed', message: `upgrade type ${JSON.stringify(type)} is not enabled in upgrade_configs`, flag: '-', details: 'upgrade_failed' });
    }
    const match = this.routes.table?.match(rec.authority, rec.path, requestHeaderGetter(rec));
    if (!match || match.route.action.kind !== 'route') return refuse(Replies.noRoute());
    const ra = match.route.action.action;
    rec.routeName = match.route.name || null;
    rec.virtualHost = match.virtualHost;
    rec.upstreamCluster = match.pickCluster(this.d.rng);
    const cluster = this.d.clusters.get(rec.upstreamCluster);
    if (!cluster) return refuse(Replies.noCluster(rec.upstreamCluster));
    const ep = cluster.pick(hashOf(ra.hashPolicy, { header: requestHeaderGetter(rec), path: rec.path, remoteIp: rec.conn.remoteIp }));
    if (!ep) return refuse(Replies.noHealthyUpstream());
    rec.upstreamHost = ep.hostPort;
    rec.upstreamLocality = ep.localityName;
    const headers: OutgoingHttpHeaders = {};
    // sec-websocket-key/-version are end-to-end headers: the far sidecar hands the app the client's own key.
    forwardRequestHeaders(rec.headers, headers, this.forwardingContext(rec), rec.requestId);
    ep.rqActive++;
    ep.rqTotal++;
    ep.pool.upgrade({ method: 'GET', authority: ra.hostRewriteLiteral ?? rec.authority, path: rec.path, scheme: 'https', headers, endStream: false }).then(
      (up) => {
        ep.rqActive--;
        if (!up.ok) {
          rec.status = up.status;
          rec.upstreamPeer = null;
          down.forwardRefusal(up.status, up.headers, up.body);
          up.body.once('end', () => this.complete(rec));
          return;
        }
        rec.upstreamPeer = up.peerUri ?? null;
        rec.status = down.accept(up.headers);
        if (up.head.length) down.duplex.unshift(up.head);
        const closeBoth = () => {
          down.duplex.destroy();
          up.tunnel.destroy();
          this.complete(rec);
        };
        down.duplex.on('data', (c: Buffer) => (rec.bytesIn += c.length));
        up.tunnel.on('data', (c: Buffer) => (rec.bytesOut += c.length));
        down.duplex.pipe(up.tunnel).on('error', closeBoth);
        up.tunnel.pipe(down.duplex).on('error', closeBoth);
        down.duplex.once('close', closeBoth);
        up.tunnel.once('close', closeBoth);
        down.duplex.on('error', closeBoth);
        up.tunnel.on('error', closeBoth);
      },
      (err: unknown) => {
        ep.rqActive--;
        ep.rqError++;
        const e = err instanceof UpstreamError ? err : new UpstreamError('connect_failure', 'unknown', String(err));
        rec.upstreamFailure = e.reason;
        refuse(e.kind === 'reset' ? Replies.upstreamReset(e.reason) : Replies.connectFailure(e.reason));
      },
    );
  }

  private forwardingContext(rec: RequestRecord): ForwardingContext {
    return {
      remoteIp: rec.conn.remoteIp,
      tls: rec.conn.tls,
      peer: rec.conn.peer,
      localUri: this.d.localUri(),
      fcc: this.cfg.forwardClientCertDetails,
      setCurrent: this.cfg.setCurrentClientCertDetails,
      appendXff: true,
    };
  }

  private newRecord(method: string, authority: string, path: string, protocol: string, h: IncomingHttpHeaders, conn: ConnInfo): RequestRecord {
    const incomingId = firstValue(h['x-request-id']);
    const requestId = incomingId || (this.cfg.generateRequestId ? uuid4() : '');
    return new RequestRecord(this.d.clock.now(), this.d.clock.monotonic(), requestId, method, authority, path, protocol, h, isGrpcContentType(h['content-type']), conn);
  }

  // ---- the request path --------------------------------------------------------------------

  private forward(rec: RequestRecord, body: Readable | null, sink: DownstreamSink, onDownstreamAbort: (fn: () => void) => void): void {
    this.active++;
    this.streamsGauge.inc();

    // The table current when the request starts serves all of it; RDS may swap in the next one meanwhile.
    const match = this.routes.table?.match(rec.authority, rec.path, requestHeaderGetter(rec));
    if (this.filters.empty) return this.route(rec, match, body, sink, onDownstreamAbort);
    // The filters see the request (and the route, for per-route config) before the router does.
    const verdict = this.filters.run({ rec, route: match, onAbort: onDownstreamAbort });
    if (!(verdict instanceof Promise)) return this.afterFilters(verdict, rec, match, body, sink, onDownstreamAbort);
    // While the filters decide, a caller that goes away completes the request (flag DC); after that, the
    // router's own abort handling takes over.
    let waiting = true;
    let gone = false;
    onDownstreamAbort(() => {
      if (!waiting) return;
      gone = true;
      if (rec.flag === '-') rec.flag = 'DC';
      this.complete(rec);
    });
    // The chain's Promise never rejects (a failing filter is a 500 verdict).
    void verdict.then((v) => {
      waiting = false;
      if (!gone) this.afterFilters(v, rec, match, body, sink, onDownstreamAbort);
    });
  }

  private afterFilters(v: FilterVerdict, rec: RequestRecord, match: CompiledRoute | undefined, body: Readable | null, sink: DownstreamSink, onDownstreamAbort: (fn: () => void) => void): void {
    if (v !== undefined) return this.localReply(rec, sink, body, v);
    this.route(rec, match, body, sink, onDownstreamAbort);
  }

  /** The router: the route's action, the cluster, the endpoint, and the upstream exchange with its retries. */
  private route(rec: RequestRecord, match: CompiledRoute | undefined, body: Readable | null, sink: DownstreamSink, onDownstreamAbort: (fn: () => void) => void): void {
    if (!match) return this.localReply(rec, sink, body, Replies.noRoute());
    rec.routeName = match.route.name || null;
    rec.virtualHost = match.virtualHost;
    rec.responseHeaders = match.responseHeaders;
    const action = match.route.action;
    if (action.kind === 'direct_response') return this.localReply(rec, sink, body, Replies.direct(action.status, action.body ?? ''));
    if (action.kind === 'redirect') return this.localReply(rec, sink, body, redirectReply(action.redirect.status, match.redirectLocation!(redirectRequest(rec))));
    const ra = action.action;
    const target = match.pickTarget(this.d.rng);
    rec.upstreamCluster = target.name;
    rec.responseHeaders = target.responseHeaders;
    const cluster = this.d.clusters.get(rec.upstreamCluster);
    if (!cluster) return this.localReply(rec, sink, body, Replies.noCluster(rec.upstreamCluster));
    // Picked before the route timer exists: a request answered UH here is complete and arms nothing.
    const hash = hashOf(ra.hashPolicy, { header: requestHeaderGetter(rec), path: rec.path, remoteIp: rec.conn.remoteIp });
    const first = cluster.pick(hash);
    if (!first) return this.localReply(rec, sink, body, Replies.noHealthyUpstream());

    const state = { upstream: undefined as UpstreamStream | undefined, finished: false, retried: false, timer: undefined as ReturnType<Clock['setTimeout']> | undefined };
    // Set below when the body is read once and fanned out (retries, mirrors); declared here for finish().
    let replay: ReplayableBody | undefined;
    const finish = () => {
      if (state.finished) return;
      state.finished = true;
      if (state.timer) this.d.clock.clearTimeout(state.timer);
      replay?.discard();
      this.complete(rec);
    };
    onDownstreamAbort(() => {
      if (state.finished) return;
      // The caller went away: stop the upstream exchange too (Envoy flag DC).
      if (rec.flag === '-') rec.flag = 'DC';
      if (!rec.status) rec.status = 0;
      state.upstream?.abort();
      finish();
    });
    // The route timeout, or for gRPC the caller's grpc-timeout under max_grpc_timeout (timeouts.ts).
    const timeoutMs = requestTimeoutMs(ra, rec.grpc, rec.headers['grpc-timeout']);
    if (timeoutMs > 0) {
      state.timer = this.d.clock.setTimeout(() => {
        if (state.finished) return;
        state.upstream?.abort();
        if (!sink.headersSent) {
          this.localReply(rec, sink, body, Replies.timeout(), false);
        } else {
          rec.flag = 'UT';
          sink.reset();
        }
        finish();
      }, timeoutMs);
    }

    const headers: OutgoingHttpHeaders = {};
    forwardRequestHeaders(rec.headers, headers, this.forwardingContext(rec), rec.requestId);
    target.requestHeaders?.(headers);
    const path = match.rewritePath?.(rec.path) ?? rec.path;
    const authority = ra.hostRewriteLiteral ?? rec.authority;
    const grpcTimeout = upstreamGrpcTimeout(ra, rec.grpc, timeoutMs);
    if (grpcTimeout) headers['grpc-timeout'] = grpcTimeout;

    // Retries (RouteAction.retry_policy). A body is kept for a replay up to the route's buffer limit; past it
    // the attempt in flight goes on streaming and the request is not retried any more.
    const policy = ra.retryPolicy;
    const bufferLimit = match.route.perRequestBufferLimitBytes ?? DEFAULT_BUFFER_LIMIT_BYTES;
    const mirrors = ra.mirrorPolicies
      ? startMirrors(ra.mirrorPolicies, { method: rec.method, authority, path, headers: { ...headers }, hasBody: body !== null, timeoutMs, maxBacklogBytes: bufferLimit }, this.mirrorDeps)
      : [];
    if (body && (policy || mirrors.length)) {
      replay = new ReplayableBody(body, policy ? bufferLimit : 0, (n) => (rec.bytesIn += n));
      for (const tap of mirrors) replay.tap(tap);
    }
    let retriesLeft = policy?.numRetries ?? 0;
    const tried: EndpointRuntime[] = [];
    const retries = this.d.metrics.upstreamRetries;
    /**
     * The one admission check before every retry: retries left, the body still replayable, and (when the
     * cluster offers one) the retry budget / max_retries circuit breaker, Envoy's RetryStatus::NoOverflow.
     */
    const mayRetry = (): boolean => {
      let outcome = retriesLeft <= 0 ? 'limit_exceeded' : body !== null && !replay!.replayable ? 'not_buffered' : undefined;
      if (outcome === undefined) {
        admitted = admitRetry();
        if (!admitted) outcome = 'overflow';
      }
      if (outcome) retries.inc({ cluster: rec.upstreamCluster ?? '', outcome });
      return outcome === undefined;
    };
    // The cluster's retries circuit breaker: max_retries, or its retry_budget (a share of the active requests).
    const admitRetry = () => current().tryRetry();
    /** The admitted retry's slot, handed to the attempt it pays for and given back when that attempt ends. */
    let admitted: (() => void) | undefined;

    const attempt = (ep: EndpointRuntime, release?: () => void) => {
      tried.push(ep);
      rec.upstreamHost = ep.hostPort;
      rec.upstreamLocality = ep.localityName;
      ep.requests.inc();
      const startedAt = this.d.clock.monotonic();
      rec.upstreamStartMs = startedAt;
      ep.rqActive++;
      ep.rqTotal++;
      /** Set when this attempt was given up (per-try timeout, or a response being retried): its late callbacks are ignored. */
      let gone = false;
      let epDone = false;
      let tryTimer: ReturnType<Clock['setTimeout']> | undefined;
      let stream: UpstreamStream | undefined;
      const endpointDone = (error: boolean) => {
        if (epDone) return;
        epDone = true;
        release?.();
        ep.rqActive--;
        if (error) ep.rqError++;
      };
      const ignored = () => state.finished || gone;
      // Outlier detection hears every outcome of this host, Envoy's way: local-origin events (connect,
      // timeout, reset) and the upstream's status (for gRPC, grpc-status mapped to HTTP).
      const outlier = current().outlier;
      let statusReported = false;
      const reportStatus = (status: number) => {
        if (statusReported) return;
        statusReported = true;
        outlier?.putHttpStatus(ep, status);
      };
      if (policy && policy.perTryTimeoutMs > 0) {
        tryTimer = this.d.clock.setTimeout(() => {
          if (ignored()) return;
          gone = true;
          stream?.abort();
          outlier?.putLocalOrigin(ep, 'timeout');
          // At least this slow: without the sample PEAK_EWMA would keep trusting a host that never answers.
          const now = this.d.clock.monotonic();
          ep.ewma.observe(now - startedAt, now);
          endpointDone(true);
          if (retryAfter('per_try_timeout')) return;
          this.localReply(rec, sink, body, Replies.timeout(), false);
          finish();
        }, policy.perTryTimeoutMs);
      }
      const reportLocal = (e: UpstreamError) => {
        if (e.kind === 'connect_timeout') outlier?.putLocalOrigin(ep, 'timeout');
        else if (e.kind === 'connect_failure') outlier?.putLocalOrigin(ep, 'connect_failed');
        else if (e.kind === 'reset') outlier?.putLocalOrigin(ep, 'reset');
        // refused_stream, overflow and cancelled say nothing about the host's health.
      };
      ep.pool
        .open(
          { method: rec.method, authority, path, scheme: 'https', headers, endStream: body === null, cancelled: ignored },
          {
            onResponse: (status, upHeaders, upBody, endStream) => {
              // The per-try timeout bounds the wait for response headers; the route timeout bounds the rest.
              if (tryTimer) this.d.clock.clearTimeout(tryTimer);
              if (ignored()) {
                upBody.resume();
                return;
              }
              const grpcStatus = rec.grpc ? firstValue(upHeaders['grpc-status'] as string | string[] | undefined) : undefined;
              // A gRPC answer's outcome is its grpc-status: in these headers (trailers-only) or in the trailers.
              if (grpcStatus !== undefined) reportStatus(httpStatusForGrpc(Number(grpcStatus)));
              else if (!rec.grpc || status !== 200) reportStatus(status);
              if (policy && retriableResponse(policy, status, grpcStatus)) {
                if (mayRetry()) {
                  gone = true;
                  upBody.resume();
                  endpointDone(true);
                  stream?.abort();
                  scheduleRetry();
                  return;
                }
                // Envoy's URX: the answer is forwarded as it is, marked as the one the retry limit let through.
                if (retriesLeft <= 0) rec.flag = 'URX';
              }
              const now = this.d.clock.monotonic();
              rec.upstreamServiceMs = now - rec.upstreamStartMs;
              // Time to response headers is the latency PEAK_EWMA compares hosts by.
              ep.ewma.observe(now - startedAt, now);
              rec.status = status;
              const out: OutgoingHttpHeaders = {};
              forwardResponseHeaders(upHeaders, out);
              rec.responseHeaders?.(out);
              if (grpcStatus !== undefined) rec.grpcStatus = grpcStatus;
              const isH2Upstream = cluster.cluster.protocol === 'HTTP2';
              sink.respond(status, out, endStream, isH2Upstream);
              if (endStream) {
                upBody.resume();
                endpointDone(false);
                finish();
                return;
              }
              upBody.on('data', (c: Buffer) => (rec.bytesOut += c.length));
              upBody.once('end', () => {
                endpointDone(false);
                // Ending the sink after trailers were set lets HTTP/2 send them as the final frame.
                finish();
              });
              upBody.pipe(sink.body);
            },
            onTrailers: (t) => {
              if (ignored()) return;
              const gs = firstValue(t['grpc-status'] as string | string[] | undefined);
              if (gs !== undefined) reportStatus(httpStatusForGrpc(Number(gs)));
              if (gs !== undefined) rec.grpcStatus = gs;
              sink.setTrailers(forwardTrailers(t));
            },
            onError: (err, responseStarted) => {
              if (tryTimer) this.d.clock.clearTimeout(tryTimer);
              endpointDone(true);
              if (ignored()) return;
              if (!responseStarted) reportLocal(err);
              rec.upstreamFailure = err.reason;
              if (responseStarted || sink.headersSent) {
                rec.flag = 'UC';
                sink.reset();
                finish();
                return;
              }
              this.upstreamFailed(rec, sink, body, err, () => retryAfter(err), finish);
            },
          },
        )
        .then(
          (up) => {
            if (ignored()) {
              up.abort();
              endpointDone(false);
              return;
            }
            stream = up;
            state.upstream = up;
            outlier?.putLocalOrigin(ep, 'success');
            rec.upstreamPeer = up.peerUri ?? null;
            if (up.sink && replay) replay.attach(up.sink);
            else if (up.sink && body) {
              // Counting starts with the pipe: an earlier 'data' listener would let the body flow into nothing.
              body.on('data', (c: Buffer) => (rec.bytesIn += c.length));
              body.pipe(up.sink);
            }
          },
          (err: unknown) => {
            if (tryTimer) this.d.clock.clearTimeout(tryTimer);
            endpointDone(true);
            if (ignored()) return;
            const e = err instanceof UpstreamError ? err : new UpstreamError('connect_failure', 'unknown', String(err), err);
            reportLocal(e);
            rec.upstreamFailure = e.reason;
            this.upstreamFailed(rec, sink, body, e, () => retryAfter(e), finish);
          },
        );
    };

    /** The cluster's current version: an EDS update may have drained the pool an earlier attempt used. */
    const current = () => this.d.clusters.get(rec.upstreamCluster ?? '') ?? cluster;

    /**
     * Another attempt after a failure without a response. Under a retry policy, as its retry_on says;
     * without one, a stream refused by a GOAWAY race, or a pooled session that died before the request was
     * sent, never reached the application, and a bodyless request is replayed once on a fresh connection.
     */
    const retryAfter = (err: UpstreamError | 'per_try_timeout'): boolean => {
      if (policy) {
        if (!retriableFailure(policy, err) || !mayRetry()) return false;
        scheduleRetry();
        return true;
      }
      if (state.retried || body !== null || err === 'per_try_timeout' || err.kind !== 'refused_stream') return false;
      state.retried = true;
      const ep = current().pick(hash);
      if (!ep) return false;
      attempt(ep);
      return true;
    };

    /** Backs off (Envoy's jittered exponential), then tries a host not tried yet when the policy says so. */
    const scheduleRetry = () => {
      const p = policy!;
      retriesLeft--;
      retries.inc({ cluster: rec.upstreamCluster ?? '', outcome: 'retried' });
      // The caller's body waits (paused) for the next attempt, which is given it from the start.
      replay?.detach();
      const n = p.numRetries - retriesLeft;
      const release = admitted;
      this.d.clock.setTimeout(() => {
        if (state.finished) return release?.();
        const c = current();
        const excluded = excludedPriorities(p.previousPrioritiesUpdateFrequency, tried);
        let ep = c.pick(hash, excluded);
        // retry_host_predicate previous_hosts: re-pick up to host_selection_retry_max_attempts times. (With a
        // request hash the same host would come back every time, so those re-picks draw without it.)
        for (let i = 1; p.previousHosts && ep && tried.includes(ep) && i < p.hostSelectionRetryMaxAttempts + 1; i++) ep = c.pick(undefined, excluded);
        if (!ep) {
          release?.();
          this.localReply(rec, sink, body, Replies.noHealthyUpstream(), false);
          finish();
          return;
        }
        attempt(ep, release);
      }, backoffMs(p, n, this.d.rng));
    };

    attempt(first);
  }

  private upstreamFailed(rec: RequestRecord, sink: DownstreamSink, body: Readable | null, err: UpstreamError, retry: () => boolean, finish: () => void): void {
    // Circuit breaker overflow: 503 UO at once, never retried (Envoy does not retry an Overflow reset).
    if (err.kind === 'overflow') return (this.localReply(rec, sink, body, Replies.overflow(), false), finish());
    if (retry()) return;
    if (err.kind === 'connect_failure' || err.kind === 'connect_timeout') {
      this.d.metrics.upstreamConnectFailures.inc({ cluster: rec.upstreamCluster ?? '', reason: err.reason });
      if (err.reason === 'peer_identity') {
        this.d.logger.warn({ cluster: rec.upstreamCluster, upstream: rec.upstreamHost, local: this.d.localUri(), error: err.message }, 'upstream peer identity rejected');
      }
      this.localReply(rec, sink, body, Replies.connectFailure(err.reason), false);
    } else {
      this.localReply(rec, sink, body, Replies.upstreamReset(err.reason), false);
    }
    finish();
  }

  /** Sends a local reply (JSON or gRPC status) and, unless told otherwise, completes the request. */
  private localReply(rec: RequestRecord, sink: DownstreamSink, body: Readable | null, r: LocalReply, complete = true): void {
    const out = renderLocalReply(r, rec.requestId, rec.grpc);
    rec.status = out.status;
    rec.flag = r.flag;
    rec.details = r.details;
    this.localRepliesCounter.inc({ listener: this.d.listenerName, response_flags: r.flag });
    if (rec.grpc) rec.grpcStatus = out.headers['grpc-status']!;
    // Drain, don't forward, whatever body the caller is still sending.
    body?.resume();
    if (!sink.destroyed && !sink.headersSent) {
      const headers: OutgoingHttpHeaders = { ...out.headers };
      // Envoy's router finalizes its own replies with the route's response headers too (filters' replies come before a route acts).
      rec.responseHeaders?.(headers);
      const length = Buffer.byteLength(out.body);
      if (length) headers['content-length'] = length;
      sink.respond(out.status, headers, length === 0, false);
      if (length) sink.body.end(out.body);
      rec.bytesOut += length;
    }
    if (complete) this.complete(rec);
  }

  // ---- accounting --------------------------------------------------------------------------

  private complete(rec: RequestRecord): void {
    if (rec.done) return;
    rec.done = true;
    this.active--;
    this.streamsGauge.dec();
    const durationMs = this.d.clock.monotonic() - rec.startMono;
    const local = this.d.localUri() ?? 'unknown';
    const inbound = this.d.reporter === 'destination';
    this.d.recorder.record(
      {
        reporter: this.d.reporter,
        source_principal: inbound ? rec.conn.peer?.uri ?? 'unknown' : local,
        destination_principal: inbound ? local : rec.upstreamPeer ?? 'unknown',
        destination_service: rec.virtualHost ?? 'unknown',
        destination_cluster: rec.upstreamCluster ?? 'unknown',
        response_code: String(rec.status),
        response_flags: rec.flag,
        request_protocol: rec.grpc ? 'grpc' : 'http',
        grpc_response_status: rec.grpcStatus,
        connection_security_policy: inbound ? (rec.conn.tls ? 'mutual_tls' : 'none') : 'unknown',
      },
      durationMs,
      rec.bytesIn,
      rec.bytesOut,
    );
    const isError = rec.status >= 500 || rec.flag !== '-';
    if (this.d.accessLog.wants(isError)) {
      const h = rec.headers;
      this.d.accessLog.write({
        start_time: new Date(rec.startWall).toISOString(),
        method: rec.method,
        path: rec.path,
        protocol: rec.protocol,
        response_code: rec.status,
        response_flags: rec.flag,
        response_code_details: rec.details,
        bytes_received: rec.bytesIn,
        bytes_sent: rec.bytesOut,
        duration: Math.round(durationMs),
        upstream_service_time: rec.upstreamServiceMs === null ? null : Math.round(rec.upstreamServiceMs),
        upstream_host: rec.upstreamHost,
        upstream_locality: rec.upstreamLocality,
        upstream_cluster: rec.upstreamCluster,
        upstream_transport_failure_reason: rec.upstreamFailure,
        x_forwarded_for: firstValue(h['x-forwarded-for']) ?? null,
        user_agent: firstValue(h['user-agent']) ?? null,
        request_id: rec.requestId,
        authority: rec.authority,
        downstream_remote_address: `${rec.conn.remoteIp}:${rec.conn.remotePort}`,
        downstream_peer_uri_san: rec.conn.peer?.uri ?? null,
        upstream_peer_uri_san: rec.upstreamPeer,
        route_name: rec.routeName,
        listener: this.d.listenerName,
      });
    }
    if (this.active === 0 && this.idleWaiters.length) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }
}
