// Secret store: one watched CertificateSource per distinct (chain, key, CA) triple, shared by every listener and cluster naming it.
import { X509Certificate } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import { certsOf } from './pem.js';
import type { CommonTls, DataSource } from '../model/types.js';
import type { MeshMetrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/logger.js';
import { CertificateSource, type TlsMaterial } from './cert-source.js';
import { IdentityError } from './errors.js';

export interface SecretStoreOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly pollIntervalMs?: number;
  /** The identity manager serving SDS `default` + `ROOTCA`, when the bootstrap names a mesh CA. */
  readonly identity?: LiveMaterial;
}

/** Live TLS material: files watched on disk, or the identity manager's CA-issued SVID. */
export interface LiveMaterial {
  current(): TlsMaterial;
  on(event: 'update', fn: (m: TlsMaterial) => void): unknown;
}

function describe(c: X509Certificate) {
  return { subject: c.subject.replace(/\n/g, ', '), serial_number: c.serialNumber, expiration_time: new Date(c.validTo).toISOString() };
}

/** Istio's name for the workload certificate secret, shown in /certs and the expiry gauge. */
const SDS_SECRET = 'default';

function keyOf(ds: DataSource | undefined): string {
  if (!ds) return '-';
  return ds.kind === 'file' ? `file:${ds.path}` : `inline:${ds.value.length}:${ds.value.slice(0, 64)}`;
}

function nameOf(ds: DataSource): string {
  return ds.kind === 'file' ? ds.path : 'inline';
}

export class SecretStore {
  private readonly sources = new Map<string, { name: string; source: CertificateSource }>();
  private metrics: MeshMetrics | undefined;
  private started = false;

  constructor(private readonly o: SecretStoreOptions) {
    // With xDS, every cluster and listener naming SDS `default` follows the identity's rotations.
    (o.identity as { setMaxListeners?: (n: number) => void } | undefined)?.setMaxListeners?.(0);
  }

  /**
   * The live material for a CommonTlsContext. Loads synchronously so a bad file fails startup with its name
   * (IdentityError CERT_LOAD_FAILED / KEY_MISMATCH) instead of failing the first handshake.
   */
  sourceFor(common: CommonTls): LiveMaterial {
    if (common.sdsCertificate !== undefined || common.validation?.sdsBundle !== undefined) {
      // The decoder guarantees a CA is configured whenever an SDS name is used.
      if (!this.o.identity) throw new IdentityError('CERT_LOAD_FAILED', 'SDS secrets "default"/"ROOTCA" need the mesh CA (node metadata CA_ADDR)');
      return this.o.identity;
    }
    const cert = common.certificates[0];
    if (!cert) throw new IdentityError('CERT_LOAD_FAILED', 'a TLS context without tls_certificates has no identity to present');
    const ca = common.validation?.trustedCa;
    const key = `${keyOf(cert.certificateChain)}|${keyOf(cert.privateKey)}|${keyOf(ca)}`;
    const hit = this.sources.get(key);
    if (hit) return hit.source;
    const source = new CertificateSource(
      { certificateChain: cert.certificateChain, privateKey: cert.privateKey, trustedCa: ca },
      { clock: this.o.clock, logger: this.o.logger, pollIntervalMs: this.o.pollIntervalMs },
    );
    source.load();
    // Every listener and cluster version naming these files follows its rotations (dozens with xDS).
    source.setMaxListeners(0);
    const name = nameOf(cert.certificateChain);
    this.sources.set(key, { name, source });
    source.on('update', (m: TlsMaterial) => {
      this.o.logger.info({ secret: name, spiffeId: m.spiffeId, serial: m.serial, notAfter: new Date(m.notAfter).toISOString() }, 'certificate rotated');
      this.observe(name, m);
    });
    if (this.started) source.start();
    return source;
  }

  bindMetrics(m: MeshMetrics): void {
    this.metrics = m;
    for (const { name, source } of this.entries()) this.observe(name, source.current());
    this.o.identity?.on('update', (x) => this.observe(SDS_SECRET, x));
  }

  private entries(): { name: string; source: LiveMaterial }[] {
    const all: { name: string; source: LiveMaterial }[] = [...this.sources.values()];
    if (this.o.identity) all.push({ name: SDS_SECRET, source: this.o.identity });
    return all;
  }

  private observe(name: string, m: TlsMaterial): void {
    this.metrics?.certExpiry.set({ secret: name, spiffe_id: m.spiffeId ?? '' }, Math.floor(m.notAfter / 1000));
  }

  start(): void {
    this.started = true;
    for (const { source } of this.sources.values()) source.start();
  }

  views(nowMs: number) {
    return this.entries().map(({ name, source }) => {
      const m = source.current();
      return {
        name,
        spiffe_id: m.spiffeId ?? null,
        serial_number: m.serial,
        valid_from: new Date(m.notBefore).toISOString(),
        expiration_time: new Date(m.notAfter).toISOString(),
        seconds_until_expiration: Math.floor((m.notAfter - nowMs) / 1000),
        // Envoy's /certs shape: the presented chain (leaf first, then intermediates) and the trust bundle.
        cert_chain: certsOf(m.certChainPem).map(describe),
        ca_cert: m.caCerts.map(describe),
      };
    });
  }

  close(): void {
    for (const { source } of this.sources.values()) source.close();
  }
}
