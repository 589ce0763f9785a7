// A two-sidecar mesh for end-to-end tests: app → A outbound → mTLS h2 → B inbound → app, all on 127.0.0.1 port 0.
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { systemRng, type Rng } from '../../src/core/rng.js';
import { AccessLog } from '../../src/telemetry/access-log.js';
import type { Logger } from '../../src/telemetry/logger.js';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { startSidecar, type RunningSidecar } from '../../src/cli/sidecar.js';
import { decodeBootstrapObject } from './bootstrap.js';

export const TD = 'cluster.local';
export const FRONTEND_ID = `spiffe://${TD}/ns/default/sa/frontend`;
export const REVIEWS_ID = `spiffe://${TD}/ns/default/sa/reviews`;

const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

export interface CertFiles {
  chain: string;
  key: string;
  root: string;
}

export function tlsCommon(files: CertFiles, sanMatchers: object[], alpn: string[]) {
  return {
    alpn_protocols: alpn,
    tls_certificates: [{ certificate_chain: { filename: files.chain }, private_key: { filename: files.key } }],
    validation_context: {
      trusted_ca: { filename: files.root },
      match_typed_subject_alt_names: sanMatchers.map((matcher) => ({ san_type: 'URI', matcher })),
    },
  };
}

export interface OutboundOpts {
  peerPort: number;
  files: CertFiles;
  peerMatcher?: object;
  timeout?: string;
  extraRoutes?: object[];
  extraClusters?: object[];
  connectTimeout?: string;
  /** upgrade_configs websocket on the outbound HCM (default true). */
  websocket?: boolean;
}

/** A plaintext OUTBOUND listener on 127.0.0.1 port 0: an HCM with the router and this inline route_config. */
export function outboundListener(routeConfig: object, hcmExtra: Record<string, unknown> = {}) {
  return {
    name: 'outbound',
    traffic_direction: 'OUTBOUND',
    address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
    filter_chains: [
      { filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: { '@type': HCM_TYPE, stat_prefix: 'outbound', ...hcmExtra, route_config: routeConfig, http_filters: [ROUTER] } }] },
    ],
  };
}

/** Sidecar A: plaintext outbound listener routing host "reviews" to sidecar B over mTLS HTTP/2. */
export function outboundBootstrap(o: OutboundOpts) {
  return {
    node: { id: 'frontend-1', cluster: 'frontend' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [
        outboundListener(
          { name: 'outbound', virtual_hosts: [{ name: 'reviews', domains: ['reviews', 'reviews:9080'], routes: [...(o.extraRoutes ?? []), { match: { prefix: '/' }, route: { cluster: 'outbound|9080||reviews', timeout: o.timeout ?? '15s' } }] }] },
          { codec_type: 'AUTO', ...(o.websocket === false ? {} : { upgrade_configs: [{ upgrade_type: 'websocket' }] }) },
        ),
      ],
      clusters: [
        {
          name: 'outbound|9080||reviews',
          type: 'STATIC',
          connect_timeout: o.connectTimeout ?? '1s',
          lb_policy: 'ROUND_ROBIN',
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
          load_assignment: {
            cluster_name: 'outbound|9080||reviews',
            endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: o.peerPort } } } }] }],
          },
          transport_socket: {
            name: 'envoy.transport_sockets.tls',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
              sni: 'outbound_.9080_._.reviews',
              common_tls_context: tlsCommon(o.files, [o.peerMatcher ?? { exact: REVIEWS_ID }], ['h2']),
            },
          },
        },
        ...(o.extraClusters ?? []),
      ],
    },
  };
}

export interface InboundOpts {
  appPort: number;
  appProtocol?: 'HTTP1' | 'HTTP2';
  files: CertFiles;
  port?: number;
}

/** Sidecar B: mTLS inbound listener in front of the local app. */
export function inboundBootstrap(o: InboundOpts) {
  return {
    node: { id: 'reviews-1', cluster: 'reviews' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [
        {
          name: 'inbound',
          traffic_direction: 'INBOUND',
          address: { socket_address: { address: '127.0.0.1', port_value: o.port ?? 0 } },
          filter_chains: [
            {
              transport_socket: {
                name: 'envoy.transport_sockets.tls',
                typed_config: {
                  '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
                  require_client_certificate: true,
                  common_tls_context: tlsCommon(o.files, [{ prefix: `spiffe://${TD}/` }], ['h2', 'http/1.1']),
                },
              },
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': HCM_TYPE,
                    stat_prefix: 'inbound_9080',
                    forward_client_cert_details: 'SANITIZE_SET',
                    set_current_client_cert_details: { uri: true },
                    upgrade_configs: [{ upgrade_type: 'websocket' }],
                    route_config: {
                      name: 'inbound',
                      virtual_hosts: [{ name: 'inbound', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'inbound|9080||', timeout: '0s' } }] }],
                    },
                    http_filters: [ROUTER],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        {
          name: 'inbound|9080||',
          type: 'STATIC',
          connect_timeout: '1s',
          ...(o.appProtocol === 'HTTP2'
            ? {
                typed_extension_protocol_options: {
                  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
                    '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
                    explicit_http_config: { http2_protocol_options: {} },
                  },
                },
              }
            : {}),
          load_assignment: {
            cluster_name: 'inbound|9080||',
            endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: o.appPort } } } }] }],
          },
        },
      ],
    },
  };
}

export function tempDir(prefix = 'outrigger-test-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes Istio's file names for one identity under dir/name and returns their paths. */
export function writeCertFiles(dir: string, name: string, m: { chainPem: string; keyPem: string; rootPem: string }): CertFiles {
  const d = path.join(dir, name);
  mkdirSync(d, { recursive: true });
  const files = { chain: path.join(d, 'cert-chain.pem'), key: path.join(d, 'key.pem'), root: path.join(d, 'root-cert.pem') };
  writeFileSync(files.chain, m.chainPem);
  writeFileSync(files.key, m.keyPem);
  writeFileSync(files.root, m.rootPem);
  return files;
}

/** Operational logs kept in memory, so tests can assert what a user would read in them. */
export function memoryLogger(): { logger: Logger; logs: string[] } {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  const logger: Logger = pino({ level: 'debug', base: undefined }, sink);
  return { logger, logs };
}

export interface StartedSidecar extends RunningSidecar {
  port(listener: string): number;
  adminUrl: string;
  registry: Registry;
  logs: string[];
}

/** Starts a sidecar in-process from an Envoy-shaped bootstrap object, through the real decoders. */
export async function runSidecar(bootstrap: object, opts: { drainMs?: number; rng?: Rng; adsBackoffMs?: { base: number; max: number }; accessLog?: AccessLog } = {}): Promise<StartedSidecar> {
  const registry = new Registry();
  const { logger, logs } = memoryLogger();
  const model = decodeBootstrapObject(bootstrap);
  const running = await startSidecar({
    bootstrap: model,
    drainMs: opts.drainMs ?? 2000,
    accessLog: opts.accessLog ?? new AccessLog({ target: 'off', sampleRate: 1 }, systemRng),
    logger,
    registry,
    ...(opts.rng && { rng: opts.rng }),
    ...(opts.adsBackoffMs && { adsBackoffMs: opts.adsBackoffMs }),
  });
  return {
    ...running,
    registry,
    logs,
    adminUrl: `http://127.0.0.1:${running.adminAddress?.port}`,
    port(listener: string) {
      const l = running.runtime.listeners.find((x) => x.name === listener);
      const a = l?.address();
      if (!a) throw new Error(`listener ${listener} is not bound`);
      return a.port;
    },
  };
}
