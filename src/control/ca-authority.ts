// The control server's CA state: the signing CA, the trust bundle and its version, the serving certificate, and the root-rotation file moves.
import { EventEmitter } from 'node:events';
import { X509Certificate, createHash } from 'node:crypto';
import { cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import type { Clock, Timer } from '../core/clock.js';
import { issueServingCert, signCsr, type CaBundle } from '../identity/ca.js';
import { DEFAULT_CA_SERVER_NAME, splitPem } from '../identity/ca-api.js';
import { loadCaDir, writeCaFiles, type CaDir } from '../identity/ca-dir.js';
import type { ParsedCsr } from '../identity/csr.js';
import { IdentityError } from '../identity/errors.js';
import type { CaMetrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/logger.js';

type CertificateProvider = grpc.experimental.CertificateProvider;
type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdListener = grpc.experimental.IdentityCertificateUpdateListener;

/** Where a root rotation stands, derived from the CA directory so a restart resumes where it stopped. */
export type StoredPhase = 'idle' | 'bundle_added' | 'issuer_switched';

export interface AuthorityOptions {
  readonly trustDomain: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: CaMetrics;
  /** Names the control server answers to; they go into its serving certificate as DNS and IP SANs. */
  readonly serverNames: readonly string[];
  readonly servingTtlMs?: number;
}

export interface IssuedChain {
  /** Leaf, then intermediates (no root). */
  readonly chainPems: readonly string[];
  readonly serial: string;
  readonly notAfter: number;
}

/** The rotation's staging area inside the CA directory: the incoming CA, in Istio's layout. */
export const NEXT_DIR = 'next';

function anchoredBy(chainTop: X509Certificate, root: X509Certificate): boolean {
  return chainTop.checkIssued(root) && chainTop.verify(root.publicKey);
}

/**
 * Serves the serving certificate and the bundle to grpc-js as a live CertificateProvider: a rotation
 * swaps them in place and new handshakes pick them up, as the sidecar's listeners do.
 */
class LiveCredentials implements CertificateProvider {
  private readonly caListeners = new Set<CaListener>();
  private readonly idListeners = new Set<IdListener>();
  private ca: Buffer | undefined;
  private id: { certificate: Buffer; privateKey: Buffer } | undefined;

  set(bundlePem: string, certChainPem: string, keyPem: string): void {
    this.ca = Buffer.from(bundlePem);
    this.id = { certificate: Buffer.from(certChainPem), privateKey: Buffer.from(keyPem) };
    for (const l of this.caListeners) l({ caCertificate: this.ca });
    for (const l of this.idListeners) l(this.id);
  }

  // grpc-js registers its own watcher only after adding these listeners, so a synchronous first call
  // would be lost and the server would drop every connection as "credentials not loaded".
  addCaCertificateListener(l: CaListener): void {
    this.caListeners.add(l);
    queueMicrotask(() => this.ca && this.caListeners.has(l) && l({ caCertificate: this.ca }));
  }

  removeCaCertificateListener(l: CaListener): void {
    this.caListeners.delete(l);
  }

  addIdentityCertificateListener(l: IdListener): void {
    this.idListeners.add(l);
    queueMicrotask(() => this.id && this.idListeners.has(l) && l(this.id));
  }

  removeIdentityCertificateListener(l: IdListener): void {
    this.idListeners.delete(l);
  }
}

export class CaAuthority extends EventEmitter {
  readonly credentials = new LiveCredentials();
  private ca!: CaDir;
  private next: CaDir | undefined;
  private servingTimer: Timer | undefined;
  private chainTop!: X509Certificate;
  private fingerprint = '';
  private version = '';

  private constructor(
    readonly dir: string,
    private readonly o: AuthorityOptions,
  ) {
    super();
  }

  /** Loads (or, on first start, creates) the CA directory; a broken one fails here, naming the file. */
  static async open(dir: string, o: AuthorityOptions): Promise<CaAuthority> {
    const a = new CaAuthority(dir, o);
    await a.reload();
    return a;
  }

  get trustDomain(): string {
    return this.o.trustDomain;
  }

  get mode(): CaDir['mode'] {
    return this.ca.mode;
  }

  get signer(): CaBundle {
    return this.ca.signer;
  }

  get roots(): readonly X509Certificate[] {
    return this.ca.roots;
  }

  get bundlePem(): string {
    return this.ca.bundlePem;
  }

  /** Content-derived, so it is the same across restarts and replicas with the same files. */
  get bundleVersion(): string {
    return this.version;
  }

  /** The certificate that signs SVIDs now; sidecars holding an SVID from another one renew. */
  get issuerFingerprint(): string {
    return this.fingerprint;
  }

  get storedPhase(): StoredPhase {
    if (this.next) return 'bundle_added';
    return this.roots.some((r) => !anchoredBy(this.chainTop, r)) ? 'issuer_switched' : 'idle';
  }

  /** The incoming CA during a rotation (steps 1–2). */
  get incoming(): CaDir | undefined {
    return this.next;
  }

  private async reload(): Promise<void> {
    this.ca = await loadCaDir(this.dir, { trustDomain: this.o.trustDomain, clock: this.o.clock, logger: this.o.logger });
    const nextDir = path.join(this.dir, NEXT_DIR);
    this.next = existsSync(path.join(nextDir, 'ca-cert.pem')) ? await loadCaDir(nextDir, { trustDomain: this.o.trustDomain, clock: this.o.clock }) : undefined;
    const chain = this.ca.signer.chainPems.length ? this.ca.signer.chainPems : [this.ca.signer.certPem];
    this.chainTop = new X509Certificate(chain[chain.length - 1]!);
    if (!this.ca.roots.some((r) => anchoredBy(this.chainTop, r))) {
      throw new IdentityError('CA_DIR_INVALID', `${path.join(this.dir, 'root-cert.pem')}: no root in the bundle signs the CA's chain`, { details: { file: 'root-cert.pem' } });
    }
    this.fingerprint = new X509Certificate(this.ca.signer.certPem).fingerprint256;
    this.version = createHash('sha256').update(this.ca.bundlePem).digest('hex').slice(0, 16);
    await this.reissueServing();
    const m = this.o.metrics;
    m.bundleRoots.set(this.ca.roots.length);
    m.rootCertExpiry.set(Math.floor(Math.min(...this.ca.roots.map((r) => Date.parse(r.validTo))) / 1000));
    m.certChainExpiry.set(Math.floor(this.ca.signer.cert.notAfter.getTime() / 1000));
  }

  /** The control server's own certificate: an SVID plus the DNS/IP names clients dial, from the current signer. */
  private async reissueServing(): Promise<void> {
    const ttlMs = this.o.servingTtlMs ?? 24 * 3600_000;
    const s = await issueServingCert(this.ca.signer, {
      spiffeId: `spiffe://${this.o.trustDomain}/ns/outrigger-system/sa/outrigger-control`,
      names: [...new Set([DEFAULT_CA_SERVER_NAME, ...this.o.serverNames])],
      ttlMs,
      clock: this.o.clock,
    });
    this.credentials.set(this.ca.bundlePem, s.chainPem, s.keyPem);
    if (this.servingTimer) this.o.clock.clearTimeout(this.servingTimer);
    this.servingTimer = this.o.clock.setTimeout(() => void this.reissueServing().catch((e) => this.o.logger.error({ error: (e as Error).message }, 'cannot renew the control server certificate')), ttlMs / 2);
    this.servingTimer.unref();
  }

  async sign(csr: ParsedCsr, spiffeId: string, ttlMs: number): Promise<IssuedChain> {
    const c = await signCsr(this.ca.signer, csr, { spiffeId, ttlMs, clock: this.o.clock });
    return { chainPems: splitPem(c.chainPem), serial: c.serial, notAfter: c.notAfter };
  }

  /**
   * Rotation step 1: stage the incoming CA under next/ and add its root to the bundle. `source` is a CA
   * directory in Istio's layout (a plugged-in replacement); without one a new self-signed root is made.
   */
  async addIncoming(source?: string): Promise<void> {
    if (this.next) return;
    const nextDir = path.join(this.dir, NEXT_DIR);
    rmSync(nextDir, { recursive: true, force: true });
    if (source) cpSync(source, nextDir, { recursive: true });
    // loadCaDir on an empty directory makes a self-signed root there.
    const incoming = await loadCaDir(nextDir, { trustDomain: this.o.trustDomain, clock: this.o.clock, logger: this.o.logger });
    const have = new Set(this.ca.roots.map((r) => r.fingerprint256));
    const added = incoming.roots.filter((r) => !have.has(r.fingerprint256));
    await writeCaFiles(this.dir, { 'root-cert.pem': this.ca.bundlePem + added.map((r) => r.toString()).join('') });
    await this.reload();
    this.o.logger.info({ roots: this.roots.length, bundleVersion: this.version }, 'root rotation: incoming root added to the trust bundle');
    this.emit('change');
  }

  /** Rotation step 3: the incoming CA becomes the signer (its files replace ca-cert/ca-key/cert-chain). */
  async switchIssuer(): Promise<void> {
    if (!this.next) return;
    const nextDir = path.join(this.dir, NEXT_DIR);
    const files: Record<string, string> = {};
    for (const f of ['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem'] as const) {
      const p = path.join(nextDir, f);
      if (existsSync(p)) files[f] = readFileSync(p, 'utf8');
    }
    await writeCaFiles(this.dir, files);
    rmSync(nextDir, { recursive: true, force: true });
    await this.reload();
    this.o.logger.info({ issuer: this.fingerprint }, 'root rotation: issuance switched to the new CA');
    this.emit('change');
  }

  /** Rotation step 5: drop every root that does not anchor the current signer. */
  async removeOldRoots(): Promise<void> {
    const keep = this.ca.roots.filter((r) => anchoredBy(this.chainTop, r));
    if (keep.length === this.ca.roots.length) return;
    await writeCaFiles(this.dir, { 'root-cert.pem': keep.map((r) => r.toString()).join('') });
    await this.reload();
    this.o.logger.info({ roots: this.roots.length, bundleVersion: this.version }, 'root rotation: old root removed from the trust bundle');
    this.emit('change');
  }

  close(): void {
    if (this.servingTimer) this.o.clock.clearTimeout(this.servingTimer);
  }
}
