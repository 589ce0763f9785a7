// Development certificates in Istio's file layout, for trying a sidecar by hand (certs-dev/README.md).
// Production identities come from the mesh CA; these are for a laptop and are written next to their keys.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Clock } from '../core/clock.js';
import { createRootCa, issueSvid } from './ca.js';
import { workloadId } from './spiffe.js';

export interface DevCertsOptions {
  readonly dir: string;
  readonly trustDomain: string;
  /** Workloads as `namespace/serviceaccount`. */
  readonly workloads: readonly string[];
  readonly ttlMs: number;
  readonly clock: Clock;
}

export interface DevCertsResult {
  readonly rootCert: string;
  readonly workloads: { readonly spiffeId: string; readonly dir: string }[];
}

/**
 * Writes root-cert.pem (and the root key, so more leaves can be minted later) at the top, and for each
 * workload `<ns>.<sa>/{cert-chain.pem,key.pem,root-cert.pem}`, as Istio mounts them at /etc/certs.
 */
export async function writeDevCerts(o: DevCertsOptions): Promise<DevCertsResult> {
  const ids = o.workloads.map((w) => {
    const [ns, sa, ...rest] = w.split('/');
    if (!ns || !sa || rest.length) throw new Error(`workload ${JSON.stringify(w)}: expected namespace/serviceaccount`);
    // Validates trust domain and segments against the SPIFFE-ID rules before anything is written.
    return { ns, sa, id: workloadId(o.trustDomain, ns, sa).uri };
  });
  mkdirSync(o.dir, { recursive: true });
  const ca = await createRootCa({ trustDomain: o.trustDomain, commonName: `Outrigger dev root (${o.trustDomain})`, clock: o.clock, ttlMs: Math.max(o.ttlMs, 30 * 24 * 3600_000) });
  const rootCert = path.join(o.dir, 'root-cert.pem');
  writeFileSync(rootCert, ca.certPem);
  writeFileSync(path.join(o.dir, 'root-key.pem'), ca.keyPem, { mode: 0o600 });
  const out: { spiffeId: string; dir: string }[] = [];
  for (const w of ids) {
    const dir = path.join(o.dir, `${w.ns}.${w.sa}`);
    mkdirSync(dir, { recursive: true });
    const svid = await issueSvid(ca, { spiffeIds: [w.id], ttlMs: o.ttlMs, clock: o.clock });
    writeFileSync(path.join(dir, 'cert-chain.pem'), svid.chainPem);
    writeFileSync(path.join(dir, 'key.pem'), svid.keyPem, { mode: 0o600 });
    writeFileSync(path.join(dir, 'root-cert.pem'), ca.certPem);
    out.push({ spiffeId: w.id, dir });
  }
  return { rootCert, workloads: out };
}
