// The CA's gRPC handlers: CreateCertificate (token or SVID proves the identity; only that identity is signed) and the trust-bundle watch.
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { errorMessage } from '../core/errors.js';
import { requestMetadata, type CertificateRequest, type CertificateResponse, type TrustBundleAck, type TrustBundleUpdate } from '../identity/ca-api.js';
import { checkCsrFor, parseCsr, type ParsedCsr } from '../identity/csr.js';
import { IdentityError } from '../identity/errors.js';
import { issuedBy } from '../identity/pem.js';
import { parseSpiffeId } from '../identity/spiffe.js';
import { checkX509Svid } from '../identity/svid.js';
import type { TokenVerifier } from '../identity/token.js';
import type { CaMetrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/logger.js';
import type { CaAuthority } from './ca-authority.js';

export interface CaServiceOptions {
  readonly authority: CaAuthority;
  readonly tokens: TokenVerifier;
  readonly logger: Logger;
  readonly metrics: CaMetrics;
  /** SVID lifetime when the request asks for none (1 h, as SPIRE). */
  readonly defaultTtlMs: number;
  /** Longest lifetime the CA signs; longer requests are refused, not silently shortened. */
  readonly maxTtlMs: number;
}

/** One connected sidecar as the watch stream reports it; root rotation waits on these. */
export interface Watcher {
  readonly spiffeId: string;
  instance: string;
  bundleVersion: string;
  issuerFingerprint: string;
}

interface Caller {
  readonly spiffeId: string;
  readonly auth: 'svid' | 'token';
  /** The bootstrap token, checked but not yet spent. */
  readonly token?: { readonly jti: string; readonly expiresAt: number; readonly spiffeId: string };
}

/** A refusal with the gRPC status the caller sees and a bounded reason for the metric. */
class Refusal extends Error {
  constructor(
    readonly status: grpc.status,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

function fromIdentityError(e: unknown, fallback: string): Refusal {
  if (e instanceof Refusal) return e;
  if (e instanceof IdentityError) {
    const reason = String(e.details.reason ?? fallback);
    const status = e.code === 'TOKEN_INVALID' ? grpc.status.UNAUTHENTICATED : reason === 'malformed' || reason === 'bad_signature' || reason === 'weak_key' ? grpc.status.INVALID_ARGUMENT : grpc.status.PERMISSION_DENIED;
    return new Refusal(status, e.code === 'TOKEN_INVALID' ? `token_${reason}` : reason, e.message);
  }
  return new Refusal(grpc.status.INTERNAL, 'internal', `signing failed: ${errorMessage(e)}`);
}

export class CaService {
  readonly watchers = new Set<Watcher>();
  private readonly streams = new Set<grpc.ServerDuplexStream<TrustBundleAck, TrustBundleUpdate>>();

  constructor(private readonly o: CaServiceOptions) {
    o.authority.on('change', () => {
      const u = this.update();
      for (const s of this.streams) s.write(u);
      this.observeWatchers();
    });
  }

  /** The identity an mTLS peer proved: a verified (by the TLS stack, against the bundle) X509-SVID of our trust domain. */
  svidIdentity(call: Pick<grpc.ServerUnaryCall<unknown, unknown>, 'getAuthContext'>): string | undefined {
    const peer = call.getAuthContext().sslPeerCertificate;
    if (!peer?.raw) return undefined;
    const leaf = new X509Certificate(peer.raw);
    const check = checkX509Svid(leaf, { trustDomain: this.o.authority.trustDomain });
    if (!check.ok) throw new Refusal(grpc.status.UNAUTHENTICATED, 'svid_invalid', `client certificate is not a valid X509-SVID: ${check.message}`);
    // Chaining to a bundle root is not enough when that root is shared (an enterprise root over several
    // CAs): only an SVID this CA signed proves an identity here.
    if (!this.o.authority.signers().some((s) => issuedBy(leaf, s))) {
      throw new Refusal(grpc.status.UNAUTHENTICATED, 'svid_foreign', `client certificate ${check.id.uri} was not issued by this CA`);
    }
    return check.id.uri;
  }

  /** Who the caller is. A token is checked here but spent only once a certificate will be issued. */
  private async authenticate(call: grpc.ServerUnaryCall<CertificateRequest, CertificateResponse>): Promise<Caller> {
    const fromSvid = this.svidIdentity(call);
    if (fromSvid) return { spiffeId: fromSvid, auth: 'svid' };
    const header = call.metadata.get('authorization')[0];
    const m = typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!m) throw new Refusal(grpc.status.UNAUTHENTICATED, 'no_credential', 'no credential: present a valid SVID (mTLS) or a bootstrap token (authorization: Bearer …)');
    const token = await this.o.tokens.check(m[1]!);
    if (parseSpiffeId(token.spiffeId).trustDomain !== this.o.authority.trustDomain) {
      throw new Refusal(grpc.status.PERMISSION_DENIED, 'trust_domain_mismatch', `token identity ${token.spiffeId} is not in trust domain ${this.o.authority.trustDomain}`);
    }
    return { spiffeId: token.spiffeId, auth: 'token', token };
  }

  private ttlOf(req: CertificateRequest): number {
    const seconds = Number(req.validity_duration ?? 0);
    if (!Number.isFinite(seconds) || seconds < 0) throw new Refusal(grpc.status.INVALID_ARGUMENT, 'ttl_invalid', `validity_duration ${String(req.validity_duration)} is not a non-negative number of seconds`);
    const ttlMs = seconds === 0 ? this.o.defaultTtlMs : seconds * 1000;
    if (ttlMs > this.o.maxTtlMs) {
      throw new Refusal(grpc.status.INVALID_ARGUMENT, 'ttl_too_long', `requested validity ${seconds}s is above the CA's maximum of ${this.o.maxTtlMs / 1000}s`);
    }
    return ttlMs;
  }

  async createCertificate(call: grpc.ServerUnaryCall<CertificateRequest, CertificateResponse>): Promise<CertificateResponse> {
    const req = call.request;
    const instance = requestMetadata(req, 'instance') ?? '';
    this.o.metrics.csrCount.inc();
    let who: Caller | undefined;
    try {
      // A single-use token is spent only for a certificate: a bad or over-asking CSR leaves it usable.
      const ttlMs = this.ttlOf(req);
      let csr: ParsedCsr;
      try {
        csr = await parseCsr(req.csr ?? '');
      } catch (e) {
        this.o.metrics.csrParseErrors.inc();
        throw e;
      }
      try {
        who = await this.authenticate(call);
      } catch (e) {
        this.o.metrics.authFailures.inc();
        throw e;
      }
      checkCsrFor(csr, who.spiffeId);
      // Synchronous and durable (fsynced) before signing: of two requests with one token exactly one gets here.
      if (who.token) this.o.tokens.consume(who.token);
      const issued = await this.o.authority.sign(csr, who.spiffeId, ttlMs);
      this.o.metrics.issued.inc({ auth: who.auth });
      this.o.logger.info({ spiffeId: who.spiffeId, auth: who.auth, serial: issued.serial, notAfter: new Date(issued.notAfter).toISOString(), key: csr.keyDescription, instance }, 'certificate issued');
      return { cert_chain: [...issued.chainPems, this.o.authority.bundlePem] };
    } catch (e) {
      const r = fromIdentityError(e, 'refused');
      this.o.metrics.refusals.inc({ reason: r.reason });
      this.o.logger.warn({ spiffeId: who?.spiffeId, reason: r.reason, error: r.message, peer: call.getPeer(), instance }, 'certificate refused');
      throw r;
    }
  }

  private update(): TrustBundleUpdate {
    const a = this.o.authority;
    return { bundle_version: a.bundleVersion, roots: a.roots.map((c) => c.toString()), issuer_fingerprint: a.issuerFingerprint };
  }

  /** mTLS only: the watch is how root rotation knows who holds what, so anonymous watchers are refused. */
  watch(call: grpc.ServerDuplexStream<TrustBundleAck, TrustBundleUpdate>): void {
    let spiffeId: string | undefined;
    try {
      spiffeId = this.svidIdentity(call);
    } catch (e) {
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: errorMessage(e) });
      return;
    }
    if (!spiffeId) {
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'the trust-bundle watch needs a valid SVID as the client certificate' });
      return;
    }
    const w: Watcher = { spiffeId, instance: '', bundleVersion: '', issuerFingerprint: '' };
    this.watchers.add(w);
    this.streams.add(call);
    const done = () => {
      this.watchers.delete(w);
      this.streams.delete(call);
      this.observeWatchers();
      this.o.authority.emit('progress');
    };
    call.on('data', (a: TrustBundleAck) => {
      // A sidecar that reconnected replaces the stream it had; the old one may never report an end.
      if (a.instance && a.instance !== w.instance) for (const o of this.watchers) if (o !== w && o.instance === a.instance) this.watchers.delete(o);
      w.instance = a.instance;
      w.bundleVersion = a.bundle_version;
      w.issuerFingerprint = a.issuer_fingerprint;
      this.observeWatchers();
      this.o.authority.emit('progress');
    });
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('cancelled', done);
    call.write(this.update());
  }

  private observeWatchers(): void {
    let current = 0;
    for (const w of this.watchers) if (w.bundleVersion === this.o.authority.bundleVersion && w.issuerFingerprint === this.o.authority.issuerFingerprint) current++;
    this.o.metrics.watchers.set({ state: 'current' }, current);
    this.o.metrics.watchers.set({ state: 'stale' }, this.watchers.size - current);
  }

  /** Handlers for grpc.Server.addService. */
  handlers(): { certificate: grpc.UntypedServiceImplementation; trustBundle: grpc.UntypedServiceImplementation } {
    return {
      certificate: {
        CreateCertificate: (call: grpc.ServerUnaryCall<CertificateRequest, CertificateResponse>, cb: grpc.sendUnaryData<CertificateResponse>) => {
          this.createCertificate(call).then(
            (r) => cb(null, r),
            (e: Refusal) => cb({ code: e.status, details: e.message }),
          );
        },
      },
      trustBundle: { Watch: (call: grpc.ServerDuplexStream<TrustBundleAck, TrustBundleUpdate>) => this.watch(call) },
    };
  }

  close(): void {
    for (const s of this.streams) s.end();
    this.streams.clear();
  }
}
