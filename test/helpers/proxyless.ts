// Proxyless gRPC clients (@grpc/grpc-js-xds) against a test control server: their bootstrap, the mesh YAML they are routed by, and Echo calls.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { stringify } from 'yaml';
import { loadEchoService } from '../../src/cli/demo-apps.js';

/** The Echo service's port in the test meshes: a GRPC port named `grpc`, as bookinfo's reviews has it. */
export const GRPC_PORT = 9081;

/**
 * Installs a grpc-js-xds bootstrap (gRFC A27 "Bootstrap File") and registers the xds: scheme. grpc-js-xds reads
 * the bootstrap once per process, when the first xds: channel is created, so a test file installs exactly one.
 * The node metadata is what istio-agent writes for a proxyless client: GENERATOR=grpc, the namespace.
 */
export function installBootstrap(xdsAddress: string, o: { id: string; locality: { region: string; zone: string }; extra?: Record<string, unknown> }): object {
  const bootstrap = {
    xds_servers: [{ server_uri: xdsAddress, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: o.id, metadata: { GENERATOR: 'grpc', NAMESPACE: 'default' }, locality: o.locality },
    ...o.extra,
  };
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify(bootstrap);
  grpcXds.register();
  return bootstrap;
}

export interface EchoReply {
  message: string;
  served_by: string;
  peer: string;
}

export interface EchoClient {
  unary(metadata?: Record<string, string>): Promise<EchoReply>;
  close(): void;
}

/** An Echo client on a target such as xds:///reviews.default.svc.cluster.local:9081. */
export function echoClient(target: string, creds: grpc.ChannelCredentials = grpc.credentials.createInsecure()): EchoClient {
  const Echo = loadEchoService();
  const client = new Echo(target, creds) as unknown as grpc.Client & { Unary(req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v: EchoReply) => void): void };
  return {
    unary(metadata = {}) {
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(metadata)) md.set(k, v);
      // A deadline, so a call the channel cannot place fails the test with gRPC's reason instead of hanging it.
      return new Promise((resolve, reject) => client.Unary({ message: 'hi' }, md, { deadline: Date.now() + 5000 }, (e, v) => (e ? reject(e) : resolve(v))));
    },
    close: () => client.close(),
  };
}

/** How many of n calls each backend served. */
export async function tally(c: EchoClient, n: number, metadata?: Record<string, string>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await c.unary(metadata);
    out[r.served_by] = (out[r.served_by] ?? 0) + 1;
  }
  return out;
}

/** One workload behind the Echo service. */
export interface Workload {
  name: string;
  address: string;
  /** The port the workload (or its sidecar's app) listens on: WorkloadEntry.ports.grpc. */
  port: number;
  version: string;
  /** region/zone */
  locality: string;
  serviceAccount?: string;
  weight?: number;
}

export interface MeshSpec {
  workloads: readonly Workload[];
  /** VirtualService http routes for reviews (Istio's shape); none = no VirtualService. */
  http?: readonly object[];
  /** DestinationRule trafficPolicy (subsets v1, v2, v3 by the version label are always there). */
  trafficPolicy?: object;
}

/**
 * The Istio-kind YAML of one GRPC service, reviews.default.svc.cluster.local:9081, over STATIC WorkloadEntries
 * (ServiceEntry.workloadSelector app=reviews), with its VirtualService and DestinationRule.
 */
export function reviewsMesh(m: MeshSpec): string {
  const meta = (name: string) => ({ name, namespace: 'default' });
  const docs: object[] = [
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: meta('reviews'),
      spec: {
        hosts: ['reviews.default.svc.cluster.local'],
        location: 'MESH_INTERNAL',
        resolution: 'STATIC',
        ports: [{ number: GRPC_PORT, name: 'grpc', protocol: 'GRPC' }],
        workloadSelector: { labels: { app: 'reviews' } },
      },
    },
    ...m.workloads.map((w) => ({
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadEntry',
      metadata: meta(w.name),
      spec: {
        address: w.address,
        ports: { grpc: w.port },
        labels: { app: 'reviews', version: w.version },
        locality: w.locality,
        ...(w.serviceAccount && { serviceAccount: w.serviceAccount }),
        ...(w.weight !== undefined && { weight: w.weight }),
      },
    })),
    ...(m.http ? [{ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: meta('reviews'), spec: { hosts: ['reviews'], http: m.http } }] : []),
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: meta('reviews'),
      spec: {
        host: 'reviews',
        ...(m.trafficPolicy && { trafficPolicy: m.trafficPolicy }),
        subsets: ['v1', 'v2', 'v3'].map((v) => ({ name: v, labels: { version: v } })),
      },
    },
  ];
  return docs.map((d) => stringify(d)).join('---\n');
}

/**
 * Writes the mesh as dir/reviews.yaml, in place. Not write-then-rename: Node 20's recursive fs.watch on Linux
 * stops reporting a file once it was replaced by a rename, and the config watcher uses it.
 */
export function writeMesh(dir: string, m: MeshSpec): void {
  writeFileSync(path.join(dir, 'reviews.yaml'), reviewsMesh(m));
}

/** A route to one subset, or a weighted split: [['v1', 80], ['v2', 20]]. */
export function to(...split: readonly (readonly [string, number])[]): object[] {
  return split.map(([subset, weight]) => ({ destination: { host: 'reviews', subset }, ...(split.length > 1 && { weight }) }));
}
