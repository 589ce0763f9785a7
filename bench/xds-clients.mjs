#!/usr/bin/env node
// Simulated xDS clients for the xDS scale benchmark: N ADS streams (Envoy-like sidecars, some proxyless gRPC) in one process, ACK times reported to the parent over IPC.
//
// Each stream is one proxy with its own node (Istio's metadata keys, a unique 127.x.y.z in INSTANCE_IPS, a
// locality from the three clouds of examples/mesh) and subscribes as its real counterpart does:
// - sidecar (Envoy, xDS protocol "Eventual consistency considerations"): wildcard CDS -> EDS for the EDS
//   clusters' service names -> wildcard LDS once clusters are warm -> RDS for the names the listeners' HTTP
//   connection managers use. After every CDS (LDS) response Envoy re-requests EDS (RDS) while the clusters
//   (listeners) warm, so this client does too.
// - proxyless gRPC (GENERATOR=grpc, gRFC A27): LDS for its target by name -> RDS -> CDS for the clusters the
//   routes name -> EDS; a dependent type is requested again only when its names change (grpc-js-xds).
// Every response is accepted and ACKed at once (version_info and response_nonce of the response).
//
// Connections: by default every proxy has its own channel and TCP connection (`--streams-per-channel 1`),
// as each Envoy has its own HTTP/2 connection to istiod; that is what costs the server sockets, HTTP/2
// sessions and per-connection writes. `--streams-per-channel 100` multiplexes proxies onto shared channels
// (cheaper for this process, kinder to the server than reality).
//
// The wire layer is the sidecar's own (dist/xds/ads-proto.js: proto-loader client and nodeMessage), resources
// are read with the project's proto root (dist/xds/protos.js). Names a response implies are cached per
// (type, version, subscription): versions are content hashes of the resources served, so equal keys mean
// equal bytes, and N proxies of one kind do not decode the same response N times on one core (real proxies
// each have their own CPU).
//
// IPC (process.send): to the parent {type:'progress'|'synced'|'learned'|'expecting'|'done'|'pending'|'failed', ...};
// from it {type:'learn', label} (remember every proxy's versions as config `label`), {type:'expect', label,
// change} (report 'done' once every proxy holds them), {type:'pending'} (who is still waiting), {type:'stop'}.
// Times are process.hrtime in ms (CLOCK_MONOTONIC, shared by every process on the machine).
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(pathToFileURL(path.join(ROOT, 'dist', p)).href);
const { adsService, nodeMessage } = await dist('xds/ads-proto.js');
const { typeForUrl, CLUSTER_TYPE_URL: CDS, CLUSTER_LOAD_ASSIGNMENT_TYPE_URL: EDS, LISTENER_TYPE_URL: LDS, ROUTE_CONFIGURATION_TYPE_URL: RDS } = await dist('xds/protos.js');
const { decodeCanonical } = await dist('xds/canonical.js');

const GRPC_XDS_VERSION = createRequire(import.meta.url)('@grpc/grpc-js-xds/package.json').version;

const TYPES = [CDS, EDS, LDS, RDS];
const now = () => Number(process.hrtime.bigint()) / 1e6;

// ---- who the proxies are ------------------------------------------------------------------------------

/** The workloads of examples/mesh (ServiceEntry ports, WorkloadEntry labels and service accounts). */
const WORKLOADS = [
  { app: 'frontend', version: 'v1', sa: 'bookinfo-frontend', ports: [{ name: 'http', containerPort: 9080, protocol: 'TCP' }] },
  { app: 'reviews', version: 'v1', sa: 'bookinfo-reviews', ports: [{ name: 'http', containerPort: 9080, protocol: 'TCP' }, { name: 'grpc', containerPort: 9081, protocol: 'TCP' }] },
  { app: 'reviews', version: 'v2', sa: 'bookinfo-reviews', ports: [{ name: 'http', containerPort: 9080, protocol: 'TCP' }, { name: 'grpc', containerPort: 9081, protocol: 'TCP' }] },
  { app: 'reviews', version: 'v3', sa: 'bookinfo-reviews', ports: [{ name: 'http', containerPort: 9080, protocol: 'TCP' }, { name: 'grpc', containerPort: 9081, protocol: 'TCP' }] },
  { app: 'ratings', version: 'v1', sa: 'bookinfo-ratings', ports: [{ name: 'http', containerPort: 9080, protocol: 'TCP' }] },
];
/** A proxyless gRPC frontend calling reviews' gRPC port (xds:///reviews.default.svc.cluster.local:9081). */
const PROXYLESS = { app: 'frontend-grpc', version: 'v1', sa: 'bookinfo-frontend', ports: [{ name: 'grpc', containerPort: 9090, protocol: 'TCP' }], target: 'reviews.default.svc.cluster.local:9081' };
/** The clouds of examples/mesh: region, zones, and the second octet its WorkloadEntries use. */
const CLOUDS = [
  { region: 'aws-us-east-1', zones: ['us-east-1a', 'us-east-1b'], octet: 10 },
  { region: 'gcp-us-east4', zones: ['us-east4-a', 'us-east4-b'], octet: 20 },
  { region: 'azure-eastus', zones: ['eastus-1', 'eastus-2'], octet: 30 },
];
const MAX_CLIENTS = 155 * 250;

/**
 * Proxy i: every 10th a proxyless gRPC client, the rest sidecars spread over the five workloads; the cloud
 * and zone rotate independently. INSTANCE_IPS is 127.<cloud>.<100+i/250>.<1+i%250>: unique per proxy and
 * clear of the WorkloadEntry addresses (127.<cloud>.1-3.x). Metadata as istio-agent writes it (strings,
 * LABELS and PROXY_CONFIG as Structs, POD_PORTS as a JSON string).
 */
function proxySpec(i) {
  const proxyless = i % 10 === 9;
  const w = proxyless ? PROXYLESS : WORKLOADS[i % WORKLOADS.length];
  const cloud = CLOUDS[Math.floor(i / 10) % CLOUDS.length];
  const zone = cloud.zones[Math.floor(i / 30) % cloud.zones.length];
  const ip = `127.${cloud.octet}.${100 + Math.floor(i / 250)}.${1 + (i % 250)}`;
  const hash = (0x5f3a1 + w.app.length * 7919 + Number(w.version.slice(1))).toString(16);
  const pod = `${w.app}-${w.version}-${hash}-${i.toString(36).padStart(5, '0')}`;
  const labels = {
    app: w.app,
    version: w.version,
    'pod-template-hash': hash,
    'security.istio.io/tlsMode': 'istio',
    'service.istio.io/canonical-name': w.app,
    'service.istio.io/canonical-revision': w.version,
    'topology.kubernetes.io/region': cloud.region,
    'topology.kubernetes.io/zone': zone,
  };
  const common = { NAME: pod, NAMESPACE: 'default', SERVICE_ACCOUNT: w.sa, INSTANCE_IPS: ip, LABELS: labels, POD_PORTS: JSON.stringify(w.ports), CLUSTER_ID: 'Kubernetes', MESH_ID: 'cluster.local', ISTIO_VERSION: '1.24.2', WORKLOAD_NAME: `${w.app}-${w.version}`, OWNER: `kubernetes://apis/apps/v1/namespaces/default/deployments/${w.app}-${w.version}` };
  const metadata = proxyless
    ? { ...common, GENERATOR: 'grpc' }
    : {
        ...common,
        INTERCEPTION_MODE: 'REDIRECT',
        APP_CONTAINERS: w.app,
        ENVOY_PROMETHEUS_PORT: '15090',
        ENVOY_STATUS_PORT: '15021',
        ANNOTATIONS: { 'kubectl.kubernetes.io/default-container': w.app, 'prometheus.io/path': '/stats/prometheus', 'prometheus.io/port': '15020', 'prometheus.io/scrape': 'true', 'sidecar.istio.io/status': '{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["istio-envoy","istio-data","istio-podinfo","istio-token","istiod-ca-cert"]}' },
        PROXY_CONFIG: { binaryPath: '/usr/local/bin/envoy', configPath: './etc/istio/proxy', discoveryAddress: 'istiod.istio-system.svc:15012', drainDuration: '45s', proxyAdminPort: 15000, serviceCluster: 'istio-proxy', statNameLength: 189, statusPort: 15020, terminationDrainDuration: '5s' },
      };
  const node = nodeMessage({ id: `sidecar~${ip}~${pod}.default~default.svc.cluster.local`, cluster: `${w.app}.default`, metadata, locality: { region: cloud.region, zone, subZone: '' } });
  if (proxyless) Object.assign(node, { user_agent_name: 'gRPC Node Pure JS', user_agent_version: GRPC_XDS_VERSION, client_features: ['envoy.lb.does_not_support_overprovisioning'] });
  return { kind: proxyless ? 'proxyless' : 'sidecar', node, target: proxyless ? w.target : undefined };
}

// ---- what a response implies --------------------------------------------------------------------------

const decoded = (typeUrl) => {
  const t = typeForUrl(typeUrl);
  return (any) => decodeCanonical(t, any.value);
};
const decodeCluster = decoded(CDS);
const decodeListener = decoded(LDS);
const decodeRoutes = decoded(RDS);
const hcmOf = (typed) => decodeCanonical(typeForUrl(typed.type_url), typed.value);
const uniq = (xs) => [...new Set(xs)].sort();

/** EDS names of a CDS response: eds_cluster_config.service_name, or the cluster name (Cluster proto). */
function edsNames(res) {
  return uniq(res.resources.map(decodeCluster).filter((c) => c.type === 'EDS').map((c) => c.eds_cluster_config?.service_name || c.name));
}

/** RDS names of an LDS response: HttpConnectionManager.rds.route_config_name in filter chains and API listeners. */
function rdsNames(res) {
  const out = [];
  for (const l of res.resources.map(decodeListener)) {
    const hcms = l.api_listener?.api_listener ? [l.api_listener.api_listener] : [...(l.filter_chains ?? []), ...(l.default_filter_chain ? [l.default_filter_chain] : [])].flatMap((fc) => (fc.filters ?? []).map((f) => f.typed_config).filter(Boolean));
    for (const h of hcms) {
      const name = hcmOf(h).rds?.route_config_name;
      if (name) out.push(name);
    }
  }
  return uniq(out);
}

/** CDS names of an RDS response (proxyless): route.cluster and route.weighted_clusters.clusters[].name. */
function clusterNames(res) {
  const out = [];
  for (const rc of res.resources.map(decodeRoutes)) {
    for (const vh of rc.virtual_hosts ?? []) {
      for (const r of vh.routes ?? []) {
        if (r.route?.cluster) out.push(r.route.cluster);
        for (const w of r.route?.weighted_clusters?.clusters ?? []) out.push(w.name);
      }
    }
  }
  return uniq(out);
}

const implied = new Map();
/** fn(res), cached by (type, version, subscribed names): see the header on why that key is sound. */
function cachedNames(fn, res, subscribed) {
  const key = `${res.type_url}\0${res.version_info}\0${subscribed.join(',')}`;
  let v = implied.get(key);
  if (!v) {
    v = fn(res);
    implied.set(key, v);
  }
  return v;
}

const sameNames = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// ---- one proxy ----------------------------------------------------------------------------------------

class Proxy {
  /** Per type: names subscribed ([] = wildcard for LDS/CDS), the latest nonce, the version ACKed. */
  types = new Map(TYPES.map((t) => [t, { subscribed: false, names: [], nonce: '', version: '', ackedAt: 0 }]));
  /** Versions per config label (learn), the target of the change under way, and when it was reached. */
  known = new Map();
  target;
  reachedAt;
  synced = false;
  call;

  constructor(index, spec, client, fleet) {
    this.index = index;
    this.spec = spec;
    this.client = client;
    this.fleet = fleet;
  }

  start() {
    this.call = this.client.StreamAggregatedResources();
    this.call.on('data', (r) => this.onResponse(r));
    this.call.on('error', (e) => this.fleet.failed(this, e));
    if (this.spec.kind === 'sidecar') this.request(CDS, [], true);
    else this.request(LDS, [this.spec.target], true);
  }

  /** A DiscoveryRequest for a type: the subscription, the last nonce seen and the version last accepted. */
  request(type, names, first = false) {
    const st = this.types.get(type);
    st.subscribed = true;
    st.names = names;
    // Istio's bootstrap sets set_node_on_first_message_only: the node goes on the first request only.
    this.call.write({ type_url: type, resource_names: names, version_info: st.version, response_nonce: st.nonce, ...(first && { node: this.spec.node }) });
  }

  onResponse(res) {
    const type = res.type_url;
    const st = this.types.get(type);
    if (!st) return;
    st.nonce = res.nonce;
    st.version = res.version_info;
    const ackedAt = now();
    st.ackedAt = ackedAt;
    this.request(type, st.names); // the ACK
    if (this.spec.kind === 'sidecar') {
      if (type === CDS) this.request(EDS, cachedNames(edsNames, res, st.names));
      else if (type === EDS && !this.types.get(LDS).subscribed) this.request(LDS, []);
      else if (type === LDS) this.request(RDS, cachedNames(rdsNames, res, st.names));
    } else {
      const dep = { [LDS]: [RDS, rdsNames], [RDS]: [CDS, clusterNames], [CDS]: [EDS, edsNames] }[type];
      if (dep) {
        const names = cachedNames(dep[1], res, st.names);
        const d = this.types.get(dep[0]);
        if (!d.subscribed || !sameNames(d.names, names)) this.request(dep[0], names);
      }
    }
    if (!this.synced && TYPES.every((t) => this.types.get(t).version !== '')) {
      this.synced = true;
      this.fleet.onSynced(this);
    }
    if (this.target && this.reachedAt === undefined && TYPES.every((t) => this.types.get(t).version === this.target.get(t))) {
      this.reachedAt = ackedAt;
      this.fleet.onReached(this);
    }
  }

  versions() {
    return new Map(TYPES.map((t) => [t, this.types.get(t).version]));
  }

  /** Starts waiting for the versions of config `label`; false when they are already the ones held. */
  expect(label) {
    const want = this.known.get(label);
    if (!want) throw new Error(`proxy ${this.index} has not learned config ${label}`);
    this.target = want;
    this.reachedAt = undefined;
    return !TYPES.every((t) => this.types.get(t).version === want.get(t));
  }
}

// ---- the fleet ----------------------------------------------------------------------------------------

class Fleet {
  proxies = [];
  clients = [];
  syncedCount = 0;
  started = 0;
  /** The change under way: { change, pending } (pending: proxies whose versions must still move). */
  change;
  closing = false;

  constructor(o) {
    this.o = o;
    const Ads = adsService();
    // A local subchannel pool per channel: grpc-js otherwise shares one connection between channels with the same target and options.
    const options = { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 64 * 1024 * 1024 };
    for (let i = 0; i < o.clients; i++) {
      if (i % o.streamsPerChannel === 0) this.clients.push(new Ads(o.target, grpc.credentials.createInsecure(), options));
      this.proxies.push(new Proxy(i, proxySpec(i), this.clients[this.clients.length - 1], this));
    }
  }

  /** Opens streams keeping at most `window` of them unsynced, so the connect storm is paced by the server, not a timer. */
  run() {
    this.t0 = now();
    this.progress = setInterval(() => process.send({ type: 'progress', started: this.started, synced: this.syncedCount }), 1000);
    this.fill();
  }

  fill() {
    while (this.started < this.proxies.length && this.started - this.syncedCount < this.o.window) this.proxies[this.started++].start();
  }

  onSynced() {
    this.syncedCount++;
    if (this.syncedCount === this.proxies.length) {
      clearInterval(this.progress);
      process.send({ type: 'synced', clients: this.proxies.length, channels: this.clients.length, ms: now() - this.t0 });
    } else this.fill();
  }

  failed(p, e) {
    if (this.closing) return;
    process.send({ type: 'failed', message: `proxy ${p.index} (${p.spec.node.id}): stream ended: ${e.code !== undefined ? grpc.status[e.code] : ''} ${e.details ?? e.message}` });
  }

  learn(label) {
    for (const p of this.proxies) p.known.set(label, p.versions());
    const distinct = new Set(this.proxies.map((p) => TYPES.map((t) => p.known.get(label).get(t)).join()));
    process.send({ type: 'learned', label, distinctVersionSets: distinct.size });
  }

  expect(label, change) {
    let pending = 0;
    for (const p of this.proxies) if (p.expect(label)) pending++;
    this.change = { change, label, pending, unchanged: this.proxies.length - pending };
    process.send({ type: 'expecting', change, pending });
    if (pending === 0) this.finish();
  }

  /** Why a change is not done: the proxies still waiting, with what they hold and what they wait for. */
  pending() {
    const waiting = this.proxies.filter((p) => p.target && p.reachedAt === undefined);
    const show = (p) => ({ id: p.spec.node.id, types: Object.fromEntries(TYPES.map((t) => [t.slice(t.lastIndexOf('.') + 1), `${p.types.get(t).version} (want ${p.target.get(t)})`])) });
    process.send({ type: 'pending', count: waiting.length, examples: waiting.slice(0, 3).map(show) });
  }

  onReached() {
    if (this.change && --this.change.pending === 0) this.finish();
  }

  finish() {
    const times = this.proxies.filter((p) => p.reachedAt !== undefined).map((p) => p.reachedAt);
    process.send({ type: 'done', change: this.change.change, times, unchanged: this.change.unchanged });
    for (const p of this.proxies) p.target = undefined;
    this.change = undefined;
  }

  close() {
    this.closing = true;
    clearInterval(this.progress);
    for (const p of this.proxies) p.call?.cancel();
    for (const c of this.clients) c.close();
  }
}

async function main() {
  const { values } = parseArgs({
    options: {
      target: { type: 'string' },
      clients: { type: 'string' },
      'streams-per-channel': { type: 'string', default: '1' },
      window: { type: 'string', default: '200' },
    },
  });
  const clients = Number(values.clients);
  if (!values.target || !(clients >= 1 && clients <= MAX_CLIENTS) || !process.send) {
    console.error(`usage (as a child with IPC): xds-clients.mjs --target HOST:PORT --clients 1..${MAX_CLIENTS} [--streams-per-channel 1] [--window 200]`);
    process.exit(2);
  }
  const fleet = new Fleet({ target: values.target, clients, streamsPerChannel: Math.max(1, Number(values['streams-per-channel'])), window: Math.max(1, Number(values.window)) });
  process.on('message', (m) => {
    if (m.type === 'learn') fleet.learn(m.label);
    else if (m.type === 'expect') fleet.expect(m.label, m.change);
    else if (m.type === 'pending') fleet.pending();
    else if (m.type === 'stop') {
      fleet.close();
      process.disconnect();
    }
  });
  // The parent going away (crash, Ctrl-C) ends this process too.
  process.on('disconnect', () => {
    fleet.close();
    setImmediate(() => process.exit(0));
  });
  fleet.run();
}

await main();
