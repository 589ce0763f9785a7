// outrigger.jwks.v1.JwksService on the control server's TLS port: a mesh workload's unknown-kid report triggers the resolver's on-demand refresh.
import * as grpc from '@grpc/grpc-js';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../telemetry/logger.js';
import { MAX_ISSUER_LENGTH, MAX_KID_LENGTH, jwksRefreshService, type RefreshKeysRequest } from '../xds/jwks-refresh.js';
import type { JwksResolver } from './jwks.js';

export { jwksRefreshService };

export interface JwksServiceOptions {
  /** requestRefresh for the calls admitted; refused() counts the ones turned away. */
  readonly resolver: Pick<JwksResolver, 'requestRefresh' | 'refused'>;
  /**
   * The caller's SPIFFE ID from its verified client certificate, undefined without one; throws for a certificate
   * that is no SVID of this CA. The CA's own check (CaService.svidIdentity), so both services admit the same callers.
   */
  readonly identify: (call: grpc.ServerUnaryCall<RefreshKeysRequest, unknown>) => string | undefined;
  readonly logger: Logger;
}

/**
 * RefreshKeys answers at once: the fetch (if the resolver's cooldown allows one) runs in the background and its
 * keys reach every proxy over ADS. Only a workload of the mesh may ask, as for the trust-bundle watch: an
 * anonymous caller could otherwise make the control server hammer an IdP (the cooldown bounds that, but an
 * unauthenticated knob on the control server is one too many).
 */
export function jwksRefreshHandlers(o: JwksServiceOptions): grpc.UntypedServiceImplementation {
  return {
    RefreshKeys: (call: grpc.ServerUnaryCall<RefreshKeysRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      let caller: string | undefined;
      try {
        caller = o.identify(call);
      } catch (e) {
        o.resolver.refused();
        return cb({ code: grpc.status.UNAUTHENTICATED, details: errorMessage(e) });
      }
      if (!caller) {
        o.resolver.refused();
        return cb({ code: grpc.status.UNAUTHENTICATED, details: 'RefreshKeys needs a valid SVID of the mesh as the client certificate (port 15012)' });
      }
      const { issuer, kid } = call.request;
      if (issuer === '' || issuer.length > MAX_ISSUER_LENGTH || kid.length > MAX_KID_LENGTH) {
        o.resolver.refused();
        return cb({ code: grpc.status.INVALID_ARGUMENT, details: `issuer must be 1..${MAX_ISSUER_LENGTH} characters and kid at most ${MAX_KID_LENGTH}` });
      }
      const outcomes = o.resolver.requestRefresh(issuer, kid);
      o.logger.info({ caller, issuer, kid, outcomes }, 'unknown-kid JWKS refresh requested');
      cb(null, {});
    },
  };
}
