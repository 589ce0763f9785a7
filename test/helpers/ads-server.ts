// A small ADS server for tests (grpc-js, real socket on 127.0.0.1): records every DiscoveryRequest and sends
// exactly the responses a test pushes, so ACK/NACK, ordering and reconnects can be checked precisely.
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { adsService, type DiscoveryRequestMsg, type DiscoveryResponseMsg } from '../../src/xds/ads-proto.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ROUTE_CONFIGURATION_TYPE_URL } from '../../src/xds/protos.js';
import { encodeResourceJson, type ResourceTypeUrl } from '../../src/xds/resources/index.js';

export const TYPE_URLS = { cds: CLUSTER_TYPE_URL, eds: CLUSTER_LOAD_ASSIGNMENT_TYPE_URL, lds: LISTENER_TYPE_URL, rds: ROUTE_CONFIGURATION_TYPE_URL } as const;
export type XdsType = keyof typeof TYPE_URLS;

type Stream = grpc.ServerDuplexStream<DiscoveryRequestMsg, DiscoveryResponseMsg>;

/** A resource for push(): proto3 JSON (encoded with the real encoder), or an Any given as is. */
export type PushResource = object | { readonly raw: { type_url: string; value: Buffer } };

export interface AdsServerForTest {
  readonly port: number;
  /** Every request received, in order, across streams. */
  readonly requests: DiscoveryRequestMsg[];
  /** Streams opened so far. */
  readonly streams: number;
  /** The client's URI SAN on each stream (mTLS), in order; '' for plaintext. */
  readonly peers: string[];
  /** Sends one response on the newest stream; returns its nonce. */
  push(type: XdsType, version: string, resources: readonly PushResource[]): string;
  /** The first request at index >= from that matches (waits for it; fails after 10 s). */
  request(pred: (r: DiscoveryRequestMsg) => boolean, from?: number, timeoutMs?: number): Promise<DiscoveryRequestMsg>;
  /** Resolves once `n` streams have been opened. */
  stream(n: number): Promise<void>;
  /** Ends every open stream with UNAVAILABLE (the client must reconnect). */
  killStreams(): void;
  /** Stops the server (hard: open streams are cut). */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  restart(): Promise<void>;
}

export const typeOf = (r: DiscoveryRequestMsg): XdsType | undefined => (Object.keys(TYPE_URLS) as XdsType[]).find((k) => TYPE_URLS[k] === r.type_url);

export async function startAdsServer(o: { credentials?: () => grpc.ServerCredentials } = {}): Promise<AdsServerForTest> {
  const events = new EventEmitter();
  const requests: DiscoveryRequestMsg[] = [];
  const peers: string[] = [];
  const open = new Set<Stream>();
  let newest: Stream | undefined;
  let streams = 0;
  let nonce = 0;
  let server: grpc.Server;
  let port = 0;

  const listen = async () => {
    server = new grpc.Server();
    server.addService(adsService().service, {
      StreamAggregatedResources: (call: Stream) => {
        streams++;
        const san = call.getAuthContext().sslPeerCertificate?.subjectaltname ?? '';
        peers.push(san.split(', ').find((x) => x.startsWith('URI:'))?.slice(4) ?? '');
        open.add(call);
        newest = call;
        // Headers at once: the client learns the stream is up before the first response.
        call.sendMetadata(new grpc.Metadata());
        call.on('data', (r: DiscoveryRequestMsg) => {
          requests.push(r);
          events.emit('request');
        });
        call.on('error', () => {});
        call.on('end', () => call.end());
        call.on('close', () => open.delete(call));
        events.emit('stream');
      },
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.emit('error', { code: grpc.status.UNIMPLEMENTED }),
    });
    const creds = o.credentials?.() ?? grpc.ServerCredentials.createInsecure();
    port = await new Promise<number>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, creds, (e, p) => (e ? reject(e) : resolve(p))));
  };
  await listen();

  const waitUntil = <T>(get: () => T | undefined, what: string, timeoutMs = 10_000): Promise<T> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const v = get();
        if (v === undefined) return false;
        cleanup();
        resolve(v);
        return true;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        events.off('request', check);
        events.off('stream', check);
      };
      if (check()) return;
      events.on('request', check);
      events.on('stream', check);
    });

  return {
    get port() {
      return port;
    },
    requests,
    peers,
    get streams() {
      return streams;
    },
    push(type, version, resources) {
      if (!newest) throw new Error('no ADS stream is open');
      const typeUrl = TYPE_URLS[type] as ResourceTypeUrl;
      const any = resources.map((r) => {
        if ('raw' in r) return (r as { raw: { type_url: string; value: Buffer } }).raw;
        const bytes = encodeResourceJson(typeUrl, r);
        if (!bytes.ok) throw new Error(`test resource does not encode: ${bytes.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
        return { type_url: typeUrl, value: Buffer.from(bytes.value) };
      });
      const n = `n${++nonce}`;
      newest.write({ version_info: version, resources: any, type_url: typeUrl, nonce: n });
      return n;
    },
    request(pred, from = 0, timeoutMs = 10_000) {
      return waitUntil(() => requests.slice(from).find(pred), 'a matching DiscoveryRequest', timeoutMs);
    },
    async stream(n) {
      await waitUntil(() => (streams >= n ? true : undefined), `${n} ADS streams`);
    },
    killStreams() {
      for (const s of open) s.emit('error', { code: grpc.status.UNAVAILABLE, details: 'killed by the test' });
      open.clear();
      newest = undefined;
    },
    async stop() {
      server.forceShutdown();
      open.clear();
      newest = undefined;
    },
    restart: listen,
  };
}
