// Interop: a real proxyless gRPC client (@grpc/grpc-js-xds) routed by Outrigger's control server from mesh YAML: weights, header matches, live endpoints, a NACK in status.
import t from 'tap';
import { renderStatus } from '../../src/cli/control.js';
import type { XdsNodeStatus } from '../../src/control/ads/status.js';
import type { NodeSnapshot } from '../../src/control/snapshot.js';
import { versionOf } from '../../src/control/translate/index.js';
import { MeshSnapshots } from '../../src/control/translate/snapshots.js';
import { CLUSTER_LOAD_ASSIGNMENT_TYPE_URL } from '../../src/xds/protos.js';
import { encodeResourceJson } from '../../src/xds/resources/index.js';
import { startEchoGrpc, type GrpcEcho } from '../helpers/apps.js';
import { startControl, type ControlForTest } from '../helpers/mesh-ca.js';
import { tempDir } from '../helpers/mesh.js';
import { GRPC_PORT, echoClient, installBootstrap, tally, to, writeMesh, type EchoClient, type MeshSpec, type Workload } from '../helpers/proxyless.js';

const NODE_ID = 'sidecar~127.0.0.1~productpage-1.default~default.svc.cluster.local';
const TARGET = `xds:///reviews.default.svc.cluster.local:${GRPC_PORT}`;
const JASON = { 'end-user': 'jason' };
/** Istio's canary shape: jason sees v3; everyone else is split 80/20 between v1 and v2. */
const CANARY = [
  { name: 'jason-sees-v3', match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: to(['v3', 100]) },
  { name: 'canary', route: to(['v1', 80], ['v2', 20]) },
];

/** Workloads in three clouds' localities, each on its own loopback address (one address = one "host"). */
const PLACES: readonly Omit<Workload, 'port'>[] = [
  { name: 'v1-aws', address: '127.0.11.1', version: 'v1', locality: 'aws-us-east-1/us-east-1a' },
  { name: 'v1-gcp', address: '127.0.11.2', version: 'v1', locality: 'gcp-us-east4/us-east4-a' },
  { name: 'v2-azure', address: '127.0.11.3', version: 'v2', locality: 'azure-eastus/eastus-1' },
  { name: 'v3-aws', address: '127.0.11.4', version: 'v3', locality: 'aws-us-east-1/us-east-1b' },
  { name: 'v1-azure', address: '127.0.11.5', version: 'v1', locality: 'azure-eastus/eastus-2' },
];

const V1_CLUSTER = `outbound|${GRPC_PORT}|v1|reviews.default.svc.cluster.local`;
const EDS = CLUSTER_LOAD_ASSIGNMENT_TYPE_URL;
const escape = (s: string) => s.replace(/[.~|]/g, '\\$&');

/**
 * The fault the NACK subtest injects, by wrapping the snapshot source: an assignment as a translator regression
 * would write it. No mesh YAML produces a resource gRPC refuses while the client can keep working: the translator
 * is checked against grpc-js-xds's validators, and the one change gRPC does refuse (ISTIO_MUTUAL for a client
 * whose bootstrap has no certificate provider) also moves the endpoints to the sidecars' 15006, which it accepts.
 */
let fault: ((s: NodeSnapshot) => NodeSnapshot) | undefined;
const translated = MeshSnapshots.prototype.snapshotFor;
MeshSnapshots.prototype.snapshotFor = function (node) {
  const s = translated.call(this, node);
  return fault ? fault(s) : s;
};
t.teardown(() => {
  MeshSnapshots.prototype.snapshotFor = translated;
});

/** `cluster` with `w` listed twice in one locality: gRPC refuses duplicate addresses (gRFC A27 EDS validation). */
function duplicateEndpoint(cluster: string, w: Workload): (s: NodeSnapshot) => NodeSnapshot {
  const ep = { endpoint: { address: { socket_address: { address: w.address, port_value: w.port } } }, load_balancing_weight: 1 };
  const [region = '', zone = ''] = w.locality.split('/');
  const encoded = encodeResourceJson(EDS, { cluster_name: cluster, endpoints: [{ locality: { region, zone }, load_balancing_weight: 2, lb_endpoints: [ep, ep] }] }, cluster);
  if (!encoded.ok) throw new Error(JSON.stringify(encoded.errors));
  // One corrupted snapshot per real one, so its version is stable while the config is.
  const done = new WeakMap<NodeSnapshot, NodeSnapshot>();
  return (s) => {
    let c = done.get(s);
    if (!c) {
      const eds = new Map(s.resources.get(EDS)).set(cluster, encoded.value);
      c = { resources: new Map(s.resources).set(EDS, eds), versions: new Map(s.versions).set(EDS, versionOf(eds)) };
      done.set(s, c);
    }
    return c;
  };
}

interface World {
  ca: ControlForTest;
  client: EchoClient;
  w: Record<string, Workload>;
  /** Writes the mesh and resolves once the control server loaded it. */
  apply(m: MeshSpec): Promise<void>;
  node(): XdsNodeStatus | undefined;
  /** Calls until the client ACKed every type at the control server's current versions (it applied the config). */
  synced(): Promise<void>;
}

async function world(): Promise<World> {
  const servers: GrpcEcho[] = [];
  t.teardown(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });
  const w: Record<string, Workload> = {};
  for (const p of PLACES) {
    const s = await startEchoGrpc(p.name, p.address, 0);
    servers.push(s);
    w[p.name] = { ...p, port: s.port };
  }
  // The YAML names the ports the servers bound, so it is written after they listen.
  const mesh = tempDir('outrigger-proxyless-');
  t.teardown(() => mesh.cleanup());
  writeMesh(mesh.dir, { workloads: [w['v1-aws']!, w['v1-gcp']!, w['v2-azure']!, w['v3-aws']!], http: CANARY });
  const ca = await startControl({ configDir: mesh.dir });
  t.teardown(() => ca.close());
  installBootstrap(ca.xdsAddress, { id: NODE_ID, locality: { region: 'aws-us-east-1', zone: 'us-east-1a' } });
  const client = echoClient(TARGET);
  t.teardown(() => client.close());
  const node = () => ca.server.status().xds?.nodes.find((n) => n.node_id === NODE_ID);
  return {
    ca,
    client,
    w,
    node,
    async apply(m) {
      const reloaded = ca.server.nextConfigReload();
      writeMesh(mesh.dir, m);
      await reloaded;
    },
    async synced() {
      for (let i = 0; i < 2000; i++) {
        await client.unary();
        const n = node();
        if (n && Object.values(n.types).every((s) => s.state === 'SYNCED')) return;
      }
      throw new Error(`the client did not ACK the current config: ${JSON.stringify(node()?.types)}`);
    },
  };
}

const W = await world();

t.test('weighted routing: an 80/20 split over subsets v1/v2, across localities', async (t) => {
  await W.synced();
  const n = W.node()!;
  t.equal(n.kind, 'proxyless', 'GENERATOR=grpc');
  t.equal(n.types.lds?.subscribed_names, 1, 'gRPC asks for the listener of its target only');
  const calls = 500;
  const c = await tally(W.client, calls);
  const v1 = (c['v1-aws'] ?? 0) + (c['v1-gcp'] ?? 0);
  const v2 = c['v2-azure'] ?? 0;
  t.equal(v1 + v2, calls, `only v1 and v2 serve callers without end-user: ${JSON.stringify(c)}`);
  // Binomial(500, 0.2): mean 100, sd ~8.9; 4.5 sd either side fails a correct split about once in 150,000 runs.
  t.ok(v2 >= 60 && v2 <= 140, `v2 took ${v2} of ${calls} (expected ~100)`);
  // v1's two endpoints are in two localities of weight 1 each (gRFC A52 xds_wrr_locality): both serve.
  t.ok((c['v1-aws'] ?? 0) > 100 && (c['v1-gcp'] ?? 0) > 100, `v1 spread over aws and gcp: ${JSON.stringify(c)}`);
});

t.test('header-match routing: end-user: jason -> v3, everyone else -> v1; regexes match whole values', async (t) => {
  // The route edit is an RDS push the client applies without reconnecting.
  const testers = { name: 'testers', match: [{ headers: { 'end-user': { regex: 'kim|lee' } } }], route: to(['v2', 100]) };
  await W.apply({ workloads: [W.w['v1-aws']!, W.w['v1-gcp']!, W.w['v2-azure']!, W.w['v3-aws']!], http: [CANARY[0]!, testers, { name: 'default', route: to(['v1', 100]) }] });
  await W.synced();
  t.strictSame(await tally(W.client, 50, JASON), { 'v3-aws': 50 }, 'jason always gets v3');
  const others = await tally(W.client, 100, { 'end-user': 'mike' });
  t.same(Object.keys(others).sort(), ['v1-aws', 'v1-gcp'], `others get v1 only: ${JSON.stringify(others)}`);
  t.same(Object.keys(await tally(W.client, 50)).sort(), ['v1-aws', 'v1-gcp'], 'no end-user header: v1');
  t.strictSame(await tally(W.client, 10, { 'end-user': 'lee' }), { 'v2-azure': 10 }, 'a regex alternative');
  // Istio's regexes match the whole value, as Envoy does: not kimberly, whom ^kim|lee$ would take.
  t.same(Object.keys(await tally(W.client, 20, { 'end-user': 'kimberly' })).sort(), ['v1-aws', 'v1-gcp'], 'kimberly is not kim');
});

t.test('fault injection (gRFC A33): a VirtualService abort reaches the proxyless client as its grpc-status; other routes are untouched', async (t) => {
  const faulty = { name: 'faulty', match: [{ headers: { 'end-user': { exact: 'chaos' } } }], fault: { abort: { grpcStatus: 'RESOURCE_EXHAUSTED', percentage: { value: 100 } } }, route: to(['v1', 100]) };
  await W.apply({ workloads: [W.w['v1-aws']!, W.w['v1-gcp']!, W.w['v2-azure']!, W.w['v3-aws']!], http: [faulty, { name: 'default', route: to(['v1', 100]) }] });
  await W.synced();
  for (let i = 0; i < 10; i++) {
    const e = await W.client.unary({ 'end-user': 'chaos' }).then(
      () => undefined,
      (err: { code?: number }) => err,
    );
    t.equal(e?.code, 8, 'RESOURCE_EXHAUSTED, injected by the client itself');
  }
  t.same(Object.keys(await tally(W.client, 20)).sort(), ['v1-aws', 'v1-gcp'], 'the route without a fault serves');
});

t.test('endpoints: a new WorkloadEntry starts serving, a removed one stops, with no failed call', async (t) => {
  const http = [CANARY[0]!, { name: 'default', route: to(['v1', 100]) }];
  const { w } = W;
  await W.apply({ workloads: [w['v1-aws']!, w['v1-gcp']!, w['v1-azure']!, w['v2-azure']!, w['v3-aws']!], http });
  await W.synced();
  let c = await tally(W.client, 300);
  // Three localities of weight 1: each ~100 of 300 (sd ~8).
  t.ok((c['v1-azure'] ?? 0) >= 50, `the added endpoint serves: ${JSON.stringify(c)}`);

  await W.apply({ workloads: [w['v1-aws']!, w['v1-azure']!, w['v2-azure']!, w['v3-aws']!], http });
  await W.synced();
  c = await tally(W.client, 300);
  t.equal(c['v1-gcp'], undefined, `the removed endpoint gets nothing, though its server still runs: ${JSON.stringify(c)}`);
  t.ok((c['v1-aws'] ?? 0) >= 100 && (c['v1-azure'] ?? 0) >= 100, 'the rest share the load');
});

t.test('a resource gRPC rejects is NACKed, shown by outrigger status, and the client keeps its last good config', async (t) => {
  const { w } = W;
  const http = [CANARY[0]!, { name: 'default', route: to(['v1', 100]) }];
  // A real change (v1-gcp comes back) whose v1 assignment comes out with v1-aws listed twice.
  fault = duplicateEndpoint(V1_CLUSTER, w['v1-aws']!);
  await W.apply({ workloads: [w['v1-aws']!, w['v1-gcp']!, w['v1-azure']!, w['v2-azure']!, w['v3-aws']!], http });
  let eds = W.node()?.types.eds;
  for (let i = 0; i < 2000 && eds?.state !== 'NACKED'; i++) {
    await W.client.unary();
    eds = W.node()?.types.eds;
  }
  t.equal(eds?.state, 'NACKED');
  t.match(eds?.nack?.message, /ClusterLoadAssignment message validation failed: \[endpoints\[0\]\.lb_endpoints\[1\]\.endpoint: address is a duplicate of another address in the same endpoint: 127\.0\.11\.1\]/, "grpc-js-xds's own words");
  // grpc-js-xds keeps the response's valid resources and reports its version with the NACK (gRFC A46).
  t.equal(eds?.nack?.version, eds?.sent_version, 'the latest response is the one rejected');
  const text = renderStatus(W.ca.server.status());
  t.match(text, new RegExp(`${escape(NODE_ID)}\\s+SYNCED\\s+SYNCED\\s+NACKED\\s+SYNCED\\s+-\\n`), 'outrigger status: the row (POLICY is - for a proxyless client: no inbound listener)');
  t.match(text, /\n {4}EDS rejected version [0-9a-f]{16}: .*address is a duplicate of another address in the same endpoint/, 'and why');

  // The rejected assignment would send v1 to v1-aws alone; the kept one has v1-aws and v1-azure, not v1-gcp.
  let c = await tally(W.client, 200);
  t.same(Object.keys(c).sort(), ['v1-aws', 'v1-azure'], `the last good endpoints serve: ${JSON.stringify(c)}`);

  // The fault gone, the same mesh is pushed again and ACKed; v1-gcp serves.
  fault = undefined;
  await W.apply({ workloads: [w['v1-aws']!, w['v1-gcp']!, w['v1-azure']!, w['v2-azure']!, w['v3-aws']!], http });
  await W.synced();
  t.match(renderStatus(W.ca.server.status()), new RegExp(`${escape(NODE_ID)}\\s+SYNCED\\s+SYNCED\\s+SYNCED\\s+SYNCED\\s+-\\n`));
  c = await tally(W.client, 200);
  t.same(Object.keys(c).sort(), ['v1-aws', 'v1-azure', 'v1-gcp'], `healed: ${JSON.stringify(c)}`);
});
