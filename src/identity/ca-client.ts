// The sidecar's side of the CA API: CreateCertificate with a bootstrap token or the current SVID, and the trust-bundle watch.
import { isIP } from 'node:net';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { Clock } from '../core/clock.js';
import { IdentityError } from './errors.js';
import { splitPem } from './pem.js';
import { DEFAULT_CA_SERVER_NAME, caServices, controlSpiffeId, type CertificateResponse, type TrustBundleAck, type TrustBundleUpdate } from './ca-api.js';

export interface CaClientOptions {
  /** host:port of the control server's TLS port (node metadata CA_ADDR). */
  readonly address: string;
  /** Roots that may sign the CA's serving certificate: the bootstrap anchor plus the live bundle. */
  readonly roots: () => string;
  /** Expected name in the CA's serving certificate when it differs from the address host (CA_SERVER_NAME). */
  readonly serverName?: string;
  readonly timeoutMs?: number;
  readonly clock: Clock;
  /** The trust domain whose control-server SPIFFE ID the CA's certificate must carry. */
  readonly trustDomain: string;
}

/** How a caller proves who it is (issue 3): its first certificate by token, renewals by the SVID itself. */
export type CaCredential = { readonly token: string } | { readonly certChainPem: string; readonly keyPem: string };

export interface SignedChain {
  /** Leaf then intermediates, PEM. */
  readonly chainPem: string;
  /** Every root the CA trusts now, PEM. */
  readonly bundlePem: string;
}

/** gRPC codes that mean "the CA said no" rather than "the CA could not be asked": no point retrying fast. */
const REFUSALS = new Set([grpc.status.INVALID_ARGUMENT, grpc.status.PERMISSION_DENIED, grpc.status.UNAUTHENTICATED, grpc.status.FAILED_PRECONDITION]);

export class CaClient {
  constructor(private readonly o: CaClientOptions) {}

  private client(cred: CaCredential | undefined, ctor: grpc.ServiceClientConstructor): grpc.Client {
    const mtls = cred && 'keyPem' in cred ? cred : undefined;
    const expected = controlSpiffeId(this.o.trustDomain);
    const creds = grpc.credentials.createSsl(Buffer.from(this.o.roots()), mtls ? Buffer.from(mtls.keyPem) : null, mtls ? Buffer.from(mtls.certChainPem) : null, {
      // The name check alone would accept any certificate for that name under a shared (enterprise) root.
      checkServerIdentity: (host, cert) => {
        const named = tls.checkServerIdentity(host, cert);
        if (named) return named;
        const uris = (cert.subjectaltname ?? '').split(', ').filter((x) => x.startsWith('URI:'));
        return uris.includes(`URI:${expected}`) ? undefined : new Error(`the CA's certificate is not the control server's (${expected}); it has ${uris.join(', ') || 'no URI SAN'}`);
      },
    });
    // An IP address is no TLS server name (RFC 6066 §3): dialling the CA by IP, expect the name its
    // certificate always carries instead, as istio-agent expects istiod's service name.
    const host = this.o.address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    const serverName = this.o.serverName ?? (isIP(host) ? DEFAULT_CA_SERVER_NAME : undefined);
    const options: grpc.ChannelOptions = serverName ? { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName } : {};
    return new ctor(this.o.address, creds, options);
  }

  /** One CSR, one fresh channel: renewals are rare and must present the SVID current at that moment. */
  async createCertificate(req: { csrPem: string; ttlSeconds: number; instance: string; credential: CaCredential }): Promise<SignedChain> {
    const client = this.client(req.credential, caServices().certificate);
    const md = new grpc.Metadata();
    if ('token' in req.credential) md.set('authorization', `Bearer ${req.credential.token}`);
    const body = { csr: req.csrPem, validity_duration: String(req.ttlSeconds), metadata: { fields: { instance: { string_value: req.instance } } } };
    try {
      const res = await new Promise<CertificateResponse>((resolve, reject) => {
        const deadline = this.o.clock.now() + (this.o.timeoutMs ?? 10_000);
        (client as unknown as Record<string, (...a: unknown[]) => void>).CreateCertificate!(body, md, { deadline }, (err: grpc.ServiceError | null, r: CertificateResponse) => (err ? reject(err) : resolve(r)));
      });
      const chain = res.cert_chain;
      if (chain.length < 2) throw new IdentityError('CA_REFUSED', `the CA at ${this.o.address} returned ${chain.length} certificate(s); expected the leaf and the trust bundle`);
      return { chainPem: chain.slice(0, -1).join(''), bundlePem: splitPem(chain[chain.length - 1]!).join('') };
    } catch (e) {
      if (e instanceof IdentityError) throw e;
      const err = e as grpc.ServiceError;
      const refused = REFUSALS.has(err.code);
      throw new IdentityError(refused ? 'CA_REFUSED' : 'CA_UNAVAILABLE', `CA ${this.o.address} ${refused ? 'refused' : 'unreachable'}: ${grpc.status[err.code] ?? err.code} ${err.details ?? err.message}`, {
        cause: e,
        details: { grpcCode: err.code },
      });
    } finally {
      client.close();
    }
  }

  /**
   * Opens the trust-bundle watch over mTLS with the given SVID. The caller reopens it (with its current
   * SVID) when `onEnd` fires; the stream stays on the connection it was opened on.
   */
  watch(cred: CaCredential, h: { onUpdate: (u: TrustBundleUpdate) => void; onEnd: (err: Error | undefined) => void }): { ack(a: TrustBundleAck): void; close(): void } {
    const client = this.client(cred, caServices().trustBundle);
    const call = (client as unknown as Record<string, () => grpc.ClientDuplexStream<TrustBundleAck, TrustBundleUpdate>>).Watch!();
    let ended = false;
    const end = (err: Error | undefined) => {
      if (ended) return;
      ended = true;
      client.close();
      h.onEnd(err);
    };
    call.on('data', (u: TrustBundleUpdate) => h.onUpdate(u));
    call.on('error', (e: Error) => end(e));
    call.on('end', () => end(undefined));
    return {
      ack: (a) => {
        if (!ended) call.write(a);
      },
      close: () => {
        if (ended) return;
        ended = true;
        call.cancel();
        client.close();
      },
    };
  }
}
