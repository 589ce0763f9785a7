// ADS test kit: a raw DiscoveryRequest client stream with awaitable responses, an in-test SnapshotSource, and an AdsServer on 127.0.0.1:0.
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { systemClock, type Clock } from '../../src/core/clock.js';
import type { FieldIssue } from '../../src/core/errors.js';
import { fail, ok, type Result } from '../../src/core/result.js';
import { AdsServer, type AttachOptions } from '../../src/control/ads/server.js';
import { ADS_SERVICE, DELTA_METHOD, SOTW_METHOD, decodeResponse, encodeRequest, type AnyResource } from '../../src/control/ads/protocol.js';
import { SERVED_TYPES, type NodeSnapshot, type ProxyNode, type ServedType, type SnapshotSource } from '../../src/control/snapshot.js';
import type { NodeInfo } from '../../src/model/types.js';
import { createXdsMetrics } from '../../src/telemetry/metrics.js';
import { typeForUrl } from '../../src/xds/protos.js';
import { encodeResourceJson, type ResourceTypeUrl } from '../../src/xds/resources/index.js';
import { memoryLogger } from './mesh.js';

export const [CDS, EDS, LDS, RDS] = SERVED_TYPES;
export const TD = 'cluster.local';
const SOTW_PATH = `/${ADS_SERVICE}/${SOTW_METHOD}`;
export const DELTA_PATH = `/${ADS_SERVICE}/${DELTA_METHOD}`;

export interface Response {
  readonly version_info: string;
  readonly type_url: string;
  readonly nonce: string;
  readonly resources: readonly AnyResource[];
  /** The names of the resources, decoded from the Any values (ClusterLoadAssignment: cluster_name). */
  readonly names: readonly string[];
}

export interface RequestFields {
  readonly type_url?: string;
  readonly resource_names?: readonly string[];
  readonly response_nonce?: string;
  readonly version_info?: string;
  readonly node?: object | null;
  readonly error_detail?: { code?: number; message?: string };
}

function nameOf(r: AnyResource): string {
  const m = typeForUrl(r.type_url)!.decode(r.value) as unknown as { name?: string; cluster_name?: string };
  return m.name ?? m.cluster_name ?? '';
}

/** A node as Envoy sends it, with Istio's metadata keys (and fields the server must ignore). */
export function nodeProto(id: string, ns = 'default', sa = 'reviews', extra: Record<string, string> = {}): object {
  const fields: Record<string, { string_value: string }> = {};
  for (const [k, v] of Object.entries({ NAMESPACE: ns, SERVICE_ACCOUNT: sa, ...extra })) fields[k] = { string_value: v };
  return { id, cluster: 'reviews', metadata: { fields }, locality: { region: 'r1', zone: 'z1' }, user_agent_name: 'outrigger-test', client_features: ['envoy.lb.does_not_support_overprovisioning'] };
}

/**
 * One ADS stream speaking raw DiscoveryRequests. Responses queue up in order; next() takes the oldest or
 * waits for it. Because the server handles a stream's requests in order, "the next response is the answer to
 * my last request" proves that nothing was sent in between: tests never sleep to show an absence.
 */
export class AdsTestClient {
  private readonly queue: Response[] = [];
  private readonly waiters: { resolve(r: Response): void; reject(e: Error): void }[] = [];
  private ended: grpc.StatusObject | undefined;
  private readonly statusP: Promise<grpc.StatusObject>;
  private readonly call: grpc.ClientDuplexStream<RequestFields, Response>;

  constructor(
    readonly client: grpc.Client,
    private readonly ownsClient = true,
  ) {
    this.call = client.makeBidiStreamRequest(
      SOTW_PATH,
      (r: RequestFields) => encodeRequest(r),
      (b: Buffer) => {
        const r = decodeResponse(b);
        return { ...r, names: r.resources.map(nameOf) };
      },
    );
    this.call.on('data', (r: Response) => {
      const w = this.waiters.shift();
      if (w) w.resolve(r);
      else this.queue.push(r);
    });
    this.call.on('error', () => {});
    this.statusP = new Promise((resolve) =>
      this.call.on('status', (s: grpc.StatusObject) => {
        this.ended = s;
        for (const w of this.waiters.splice(0)) w.reject(new Error(`stream ended: ${grpc.status[s.code]} ${s.details}`));
        resolve(s);
      }),
    );
  }

  static connect(address: string, creds: grpc.ChannelCredentials = grpc.credentials.createInsecure(), options: grpc.ChannelOptions = {}): AdsTestClient {
    return new AdsTestClient(new grpc.Client(address, creds, options));
  }

  send(r: RequestFields): void {
    this.call.write(r);
  }

  next(): Promise<Response> {
    const r = this.queue.shift();
    if (r) return Promise.resolve(r);
    if (this.ended) return Promise.reject(new Error(`stream ended: ${grpc.status[this.ended.code]} ${this.ended.details}`));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Sends a request and awaits the next response, which must be of `type_url`. */
  async ask(r: RequestFields): Promise<Response> {
    this.send(r);
    const res = await this.next();
    if (res.type_url !== r.type_url) throw new Error(`expected a ${r.type_url} response, got ${res.type_url}`);
    return res;
  }

  /** ACK: the response's nonce and version, and the subscription it answers. */
  ack(res: Response, names: readonly string[] = []): void {
    this.send({ type_url: res.type_url, response_nonce: res.nonce, version_info: res.version_info, resource_names: names });
  }

  nack(res: Response, message: string, usingVersion = '', names: readonly string[] = []): void {
    this.send({ type_url: res.type_url, response_nonce: res.nonce, version_info: usingVersion, resource_names: names, error_detail: { code: grpc.status.INVALID_ARGUMENT, message } });
  }

  /** Resolves when the server ends the stream. */
  status(): Promise<grpc.StatusObject> {
    return this.statusP;
  }

  close(): void {
    this.call.cancel();
    if (this.ownsClient) this.client.close();
  }
}

/** Sends raw bytes as request messages on a method: what a broken or hostile client would do. */
export function rawStream(address: string, path: string, messages: readonly Buffer[]): Promise<grpc.StatusObject> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest(
    path,
    (b: Buffer) => b,
    (b: Buffer) => b,
  );
  call.on('data', () => {});
  call.on('error', () => {});
  for (const m of messages) call.write(m);
  return new Promise((resolve) =>
    call.on('status', (s: grpc.StatusObject) => {
      client.close();
      resolve(s);
    }),
  );
}

function encode(type: ServedType, json: object): Uint8Array {
  const r = encodeResourceJson(type as ResourceTypeUrl, json);
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.path}: ${e.message}`).join('; '));
  return r.value;
}

export const clusterJson = (name: string) => ({ name, type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } }, connect_timeout: '1s' });
export const endpointsJson = (cluster: string, port = 9080) => ({ cluster_name: cluster, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: port } } } }] }] });
export const listenerJson = (name: string, port = 15001) => ({ name, address: { socket_address: { address: '0.0.0.0', port_value: port } } });
export const routeJson = (name: string, cluster = 'reviews') => ({ name, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster } }] }] });

/**
 * A SnapshotSource like the translator's: one snapshot per config version shared by every node (so
 * ResponseCache sharing is exercised), versions a hash of each type's resources, onChange fired by change().
 * perNode overrides the resources of chosen nodes.
 */
export class TestSource implements SnapshotSource {
  private readonly listeners = new Set<() => void>();
  private current: Map<ServedType, Map<string, Uint8Array>> = new Map(SERVED_TYPES.map((t) => [t, new Map()]));
  private cached: NodeSnapshot | undefined;
  snapshotCalls = 0;
  /** Makes snapshotFor throw (the translator failing). */
  broken: Error | undefined;

  constructor(init: Partial<Record<ServedType, readonly object[]>> = {}) {
    for (const [t, list] of Object.entries(init)) this.set(t as ServedType, list!);
  }

  /** Replaces every resource of a type (JSON, encoded with encodeResourceJson); nothing is pushed until change(). */
  set(type: ServedType, list: readonly object[]): void {
    const m = new Map<string, Uint8Array>();
    for (const json of list) {
      const j = json as { name?: string; cluster_name?: string };
      m.set(j.name ?? j.cluster_name!, encode(type, json));
    }
    this.current = new Map(this.current);
    this.current.set(type, m);
    this.cached = undefined;
  }

  snapshotFor(_node: ProxyNode): NodeSnapshot {
    this.snapshotCalls++;
    if (this.broken) throw this.broken;
    if (!this.cached) {
      const versions = new Map<ServedType, string>();
      for (const [t, m] of this.current) {
        const h = createHash('sha256');
        for (const [name, bytes] of [...m].sort(([a], [b]) => a.localeCompare(b))) h.update(name).update('\0').update(bytes).update('\0');
        versions.set(t, h.digest('hex').slice(0, 12));
      }
      this.cached = { resources: this.current, versions };
    }
    return this.cached;
  }

  version(type: ServedType): string {
    return this.snapshotFor({} as ProxyNode).versions.get(type)!;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  change(): void {
    for (const l of this.listeners) l();
  }
}

/** Istio's metadata keys to a ProxyNode, standing in for the translator's parser. */
export function testIdentify(info: NodeInfo): Result<ProxyNode, FieldIssue> {
  const md = info.metadata;
  const issues: FieldIssue[] = [];
  for (const k of ['NAMESPACE', 'SERVICE_ACCOUNT']) if (typeof md[k] !== 'string' || md[k] === '') issues.push({ path: `node.metadata.${k}`, message: 'is required' });
  if (issues.length > 0) return fail(issues);
  const ns = md.NAMESPACE as string;
  const sa = md.SERVICE_ACCOUNT as string;
  const kind = md.GENERATOR === 'grpc' ? 'proxyless' : 'sidecar';
  return ok({
    id: info.id,
    kind,
    namespace: ns,
    serviceAccount: sa,
    spiffeId: `spiffe://${TD}/ns/${ns}/sa/${sa}`,
    labels: {},
    locality: info.locality ?? { region: '', zone: '', subZone: '' },
    ips: [],
    appPorts: [],
    cacheKey: `${kind}/${ns}/${sa}`,
  });
}

export interface AdsForTest {
  ads: AdsServer;
  source: TestSource;
  server: grpc.Server;
  address: string;
  registry: Registry;
  logs: string[];
  /** A new client stream on its own channel. */
  client(): AdsTestClient;
  metric(name: string): Promise<string>;
  close(): Promise<void>;
}

export const DEFAULT_RESOURCES: Partial<Record<ServedType, readonly object[]>> = {
  [CDS]: [clusterJson('reviews'), clusterJson('ratings')],
  [EDS]: [endpointsJson('reviews'), endpointsJson('ratings', 9081)],
  [LDS]: [listenerJson('outbound'), listenerJson('inbound', 15006)],
  [RDS]: [routeJson('outbound-routes'), routeJson('inbound-routes', 'inbound')],
};

/** An AdsServer on a real grpc-js server on 127.0.0.1:0 (plaintext unless credentials are given). */
export async function startAds(o: { source?: TestSource; credentials?: grpc.ServerCredentials; attach?: AttachOptions; clock?: Clock; pushBatch?: number } = {}): Promise<AdsForTest> {
  const source = o.source ?? new TestSource(DEFAULT_RESOURCES);
  const registry = new Registry();
  const { logger, logs } = memoryLogger();
  const ads = new AdsServer({ source, identify: testIdentify, clock: o.clock ?? systemClock, logger, metrics: createXdsMetrics(registry), ...(o.pushBatch && { pushBatch: o.pushBatch }) });
  const server = new grpc.Server();
  ads.attach(server, o.attach ?? { requireIdentity: false });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', o.credentials ?? grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const address = `127.0.0.1:${port}`;
  const clients: AdsTestClient[] = [];
  return {
    ads,
    source,
    server,
    address,
    registry,
    logs,
    client() {
      const c = AdsTestClient.connect(address);
      clients.push(c);
      return c;
    },
    metric: (name) => registry.getSingleMetricAsString(name),
    async close() {
      ads.close();
      for (const c of clients) c.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    },
  };
}
