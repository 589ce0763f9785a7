// The metric catalogue: Istio's standard request metrics plus proxy internals, on an injected registry.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Istio's standard labels (https://istio.io/latest/docs/reference/config/metrics/), the subset we fill. */
export const REQUEST_LABELS = [
  'reporter',
  'source_principal',
  'destination_principal',
  'destination_service',
  'destination_cluster',
  'response_code',
  'response_flags',
  'request_protocol',
  'grpc_response_status',
  'connection_security_policy',
] as const;

export type RequestLabels = Record<(typeof REQUEST_LABELS)[number], string>;

// Istio's default buckets for istio_request_duration_milliseconds and the byte-size histograms.
const DURATION_BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
const SIZE_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000];

export interface MeshMetrics {
  readonly registry: Registry;
  readonly requestsTotal: Counter<(typeof REQUEST_LABELS)[number]>;
  readonly requestDuration: Histogram<(typeof REQUEST_LABELS)[number]>;
  readonly requestBytes: Histogram<(typeof REQUEST_LABELS)[number]>;
  readonly responseBytes: Histogram<(typeof REQUEST_LABELS)[number]>;
  readonly downstreamConnectionsActive: Gauge<'listener'>;
  readonly downstreamStreamsActive: Gauge<'listener'>;
  readonly downstreamConnectionsTotal: Counter<'listener'>;
  readonly upstreamPoolSessions: Gauge<'cluster'>;
  readonly upstreamConnectFailures: Counter<'cluster' | 'reason'>;
  readonly tlsHandshakeFailures: Counter<'listener' | 'reason'>;
  readonly localReplies: Counter<'listener' | 'response_flags'>;
  readonly protocolErrors: Counter<'listener' | 'kind'>;
  /** Istio's connection_security_policy on inbound connections admitted by a filter chain: mutual_tls or none (issue 7, PeerAuthentication). */
  readonly inboundConnections: Counter<'listener' | 'connection_security_policy'>;
  /** Envoy's listener.<name>.no_filter_chain_match: connections refused because no filter chain matched them (STRICT and a plaintext client). */
  readonly noFilterChainMatch: Counter<'listener'>;
  readonly certExpiry: Gauge<'secret' | 'spiffe_id'>;
  /** Envoy's outlier_detection.ejections_enforced_<detector>, one counter with the detector as a label. */
  readonly outlierEjections: Counter<'cluster' | 'detector'>;
  /** Envoy's outlier_detection.ejections_detected_<detector>: outliers found, ejected or not (enforcement, overflow). */
  readonly outlierEjectionsDetected: Counter<'cluster' | 'detector'>;
  /** Envoy's outlier_detection.ejections_active. */
  readonly outlierEjectionsActive: Gauge<'cluster'>;
  /** Envoy's outlier_detection.ejections_overflow: ejections refused by max_ejection_percent. */
  readonly outlierEjectionsOverflow: Counter<'cluster'>;
  /** Attempts sent upstream, by the chosen host's locality ("region/zone/subzone") and priority. */
  readonly upstreamRequests: Counter<'cluster' | 'locality' | 'priority'>;
  /** Envoy's lb_healthy_panic: picks made while the chosen priority was in panic (routing to all its hosts). */
  readonly lbHealthyPanic: Counter<'cluster'>;
  /** Envoy's upstream_rq_retry / _overflow / _limit_exceeded: retries by outcome (retried, overflow = over budget, limit_exceeded, not_buffered = body past the retry buffer). */
  readonly upstreamRetries: Counter<'cluster' | 'outcome'>;
  /** Shadow copies (request_mirror_policies) by fate: sent, failed, dropped (backlog), skipped (no cluster or host). */
  readonly mirrorRequests: Counter<'cluster' | 'outcome'>;
  /** Envoy's fault.<stat_prefix>.delays_injected and aborts_injected, one counter with the kind (delay, abort) as a label. */
  readonly faultsInjected: Counter<'listener' | 'kind'>;
  /** Envoy's fault.<stat_prefix>.faults_overflow: faults not injected because max_active_faults were already in progress. */
  readonly faultsOverflow: Counter<'listener'>;
  /**
   * The picker's view, read at scrape time: each source yields the PEAK_EWMA latency estimate of every host
   * that has one. The cluster manager adds its source; nothing is kept between scrapes.
   */
  readonly lbEwmaSources: Set<() => Iterable<{ cluster: string; endpoint: string; ms: number }>>;
  /**
   * Circuit breakers, read at scrape time: per cluster and resource (cx, pending, rq, retries) the remaining
   * capacity (Envoy's circuit_breakers.default.remaining_*, only for thresholds with track_remaining) and
   * whether the limit is reached (Envoy's cx_open, rq_pending_open, rq_open, rq_retry_open).
   */
  readonly circuitBreakerSources: Set<() => Iterable<CircuitBreakerSample>>;
  /** Refusals by a full breaker (Envoy's upstream_cx_overflow, upstream_rq_pending_overflow, upstream_rq_retry_overflow). */
  readonly circuitBreakerOverflows: Counter<'cluster' | 'resource'>;
  /** Local rate limit decisions per listener and filter (stat_prefix): allowed, rate_limited (429 sent), shadow_limited (over the limit, let through). */
  readonly localRateLimit: Tallies<'listener' | 'policy' | 'result'>;
  /** RBAC filter decisions per listener (Envoy's rbac.allowed/denied/shadow_allowed/shadow_denied/logged), by matched policy name ("none"). */
  readonly rbacDecisions: Tallies<'listener' | 'action' | 'policy'>;
  /** jwt_authn decisions per listener: allowed (a token verified), missing (none, and the requirement allows it), denied, with the failure code. */
  readonly jwtAuthn: Tallies<'listener' | 'outcome' | 'reason'>;
}

export interface CircuitBreakerSample {
  readonly cluster: string;
  readonly resource: string;
  /** undefined when the thresholds do not set track_remaining. */
  readonly remaining: number | undefined;
  readonly open: boolean;
}

/** One label tuple's count: the hot path adds to `n`; the counter catches up at scrape time. */
export interface Tally {
  n: number;
}

/**
 * A counter for the per-request hot path. prom-client hashes the label set on every inc(), even through a
 * labels() child (about 40 % of a rate-limit check, profiled); here a caller takes a Tally once per config
 * version and bumps a plain number, and the counter adds what accumulated when it is collected (a scrape, or
 * get()). Label tuples are bounded, as every label of ours is, so the rows are too.
 */
export class Tallies<L extends string> {
  private readonly rows = new Map<string, { labels: Partial<Record<L, string>>; tally: Tally; flushed: number }>();
  readonly counter: Counter<L>;

  constructor(cfg: { name: string; help: string; labelNames: readonly L[]; registers: Registry[] }) {
    const rows = this.rows;
    this.counter = new Counter<L>({
      ...cfg,
      collect() {
        for (const row of rows.values()) {
          const delta = row.tally.n - row.flushed;
          if (delta > 0) this.inc(row.labels, delta);
          row.flushed = row.tally.n;
        }
      },
    });
  }

  /** The tally of one label tuple, the same object for the same labels. */
  tally(labels: Partial<Record<L, string>>): Tally {
    const key = JSON.stringify(labels);
    let row = this.rows.get(key);
    if (!row) this.rows.set(key, (row = { labels, tally: { n: 0 }, flushed: 0 }));
    return row.tally;
  }
}

export function createMetrics(registry: Registry): MeshMetrics {
  const r = [registry];
  const lbEwmaSources: MeshMetrics['lbEwmaSources'] = new Set();
  new Gauge({
    name: 'outrigger_lb_peak_ewma_milliseconds',
    help: "The balancer's latency estimate per host (PEAK_EWMA: jumps up to slower answers, decays toward faster ones)",
    labelNames: ['cluster', 'endpoint'],
    registers: r,
    collect() {
      this.reset();
      for (const source of lbEwmaSources) for (const s of source()) this.set({ cluster: s.cluster, endpoint: s.endpoint }, s.ms);
    },
  });
  const circuitBreakerSources: MeshMetrics['circuitBreakerSources'] = new Set();
  const samples = () => [...circuitBreakerSources].flatMap((source) => [...source()]);
  new Gauge({
    name: 'outrigger_circuit_breaker_remaining',
    help: 'Remaining capacity of a circuit breaker, by cluster and resource (cx, pending, rq, retries); clusters whose thresholds set track_remaining',
    labelNames: ['cluster', 'resource'],
    registers: r,
    collect() {
      this.reset();
      for (const s of samples()) if (s.remaining !== undefined) this.set({ cluster: s.cluster, resource: s.resource }, s.remaining);
    },
  });
  new Gauge({
    name: 'outrigger_circuit_breaker_open',
    help: '1 while a circuit breaker is at its limit (new requests needing it overflow), by cluster and resource (cx, pending, rq, retries)',
    labelNames: ['cluster', 'resource'],
    registers: r,
    collect() {
      this.reset();
      for (const s of samples()) this.set({ cluster: s.cluster, resource: s.resource }, s.open ? 1 : 0);
    },
  });
  const labelNames = REQUEST_LABELS as unknown as (typeof REQUEST_LABELS)[number][];
  return {
    registry,
    requestsTotal: new Counter({ name: 'istio_requests_total', help: 'Requests handled, by Istio standard labels', labelNames, registers: r }),
    requestDuration: new Histogram({ name: 'istio_request_duration_milliseconds', help: 'Request duration', labelNames, buckets: DURATION_BUCKETS, registers: r }),
    requestBytes: new Histogram({ name: 'istio_request_bytes', help: 'Request body sizes', labelNames, buckets: SIZE_BUCKETS, registers: r }),
    responseBytes: new Histogram({ name: 'istio_response_bytes', help: 'Response body sizes', labelNames, buckets: SIZE_BUCKETS, registers: r }),
    downstreamConnectionsActive: new Gauge({ name: 'outrigger_downstream_connections_active', help: 'Open downstream connections', labelNames: ['listener'], registers: r }),
    downstreamStreamsActive: new Gauge({ name: 'outrigger_downstream_streams_active', help: 'Requests in flight', labelNames: ['listener'], registers: r }),
    downstreamConnectionsTotal: new Counter({ name: 'outrigger_downstream_connections_total', help: 'Accepted downstream connections', labelNames: ['listener'], registers: r }),
    upstreamPoolSessions: new Gauge({ name: 'outrigger_upstream_pool_sessions', help: 'Open pooled upstream connections/sessions', labelNames: ['cluster'], registers: r }),
    upstreamConnectFailures: new Counter({ name: 'outrigger_upstream_connect_failures_total', help: 'Upstream connection failures by reason', labelNames: ['cluster', 'reason'], registers: r }),
    tlsHandshakeFailures: new Counter({ name: 'outrigger_tls_handshake_failures_total', help: 'Downstream TLS/SVID rejections by reason', labelNames: ['listener', 'reason'], registers: r }),
    localReplies: new Counter({ name: 'outrigger_local_replies_total', help: 'Replies generated by the proxy itself', labelNames: ['listener', 'response_flags'], registers: r }),
    protocolErrors: new Counter({ name: 'outrigger_protocol_errors_total', help: 'Malformed or refused downstream input', labelNames: ['listener', 'kind'], registers: r }),
    inboundConnections: new Counter({ name: 'outrigger_inbound_connections_total', help: 'Inbound connections admitted, by connection_security_policy (mutual_tls, none)', labelNames: ['listener', 'connection_security_policy'], registers: r }),
    noFilterChainMatch: new Counter({ name: 'outrigger_listener_no_filter_chain_match_total', help: 'Connections refused because no filter chain matched (e.g. plaintext under PeerAuthentication STRICT)', labelNames: ['listener'], registers: r }),
    certExpiry: new Gauge({ name: 'outrigger_cert_expiry_timestamp_seconds', help: 'Certificate notAfter, seconds since epoch', labelNames: ['secret', 'spiffe_id'], registers: r }),
    outlierEjections: new Counter({ name: 'outrigger_outlier_ejections_total', help: 'Enforced outlier ejections, by detector (consecutive_5xx, consecutive_gateway_failure, consecutive_local_origin_failure, success_rate, success_rate_local_origin, failure_percentage, failure_percentage_local_origin)', labelNames: ['cluster', 'detector'], registers: r }),
    outlierEjectionsDetected: new Counter({ name: 'outrigger_outlier_ejections_detected_total', help: 'Outliers detected, ejected or not (enforcing_* percentage, max_ejection_percent), by detector', labelNames: ['cluster', 'detector'], registers: r }),
    outlierEjectionsActive: new Gauge({ name: 'outrigger_outlier_ejections_active', help: 'Hosts currently ejected by outlier detection', labelNames: ['cluster'], registers: r }),
    upstreamRequests: new Counter({ name: 'outrigger_upstream_requests_total', help: 'Requests sent upstream (each attempt), by the chosen host locality (region/zone/subzone) and priority', labelNames: ['cluster', 'locality', 'priority'], registers: r }),
    lbHealthyPanic: new Counter({ name: 'outrigger_lb_healthy_panic_total', help: 'Hosts picked while their priority was in panic mode (too few healthy hosts: traffic goes to all of them)', labelNames: ['cluster'], registers: r }),
    upstreamRetries: new Counter({ name: 'outrigger_upstream_retries_total', help: 'Retry decisions: retried, overflow (refused by the retry budget / max_retries), limit_exceeded (num_retries used up), not_buffered (body past the retry buffer limit)', labelNames: ['cluster', 'outcome'], registers: r }),
    mirrorRequests: new Counter({ name: 'outrigger_mirror_requests_total', help: 'Shadow copies of requests (request_mirror_policies): sent, failed, dropped (backlog past the buffer limit), skipped (no cluster or host)', labelNames: ['cluster', 'outcome'], registers: r }),
    lbEwmaSources,
    outlierEjectionsOverflow: new Counter({ name: 'outrigger_outlier_ejections_overflow_total', help: 'Outlier ejections refused because max_ejection_percent was reached', labelNames: ['cluster'], registers: r }),
    circuitBreakerSources,
    circuitBreakerOverflows: new Counter({ name: 'outrigger_circuit_breaker_overflows_total', help: 'Requests, connections and retries refused by a full circuit breaker, by cluster and resource (cx, pending, rq, retries)', labelNames: ['cluster', 'resource'], registers: r }),
    faultsInjected: new Counter({ name: 'outrigger_http_faults_injected_total', help: 'Faults injected by the fault filter, by kind (delay, abort)', labelNames: ['listener', 'kind'], registers: r }),
    faultsOverflow: new Counter({ name: 'outrigger_http_faults_overflow_total', help: 'Faults not injected because max_active_faults were already in progress', labelNames: ['listener'], registers: r }),
    localRateLimit: new Tallies({ name: 'outrigger_local_ratelimit_requests_total', help: 'Local rate limit decisions by listener and filter stat_prefix: allowed, rate_limited (refused 429), shadow_limited (over the limit but not enforced)', labelNames: ['listener', 'policy', 'result'], registers: r }),
    rbacDecisions: new Tallies({
      name: 'outrigger_rbac_decisions_total',
      help: 'RBAC filter decisions by listener, action (allowed, denied, shadow_allowed, shadow_denied, logged) and policy (the matched policy name from config, or none)',
      labelNames: ['listener', 'action', 'policy'],
      registers: r,
    }),
    jwtAuthn: new Tallies({ name: 'outrigger_jwt_authn_total', help: 'JWT authentication by listener: outcome allowed (a token verified), missing (no token, allowed by the requirement) or denied, with the failure reason (jwt_expired, jwt_bad_signature, ...; none when not denied)', labelNames: ['listener', 'outcome', 'reason'], registers: r }),
  };
}

interface RequestChildren {
  requests: { inc(): void };
  duration: { observe(v: number): void };
  reqBytes: { observe(v: number): void };
  respBytes: { observe(v: number): void };
}

/**
 * Records one request into the four Istio histograms/counters. prom-client's labels() hashes the label
 * object on every call, so children are cached per distinct label tuple (bounded: labels are bounded).
 */
export class RequestRecorder {
  private readonly cache = new Map<string, RequestChildren>();

  constructor(private readonly m: MeshMetrics) {}

  record(l: RequestLabels, durationMs: number, requestBytes: number, responseBytes: number): void {
    const key = `${l.reporter}|${l.source_principal}|${l.destination_principal}|${l.destination_service}|${l.destination_cluster}|${l.response_code}|${l.response_flags}|${l.request_protocol}|${l.grpc_response_status}|${l.connection_security_policy}`;
    let c = this.cache.get(key);
    if (c === undefined) {
      c = {
        requests: this.m.requestsTotal.labels(l),
        duration: this.m.requestDuration.labels(l),
        reqBytes: this.m.requestBytes.labels(l),
        respBytes: this.m.responseBytes.labels(l),
      };
      this.cache.set(key, c);
    }
    c.requests.inc();
    c.duration.observe(durationMs);
    c.reqBytes.observe(requestBytes);
    c.respBytes.observe(responseBytes);
  }
}

/**
 * The mesh CA's metrics. Istio's citadel_server_* names where Istio has one (dashboards and alerts carry
 * over), outrigger_ca_* for what Istio does not measure (refusal reasons, root rotation).
 */
export interface CaMetrics {
  readonly csrCount: Counter<string>;
  readonly issued: Counter<'auth'>;
  readonly refusals: Counter<'reason'>;
  readonly csrParseErrors: Counter<string>;
  readonly authFailures: Counter<string>;
  readonly rootCertExpiry: Gauge<string>;
  readonly certChainExpiry: Gauge<string>;
  readonly bundleRoots: Gauge<string>;
  readonly rotationPhase: Gauge<'phase'>;
  readonly watchers: Gauge<'state'>;
}

export function createCaMetrics(registry: Registry): CaMetrics {
  const r = [registry];
  return {
    csrCount: new Counter({ name: 'citadel_server_csr_count', help: 'CSRs received by the CA', registers: r }),
    issued: new Counter({ name: 'citadel_server_success_cert_issuance_count', help: 'Certificates issued, by how the caller authenticated (token, svid)', labelNames: ['auth'], registers: r }),
    refusals: new Counter({ name: 'outrigger_ca_refusals_total', help: 'CSRs refused, by reason', labelNames: ['reason'], registers: r }),
    csrParseErrors: new Counter({ name: 'citadel_server_csr_parsing_err_count', help: 'CSRs that could not be parsed or verified', registers: r }),
    authFailures: new Counter({ name: 'citadel_server_authentication_failure_count', help: 'CSRs whose caller could not be authenticated', registers: r }),
    rootCertExpiry: new Gauge({ name: 'citadel_server_root_cert_expiry_timestamp', help: 'notAfter of the earliest-expiring root in the trust bundle, seconds since epoch', registers: r }),
    certChainExpiry: new Gauge({ name: 'citadel_server_cert_chain_expiry_timestamp', help: 'notAfter of the signing certificate, seconds since epoch', registers: r }),
    bundleRoots: new Gauge({ name: 'outrigger_ca_trust_bundle_roots', help: 'Roots in the trust bundle (2 during a root rotation)', registers: r }),
    rotationPhase: new Gauge({ name: 'outrigger_ca_root_rotation_phase', help: '1 for the current root-rotation phase (idle, bundle_added, bundle_distributed, issuer_switched, renewed, old_root_removed)', labelNames: ['phase'], registers: r }),
    watchers: new Gauge({ name: 'outrigger_ca_trust_bundle_watchers', help: 'Sidecars connected to the trust-bundle watch, by what they hold (current, stale)', labelNames: ['state'], registers: r }),
  };
}

/** The sidecar identity manager's metrics (the expiry gauge is MeshMetrics.certExpiry, shared with file certs). */
export interface IdentityMetrics {
  readonly renewals: Counter<'result'>;
  readonly bundleUpdates: Counter<string>;
}

export function createIdentityMetrics(registry: Registry): IdentityMetrics {
  const r = [registry];
  return {
    renewals: new Counter({ name: 'outrigger_svid_renewals_total', help: 'SVID requests to the mesh CA, by result (ok, refused, unavailable)', labelNames: ['result'], registers: r }),
    bundleUpdates: new Counter({ name: 'outrigger_trust_bundle_updates_total', help: 'Trust bundles received from the mesh CA', registers: r }),
  };
}

/** The control server's mesh-config reloads: what a user alerts on when a bad change was rejected. */
export interface ConfigMetrics {
  readonly reloads: Counter<'result'>;
  readonly lastReloadSuccessful: Gauge;
  readonly lastReloadTimestamp: Gauge;
  readonly issues: Gauge;
}

export function createConfigMetrics(registry: Registry): ConfigMetrics {
  const r = [registry];
  return {
    reloads: new Counter({ name: 'outrigger_config_reloads_total', help: 'Mesh config loads, by result (ok, rejected)', labelNames: ['result'], registers: r }),
    // Named after Prometheus' own prometheus_config_last_reload_successful, which alerting rules already know.
    lastReloadSuccessful: new Gauge({ name: 'outrigger_config_last_reload_successful', help: '1 if the last mesh config change was accepted, 0 if it was rejected (the previous snapshot keeps serving)', registers: r }),
    lastReloadTimestamp: new Gauge({ name: 'outrigger_config_last_reload_success_timestamp_seconds', help: 'When the serving mesh config was accepted, seconds since epoch', registers: r }),
    issues: new Gauge({ name: 'outrigger_config_issues', help: 'Validation errors in the last rejected mesh config change (0 when it was accepted)', registers: r }),
  };
}

/** xDS short type names, the `type` label values Istio's pilot_* metrics use (bounded). */
export type XdsTypeLabel = 'cds' | 'eds' | 'lds' | 'rds';

/**
 * The ADS server's metrics. Istio's pilot_* names where istiod has one (pilot/pkg/xds/monitoring.go and
 * Istio's metrics reference), so its dashboards and alerts carry over; outrigger_xds_* for what istiod does not
 * measure (push-to-ACK latency, refused streams by reason, requests for types we do not serve).
 */
export interface XdsMetrics {
  /** pilot_xds: connected xDS streams, by proxy kind (sidecar, proxyless) and transport (mtls, plaintext). */
  readonly connected: Gauge<'kind' | 'transport'>;
  readonly pushes: Counter<'type'>;
  readonly rejects: Counter<'type'>;
  readonly expiredNonces: Counter<'type'>;
  readonly configSize: Histogram<'type'>;
  readonly convergence: Histogram<string>;
  readonly pushToAck: Histogram<'type'>;
  readonly refusals: Counter<'reason'>;
  readonly unsupported: Counter<string>;
}

export function createXdsMetrics(registry: Registry): XdsMetrics {
  const r = [registry];
  return {
    connected: new Gauge({ name: 'pilot_xds', help: 'xDS streams connected to this control server, by proxy kind and transport', labelNames: ['kind', 'transport'], registers: r }),
    pushes: new Counter({ name: 'pilot_xds_pushes', help: 'DiscoveryResponses sent, by xDS type (cds, eds, lds, rds)', labelNames: ['type'], registers: r }),
    rejects: new Counter({ name: 'pilot_total_xds_rejects', help: 'DiscoveryResponses a proxy rejected (NACK with error_detail), by xDS type', labelNames: ['type'], registers: r }),
    expiredNonces: new Counter({ name: 'pilot_xds_expired_nonce', help: 'Requests ignored because their response_nonce was not the latest sent for the type', labelNames: ['type'], registers: r }),
    // Istio's boundaries: 4 MB is gRPC's default receive limit, 10 MB strains a proxy.
    configSize: new Histogram({ name: 'pilot_xds_config_size_bytes', help: 'Size of DiscoveryResponses sent, by xDS type', labelNames: ['type'], buckets: [1, 10000, 1000000, 4000000, 10000000, 40000000], registers: r }),
    convergence: new Histogram({ name: 'pilot_proxy_convergence_time', help: 'Seconds from a config change to the push of every changed type to one proxy', buckets: [0.1, 0.5, 1, 3, 5, 10, 20, 30], registers: r }),
    pushToAck: new Histogram({ name: 'outrigger_xds_push_to_ack_seconds', help: 'Seconds from a DiscoveryResponse to the ACK of its nonce, by xDS type', labelNames: ['type'], buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30], registers: r }),
    refusals: new Counter({ name: 'outrigger_xds_refusals_total', help: 'ADS streams the server ended, by reason (node_missing, node_invalid, identity_mismatch, no_client_cert, svid_invalid, malformed_request, type_url_missing, internal)', labelNames: ['reason'], registers: r }),
    unsupported: new Counter({ name: 'outrigger_xds_unsupported_requests_total', help: 'DiscoveryRequests for a type URL this server does not serve (ignored)', registers: r }),
  };
}

/**
 * The sidecar's xDS client. Envoy counts update_success / update_rejected per subscription
 * (control_plane.connected_state for the stream); here one counter with the xDS type (cds, eds, lds, rds)
 * and the answer we sent.
 */
export interface XdsClientMetrics {
  readonly updates: Counter<'type' | 'result'>;
  readonly connected: Gauge<string>;
  readonly applyDuration: Histogram<'type'>;
}

const APPLY_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000];

export function createXdsClientMetrics(registry: Registry): XdsClientMetrics {
  const r = [registry];
  return {
    updates: new Counter({ name: 'outrigger_xds_updates_total', help: 'xDS responses answered, by type (cds, eds, lds, rds) and result (ack, nack)', labelNames: ['type', 'result'], registers: r }),
    connected: new Gauge({ name: 'outrigger_xds_connected', help: '1 while the ADS stream to the control server is up', registers: r }),
    applyDuration: new Histogram({ name: 'outrigger_xds_apply_duration_milliseconds', help: 'Time to decode, validate and apply one xDS response, by type', labelNames: ['type'], buckets: APPLY_BUCKETS, registers: r }),
  };
}

/** The control server's JWKS resolver (RequestAuthentication jwksUri), and the sidecar's unknown-kid refresh requests. */
export interface JwksMetrics {
  readonly fetches: Counter<'result'>;
  readonly refreshRequests: Counter<'result'>;
}

export function createJwksMetrics(registry: Registry): JwksMetrics {
  const r = [registry];
  return {
    fetches: new Counter({ name: 'outrigger_jwks_fetches_total', help: 'JWKS fetches by the control server, by result (ok, unchanged, http_error, network_error, timeout, too_large, invalid)', labelNames: ['result'], registers: r }),
    refreshRequests: new Counter({ name: 'outrigger_jwks_refresh_requests_total', help: 'Unknown-kid refresh requests, by result (fetching, cooldown, known_kid, unknown_issuer, refused)', labelNames: ['result'], registers: r }),
  };
}
