// Interop: a real proxyless gRPC client (@grpc/grpc-js-xds) in region A fails over to the DestinationRule's failover
// region when A's servers stop, and comes back when they return: EDS priorities the control server wrote per caller.
import t from 'tap';
import { startEchoGrpc, type GrpcEcho } from '../helpers/apps.js';
import { startControl } from '../helpers/mesh-ca.js';
import { tempDir } from '../helpers/mesh.js';
import { GRPC_PORT, echoClient, installBootstrap, writeMesh, type Workload } from '../helpers/proxyless.js';

const NODE_ID = 'grpc~127.0.0.1~productpage-1.default~default.svc.cluster.local';
const TARGET = `xds:///reviews.default.svc.cluster.local:${GRPC_PORT}`;

/** Region A (the caller's, two zones), B (A's failover target) and C, one loopback address per server. */
const PLACES: readonly Omit<Workload, 'port'>[] = [
  { name: 'a-1a', address: '127.0.21.1', version: 'v1', locality: 'aws-us-east-1/aws-us-east-1a' },
  { name: 'a-1b', address: '127.0.21.2', version: 'v1', locality: 'aws-us-east-1/aws-us-east-1b' },
  { name: 'b', address: '127.0.21.3', version: 'v1', locality: 'gcp-us-east4/gcp-us-east4-a' },
  { name: 'c', address: '127.0.21.4', version: 'v1', locality: 'azure-eastus/azure-eastus-1' },
];

/**
 * grpc-js-xds 1.14's priority policy (load-balancer-priority.js) arms a 15-minute timer (DEFAULT_RETENTION_INTERVAL_MS)
 * when traffic returns to a higher priority and the lower one is deactivated, and does not clear it when the channel
 * closes: after the last test it would keep this process alive for 15 minutes. Timers that long are unref'd here.
 */
const realSetTimeout = globalThis.setTimeout;
globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
  const h = realSetTimeout(fn, ms, ...args);
  if ((ms ?? 0) >= 15 * 60 * 1000) h.unref();
  return h;
}) as typeof setTimeout;

const servers = new Map<string, GrpcEcho>();
const w: Record<string, Workload> = {};
for (const p of PLACES) {
  const s = await startEchoGrpc(p.name, p.address, 0);
  servers.set(p.name, s);
  w[p.name] = { ...p, port: s.port };
}

const mesh = tempDir('outrigger-failover-');
t.teardown(() => mesh.cleanup());
// Istio's shape: failover needs outlier detection; A fails over to B, not C.
writeMesh(mesh.dir, {
  workloads: PLACES.map((p) => w[p.name]!),
  trafficPolicy: {
    outlierDetection: { consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '1s' },
    loadBalancer: { localityLbSetting: { failover: [{ from: 'aws-us-east-1', to: 'gcp-us-east4' }] } },
  },
});
const ca = await startControl({ configDir: mesh.dir });

installBootstrap(ca.xdsAddress, { id: NODE_ID, locality: { region: 'aws-us-east-1', zone: 'aws-us-east-1a' } });
const client = echoClient(TARGET);
// The client goes first: a server's graceful shutdown waits for the connections a live channel keeps.
t.teardown(async () => {
  client.close();
  await Promise.all([...servers.values()].map((s) => s.close()));
  await ca.close();
});

/** Who answers a call, or the gRPC error code when it failed. */
async function who(): Promise<string> {
  try {
    return (await client.unary()).served_by;
  } catch (e) {
    return `error ${(e as { code?: number }).code}`;
  }
}

/** Calls until `want` answers (at most `max` calls, each bounded by its deadline); what answered on the way. */
async function until(want: string, max: number): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < max; i++) {
    const s = await who();
    seen[s] = (seen[s] ?? 0) + 1;
    if (s === want) return seen;
  }
  throw new Error(`${want} never answered in ${max} calls: ${JSON.stringify(seen)}`);
}

async function tally(n: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const s = await who();
    out[s] = (out[s] ?? 0) + 1;
  }
  return out;
}

t.test('steady state: the caller zone (P0) serves everything', async (t) => {
  await until('a-1a', 2000);
  t.strictSame(await tally(100), { 'a-1a': 100 });
});

t.test('the zone stops: the same region (P1) takes over; the region stops: the failover region B, never C', async (t) => {
  await servers.get('a-1a')!.close();
  const zoneSwitch = await until('a-1b', 2000);
  t.strictSame(await tally(100), { 'a-1b': 100 }, `after the switch (on the way: ${JSON.stringify(zoneSwitch)})`);
  await servers.get('a-1b')!.close();
  const regionSwitch = await until('b', 2000);
  t.notOk(regionSwitch.c, `C is not A's failover target: ${JSON.stringify(regionSwitch)}`);
  t.strictSame(await tally(100), { b: 100 }, 'the failover region takes all of it');
});

t.test('A comes back: traffic returns to the caller zone as gRPC reconnects', async (t) => {
  // Same address and port: the endpoints in EDS did not change; only reachability did.
  for (const name of ['a-1a', 'a-1b']) servers.set(name, await startEchoGrpc(name, w[name]!.address, w[name]!.port));
  // gRPC retries the higher priority's subchannels with its connection backoff (1 s, growing); each call is quick.
  const back = await until('a-1a', 100_000);
  t.ok(back.b, `B served until A was back: ${JSON.stringify(back)}`);
  t.strictSame(await tally(100), { 'a-1a': 100 });
});
