// One ADS stream (State of the World): who the proxy is, what it subscribes to per type, and the ACK/NACK state of each.
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Clock } from '../../core/clock.js';
import { errorMessage, formatIssue, type FieldIssue } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import { checkX509Svid } from '../../identity/svid.js';
import type { NodeInfo } from '../../model/types.js';
import type { Logger } from '../../telemetry/logger.js';
import type { XdsMetrics, XdsTypeLabel } from '../../telemetry/metrics.js';
import { decodeNode } from '../../xds/resources/bootstrap.js';
import { Issues } from '../../xds/resources/common.js';
import { SERVED_TYPES, type NodeSnapshot, type ProxyNode, type ServedType, type SnapshotSource } from '../snapshot.js';
import { AdsRefusal } from './errors.js';
import type { LogLimiter } from '../../telemetry/log-limit.js';
import { isMalformed, withNonce, type DiscoveryRequest, type MalformedRequest } from './protocol.js';
import type { ResponseCache, Selection } from './response-cache.js';
import type { XdsNodeStatus, XdsPolicyStatus, XdsSyncState, XdsTypeStatus } from './status.js';

export type Transport = 'mtls' | 'plaintext';

export const TYPE_LABEL: Readonly<Record<ServedType, XdsTypeLabel>> = {
  'type.googleapis.com/envoy.config.cluster.v3.Cluster': 'cds',
  'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment': 'eds',
  'type.googleapis.com/envoy.config.listener.v3.Listener': 'lds',
  'type.googleapis.com/envoy.config.route.v3.RouteConfiguration': 'rds',
};

const [CDS, EDS, LDS, RDS] = SERVED_TYPES;

/** Only Listener and Cluster have a wildcard subscription (xDS protocol, "How the client specifies what resources to return"). */
const WILDCARD_TYPES: ReadonlySet<string> = new Set([LDS, CDS]);

/**
 * Envoy warms a new or changed Cluster until it gets a ClusterLoadAssignment, and a Listener until its
 * RouteConfiguration, even when those did not change (xDS protocol, "Resource warming", and
 * envoyproxy/envoy#13009). After a CDS (LDS) response the next EDS (RDS) request is therefore answered even
 * when it looks like a plain ACK, as istiod's WatchedResource.AlwaysRespond does.
 */
const WARMS: Partial<Record<ServedType, ServedType>> = { [CDS]: EDS, [LDS]: RDS };

const EMPTY: ReadonlyMap<string, Uint8Array> = new Map();

/** What a stream needs from the server: shared by every stream. */
export interface StreamContext {
  readonly source: SnapshotSource;
  readonly identify: (node: NodeInfo) => Result<ProxyNode, FieldIssue>;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: XdsMetrics;
  readonly responses: ResponseCache;
  readonly nackLog: LogLimiter;
  nextNonce(): string;
  nextConnectionId(nodeId: string): string;
  /** The stream's node is known and verified: it takes part in pushes and status from now on. */
  admitted(stream: AdsStream): void;
  /** The stream ended (once, whatever ended it). */
  released(stream: AdsStream): void;
  /** An ACK or NACK of the latest response (once per response). */
  answered(e: XdsAnswer): void;
}

/** What AdsServer emits as 'ack' and 'nack': a proxy accepted or rejected the latest response of a type. */
export interface XdsAnswer {
  readonly kind: 'ack' | 'nack';
  readonly nodeId: string;
  readonly connectionId: string;
  readonly typeUrl: ServedType;
  /** ACK: the version applied. NACK: the version rejected. */
  readonly version: string;
  /** NACK: error_detail.message. */
  readonly message?: string;
}

interface Nack {
  readonly nonce: string;
  readonly version: string;
  readonly code: number;
  readonly message: string;
  readonly at: number;
}

/** One type on one stream. */
class TypeState implements Selection {
  /** Ever subscribed by name: from then on an empty list unsubscribes instead of meaning the wildcard. */
  private explicit = false;
  wildcard = false;
  names: ReadonlySet<string> = new Set();
  sortedNames: readonly string[] = [];
  /** Latest response sent; undefined until one is. */
  nonce: string | undefined;
  sentVersion: string | undefined;
  sentAtMono = 0;
  sentAtWall = 0;
  /** The nonce last ACKed or NACKed, so a re-sent ACK (a subscription change) is not counted twice. */
  answered: string | undefined;
  ackedVersion: string | undefined;
  /**
   * LDS of a sidecar: the security-policy version of the listeners sent last, and of those last ACKed. A
   * sidecar ACKs a Listener response only after it applied it, so the ACKed one is the policy it enforces.
   */
  sentPolicy: string | undefined;
  ackedPolicy: string | undefined;
  nack: Nack | undefined;
  alwaysRespond = false;

  constructor(readonly typeUrl: ServedType) {}

  /**
   * Applies a request's resource_names; true when the subscription changed. The legacy rule: an empty list
   * is the wildcard until the stream has named a resource for the type; "*" is the wildcard always.
   */
  subscribe(requested: readonly string[]): boolean {
    const wildcardType = WILDCARD_TYPES.has(this.typeUrl);
    if (requested.length > 0) this.explicit = true;
    const wildcard = wildcardType && (!this.explicit || requested.includes('*'));
    const names = new Set(wildcardType ? requested.filter((n) => n !== '*') : requested);
    const changed = this.nonce === undefined || wildcard !== this.wildcard || names.size !== this.names.size || [...names].some((n) => !this.names.has(n));
    this.wildcard = wildcard;
    this.names = names;
    if (changed) this.sortedNames = [...names].sort();
    return changed;
  }

  /** Subscribed to nothing: no response is due (an unsubscribe is not answered, as istiod does). */
  get empty(): boolean {
    return !this.wildcard && this.names.size === 0;
  }

  state(current: string): XdsSyncState {
    if (this.nonce === undefined) return 'NOT_SENT';
    if (this.nack?.nonce === this.nonce) return 'NACKED';
    return this.answered === this.nonce && this.ackedVersion === this.sentVersion && this.sentVersion === current ? 'SYNCED' : 'STALE';
  }
}

function nodeFields(n: Readonly<Record<string, unknown>>): Record<string, unknown> {
  // Envoy and gRPC also send user_agent_*, extensions, client_features...: only what identifies a proxy is decoded.
  const o: Record<string, unknown> = {};
  for (const k of ['id', 'cluster', 'locality', 'metadata']) if (n[k] !== undefined && n[k] !== null) o[k] = n[k];
  return o;
}

export class AdsStream {
  node: ProxyNode | undefined;
  /** node.id of the first request, for logs about a stream refused before it is admitted. */
  private claimedId: string | undefined;
  connectionId = '';
  readonly connectedAt: number;
  readonly peer: string;
  closed = false;
  private readonly types = new Map<ServedType, TypeState>();
  private readonly unsupportedSeen = new Set<string>();
  /** The SPIFFE ID of the verified client certificate (mTLS port only). */
  private readonly peerId: string | undefined;

  constructor(
    private readonly call: grpc.ServerDuplexStream<DiscoveryRequest | MalformedRequest, Buffer>,
    readonly transport: Transport,
    private readonly requireIdentity: boolean,
    private readonly ctx: StreamContext,
  ) {
    this.connectedAt = ctx.clock.now();
    this.peer = call.getPeer();
    const done = () => this.release();
    call.on('data', (r: DiscoveryRequest | MalformedRequest) => this.handle(r));
    // A client that half-closes is done; Envoy never does this on ADS.
    call.on('end', () => this.end(grpc.status.OK, 'client closed the stream'));
    call.on('cancelled', done);
    call.on('error', done);
    call.on('close', done);
    this.peerId = requireIdentity ? this.verifiedPeer() : undefined;
  }

  /** grpc-js reports a peer certificate only once it verified against the server's roots (socket.authorized). */
  private verifiedPeer(): string | undefined {
    const raw = this.call.getAuthContext?.()?.sslPeerCertificate?.raw;
    if (!raw) {
      this.fail(new AdsRefusal(grpc.status.UNAUTHENTICATED, 'no_client_cert', 'the xDS port over TLS needs a client certificate (an X509-SVID) that verifies against the mesh trust bundle'));
      return undefined;
    }
    const check = checkX509Svid(new X509Certificate(raw));
    if (!check.ok) {
      this.fail(new AdsRefusal(grpc.status.UNAUTHENTICATED, 'svid_invalid', `client certificate is not a valid X509-SVID: ${check.message}`));
      return undefined;
    }
    return check.id.uri;
  }

  private handle(req: DiscoveryRequest | MalformedRequest): void {
    if (this.closed) return;
    try {
      if (isMalformed(req)) throw new AdsRefusal(grpc.status.INVALID_ARGUMENT, 'malformed_request', `malformed DiscoveryRequest: ${req.malformed}`);
      if (!this.node) this.admit(req);
      this.request(req);
    } catch (e) {
      this.fail(e);
    }
  }

  /**
   * The first request names the proxy ("Only the first request on a stream is guaranteed to carry the node
   * identifier", xDS protocol, Basic Protocol Overview); later nodes are ignored. On the mTLS port the
   * identity the metadata claims must be the one the client certificate proves.
   */
  private admit(req: DiscoveryRequest): void {
    const n = req.node;
    if (!n || typeof n.id !== 'string' || n.id === '') {
      throw new AdsRefusal(grpc.status.INVALID_ARGUMENT, 'node_missing', 'the first DiscoveryRequest on a stream must carry node with a node.id (envoy.service.discovery.v3.DiscoveryRequest.node)');
    }
    this.claimedId = n.id;
    const issues = new Issues();
    const info = decodeNode(nodeFields(n), 'node', issues);
    const r = issues.list.length > 0 ? { ok: false as const, errors: issues.list } : this.ctx.identify(info);
    if (!r.ok) throw new AdsRefusal(grpc.status.INVALID_ARGUMENT, 'node_invalid', `node ${JSON.stringify(n.id)} refused: ${r.errors.map(formatIssue).join('; ')}`);
    const node = r.value;
    if (this.requireIdentity && node.spiffeId !== this.peerId) {
      throw new AdsRefusal(grpc.status.PERMISSION_DENIED, 'identity_mismatch', `node ${JSON.stringify(node.id)} claims ${node.spiffeId} (node metadata NAMESPACE/SERVICE_ACCOUNT) but its client certificate is ${this.peerId}`);
    }
    this.node = node;
    this.connectionId = this.ctx.nextConnectionId(node.id);
    this.ctx.admitted(this);
    this.ctx.logger.info({ node: node.id, kind: node.kind, spiffeId: node.spiffeId, peer: this.peer, transport: this.transport, conn: this.connectionId }, 'ADS stream connected');
  }

  private request(req: DiscoveryRequest): void {
    const typeUrl = req.type_url ?? '';
    // ADS multiplexes every type on one stream, so a request must say which one it is about.
    if (typeUrl === '') throw new AdsRefusal(grpc.status.INVALID_ARGUMENT, 'type_url_missing', 'DiscoveryRequest.type_url is required on an aggregated (ADS) stream');
    if (!(typeUrl in TYPE_LABEL)) return this.unsupported(typeUrl);
    const type = typeUrl as ServedType;
    const nonce = req.response_nonce ?? '';
    let st = this.types.get(type);
    // "The management server should not send a DiscoveryResponse for any DiscoveryRequest that has a stale
    // nonce. A nonce becomes stale following a newer nonce being presented" (xDS protocol, Resource updates).
    // Its subscription is not applied either: the request answering the newer response carries the current one.
    if (nonce !== '' && st?.nonce !== undefined && nonce !== st.nonce) {
      this.ctx.metrics.expiredNonces.inc({ type: TYPE_LABEL[type] });
      return;
    }
    // No nonce, or a nonce from an earlier stream ("it does not survive stream restarts"): the client starts
    // over for this type and is always answered, whatever version_info it reports (istiod's INIT/RECONNECT),
    // because this server cannot know which resources the client holds.
    const initial = nonce === '' || st?.nonce === undefined;
    if (!st) {
      st = new TypeState(type);
      this.types.set(type, st);
    }
    const changed = st.subscribe(req.resource_names ?? []);
    const isNack = req.error_detail !== undefined && req.error_detail !== null;
    if (!initial) {
      if (isNack) this.nack(st, req, nonce);
      else this.ack(st, req, nonce);
    }
    // A changed subscription is answered even on a NACK: "the server must resend any newly requested
    // resources", and gRPC clients repeat their last error_detail on every request until a response is valid.
    if (initial || changed || (st.alwaysRespond && !isNack)) this.send(st, this.snapshot());
  }

  private ack(st: TypeState, req: DiscoveryRequest, nonce: string): void {
    if (st.answered === nonce) return;
    st.answered = nonce;
    st.ackedVersion = req.version_info ?? '';
    // An ACK names the version it applied; anything but the one just sent leaves what it enforces unknown.
    st.ackedPolicy = st.ackedVersion === st.sentVersion ? st.sentPolicy : undefined;
    this.ctx.metrics.pushToAck.observe({ type: TYPE_LABEL[st.typeUrl] }, (this.ctx.clock.monotonic() - st.sentAtMono) / 1000);
    this.ctx.answered({ kind: 'ack', nodeId: this.node!.id, connectionId: this.connectionId, typeUrl: st.typeUrl, version: st.ackedVersion });
  }

  /**
   * The proxy rejected the latest response and keeps its last ACKed config. Nothing is resent: the same
   * snapshot would be rejected again; the next config change pushes again. version_info of a NACK is the
   * version the client still uses (xDS protocol, "ACK and NACK semantics summary").
   */
  private nack(st: TypeState, req: DiscoveryRequest, nonce: string): void {
    if (st.answered === nonce) return;
    st.answered = nonce;
    const d = req.error_detail!;
    st.nack = { nonce, version: st.sentVersion ?? '', code: d.code ?? 0, message: d.message ?? '', at: this.ctx.clock.now() };
    st.ackedVersion = req.version_info || undefined;
    this.ctx.metrics.rejects.inc({ type: TYPE_LABEL[st.typeUrl] });
    const node = this.node!;
    const gate = this.ctx.nackLog.allow(node.id);
    if (gate) {
      this.ctx.logger.warn({ node: node.id, type: TYPE_LABEL[st.typeUrl], rejected: st.nack.version, using: st.ackedVersion, code: st.nack.code, error: st.nack.message, suppressed: gate.suppressed || undefined }, 'proxy rejected config (NACK); it keeps its last accepted version');
    }
    this.ctx.answered({ kind: 'nack', nodeId: node.id, connectionId: this.connectionId, typeUrl: st.typeUrl, version: st.nack.version, message: st.nack.message });
  }

  /**
   * Types this server does not serve (Secret, ScopedRouteConfiguration, VirtualHost, made-up ones) are
   * ignored, as istiod sends nothing when no generator yields resources for a type (pushXds): no response, so
   * a gRPC client's 15 s does-not-exist timer or Envoy's warming timeout applies, and the stream stays up for
   * the other types. go-control-plane ends the stream instead, which would take the served types down too.
   * Logged once per type per stream, counted always.
   */
  private unsupported(typeUrl: string): void {
    this.ctx.metrics.unsupported.inc();
    if (this.unsupportedSeen.has(typeUrl) || this.unsupportedSeen.size >= 16) return;
    this.unsupportedSeen.add(typeUrl);
    this.ctx.logger.warn({ node: this.node!.id, typeUrl: typeUrl.slice(0, 200) }, 'ADS request for a type this server does not serve; ignored');
  }

  private snapshot(): NodeSnapshot {
    return this.ctx.source.snapshotFor(this.node!);
  }

  /** Writes the SotW response for one type; false when the stream subscribes to nothing of it. */
  private send(st: TypeState, snap: NodeSnapshot): boolean {
    if (st.empty) return false;
    const version = snap.versions.get(st.typeUrl) ?? '';
    const body = this.ctx.responses.body(st.typeUrl, snap.resources.get(st.typeUrl) ?? EMPTY, version, st);
    const nonce = this.ctx.nextNonce();
    this.call.write(withNonce(body, nonce));
    st.nonce = nonce;
    st.sentVersion = version;
    if (st.typeUrl === LDS) st.sentPolicy = snap.policyVersion;
    st.sentAtMono = this.ctx.clock.monotonic();
    st.sentAtWall = this.ctx.clock.now();
    st.alwaysRespond = false;
    const label = TYPE_LABEL[st.typeUrl];
    this.ctx.metrics.pushes.inc({ type: label });
    this.ctx.metrics.configSize.observe({ type: label }, body.length);
    const warms = WARMS[st.typeUrl];
    const dependent = warms && this.types.get(warms);
    if (dependent) dependent.alwaysRespond = true;
    return true;
  }

  /**
   * After a config change: every subscribed type whose version for this proxy changed, in make-before-break
   * order (CDS, EDS, LDS, RDS: xDS protocol, "Eventual consistency considerations"). Unchanged types are not
   * resent ("only send updates ... when the resources ... have changed", "When to send an update").
   */
  pushChanges(): boolean {
    if (this.closed || !this.node) return false;
    let sent = false;
    try {
      const snap = this.snapshot();
      for (const type of SERVED_TYPES) {
        const st = this.types.get(type);
        if (st && st.sentVersion !== (snap.versions.get(type) ?? '')) sent = this.send(st, snap) || sent;
      }
    } catch (e) {
      this.fail(e);
    }
    return sent;
  }

  status(): XdsNodeStatus {
    const node = this.node!;
    let versions: ReadonlyMap<ServedType, string>;
    let policy: string | undefined;
    try {
      ({ versions, policyVersion: policy } = this.snapshot());
    } catch {
      // The translator failing for this proxy must not take /status down; pushes report it (INTERNAL).
      versions = new Map();
    }
    const types: Partial<Record<XdsTypeLabel, XdsTypeStatus>> = {};
    for (const [type, st] of this.types) {
      const current = versions.get(type) ?? '';
      const iso = (ms: number) => new Date(ms).toISOString();
      types[TYPE_LABEL[type]] = {
        type_url: type,
        state: st.state(current),
        current_version: current,
        ...(st.sentVersion !== undefined && { sent_version: st.sentVersion, last_push: iso(st.sentAtWall) }),
        ...(st.ackedVersion !== undefined && { acked_version: st.ackedVersion }),
        wildcard: st.wildcard,
        subscribed_names: st.names.size,
        ...(st.nack && { nack: { version: st.nack.version, code: st.nack.code, message: st.nack.message, at: iso(st.nack.at) } }),
      };
    }
    return {
      connection_id: this.connectionId,
      node_id: node.id,
      kind: node.kind,
      namespace: node.namespace,
      service_account: node.serviceAccount,
      spiffe_id: node.spiffeId,
      connected_at: new Date(this.connectedAt).toISOString(),
      peer: this.peer,
      transport: this.transport,
      types,
      ...(policy !== undefined && { policy: this.policyStatus(policy, types.lds?.state) }),
    };
  }

  /** Which security-policy version the sidecar enforces (the one of the listeners it ACKed last) against the current one. */
  private policyStatus(current: string, lds: XdsSyncState | undefined): XdsPolicyStatus {
    const enforced = this.types.get(LDS)?.ackedPolicy;
    const state: XdsSyncState = enforced === current ? 'SYNCED' : lds === 'NACKED' ? 'NACKED' : lds === undefined ? 'NOT_SENT' : 'STALE';
    return { current_version: current, ...(enforced !== undefined && { enforced_version: enforced }), state };
  }

  private fail(e: unknown): void {
    const r = e instanceof AdsRefusal ? e : new AdsRefusal(grpc.status.INTERNAL, 'internal', `ADS server error: ${errorMessage(e)}`, e);
    this.ctx.metrics.refusals.inc({ reason: r.reason });
    this.ctx.logger.warn({ node: this.node?.id ?? this.claimedId, peer: this.peer, transport: this.transport, reason: r.reason, error: r.message }, 'ADS stream refused');
    this.end(r.status, r.message);
  }

  /** Ends the stream with a status (OK: a clean end); later requests on it are ignored. */
  end(code: grpc.status, details: string): void {
    if (this.closed) return;
    this.release();
    if (code === grpc.status.OK) this.call.end();
    else this.call.emit('error', { code, details });
  }

  private release(): void {
    if (this.closed) return;
    this.closed = true;
    this.ctx.released(this);
  }
}
