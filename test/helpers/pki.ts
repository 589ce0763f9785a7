// Test PKI: a root (and optionally an intermediate) in one trust domain, issuing SVIDs good and bad through src/identity/ca.ts.
import { systemClock } from '../../src/core/clock.js';
import { createIntermediateCa, createRootCa, issueSvid, type CaBundle, type SvidOptions } from '../../src/identity/ca.js';

export interface IssuedForTest {
  id: string;
  certPem: string;
  chainPem: string;
  keyPem: string;
}

export interface Pki {
  trustDomain: string;
  rootPem: string;
  ca: CaBundle;
  /** `ns/sa` or a full ID; options as issueSvid's (expired, not yet valid, two URIs, CA, extra URIs). */
  issue(identity: string, opts?: Partial<Omit<SvidOptions, 'clock'>>): Promise<IssuedForTest>;
}

export async function makePki(o: { trustDomain?: string; intermediate?: boolean } = {}): Promise<Pki> {
  const trustDomain = o.trustDomain ?? 'cluster.local';
  const root = await createRootCa({ trustDomain, commonName: `test root ${trustDomain}`, clock: systemClock });
  const ca = o.intermediate ? await createIntermediateCa(root, { commonName: 'test intermediate', clock: systemClock }) : root;
  return {
    trustDomain,
    rootPem: root.certPem,
    ca,
    async issue(identity, opts = {}) {
      const id = identity.startsWith('spiffe://') ? identity : `spiffe://${trustDomain}/${identity.replace(/^(?!ns\/)/, 'ns/')}`;
      const s = await issueSvid(ca, { spiffeIds: [id], clock: systemClock, ...opts });
      return { id, certPem: s.certPem, chainPem: s.chainPem, keyPem: s.keyPem };
    },
  };
}
