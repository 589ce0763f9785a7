// The control server's CA state: the signing CA, the trust bundle and its version, the serving certificate, and the root-rotation file moves.
import { EventEmitter } from 'node:events';
import { X509Certificate, createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import type { Clock, Timer } from '../core/clock.js';
import { issueServingCert, signCsr, type CaBundle } from '../identity/ca.js';
import { DEFAULT_CA_SERVER_NAME, controlSpiffeId } from '../identity/ca-api.js';
import { certsOf, issuedBy, splitPem } from '../identity/pem.js';
import { ROTATION_FILE, loadCaDir, writeCaFiles, type CaDir } from '../identity/ca-dir.js';
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

/**
 * What a rotation in progress retires, written before each step takes effect: the phase reached, the
 * roots to drop at step 5 (exactly these; other roots a user put in the bundle stay) and the signers
 * whose SVIDs are still ours until then.
 */
interface RotationRecord {
  readonly phase: 'bundle_added' | 'issuer_switched';
  readonly oldRoots: readonly string[];
  readonly oldSignerPems: readonly string[];
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
  private record: RotationRecord | undefined;
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
    return this.record?.phase ?? 'idle';
  }

  /**
   * Every CA certificate whose leaves are ours: the signer, the incoming one (steps 1–2) and the retired
   * ones until their root is removed. Another CA under a shared (enterprise) root is not among them.
   */
  signers(): X509Certificate[] {
    const pems = new Set([this.ca.signer.certPem, ...(this.next ? [this.next.signer.certPem] : []), ...(this.record?.oldSignerPems ?? [])]);
    return [...pems].map((p) => new X509Certificate(p));
  }

  private readRecord(): RotationRecord | undefined {
    const file = path.join(this.dir, ROTATION_FILE);
    if (!existsSync(file)) return undefined;
    try {
      const r = JSON.parse(readFileSync(file, 'utf8')) as RotationRecord;
      if ((r.phase !== 'bundle_added' && r.phase !== 'issuer_switched') || !Array.isArray(r.oldRoots) || !Array.isArray(r.oldSignerPems)) throw new Error('unexpected content');
      return r;
    } catch (e) {
      throw new IdentityError('CA_DIR_INVALID', `${file} is corrupt (${(e as Error).message}); it records a root rotation in progress`, { details: { file: ROTATION_FILE } });
    }
  }

  private async reload(): Promise<void> {
    this.ca = await loadCaDir(this.dir, { trustDomain: this.o.trustDomain, clock: this.o.clock, logger: this.o.logger });
    this.record = this.readRecord();
    const nextDir = path.join(this.dir, NEXT_DIR);
    if (this.record?.phase === 'bundle_added') {
      this.next = await loadCaDir(nextDir, { trustDomain: this.o.trustDomain, clock: this.o.clock, create: false });
    } else {
      // Staged but never recorded (a crash inside step 1): nothing trusts it yet, so it is dropped.
      if (existsSync(nextDir)) rmSync(nextDir, { recursive: true, force: true });
      this.next = undefined;
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
      spiffeId: controlSpiffeId(this.o.trustDomain),
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
   * Rotation step 1: stage the incoming CA under next/ and add its root(s) to the bundle. `source` is a CA
   * directory in Istio's layout (a plugged-in replacement), checked before anything changes; without one a
   * new self-signed root is made. The record is written with the bundle, so a restart resumes here.
   */
  async addIncoming(source?: string): Promise<void> {
    if (this.record) return;
    const opts = { trustDomain: this.o.trustDomain, clock: this.o.clock };
    const staging = mkdtempSync(path.join(this.dir, '.next-'));
    let incoming: CaDir;
    try {
      if (source) {
        if (!existsSync(path.join(source, 'ca-cert.pem'))) throw new IdentityError('CA_DIR_INVALID', `${source} has no ca-cert.pem: --new-ca takes a CA directory in Istio's layout`, { details: { file: 'ca-cert.pem' } });
        await loadCaDir(source, { ...opts, create: false });
        cpSync(source, staging, { recursive: true });
      }
      // On an empty directory loadCaDir makes a self-signed root.
      incoming = await loadCaDir(staging, { ...opts, logger: this.o.logger });
      rmSync(path.join(this.dir, NEXT_DIR), { recursive: true, force: true });
      renameSync(staging, path.join(this.dir, NEXT_DIR));
    } catch (e) {
      rmSync(staging, { recursive: true, force: true });
      throw e;
    }
    const have = new Set(this.ca.roots.map((r) => r.fingerprint256));
    const added = incoming.roots.filter((r) => !have.has(r.fingerprint256));
    // Retire only the root(s) the current signer chains to, and not if the incoming CA keeps them.
    const chain = certsOf([this.ca.signer.certPem, ...this.ca.signer.chainPems].join(''));
    const top = chain[chain.length - 1]!;
    const anchors = this.ca.roots.filter((r) => issuedBy(top, r));
    const oldRoots = anchors.filter((r) => !incoming.roots.some((n) => n.fingerprint256 === r.fingerprint256)).map((r) => r.fingerprint256);
    const record: RotationRecord = { phase: 'bundle_added', oldRoots, oldSignerPems: [this.ca.signer.certPem] };
    await writeCaFiles(this.dir, { 'root-cert.pem': this.ca.bundlePem + added.map((r) => r.toString()).join(''), [ROTATION_FILE]: JSON.stringify(record, null, 2) });
    await this.reload();
    this.o.logger.info({ roots: this.roots.length, bundleVersion: this.version }, 'root rotation: incoming root added to the trust bundle');
    this.emit('change');
  }

  /** Rotation step 3: the incoming CA becomes the signer (its files replace ca-cert/ca-key/cert-chain). */
  async switchIssuer(): Promise<void> {
    const next = this.next;
    if (!next || this.record?.phase !== 'bundle_added') return;
    // cert-chain.pem is optional in Istio's layout; write it always, so no chain of the old CA survives.
    const chain = [next.signer.certPem, ...next.signer.chainPems.slice(1)].join('');
    const nextDir = path.join(this.dir, NEXT_DIR);
    await writeCaFiles(this.dir, {
      'ca-cert.pem': next.signer.certPem,
      'ca-key.pem': readFileSync(path.join(nextDir, 'ca-key.pem'), 'utf8'),
      'cert-chain.pem': chain,
      [ROTATION_FILE]: JSON.stringify({ ...this.record, phase: 'issuer_switched' } satisfies RotationRecord, null, 2),
    });
    rmSync(nextDir, { recursive: true, force: true });
    await this.reload();
    this.o.logger.info({ issuer: this.fingerprint }, 'root rotation: issuance switched to the new CA');
    this.emit('change');
  }

  /** Rotation step 5: drop exactly the roots the rotation retires; the record goes with them. */
  async removeOldRoots(): Promise<void> {
    const r = this.record;
    if (r?.phase !== 'issuer_switched') return;
    const keep = this.ca.roots.filter((x) => !r.oldRoots.includes(x.fingerprint256));
    await writeCaFiles(this.dir, { 'root-cert.pem': keep.map((x) => x.toString()).join('') });
    rmSync(path.join(this.dir, ROTATION_FILE), { force: true });
    await this.reload();
    this.o.logger.info({ roots: this.roots.length, bundleVersion: this.version }, 'root rotation: old root removed from the trust bundle');
    this.emit('change');
  }

  close(): void {
    if (this.servingTimer) this.o.clock.clearTimeout(this.servingTimer);
  }
}
