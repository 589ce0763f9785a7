// Originating mTLS to a peer sidecar: current SVID + trust bundle, and the peer's SPIFFE ID checked against the cluster's SAN matchers.
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { compileStringMatcher, type Predicate } from '../model/matchers.js';
import type { UpstreamTls } from '../model/types.js';
import { checkX509Svid } from '../identity/svid.js';

/** The slice of identity's TLS material the data plane needs. */
export interface TlsMaterialView {
  readonly certChainPem: string;
  readonly keyPem: string;
  readonly caPem?: string;
  readonly spiffeId?: string;
}

export interface MaterialSource {
  current(): TlsMaterialView;
  on(event: 'update', fn: (m: TlsMaterialView) => void): unknown;
  /** Lets a context that config replaced stop listening (the sources are EventEmitters). */
  off?(event: 'update', fn: (m: TlsMaterialView) => void): unknown;
}

export function trustDomainOf(uri: string | undefined): string | undefined {
  if (!uri?.startsWith('spiffe://')) return undefined;
  const rest = uri.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  return slash < 0 ? rest : rest.slice(0, slash);
}

export class PeerIdentityError extends Error {
  constructor(
    readonly code: 'ERR_SPIFFE_ID_MISMATCH' | 'ERR_SVID_INVALID',
    message: string,
    readonly expected: string,
    readonly got: string | undefined,
  ) {
    super(message);
  }
}

/**
 * Builds tls.connect options for one cluster. The SecureContext is rebuilt when the material rotates, so
 * new connections use the new SVID while pooled ones keep theirs (make-before-break).
 */
export class UpstreamTlsContext {
  private ctx: tls.SecureContext;
  private readonly matchers: readonly Predicate[];
  private readonly matcherText: string;
  private trustDomain: string | undefined;
  private readonly onUpdate = (m: TlsMaterialView) => {
    this.ctx = this.build(m);
  };

  constructor(
    private readonly cfg: UpstreamTls,
    private readonly source: MaterialSource,
  ) {
    this.matchers = (cfg.common.validation?.uriSanMatchers ?? []).map(compileStringMatcher);
    this.matcherText = (cfg.common.validation?.uriSanMatchers ?? []).map((m) => `${m.kind}:${'value' in m ? m.value : m.regex}`).join(' | ') || '<any SVID in our trust domain>';
    this.ctx = this.build(source.current());
    source.on('update', this.onUpdate);
  }

  /** The cluster version using this context was replaced: stop following rotations. */
  dispose(): void {
    this.source.off?.('update', this.onUpdate);
  }

  private build(m: TlsMaterialView): tls.SecureContext {
    this.trustDomain = trustDomainOf(m.spiffeId);
    return tls.createSecureContext({ cert: m.certChainPem, key: m.keyPem, ca: m.caPem, minVersion: 'TLSv1.2' });
  }

  connectOptions(host: string, port: number, alpn: readonly string[]): tls.ConnectionOptions {
    const servername = this.cfg.sni || undefined;
    return {
      host,
      port,
      servername,
      secureContext: this.ctx,
      ALPNProtocols: alpn.length ? [...alpn] : ['h2'],
      rejectUnauthorized: true,
      checkServerIdentity: (_host, cert) => this.verifyPeer(cert),
    };
  }

  /** Returns the peer SPIFFE ID or an error. Node checks the chain and validity; the SVID rules are ours. */
  verifyPeer(cert: tls.PeerCertificate): Error | undefined {
    if (!cert?.raw) return new PeerIdentityError('ERR_SVID_INVALID', 'peer presented no certificate', this.matcherText, undefined);
    const res = checkX509Svid(new X509Certificate(cert.raw), { trustDomain: this.matchers.length ? undefined : this.trustDomain });
    if (!res.ok) return new PeerIdentityError('ERR_SVID_INVALID', `peer certificate is not a valid X509-SVID: ${res.message}`, this.matcherText, undefined);
    const uri = res.id.uri;
    if (this.matchers.length && !this.matchers.some((p) => p(uri))) {
      return new PeerIdentityError('ERR_SPIFFE_ID_MISMATCH', `peer SPIFFE ID ${uri} does not match ${this.matcherText}`, this.matcherText, uri);
    }
    return undefined;
  }
}

/** The peer URI SAN of an established connection (already verified by verifyPeer). */
export function peerUriOf(socket: tls.TLSSocket): string | undefined {
  const san = socket.getPeerCertificate()?.subjectaltname;
  if (!san) return undefined;
  for (const part of san.split(', ')) if (part.startsWith('URI:')) return part.slice(4);
  return undefined;
}
