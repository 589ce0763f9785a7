// The unknown-kid refresh request (outrigger.jwks.v1.JwksService): the service definition, and the sidecar's rate-limited, fire-and-forget client.
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { errorMessage } from '../core/errors.js';
import type { AdsClientOptions } from './ads-client.js';

// src/xds and dist/xds are both two levels below the package root.
const PROTO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../proto');

export interface RefreshKeysRequest {
  issuer: string;
  kid: string;
}

/** Longest issuer / kid sent or accepted: both come from a token anyone can write, and real ones are short. */
export const MAX_ISSUER_LENGTH = 1024;
export const MAX_KID_LENGTH = 256;

let loaded: grpc.ServiceClientConstructor | undefined;

/** JwksService, parsed once per process. */
export function jwksRefreshService(): grpc.ServiceClientConstructor {
  if (loaded) return loaded;
  const def = protoLoader.loadSync(['outrigger/jwks/v1/jwks.proto'], { includeDirs: [PROTO_DIR], keepCase: true, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { outrigger: { jwks: { v1: { JwksService: grpc.ServiceClientConstructor } } } };
  loaded = pkg.outrigger.jwks.v1.JwksService;
  return loaded;
}

/** The ADS client's channel (the control server's TLS port, mTLS with the workload's current SVID, read at each call). */
export interface JwksRefreshClientOptions extends Pick<AdsClientOptions, 'target' | 'credentials' | 'channelOptions' | 'clock' | 'logger'> {
  /** At most one request per issuer this often (default 10 s). */
  readonly minIntervalMs?: number;
  /** Issuers remembered for the rate limit; requests for further ones are dropped until old ones age out (default 64). */
  readonly maxIssuers?: number;
  readonly timeoutMs?: number;
}

/**
 * Asks the control server to refetch an issuer's keys. Called from the jwt_authn filter on a token whose kid no
 * key has, so it never blocks a request and never throws: each call is one short unary RPC in the background,
 * its failure logged. Rate-limited per issuer, so a flood of tokens with made-up kids costs the control server
 * one request per issuer per interval from this sidecar (the control server then applies its own per-URI
 * cooldown before it asks the IdP).
 */
export class JwksRefreshClient {
  private readonly last = new Map<string, number>();
  private readonly minIntervalMs: number;
  private readonly maxIssuers: number;
  private closed = false;
  private readonly inflight = new Set<Promise<void>>();

  constructor(private readonly o: JwksRefreshClientOptions) {
    this.minIntervalMs = o.minIntervalMs ?? 10_000;
    this.maxIssuers = o.maxIssuers ?? 64;
  }

  /** The FilterDeps.onUnknownJwksKey hook. Returns whether a request was sent (tests; the filter ignores it). */
  request(issuer: string, kid: string): boolean {
    if (this.closed || issuer === '' || issuer.length > MAX_ISSUER_LENGTH || kid.length > MAX_KID_LENGTH) return false;
    const now = this.o.clock.monotonic();
    const prev = this.last.get(issuer);
    if (prev !== undefined && now - prev < this.minIntervalMs) return false;
    if (prev === undefined && this.last.size >= this.maxIssuers) {
      for (const [i, at] of this.last) if (now - at >= this.minIntervalMs) this.last.delete(i);
      if (this.last.size >= this.maxIssuers) return false;
    }
    this.last.set(issuer, now);
    const p = this.send({ issuer, kid });
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
    return true;
  }

  /** Resolves when every request sent so far has been answered or failed (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.all([...this.inflight]);
  }

  close(): void {
    this.closed = true;
  }

  private async send(req: RefreshKeysRequest): Promise<void> {
    let client: grpc.Client | undefined;
    try {
      client = new (jwksRefreshService())(this.o.target, this.o.credentials(), this.o.channelOptions ?? {});
      const call = (client as unknown as Record<string, (...a: unknown[]) => void>).RefreshKeys!;
      const deadline = this.o.clock.now() + (this.o.timeoutMs ?? 5_000);
      await new Promise<void>((resolve, reject) => call.call(client, req, { deadline }, (err: grpc.ServiceError | null) => (err ? reject(err) : resolve())));
      this.o.logger.info({ issuer: req.issuer, kid: req.kid }, 'asked the control server to refresh the JWKS (unknown kid)');
    } catch (e) {
      const err = e as Partial<grpc.ServiceError>;
      this.o.logger.warn({ issuer: req.issuer, kid: req.kid, code: err.code === undefined ? undefined : grpc.status[err.code], error: err.details ?? errorMessage(e) }, 'JWKS refresh request failed');
    } finally {
      client?.close();
    }
  }
}
