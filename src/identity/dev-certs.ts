// Development PKI in Istio's file layouts (root → intermediate → workload SVIDs), for trying a mesh by hand (certs-dev/README.md).
// Production identities come from the mesh CA; these are for a laptop and are written next to their keys.
import { X509Certificate, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Clock } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import { caBundleFrom, createIntermediateCa, createRootCa, issueSvid, type CaBundle } from './ca.js';
import { IdentityError } from './errors.js';
import { parseSpiffeId, workloadId } from './spiffe.js';

export interface DevCertsOptions {
  readonly dir: string;
  readonly trustDomain: string;
  /** Workloads as `namespace/serviceaccount`. */
  readonly workloads: readonly string[];
  /** Lifetime of the workload SVIDs. */
  readonly ttlMs: number;
  readonly clock: Clock;
  /** Make a new root and intermediate even when usable ones are already in `dir`. */
  readonly newCa?: boolean;
}

export interface DevWorkload {
  readonly spiffeId: string;
  /** `<dir>/<ns>.<sa>`: cert-chain.pem (leaf + intermediate), key.pem, root-cert.pem. */
  readonly dir: string;
  readonly notAfter: number;
}

export interface DevCertsResult {
  /** `<dir>/root-cert.pem`, the trust bundle (root-key.pem sits next to it). */
  readonly rootCert: string;
  readonly rootKey: string;
  /** `<dir>/ca`: the intermediate in Istio's plugged-in CA layout (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem). */
  readonly caDir: string;
  readonly intermediateCert: string;
  /** Whether the root and intermediate were made now or taken from an earlier run. */
  readonly ca: 'created' | 'reused';
  /** Why an existing root and intermediate were not reused (absent when there were none, or with newCa). */
  readonly caReplacedBecause?: string;
  readonly rootNotAfter: number;
  readonly intermediateNotAfter: number;
  readonly workloads: readonly DevWorkload[];
}

const DAY_MS = 86_400_000;
/** Long enough that a dev mesh does not break mid-week, short enough that a forgotten copy stops working. */
const ROOT_MIN_TTL_MS = 365 * DAY_MS;
const INTERMEDIATE_MIN_TTL_MS = 90 * DAY_MS;

/** temp file + rename: a sidecar watching the directory never reads a half-written PEM. */
function atomicWrite(file: string, body: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, body, { mode });
  renameSync(tmp, file);
}

function spkiDer(pem: string | X509Certificate): Buffer {
  const pub = typeof pem === 'string' ? createPublicKey(createPrivateKey(pem)) : pem.publicKey;
  return pub.export({ type: 'spki', format: 'der' });
}

/**
 * The intermediate from an earlier run, when it is still fit to sign: re-running then only renews the leaves,
 * so sidecars already running keep trusting each other (their bundles still hold the same root). Returns the
 * reason it is not reusable, or undefined when there is nothing to reuse.
 */
async function existingCa(o: DevCertsOptions, files: { rootCert: string; caCert: string; caKey: string }): Promise<CaBundle | string | undefined> {
  if (!existsSync(files.caCert)) return undefined;
  try {
    const rootPem = readFileSync(files.rootCert, 'utf8');
    const certPem = readFileSync(files.caCert, 'utf8');
    const keyPem = readFileSync(files.caKey, 'utf8');
    const root = new X509Certificate(rootPem);
    const inter = new X509Certificate(certPem);
    if (!(inter.subjectAltName ?? '').split(', ').includes(`URI:spiffe://${o.trustDomain}`)) return `the existing intermediate is not for trust domain ${o.trustDomain}`;
    if (!inter.verify(root.publicKey)) return `${files.caCert} is not signed by ${files.rootCert}`;
    if (!spkiDer(keyPem).equals(spkiDer(inter))) return `${files.caKey} does not belong to ${files.caCert}`;
    const left = Date.parse(inter.validTo) - o.clock.now();
    if (left <= 0) return 'the existing intermediate has expired';
    if (left < o.ttlMs) return `the existing intermediate expires in ${Math.floor(left / 3600_000)}h, before SVIDs of this lifetime would`;
    return await caBundleFrom({ trustDomain: o.trustDomain, certPem, keyPem, chainPems: [certPem.endsWith('\n') ? certPem : `${certPem}\n`], rootPem });
  } catch (e) {
    return `the existing CA files cannot be used: ${errorMessage(e)}`;
  }
}

/**
 * Writes (Istio's layouts, keys mode 0600, every file atomically):
 *   root-cert.pem, root-key.pem          a self-signed root for the trust domain
 *   ca/ca-cert.pem, ca/ca-key.pem        an intermediate signed by the root (Istio's plugged-in CA files,
 *   ca/cert-chain.pem, ca/root-cert.pem  so `outrigger control --ca-dir <dir>/ca` can sign with it)
 *   <ns>.<sa>/cert-chain.pem, key.pem, root-cert.pem   per workload, as Istio mounts them at /etc/certs;
 *                                        the chain is leaf + intermediate, the root only in root-cert.pem.
 * A usable root and intermediate from an earlier run are reused unless `newCa` is set.
 */
export async function writeDevCerts(o: DevCertsOptions): Promise<DevCertsResult> {
  // Everything is validated before anything is written.
  parseSpiffeId(`spiffe://${o.trustDomain}`);
  if (!(o.ttlMs > 0)) throw new IdentityError('SVID_INVALID', `SVID lifetime must be positive, not ${o.ttlMs} ms`);
  const ids = o.workloads.map((w) => {
    const [ns, sa, ...rest] = w.split('/');
    if (!ns || !sa || rest.length) throw new IdentityError('SPIFFE_ID_INVALID', `workload ${JSON.stringify(w)}: expected namespace/serviceaccount`, { details: { rule: 'namespace/serviceaccount' } });
    // Validates the segments against the SPIFFE-ID rules; the message names the rule.
    return { ns, sa, id: workloadId(o.trustDomain, ns, sa).uri };
  });
  const caDir = path.join(o.dir, 'ca');
  const files = {
    rootCert: path.join(o.dir, 'root-cert.pem'),
    rootKey: path.join(o.dir, 'root-key.pem'),
    caCert: path.join(caDir, 'ca-cert.pem'),
    caKey: path.join(caDir, 'ca-key.pem'),
  };
  const found = o.newCa ? undefined : await existingCa(o, files);
  let inter: CaBundle;
  if (found !== undefined && typeof found !== 'string') {
    inter = found;
  } else {
    const interTtl = Math.max(o.ttlMs, INTERMEDIATE_MIN_TTL_MS);
    const root = await createRootCa({ trustDomain: o.trustDomain, commonName: `Outrigger dev root (${o.trustDomain})`, clock: o.clock, ttlMs: Math.max(interTtl, ROOT_MIN_TTL_MS) });
    inter = await createIntermediateCa(root, { commonName: `Outrigger dev intermediate (${o.trustDomain})`, clock: o.clock, ttlMs: interTtl });
    mkdirSync(caDir, { recursive: true, mode: 0o700 });
    atomicWrite(files.rootKey, root.keyPem, 0o600);
    atomicWrite(files.rootCert, root.certPem, 0o644);
    atomicWrite(files.caKey, inter.keyPem, 0o600);
    atomicWrite(files.caCert, inter.certPem, 0o644);
    // Istio's cert-chain.pem is the intermediate followed by the root (tools/certs: cat ca-cert.pem root-cert.pem).
    atomicWrite(path.join(caDir, 'cert-chain.pem'), inter.certPem + root.certPem, 0o644);
    atomicWrite(path.join(caDir, 'root-cert.pem'), root.certPem, 0o644);
  }
  const out: DevWorkload[] = [];
  for (const w of ids) {
    const dir = path.join(o.dir, `${w.ns}.${w.sa}`);
    mkdirSync(dir, { recursive: true });
    const svid = await issueSvid(inter, { spiffeIds: [w.id], ttlMs: o.ttlMs, clock: o.clock });
    atomicWrite(path.join(dir, 'root-cert.pem'), inter.rootPem, 0o644);
    // Key before chain: the sidecar's watcher waits until the pair matches, and the chain is what it watches for.
    atomicWrite(path.join(dir, 'key.pem'), svid.keyPem, 0o600);
    atomicWrite(path.join(dir, 'cert-chain.pem'), svid.chainPem, 0o644);
    out.push({ spiffeId: w.id, dir, notAfter: svid.notAfter });
  }
  return {
    rootCert: files.rootCert,
    rootKey: files.rootKey,
    caDir,
    intermediateCert: files.caCert,
    ca: found !== undefined && typeof found !== 'string' ? 'reused' : 'created',
    ...(typeof found === 'string' && { caReplacedBecause: found }),
    rootNotAfter: Date.parse(new X509Certificate(inter.rootPem).validTo),
    intermediateNotAfter: inter.cert.notAfter.getTime(),
    workloads: out,
  };
}
