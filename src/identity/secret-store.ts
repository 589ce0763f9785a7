// Secret store: one watched CertificateSource per distinct (chain, key, CA) triple, shared by every listener and cluster naming it.
import type { Clock } from '../core/clock.js';
import type { CommonTls, DataSource } from '../model/types.js';
import type { MeshMetrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/logger.js';
import { CertificateSource, type TlsMaterial } from './cert-source.js';
import { IdentityError } from './errors.js';

export interface SecretStoreOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly pollIntervalMs?: number;
}

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

  constructor(private readonly o: SecretStoreOptions) {}

  /**
   * The live material for a CommonTlsContext. Loads synchronously so a bad file fails startup with its name
   * (IdentityError CERT_LOAD_FAILED / KEY_MISMATCH) instead of failing the first handshake.
   */
  sourceFor(common: CommonTls): CertificateSource {
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
    for (const { name, source } of this.sources.values()) this.observe(name, source.current());
  }

  private observe(name: string, m: TlsMaterial): void {
    this.metrics?.certExpiry.set({ secret: name, spiffe_id: m.spiffeId ?? '' }, Math.floor(m.notAfter / 1000));
  }

  start(): void {
    this.started = true;
    for (const { source } of this.sources.values()) source.start();
  }

  allLoaded(): boolean {
    for (const { source } of this.sources.values()) if (!source.current()) return false;
    return true;
  }

  views(nowMs: number) {
    return [...this.sources.values()].map(({ name, source }) => {
      const m = source.current();
      return {
        name,
        spiffe_id: m.spiffeId ?? null,
        serial_number: m.serial,
        valid_from: new Date(m.notBefore).toISOString(),
        expiration_time: new Date(m.notAfter).toISOString(),
        seconds_until_expiration: Math.floor((m.notAfter - nowMs) / 1000),
        ca_cert: m.caCerts.map((c) => ({ subject: c.subject, serial_number: c.serialNumber, expiration_time: new Date(c.validTo).toISOString() })),
      };
    });
  }

  close(): void {
    for (const { source } of this.sources.values()) source.close();
  }
}
