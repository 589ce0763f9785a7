// The sidecar's identity manager: an in-memory key, an SVID from the mesh CA, rotation at half-life, and the live trust bundle.
import { EventEmitter } from 'node:events';
import { webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { exponentialBackoff, type Backoff } from '../core/backoff.js';
import type { Clock, Timer } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import type { Logger } from '../telemetry/logger.js';
import type { CaClient, CaCredential } from './ca-client.js';
import { loadMaterial, type TlsMaterial } from './cert-source.js';
import type { TrustBundleUpdate } from './ca-api.js';
import { certsOf, chainsTo, issuedBy } from './pem.js';
import { createCsr } from './csr.js';
import { parseSpiffeId } from './spiffe.js';
import { checkX509Svid } from './svid.js';
import { IdentityError } from './errors.js';

export interface WorkloadIdentityOptions {
  readonly spiffeId: string;
  /** Requested SVID lifetime (node metadata SECRET_TTL; the CA may cap it). */
  readonly ttlMs: number;
  readonly client: CaClient;
  /** The bootstrap token file (node metadata BOOTSTRAP_TOKEN), read when a token is needed. */
  readonly tokenFile?: string;
  /** Random per process: lets the CA tell this sidecar's renewals and acks apart from a restarted one's. */
  readonly instance: string;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly logger: Logger;
  readonly events?: IdentityEvents;
  /** Fraction of the lifetime at which to renew (0.5, as SPIRE and istio-agent) and its ± jitter. */
  readonly renewAt?: number;
  readonly renewJitter?: number;
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
}

/** Hooks for metrics, kept out of this class so it needs no registry. */
export interface IdentityEvents {
  renewal(result: 'ok' | 'refused' | 'unavailable'): void;
  bundle(version: string): void;
}

/** The clock difference to the CA this sidecar rides out (issue 3: ±5 minutes must work). */
export const MAX_SKEW_MS = 10 * 60_000;

interface Held {
  readonly material: TlsMaterial;
  readonly issuedAt: number;
  readonly issuerFingerprint: string;
}

/** An SVID is usable for mTLS renewal until it expires; after that only a fresh bootstrap token helps. */
function expired(m: TlsMaterial, now: number): boolean {
  return now >= m.notAfter;
}

async function newKey(): Promise<{ keys: webcrypto.CryptoKeyPair; pem: string }> {
  // The key never leaves this process: generated here, held in memory, replaced at every rotation.
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { keys, pem: `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n` };
}

export interface FreshSvid {
  readonly chainPem: string;
  readonly keyPem: string;
  readonly bundlePem: string;
}

/** One SVID request: a new key (never reused across rotations), a CSR for exactly our ID, the CA's answer. */
export async function requestSvid(client: CaClient, o: { spiffeId: string; ttlMs: number; instance: string; credential: CaCredential }): Promise<FreshSvid> {
  const key = await newKey();
  const csrPem = await createCsr(key.keys, o.spiffeId);
  const signed = await client.createCertificate({ csrPem, ttlSeconds: Math.round(o.ttlMs / 1000), instance: o.instance, credential: o.credential });
  verifyIssued(signed.chainPem, signed.bundlePem, o.spiffeId);
  return { chainPem: signed.chainPem, keyPem: key.pem, bundlePem: signed.bundlePem };
}

/**
 * Nothing from the CA is adopted on trust: the leaf must be an X509-SVID for exactly the ID we asked for,
 * and leaf → intermediates must chain to a root of the bundle (RFC 5280 §6.1, signatures only: validity
 * is TLS's job, and skew is handled by the caller).
 */
export function verifyIssued(chainPem: string, bundlePem: string, spiffeId: string): void {
  const chain = certsOf(chainPem);
  const roots = certsOf(bundlePem);
  const leaf = chain[0];
  if (!leaf) throw new IdentityError('SVID_INVALID', 'the CA returned no certificate');
  const svid = checkX509Svid(leaf, { trustDomain: parseSpiffeId(spiffeId).trustDomain });
  if (!svid.ok) throw new IdentityError('SVID_INVALID', `the CA returned a certificate that is not a valid X509-SVID: ${svid.message}`);
  if (svid.id.uri !== spiffeId) throw new IdentityError('SVID_INVALID', `the CA issued ${svid.id.uri}, expected ${spiffeId}`);
  if (!chainsTo(chain, roots)) throw new IdentityError('SVID_INVALID', 'the certificate chain the CA returned does not lead to a root of its trust bundle');
}

/** The CA certificate that signed the leaf: the chain's second element, else the matching bundle root. */
export function issuerFingerprint(m: Pick<TlsMaterial, 'certChainPem' | 'leaf' | 'caCerts'>): string {
  const chain = certsOf(m.certChainPem);
  if (chain.length > 1) return chain[1]!.fingerprint256;
  const root = m.caCerts.find((c) => issuedBy(m.leaf, c));
  return root?.fingerprint256 ?? '';
}

/**
 * Serves Istio's `default` (SVID + key) and `ROOTCA` (bundle) secrets as one MaterialSource: listeners
 * and pools subscribe to 'update' and build new SecureContexts, so new handshakes use the new SVID while
 * established connections keep theirs.
 */
export class WorkloadIdentity extends EventEmitter {
  private held: Held | undefined;
  private bundlePem = '';
  private bundleVersion = '';
  private version = 0;
  private timer: Timer | undefined;
  private readonly backoff: Backoff;
  private renewing: Promise<void> | undefined;
  private watchHandle: { ack(a: { instance: string; bundle_version: string; issuer_fingerprint: string }): void; close(): void } | undefined;
  private watchBackoff: Backoff;
  private watchTimer: Timer | undefined;
  private closed = false;
  private wakeStart: (() => void) | undefined;
  private lastTokenUsed = '';

  constructor(private readonly o: WorkloadIdentityOptions) {
    super();
    // One 'update' listener per TLS context on the SVID: every mTLS cluster (a service port and each of its
    // subsets), each inbound listener, the ADS channel. Their number follows the mesh config (a frontend of
    // the bundled mesh has 14), and each is removed with its context (UpstreamTlsContext.dispose), so
    // EventEmitter's leak warning at 10 would only be noise.
    this.setMaxListeners(0);
    this.backoff = exponentialBackoff(o.rng, o.retryBaseMs ?? 1000, o.retryMaxMs ?? 60_000);
    this.watchBackoff = exponentialBackoff(o.rng, o.retryBaseMs ?? 1000, o.retryMaxMs ?? 30_000);
  }

  /** The material in force; throws before the first SVID (start() resolves only once there is one). */
  current(): TlsMaterial {
    if (!this.held) throw new IdentityError('CERT_LOAD_FAILED', `no SVID yet for ${this.o.spiffeId}`);
    return this.held.material;
  }

  get hasSvid(): boolean {
    return this.held !== undefined;
  }

  get trustBundleVersion(): string {
    return this.bundleVersion;
  }

  /** Resolves with the first SVID. Retries with backoff until then; readiness waits on this. */
  async start(): Promise<TlsMaterial> {
    for (;;) {
      if (this.closed) throw new IdentityError('CA_UNAVAILABLE', 'identity manager closed before the first SVID');
      try {
        // renewOnce opens the trust-bundle watch once there is an SVID to open it with.
        await this.renewOnce();
        return this.current();
      } catch (e) {
        const wait = this.backoff.next();
        this.o.logger.warn({ spiffeId: this.o.spiffeId, error: errorMessage(e), retryInMs: Math.round(wait) }, 'no SVID yet: the CA did not issue one; retrying');
        // close() ends this wait too, so a sidecar told to stop before it has an SVID does stop.
        if (this.closed) continue;
        await new Promise<void>((r) => {
          this.wakeStart = r;
          this.timer = this.o.clock.setTimeout(r, wait);
        });
        this.wakeStart = undefined;
      }
    }
  }

  /** Renew now (rotation, or the CA switched issuers); concurrent callers share one request. */
  renew(): Promise<void> {
    this.renewing ??= this.renewOnce().finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  private credential(): CaCredential {
    const h = this.held;
    if (h && !expired(h.material, this.o.clock.now())) return { certChainPem: h.material.certChainPem, keyPem: h.material.keyPem };
    if (!this.o.tokenFile) throw new IdentityError('CA_REFUSED', `${h ? 'the SVID expired' : 'no SVID yet'} and no bootstrap token is configured (node metadata BOOTSTRAP_TOKEN)`);
    let token: string;
    try {
      token = readFileSync(this.o.tokenFile, 'utf8').trim();
    } catch (e) {
      throw new IdentityError('CA_REFUSED', `cannot read the bootstrap token ${this.o.tokenFile}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`, { cause: e });
    }
    // A token is single-use; sending one the CA already consumed only earns a "replayed" refusal.
    if (h && token === this.lastTokenUsed) throw new IdentityError('CA_REFUSED', `the SVID expired and the bootstrap token in ${this.o.tokenFile} was already used; write a fresh one`);
    return { token };
  }

  private async renewOnce(): Promise<void> {
    const credential = this.credential();
    let signed: FreshSvid;
    try {
      signed = await requestSvid(this.o.client, { spiffeId: this.o.spiffeId, ttlMs: this.o.ttlMs, instance: this.o.instance, credential });
    } catch (e) {
      this.o.events?.renewal((e as IdentityError).code === 'CA_REFUSED' ? 'refused' : 'unavailable');
      throw e;
    } finally {
      if ('token' in credential) this.lastTokenUsed = credential.token;
    }
    // The watch is the newer word on the bundle: a renewal answer composed before a bundle change can
    // arrive after it. Only without a watched bundle (the first SVID) does the answer's bundle count.
    const bundle = this.bundlePem && chainsTo(certsOf(signed.chainPem), certsOf(this.bundlePem)) ? this.bundlePem : signed.bundlePem;
    if (bundle !== this.bundlePem) this.bundleVersion = '';
    const material = loadMaterial(
      { certificateChain: { kind: 'inline', value: signed.chainPem }, privateKey: { kind: 'inline', value: signed.keyPem }, trustedCa: { kind: 'inline', value: bundle } },
      ++this.version,
    );
    if (material.spiffeId !== this.o.spiffeId) {
      throw new IdentityError('SVID_INVALID', `the CA issued ${material.spiffeId ?? 'no SPIFFE ID'}, expected ${this.o.spiffeId}`);
    }
    await this.untilValidHere(material);
    const now = this.o.clock.now();
    this.held = { material, issuedAt: now, issuerFingerprint: issuerFingerprint(material) };
    this.bundlePem = bundle;
    this.backoff.reset();
    this.o.events?.renewal('ok');
    this.o.logger.info({ spiffeId: material.spiffeId, serial: material.serial, notAfter: new Date(material.notAfter).toISOString() }, 'SVID issued');
    this.emit('update', material);
    this.schedule(this.renewDelay(material, now));
    if (this.watchHandle) this.sendAck();
    else if (!this.watchTimer) this.openWatch();
  }

  /**
   * Clock skew between the CA and this host. The CA backdates notBefore by a minute (X509-SVID practice);
   * when its clock runs further ahead than that, the new SVID is kept aside until it is valid by our clock
   * (peers on our side of the skew would refuse it before) while the current one keeps serving. Beyond
   * MAX_SKEW_MS something is wrong with time itself, and the SVID is refused loudly instead.
   */
  private async untilValidHere(m: TlsMaterial): Promise<void> {
    const now = this.o.clock.now();
    const early = m.notBefore - now;
    if (m.notAfter <= now) throw new IdentityError('SVID_INVALID', `the CA issued an SVID that already expired by this host's clock (notAfter ${new Date(m.notAfter).toISOString()}); check both clocks`);
    if (early <= 0) return;
    if (early > MAX_SKEW_MS) {
      throw new IdentityError('SVID_INVALID', `the CA issued an SVID valid from ${new Date(m.notBefore).toISOString()}, ${Math.round(early / 1000)}s ahead of this host's clock; clocks more than ${MAX_SKEW_MS / 60_000} minutes apart must be fixed`);
    }
    this.o.logger.warn({ spiffeId: this.o.spiffeId, validInS: Math.ceil(early / 1000) }, "the CA's clock is ahead of this host's: the new SVID is kept aside until it is valid here");
    await new Promise<void>((r) => this.o.clock.setTimeout(r, early));
    if (this.closed) throw new IdentityError('CA_UNAVAILABLE', 'identity manager closed while waiting for the SVID to become valid');
  }

  /** Half-life with jitter, so a fleet started together does not renew together. */
  private renewDelay(m: TlsMaterial, now: number): number {
    const at = (this.o.renewAt ?? 0.5) + ((this.o.rng.next() * 2 - 1) * (this.o.renewJitter ?? 0.05));
    return Math.max(0, (m.notAfter - now) * at);
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = this.o.clock.setTimeout(() => void this.rotate(), ms);
    this.timer.unref();
  }

  private async rotate(): Promise<void> {
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    try {
      await this.renew();
    } catch (e) {
      const m = this.held!.material;
      const now = this.o.clock.now();
      const left = m.notAfter - now;
      // Never sleep past expiry: the last attempts are spaced so one still lands before notAfter.
      const wait = left > 0 ? Math.min(this.backoff.next(), Math.max(1000, left / 4)) : this.backoff.next();
      const detail = { spiffeId: this.o.spiffeId, error: errorMessage(e), expiresInS: Math.round(left / 1000), retryInMs: Math.round(wait) };
      const lifetime = m.notAfter - m.notBefore;
      if (left <= 0) this.o.logger.error(detail, 'SVID EXPIRED and could not be renewed: peers will refuse new connections until the CA answers');
      else if (left < lifetime * 0.2) this.o.logger.error(detail, 'SVID expires soon and could not be renewed');
      else this.o.logger.warn(detail, 'SVID renewal failed; serving on the current certificate and retrying');
      this.schedule(wait);
    }
  }

  /** The bundle stream: new roots land here in seconds; a new issuing CA makes us renew at once. */
  private openWatch(): void {
    if (this.closed || this.watchHandle) return;
    let credential: CaCredential;
    try {
      credential = this.credential();
    } catch (e) {
      // No usable SVID right now (expired, token spent): try again later, or after the next renewal.
      this.o.logger.warn({ error: errorMessage(e) }, 'cannot open the trust bundle watch; retrying');
      this.watchTimer = this.o.clock.setTimeout(() => this.reopenWatch(), this.watchBackoff.next());
      this.watchTimer.unref();
      return;
    }
    this.watchHandle = this.o.client.watch(credential, {
      onUpdate: (u) => this.onBundle(u),
      onEnd: (err) => {
        this.watchHandle = undefined;
        if (this.closed) return;
        const wait = this.watchBackoff.next();
        this.o.logger.debug?.({ error: err && errorMessage(err), retryInMs: Math.round(wait) }, 'trust bundle watch ended; reopening');
        this.watchTimer = this.o.clock.setTimeout(() => this.reopenWatch(), wait);
        this.watchTimer.unref();
      },
    });
    this.sendAck();
  }

  private reopenWatch(): void {
    this.watchTimer = undefined;
    this.openWatch();
  }

  private onBundle(u: TrustBundleUpdate): void {
    this.watchBackoff.reset();
    const h = this.held;
    if (!h) return;
    if (u.bundle_version !== this.bundleVersion) {
      const pem = u.roots.join('');
      // An empty bundle, or one that does not anchor the SVID we present, would cut us off from every
      // peer: keep the current bundle, do not acknowledge, and renew (the CA's newer SVID will fit it).
      const anchors = pem !== '' && chainsTo(certsOf(h.material.certChainPem), certsOf(pem));
      if (!anchors) {
        this.o.logger.warn({ bundleVersion: u.bundle_version, roots: u.roots.length }, 'trust bundle from the CA does not anchor our SVID; keeping the current bundle and renewing');
        void this.rotate();
        return;
      }
      if (pem !== this.bundlePem) {
        try {
          const material = loadMaterial(
            { certificateChain: { kind: 'inline', value: h.material.certChainPem }, privateKey: { kind: 'inline', value: h.material.keyPem }, trustedCa: { kind: 'inline', value: pem } },
            ++this.version,
          );
          this.held = { ...h, material };
          this.bundlePem = pem;
          this.emit('update', material);
          this.o.logger.info({ bundleVersion: u.bundle_version, roots: material.caCerts.map((c) => c.subject.replace(/\n/g, ', ')) }, 'trust bundle updated');
        } catch (e) {
          this.o.logger.warn({ error: errorMessage(e) }, 'trust bundle from the CA is unusable; keeping the current one');
          return;
        }
      }
      this.bundleVersion = u.bundle_version;
      this.o.events?.bundle(u.bundle_version);
    }
    if (u.issuer_fingerprint && u.issuer_fingerprint !== this.held!.issuerFingerprint) {
      this.o.logger.info({ issuer: u.issuer_fingerprint }, 'the CA signs with a new certificate; renewing now');
      void this.rotate();
    }
    this.sendAck();
  }

  private sendAck(): void {
    const h = this.held;
    if (!h || !this.watchHandle) return;
    this.watchHandle.ack({ instance: this.o.instance, bundle_version: this.bundleVersion, issuer_fingerprint: h.issuerFingerprint });
  }

  close(): void {
    this.closed = true;
    this.wakeStart?.();
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    if (this.watchTimer) this.o.clock.clearTimeout(this.watchTimer);
    this.watchHandle?.close();
    this.watchHandle = undefined;
  }
}
