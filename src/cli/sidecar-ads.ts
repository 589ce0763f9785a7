// Wires the ADS client to a running sidecar: the channel to the control server (plaintext, or mTLS with the
// workload's TLS material from the secret store) and the xDS updates into the data plane.
import { isIP } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import type { Clock } from '../core/clock.js';
import type { Rng } from '../core/rng.js';
import type { SidecarRuntime } from '../dataplane/sidecar.js';
import { DEFAULT_CA_SERVER_NAME, controlSpiffeId } from '../identity/ca-api.js';
import type { AdsConfig, Bootstrap, Cluster, ClusterLoadAssignment, CommonTls, Listener, RouteConfiguration, UpstreamTls } from '../model/types.js';
import type { Logger } from '../telemetry/logger.js';
import { createXdsClientMetrics } from '../telemetry/metrics.js';
import { UpstreamTlsContext, trustDomainOf, type MaterialSource } from '../upstream/tls.js';
import { AdsClient } from '../xds/ads-client.js';
import { JwksRefreshClient } from '../xds/jwks-refresh.js';
import type { AdsWatcher } from '../xds/ads-state.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL } from '../xds/protos.js';

export interface AdsWiring {
  readonly bootstrap: Bootstrap & { readonly ads: AdsConfig };
  readonly runtime: SidecarRuntime;
  readonly materialFor: (common: CommonTls) => MaterialSource;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
}

/** The data plane behind the ADS client: each accepted type goes to its apply method, in the order it arrives. */
export function runtimeWatcher(runtime: SidecarRuntime): AdsWatcher {
  return {
    apply(u) {
      switch (u.typeUrl) {
        case CLUSTER_TYPE_URL:
          return runtime.applyClusters(u.resources as ReadonlyMap<string, Cluster>, u.changed, u.version);
        case CLUSTER_LOAD_ASSIGNMENT_TYPE_URL:
          return runtime.applyEndpoints(u.resources as ReadonlyMap<string, ClusterLoadAssignment>, u.changed, u.version);
        case LISTENER_TYPE_URL:
          return runtime.applyListeners(u.resources as ReadonlyMap<string, Listener>, u.changed, u.version);
        default:
          return runtime.applyRoutes(u.resources as ReadonlyMap<string, RouteConfiguration>, u.changed, u.version);
      }
    },
    missing(typeUrl, name) {
      if (typeUrl === CLUSTER_LOAD_ASSIGNMENT_TYPE_URL) runtime.endpointsMissing(name);
      else if (typeUrl === ROUTE_CONFIGURATION_TYPE_URL) runtime.routesMissing(name);
    },
  };
}

/** Starts the ADS stream; the data plane keeps serving whatever it has while the stream is down. */
/** host:port of the control server as grpc-js dials it (IPv6 in brackets). */
function adsTarget(ads: AdsConfig): string {
  const host = ads.address.host;
  return `${host.includes(':') ? `[${host}]` : host}:${ads.address.port}`;
}

export function startAds(w: AdsWiring): AdsClient {
  const { ads } = w.bootstrap;
  const client = new AdsClient({
    target: adsTarget(ads),
    ...channelSecurity(ads, w.materialFor),
    bootstrap: w.bootstrap,
    watcher: runtimeWatcher(w.runtime),
    clock: w.clock,
    rng: w.rng,
    logger: w.logger,
    metrics: createXdsClientMetrics(w.registry),
    ...(w.backoffBaseMs !== undefined && { backoffBaseMs: w.backoffBaseMs }),
    ...(w.backoffMaxMs !== undefined && { backoffMaxMs: w.backoffMaxMs }),
  });
  w.logger.info({ target: client.status().target, tls: ads.tls !== undefined, cluster: ads.clusterName || undefined }, 'starting the ADS stream');
  client.start();
  return client;
}

/**
 * The client behind the jwt_authn filter's unknown-kid hook: to the control server's TLS port with the same
 * channel security as ADS. The control server refuses the request from an unauthenticated caller, so over
 * plaintext ADS (15010) there is none, and keys change at the control server's 20-minute refresh.
 */
export function startJwksRefresh(w: AdsWiring): JwksRefreshClient | undefined {
  const { ads } = w.bootstrap;
  if (!ads.tls) {
    w.logger.info({}, 'plaintext xDS: unknown JWT key ids do not trigger a JWKS refresh (use grpcs:// for that)');
    return undefined;
  }
  const { credentials, channelOptions } = channelSecurity(ads, w.materialFor);
  return new JwksRefreshClient({ target: adsTarget(ads), credentials, channelOptions, clock: w.clock, logger: w.logger });
}

/**
 * Plaintext (Istio's 15010) or mTLS (15012): the workload's certificate and bundle from the secret store,
 * re-read on every connection attempt. The server must present the SPIFFE ID the cluster's
 * match_typed_subject_alt_names names, or else the control server's own ID: a name check alone would accept
 * any workload under the same root. Never falls back to plaintext.
 */
function channelSecurity(ads: AdsConfig, materialFor: (common: CommonTls) => MaterialSource): { credentials: () => grpc.ChannelCredentials; channelOptions: grpc.ChannelOptions } {
  if (!ads.tls) return { credentials: () => grpc.credentials.createInsecure(), channelOptions: {} };
  // Loaded already: the ADS cluster is a static cluster, and --xds grpcs:// names the identity manager's SDS secrets.
  const source = materialFor(ads.tls.common);
  const td = trustDomainOf(source.current().spiffeId);
  const validation = ads.tls.common.validation;
  const cfg: UpstreamTls = validation?.uriSanMatchers.length || !td
    ? ads.tls
    : { ...ads.tls, common: { ...ads.tls.common, validation: { ...validation, uriSanMatchers: [{ kind: 'exact', value: controlSpiffeId(td), ignoreCase: false }] } } };
  const verifier = new UpstreamTlsContext(cfg, source);
  // An IP address is no TLS server name (RFC 6066 §3): expect the name every control-server certificate carries.
  const serverName = ads.tls.sni || (isIP(ads.address.host) ? DEFAULT_CA_SERVER_NAME : '');
  return {
    credentials: () => {
      const m = source.current();
      return grpc.credentials.createSsl(m.caPem ? Buffer.from(m.caPem) : null, Buffer.from(m.keyPem), Buffer.from(m.certChainPem), {
        checkServerIdentity: (_host, cert) => verifier.verifyPeer(cert),
      });
    },
    channelOptions: serverName ? { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName } : {},
  };
}
