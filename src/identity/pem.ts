// Certificate PEM bundles and issuer links: the small pieces every loader, the CA and the identity manager share (no x509 library).
import { X509Certificate } from 'node:crypto';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** One PEM string per certificate of a bundle, each ending in a newline (so they concatenate). */
export function splitPem(bundle: string): string[] {
  return (bundle.match(PEM_CERT) ?? []).map((b) => `${b}\n`);
}

export function certsOf(bundle: string): X509Certificate[] {
  return splitPem(bundle).map((p) => new X509Certificate(p));
}

/** RFC 5280 §6.1 in one step: `parent`'s subject is `child`'s issuer and its key made the signature. */
export function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  return child.checkIssued(parent) && child.verify(parent.publicKey);
}

/** Signatures only (validity is TLS's job): leaf → intermediates (in order) → one of `roots`. */
export function chainsTo(chain: readonly X509Certificate[], roots: readonly X509Certificate[]): boolean {
  for (let i = 0; i < chain.length; i++) {
    const c = chain[i]!;
    if (roots.some((r) => issuedBy(c, r))) return true;
    const up = chain[i + 1];
    if (!up || !issuedBy(c, up)) return false;
  }
  return false;
}
