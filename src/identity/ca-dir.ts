// The control server's CA directory: Istio's plugged-in CA layout, validated file by file, or a self-signed root generated on first start and reused.
import { X509Certificate, createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Clock } from '../core/clock.js';
import { issuedBy } from './pem.js';
import { caBundleFrom, createRootCa, decodePem, type CaBundle } from './ca.js';
import { IdentityError } from './errors.js';
import * as x509 from './x509.js';

/**
 * Istio's plugged-in CA files (https://istio.io/latest/docs/tasks/security/cert-management/plugin-ca-cert/):
 * the signing certificate and its key, the trust bundle (one or several roots), and the chain from the
 * signing certificate up to the root.
 */
export type CaFileName = 'ca-cert.pem' | 'ca-key.pem' | 'root-cert.pem' | 'cert-chain.pem' | typeof ROTATION_FILE;

/** The control server's root-rotation record (phase, the roots and signers it retires), beside Istio's files. */
export const ROTATION_FILE = 'rotation.json';

/**
 * Marks a directory whose root Outrigger generated. The mode is 'self-signed' when this file exists and
 * ca-cert.pem is self-issued (so a rotation to a new generated root keeps the mode even though only the
 * four Istio files are moved); plugging in an intermediate makes the directory 'plugged' again. Delete it
 * when replacing the files with your own root.
 */
export const MODE_FILE = 'ca-mode';
const SELF_SIGNED_TTL_MS = 10 * 365 * 86_400_000;
/** Clock skew tolerated on a signing certificate's notBefore (the issue's ±5 minutes). */
const SKEW_MS = 5 * 60_000;

export interface CaDir {
  readonly dir: string;
  readonly mode: 'self-signed' | 'plugged';
  /** Signs workload certificates: ca-cert.pem + ca-key.pem, chain = ca-cert + intermediates (no root). */
  readonly signer: CaBundle;
  /** Every root in root-cert.pem, in file order, duplicates removed. */
  readonly roots: readonly X509Certificate[];
  /** All roots, PEM, each ending in "\n": the ROOTCA bundle sidecars trust. */
  readonly bundlePem: string;
  readonly trustDomain: string;
}

export interface LoadCaDirOptions {
  trustDomain: string;
  clock: Clock;
  logger?: { info(o: object, m?: string): void };
  /** Make a self-signed root in an empty directory (default true); false when the files must already be there. */
  create?: boolean;
}

function fail(dir: string, file: string, message: string, cause?: unknown): never {
  throw new IdentityError('CA_DIR_INVALID', `${path.join(dir, file)}: ${message}`, { details: { file }, ...(cause === undefined ? {} : { cause }) });
}

function pemOf(c: X509Certificate): string {
  const pem = c.toString();
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

function describe(c: X509Certificate): string {
  return JSON.stringify(c.subject.replace(/\n/g, ', '));
}

/** Parses every CERTIFICATE block; anything unreadable is reported as corrupt or truncated, naming the file. */
function readCerts(dir: string, file: string, text: string): X509Certificate[] {
  let blocks;
  try {
    blocks = decodePem(text).filter((b) => b.label === 'CERTIFICATE');
  } catch (e) {
    fail(dir, file, `corrupt or truncated PEM: ${(e as Error).message}`, e);
  }
  if (blocks.length === 0) fail(dir, file, 'corrupt or truncated: no complete CERTIFICATE PEM block');
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b.der);
    } catch (e) {
      fail(dir, file, `corrupt or truncated: certificate #${i + 1} does not parse (${(e as Error).message})`, e);
    }
  });
}

/** PKCS#8, SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY" (the three forms openssl and Istio's tools write). */
function readKey(dir: string, text: string): KeyObject {
  const file = 'ca-key.pem';
  if (/ENCRYPTED PRIVATE KEY|Proc-Type:\s*4,ENCRYPTED/.test(text)) fail(dir, file, 'the key is encrypted; store it decrypted (openssl pkey -in ca-key.pem -out ca-key.pem) and protect the file instead');
  let blocks;
  try {
    blocks = decodePem(text);
  } catch (e) {
    fail(dir, file, `corrupt or truncated PEM: ${(e as Error).message}`, e);
  }
  const types = { 'PRIVATE KEY': 'pkcs8', 'EC PRIVATE KEY': 'sec1', 'RSA PRIVATE KEY': 'pkcs1' } as const;
  const block = blocks.find((b): b is typeof b & { label: keyof typeof types } => b.label in types);
  if (!block) fail(dir, file, `corrupt or truncated: no PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY block${blocks.length ? ` (found ${blocks.map((b) => b.label).join(', ')})` : ''}`);
  try {
    return createPrivateKey({ key: block.der, format: 'der', type: types[block.label] });
  } catch (e) {
    fail(dir, file, `corrupt or truncated: the key does not parse (${(e as Error).message})`, e);
  }
}

function keyDescription(k: KeyObject): string {
  const d = k.asymmetricKeyDetails ?? {};
  return k.asymmetricKeyType === 'rsa' ? `RSA ${d.modulusLength}` : k.asymmetricKeyType === 'ec' ? `ECDSA ${d.namedCurve}` : String(k.asymmetricKeyType);
}

/** The CA key policy of ca.ts signingAlgorithmFor: ECDSA P-256/P-384 or RSA ≥ 2048. */
function acceptableCaKey(k: KeyObject): boolean {
  const d = k.asymmetricKeyDetails ?? {};
  if (k.asymmetricKeyType === 'ec') return d.namedCurve === 'prime256v1' || d.namedCurve === 'secp384r1';
  return k.asymmetricKeyType === 'rsa' && (d.modulusLength ?? 0) >= 2048;
}

/** RFC 5280 §4.2.1.3 / §4.2.1.9: a certificate that signs others is a CA with keyCertSign. */
function caProblem(c: X509Certificate): string | undefined {
  // Read the extensions themselves: OpenSSL's notion of "CA" (node's c.ca) folds key usage in, and the
  // message should say which of the two is missing.
  const cert = new x509.X509Certificate(c.raw);
  if (!cert.getExtension(x509.BasicConstraintsExtension)?.ca) return 'is not a CA certificate (basicConstraints cA is not true)';
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  if (!ku || !(ku.usages & x509.KeyUsageFlags.keyCertSign)) return 'lacks the keyCertSign key usage';
  return undefined;
}

function validity(c: X509Certificate): { notBefore: number; notAfter: number } {
  return { notBefore: Date.parse(c.validFrom), notAfter: Date.parse(c.validTo) };
}

function selfIssued(c: X509Certificate): boolean {
  return issuedBy(c, c);
}

/**
 * Writes CA files atomically: each goes to a temporary file in the same directory (fsynced, key files
 * 0600), then all are renamed into place and the directory is fsynced, so a reader never sees half a file.
 */
export async function writeCaFiles(dir: string, files: Partial<Record<CaFileName, string>>): Promise<void> {
  await writeFilesAtomic(dir, files);
}

/**
 * Writes several files into one directory so a reader never sees a half-written one: each is written to a
 * temp file and fsynced, then all are renamed (in the order given), then the directory is fsynced. Keys
 * (`*-key.pem` and the names in `privateNames`) are mode 0600.
 */
export async function writeFilesAtomic(dir: string, files: Partial<Record<string, string>>, privateNames: readonly string[] = []): Promise<void> {
  await mkdir(dir, { recursive: true });
  const staged: [string, string][] = [];
  try {
    for (const [name, content] of Object.entries(files)) {
      if (content === undefined) continue;
      const tmp = path.join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
      staged.push([tmp, path.join(dir, name)]);
      const fh = await open(tmp, 'wx', name.endsWith('-key.pem') || privateNames.includes(name) ? 0o600 : 0o644);
      try {
        await fh.writeFile(content);
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    for (const [tmp, final] of staged) await rename(tmp, final);
  } catch (e) {
    await Promise.all(staged.map(([tmp]) => rm(tmp, { force: true })));
    throw e;
  }
  // The renames are durable only once the directory entry is (POSIX; a no-op error on some filesystems).
  const d = await open(dir, 'r');
  try {
    await d.sync().catch(() => undefined);
  } finally {
    await d.close();
  }
}

async function generateSelfSigned(dir: string, o: LoadCaDirOptions): Promise<void> {
  const root = await createRootCa({ trustDomain: o.trustDomain, commonName: `Outrigger self-signed root (${o.trustDomain})`, clock: o.clock, ttlMs: SELF_SIGNED_TTL_MS });
  // The same four files as a plugged-in CA, so every later start (and `certs rotate-root`) reads one layout.
  // The marker first: a crash before the four files land leaves a directory that still counts as empty.
  await writeFilesAtomic(dir, { [MODE_FILE]: 'self-signed\n# Outrigger generated ca-cert.pem/ca-key.pem here on first start; delete this file if you replace them with your own root.\n' });
  await writeCaFiles(dir, { 'ca-key.pem': root.keyPem, 'root-cert.pem': root.certPem, 'cert-chain.pem': root.certPem, 'ca-cert.pem': root.certPem });
  o.logger?.info({ dir, fingerprint: new X509Certificate(root.certPem).fingerprint256, notAfter: root.cert.notAfter.toISOString() }, 'generated a self-signed root CA');
}

/**
 * Loads the CA directory, or creates a self-signed root in it when it holds neither ca-cert.pem nor
 * ca-key.pem. Everything is checked before the control server serves: a bad directory fails with
 * CA_DIR_INVALID naming the file at fault (details.file).
 */
export async function loadCaDir(dir: string, o: LoadCaDirOptions): Promise<CaDir> {
  const at = (f: string) => path.join(dir, f);
  const hasCert = existsSync(at('ca-cert.pem'));
  const hasKey = existsSync(at('ca-key.pem'));
  if (!hasCert && !hasKey) {
    for (const f of ['root-cert.pem', 'cert-chain.pem'] as const) {
      if (existsSync(at(f))) fail(dir, 'ca-cert.pem', `missing, but ${f} is present: a plugged-in CA needs ca-cert.pem and ca-key.pem too (an empty directory gets a self-signed root)`);
    }
    if (o.create === false) fail(dir, 'ca-cert.pem', 'missing: expected a CA directory in Istio\'s layout (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem)');
    await generateSelfSigned(dir, o);
  } else if (!hasKey) {
    fail(dir, 'ca-key.pem', 'missing: ca-cert.pem is present, and a plugged-in CA needs its private key');
  } else if (!hasCert) {
    fail(dir, 'ca-cert.pem', 'missing: ca-key.pem is present, and a plugged-in CA needs the certificate for it');
  }

  const text = async (f: CaFileName) => {
    try {
      return await readFile(at(f), 'utf8');
    } catch (e) {
      fail(dir, f, `cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
    }
  };
  const now = o.clock.now();

  // The signing certificate.
  const caCert = readCerts(dir, 'ca-cert.pem', await text('ca-cert.pem'))[0]!;
  const problem = caProblem(caCert);
  if (problem) fail(dir, 'ca-cert.pem', `${describe(caCert)} ${problem}; it cannot sign workload certificates`);
  const v = validity(caCert);
  if (now > v.notAfter) fail(dir, 'ca-cert.pem', `${describe(caCert)} expired on ${new Date(v.notAfter).toISOString()}`);
  if (now + SKEW_MS < v.notBefore) fail(dir, 'ca-cert.pem', `${describe(caCert)} is not valid until ${new Date(v.notBefore).toISOString()} (check the clock)`);
  // X509-SVID §5.1 allows a signing certificate to carry its trust domain's SPIFFE ID; it must be ours.
  for (const san of (caCert.subjectAltName ?? '').split(', ')) {
    if (!san.startsWith('URI:spiffe://')) continue;
    const td = san.slice('URI:spiffe://'.length).split('/')[0];
    if (td !== o.trustDomain) fail(dir, 'ca-cert.pem', `carries ${san.slice(4)}, trust domain ${JSON.stringify(td)}, but the control server's trust domain is ${JSON.stringify(o.trustDomain)}`);
  }

  // Its key.
  const key = readKey(dir, await text('ca-key.pem'));
  if (!acceptableCaKey(key)) fail(dir, 'ca-key.pem', `${keyDescription(key)} keys are not supported for a CA: use ECDSA P-256/P-384 or RSA ≥ 2048`);
  const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
  if (!spki(createPublicKey(key)).equals(spki(caCert.publicKey))) {
    fail(dir, 'ca-key.pem', `does not match ca-cert.pem: the key's public half differs from the public key of ${describe(caCert)}`);
  }

  // The trust bundle.
  const seen = new Set<string>();
  const roots = readCerts(dir, 'root-cert.pem', await text('root-cert.pem')).filter((r) => !seen.has(r.fingerprint256) && seen.add(r.fingerprint256));
  roots.forEach((r, i) => {
    if (!r.ca) fail(dir, 'root-cert.pem', `certificate #${i + 1} ${describe(r)} is not a CA certificate`);
  });

  // The chain: ca-cert first, then each issuer, until a certificate a bundle root issued (RFC 5280 §6.1).
  const chainFile = existsSync(at('cert-chain.pem')) ? readCerts(dir, 'cert-chain.pem', await text('cert-chain.pem')) : [caCert];
  if (chainFile[0]!.fingerprint256 !== caCert.fingerprint256) fail(dir, 'cert-chain.pem', `must start with the certificate in ca-cert.pem, but starts with ${describe(chainFile[0]!)}`);
  const intermediates: X509Certificate[] = [];
  let cur = caCert;
  let anchor: X509Certificate | undefined;
  for (let i = 1; ; i++) {
    anchor = roots.find((r) => issuedBy(cur, r));
    if (anchor) break;
    const next = chainFile[i];
    if (!next || selfIssued(cur)) {
      fail(dir, 'root-cert.pem', `ca-cert.pem does not chain to any root in root-cert.pem: the chain ends at ${describe(cur)}, issued by ${JSON.stringify(cur.issuer.replace(/\n/g, ', '))}, which is not in the bundle`);
    }
    if (!issuedBy(cur, next)) fail(dir, 'cert-chain.pem', `certificate #${i + 1} ${describe(next)} did not issue certificate #${i} ${describe(cur)} (names or signature do not match)`);
    const p = caProblem(next);
    if (p) fail(dir, 'cert-chain.pem', `certificate #${i + 1} ${describe(next)} ${p}`);
    if (now > validity(next).notAfter) fail(dir, 'cert-chain.pem', `certificate #${i + 1} ${describe(next)} expired on ${new Date(validity(next).notAfter).toISOString()}`);
    intermediates.push(next);
    cur = next;
  }
  if (now > validity(anchor).notAfter) fail(dir, 'root-cert.pem', `the root ${describe(anchor)} that anchors ca-cert.pem expired on ${new Date(validity(anchor).notAfter).toISOString()}`);

  // A root signer (self-signed or plugged-in root) has no chain, as createRootCa; an intermediate's chain
  // is itself and the intermediates above it, never the root (sidecars have it in the bundle).
  const isRoot = anchor.fingerprint256 === caCert.fingerprint256;
  const signer = await caBundleFrom({
    trustDomain: o.trustDomain,
    certPem: pemOf(caCert),
    keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string,
    chainPems: isRoot ? [] : [caCert, ...intermediates].map(pemOf),
    rootPem: pemOf(anchor),
  });
  const mode = existsSync(at(MODE_FILE)) && selfIssued(caCert) ? 'self-signed' : 'plugged';
  o.logger?.info(
    { dir, mode, signer: caCert.subject.replace(/\n/g, ', '), key: keyDescription(key), intermediates: intermediates.length, roots: roots.length, notAfter: new Date(v.notAfter).toISOString() },
    'CA directory loaded',
  );
  return Object.freeze({ dir, mode, signer, roots: Object.freeze(roots), bundlePem: roots.map(pemOf).join(''), trustDomain: o.trustDomain });
}
