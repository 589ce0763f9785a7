// File- or inline-backed TLS material (SVID chain, key, trust bundle), validated on load and re-read on rotation.
import { EventEmitter } from 'node:events';
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Clock, Timer } from '../core/clock.js';
import type { DataSource } from '../model/types.js';
import { IdentityError } from './errors.js';
import { splitPem } from './pem.js';

export interface TlsMaterial {
  readonly certChainPem: string;
  readonly keyPem: string;
  readonly caPem?: string;
  readonly leaf: X509Certificate;
  readonly caCerts: readonly X509Certificate[];
  readonly spiffeId?: string;
  readonly serial: string;
  /** ms since the epoch */
  readonly notBefore: number;
  readonly notAfter: number;
  readonly fingerprint: string;
  readonly version: number;
}

export interface CertificateSourceFiles {
  readonly certificateChain: DataSource;
  readonly privateKey: DataSource;
  readonly trustedCa?: DataSource;
}

interface MinimalLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface CertificateSourceOptions {
  readonly clock: Clock;
  readonly logger: MinimalLogger;
  /** Content poll, the safety net under inotify (default 5 s). */
  readonly pollIntervalMs?: number;
  readonly debounceMs?: number;
}


function nameOf(ds: DataSource): string {
  return ds.kind === 'file' ? ds.path : '<inline>';
}

function read(ds: DataSource, what: string): string {
  if (ds.kind === 'inline') return ds.value;
  try {
    return readFileSync(ds.path, 'utf8');
  } catch (e) {
    throw new IdentityError('CERT_LOAD_FAILED', `cannot read ${what} ${ds.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
}

function parseCerts(pem: string, file: string, what: string): X509Certificate[] {
  const blocks = splitPem(pem);
  if (blocks.length === 0) throw new IdentityError('CERT_LOAD_FAILED', `${what} ${file} holds no PEM certificate`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw new IdentityError('CERT_LOAD_FAILED', `${what} ${file}: certificate #${i + 1} is corrupt or truncated: ${(e as Error).message}`, { cause: e });
    }
  });
}

function uriSan(cert: X509Certificate): string | undefined {
  for (const part of (cert.subjectAltName ?? '').split(', ')) if (part.startsWith('URI:')) return part.slice(4);
  return undefined;
}

/** Reads and validates one set of material; throws IdentityError naming the file at fault. */
export function loadMaterial(f: CertificateSourceFiles, version: number): TlsMaterial {
  const chainName = nameOf(f.certificateChain);
  const keyName = nameOf(f.privateKey);
  const certChainPem = read(f.certificateChain, 'certificate chain');
  const keyPem = read(f.privateKey, 'private key');
  const caPem = f.trustedCa ? read(f.trustedCa, 'trust bundle') : undefined;
  const chain = parseCerts(certChainPem, chainName, 'certificate chain');
  const leaf = chain[0]!;
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw new IdentityError('CERT_LOAD_FAILED', `private key ${keyName} is corrupt or not PEM: ${(e as Error).message}`, { cause: e });
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new IdentityError('KEY_MISMATCH', `private key ${keyName} does not match the certificate in ${chainName}`);
  }
  const caCerts = f.trustedCa && caPem !== undefined ? parseCerts(caPem, nameOf(f.trustedCa), 'trust bundle') : [];
  return Object.freeze({
    certChainPem,
    keyPem,
    caPem,
    leaf,
    caCerts,
    spiffeId: uriSan(leaf),
    serial: leaf.serialNumber,
    notBefore: Date.parse(leaf.validFrom),
    notAfter: Date.parse(leaf.validTo),
    fingerprint: leaf.fingerprint256,
    version,
  });
}

/**
 * Live material for one (chain, key, CA) triple. Rotation is caught by inotify on the files' directories
 * (rename-based writes and Kubernetes' `..data` symlink swap both show up there) and by a content poll.
 * A half-written or mismatched set is logged and skipped; the previous material keeps serving.
 */
export class CertificateSource extends EventEmitter {
  private material: TlsMaterial | undefined;
  private digest = '';
  private watchers: FSWatcher[] = [];
  private poll: Timer | undefined;
  private debounce: Timer | undefined;
  private lastError = '';

  constructor(
    private readonly files: CertificateSourceFiles,
    private readonly o: CertificateSourceOptions,
  ) {
    super();
  }

  private contentDigest(): string {
    const h = createHash('sha256');
    for (const ds of [this.files.certificateChain, this.files.privateKey, this.files.trustedCa]) {
      if (!ds) continue;
      try {
        h.update(ds.kind === 'file' ? readFileSync(ds.path) : ds.value);
      } catch {
        h.update('<missing>');
      }
      h.update('\0');
    }
    return h.digest('hex');
  }

  /** Initial load: failures throw (startup refuses bad material, naming the file). */
  load(): TlsMaterial {
    this.digest = this.contentDigest();
    this.material = loadMaterial(this.files, 1);
    return this.material;
  }

  current(): TlsMaterial {
    if (!this.material) throw new IdentityError('CERT_LOAD_FAILED', 'certificate source used before load()');
    return this.material;
  }

  start(): void {
    if (this.poll) return;
    const dirs = new Set<string>();
    for (const ds of [this.files.certificateChain, this.files.privateKey, this.files.trustedCa]) if (ds?.kind === 'file') dirs.add(path.dirname(ds.path));
    for (const d of dirs) {
      try {
        const w = watch(d, () => this.schedule());
        w.on('error', () => {
          /* the poll still covers this directory */
        });
        this.watchers.push(w);
      } catch {
        /* no inotify (or the dir vanished): the poll covers it */
      }
    }
    if (dirs.size) {
      this.poll = this.o.clock.setInterval(() => this.check(), this.o.pollIntervalMs ?? 5000);
      this.poll.unref();
    }
  }

  private schedule(): void {
    if (this.debounce) this.o.clock.clearTimeout(this.debounce);
    // Writers touch chain and key one after the other; wait for the burst to settle.
    this.debounce = this.o.clock.setTimeout(() => {
      this.debounce = undefined;
      this.check();
    }, this.o.debounceMs ?? 100);
    this.debounce.unref();
  }

  /** Re-reads when the content changed; adopts the new material only if it is complete and consistent. */
  check(): void {
    const d = this.contentDigest();
    if (d === this.digest) return;
    try {
      const m = loadMaterial(this.files, (this.material?.version ?? 0) + 1);
      this.digest = d;
      this.lastError = '';
      this.material = m;
      this.emit('update', m);
    } catch (e) {
      const msg = (e as Error).message;
      if (msg !== this.lastError) this.o.logger.warn({ error: msg }, 'rotated certificate material is not usable yet; keeping the current one');
      this.lastError = msg;
    }
  }

  close(): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    if (this.poll) this.o.clock.clearInterval(this.poll);
    if (this.debounce) this.o.clock.clearTimeout(this.debounce);
    this.poll = undefined;
  }
}
