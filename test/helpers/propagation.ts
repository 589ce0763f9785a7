// Policy propagation measured from outside: sidecars in three clouds, probed over mTLS until a policy change flips their decisions.
import http from 'node:http';
import http2 from 'node:http2';
import type { AdsServer, XdsAnswer } from '../../src/control/ads/server.js';
import { systemClock } from '../../src/core/clock.js';
import { issueSvid } from '../../src/identity/ca.js';
import { LISTENER_TYPE_URL } from '../../src/xds/protos.js';
import type { ControlForTest } from './mesh-ca.js';
import { meshPod } from './mesh-pods.js';
import { TD, type StartedSidecar } from './mesh.js';
import { waitFor } from './tools.js';

/** Three clouds, as Envoy localities (region names the cloud region, ARCHITECTURE "Locality"). */
export const CLOUDS = [
  { region: 'aws-us-east-1', zone: 'use1-az1' },
  { region: 'gcp-europe-west1', zone: 'europe-west1-b' },
  { region: 'azure-eastus', zone: 'eastus-1' },
] as const;

/** Every pod of the fleet is a `web` workload: one ServiceEntry selects them all, so each inbound routes to its app. */
export const WEB_SA = 'web';
export const WEB_ID = `spiffe://${TD}/ns/default/sa/${WEB_SA}`;

export interface FleetPod {
  readonly ip: string;
  readonly region: string;
  readonly nodeId: string;
  readonly sidecar: StartedSidecar;
  readonly app: http.Server;
}

/** A pod's app on ip:9080: 200 "ok" to everything (the sidecar in front decides). */
async function startApp(ip: string): Promise<http.Server> {
  const app = http.createServer((req, res) => {
    req.resume();
    res.end('ok');
  });
  await new Promise<void>((resolve, reject) => {
    app.once('error', reject);
    app.listen(9080, ip, () => resolve());
  });
  return app;
}

/**
 * n pods round-robin over CLOUDS, pod i at <net>.<cloud+1>.<i/3+1>, each a real app behind a real sidecar
 * (SVID from the mesh CA, config over mTLS ADS, locality of its cloud); started `parallel` at a time, ready.
 */
export async function startFleet(ca: ControlForTest, n: number, net: string, parallel = 10): Promise<FleetPod[]> {
  const pods: FleetPod[] = [];
  const one = async (i: number) => {
    const cloud = CLOUDS[i % CLOUDS.length]!;
    const ip = `${net}.${(i % CLOUDS.length) + 1}.${Math.floor(i / CLOUDS.length) + 1}`;
    const app = await startApp(ip);
    const sidecar = await meshPod(ca, ip, WEB_SA, { app: 'web', cloud: cloud.region }, { drainMs: 500, locality: cloud });
    pods[i] = { ip, region: cloud.region, nodeId: `sidecar~${ip}~${WEB_SA}.default~default.svc.cluster.local`, sidecar, app };
    await waitFor(() => sidecar.ready(), `sidecar ${ip} ready`, 60_000);
  };
  for (let i = 0; i < n; i += parallel) await Promise.all(Array.from({ length: Math.min(parallel, n - i) }, (_, k) => one(i + k)));
  return pods;
}

export async function stopFleet(pods: readonly FleetPod[]): Promise<void> {
  await Promise.all(pods.filter(Boolean).map((p) => p.sidecar.shutdown()));
  await Promise.all(pods.filter(Boolean).map((p) => new Promise((r) => p.app.close(r))));
}

/** One probe: its path, the answer, and when it was sent and answered (performance.now()). */
export interface Probe {
  readonly path: string;
  readonly status: number;
  readonly sentAt: number;
  readonly doneAt: number;
}

/**
 * A mesh peer as the sidecars see one: an SVID from the mesh CA (default/prober) and one HTTP/2 mTLS
 * connection per sidecar inbound (15006), as a peer sidecar's pool keeps it; the server must prove it is
 * `web`. A listener update that keeps the connection settings hands the next request on an open connection
 * to the new filters (ListenerRuntime.update), so a probe sees the policy a new connection would.
 */
export class Prober {
  private readonly sessions = new Map<string, http2.ClientHttp2Session>();

  private constructor(
    private readonly creds: { ca: string; cert: string; key: string },
    /** The SPIFFE ID every server must prove, and the :authority requests carry. */
    private readonly server: { id: string; authority: string },
  ) {}

  static async create(ca: ControlForTest, o: { sa?: string; serverId?: string; authority?: string } = {}): Promise<Prober> {
    const s = await issueSvid(ca.server.authority.signer, { spiffeIds: [`spiffe://${TD}/ns/default/sa/${o.sa ?? 'prober'}`], clock: systemClock });
    return new Prober({ ca: ca.server.authority.bundlePem, cert: s.chainPem, key: s.keyPem }, { id: o.serverId ?? WEB_ID, authority: o.authority ?? 'web.default.svc.cluster.local:9080' });
  }

  private session(ip: string): http2.ClientHttp2Session {
    let s = this.sessions.get(ip);
    if (s && !s.closed && !s.destroyed) return s;
    s = http2.connect(`https://${ip}:15006`, {
      ...this.creds,
      ALPNProtocols: ['h2'],
      // SPIFFE peers are named by their URI SAN, not by a DNS name (X509-SVID §5).
      checkServerIdentity: (_host, cert) => (cert.subjectaltname?.split(', ').includes(`URI:${this.server.id}`) ? undefined : new Error(`server is not ${this.server.id}: ${cert.subjectaltname}`)),
    });
    s.on('error', () => this.sessions.delete(ip));
    s.on('goaway', () => this.sessions.delete(ip));
    s.on('close', () => this.sessions.delete(ip));
    this.sessions.set(ip, s);
    return s;
  }

  /** One GET to the sidecar at ip (15006) with extra headers: the answer's status and body. */
  request(ip: string, path: string, headers: http2.OutgoingHttpHeaders = {}): Promise<Probe & { readonly body: string }> {
    const sentAt = performance.now();
    return new Promise((resolve, reject) => {
      const req = this.session(ip).request({ ...headers, ':path': path, ':authority': this.server.authority });
      let status = 0;
      let body = '';
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('error', reject);
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => resolve({ path, status, body, sentAt, doneAt: performance.now() }));
      req.end();
    });
  }

  probe(ip: string, path: string): Promise<Probe> {
    return this.request(ip, path);
  }

  close(): void {
    for (const s of this.sessions.values()) s.destroy();
    this.sessions.clear();
  }
}

/**
 * The property that tells an atomic swap from a half-applied policy set, on one sidecar: its probes run one
 * at a time (each is answered before the next is sent), so they are totally ordered in time; if the sidecar
 * swaps its whole policy set at one instant, every probe answered by the new set comes after every probe
 * answered by the old one, whatever path each asked for. A probe answered by the old set after one answered
 * by the new set means the sidecar enforced the new rule for one path while still enforcing the old rule for
 * another (or went back): a half-applied (or flapping) set. Returns one line per such pair.
 */
export function atomicityViolations(probes: readonly Probe[], isNew: (p: Probe) => boolean): string[] {
  const out: string[] = [];
  let firstNew: Probe | undefined;
  for (const p of probes) {
    if (isNew(p)) firstNew ??= p;
    else if (firstNew) out.push(`${p.path} answered ${p.status} (old policy) at ${p.sentAt.toFixed(1)} ms after ${firstNew.path} answered ${firstNew.status} (new policy) at ${firstNew.doneAt.toFixed(1)} ms`);
  }
  return out;
}

export interface FlipResult {
  readonly pod: FleetPod;
  /** From the write to the answer of the first probe the new policy decided (an upper bound on when it applied). */
  readonly flipMs: number;
  readonly probes: readonly Probe[];
  readonly violations: readonly string[];
}

/** At most n holders at a time; the others queue in order. */
class Slots {
  private readonly queue: (() => void)[] = [];
  constructor(private free: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.queue.push(r));
    try {
      return await fn();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.free++;
    }
  }
}

/**
 * Probes every pod, each cycling over `paths` one probe at a time, until each path has been answered by the
 * new policy and then one more full cycle (a set that flips back would show). The probes are the clock: no
 * sleeps. At most `inFlight` probes run at once across the fleet: the control server, every sidecar and the
 * prober share one event loop here, and unbounded probing would mostly measure the probes' own CPU.
 */
export async function measureFlips(
  pods: readonly FleetPod[],
  prober: Prober,
  o: { paths: readonly string[]; isNew: (p: Probe) => boolean; t0: number; timeoutMs: number; inFlight?: number; onProbe?: (pod: FleetPod, p: Probe) => void },
): Promise<FlipResult[]> {
  const deadline = o.t0 + o.timeoutMs;
  const slots = new Slots(o.inFlight ?? 8);
  return Promise.all(
    pods.map(async (pod) => {
      const probes: Probe[] = [];
      const seen = new Set<string>();
      let extra = -1;
      for (let i = 0; extra !== 0; i++) {
        if (performance.now() > deadline) throw new Error(`sidecar ${pod.ip} (${pod.region}) did not enforce the change within ${o.timeoutMs} ms; last answers: ${probes.slice(-4).map((p) => `${p.path}=${p.status}`).join(' ')}`);
        const p = await slots.run(() => prober.probe(pod.ip, o.paths[i % o.paths.length]!));
        probes.push(p);
        o.onProbe?.(pod, p);
        if (o.isNew(p)) seen.add(p.path);
        if (extra > 0) extra--;
        else if (extra < 0 && seen.size === o.paths.length) extra = o.paths.length;
      }
      const first = probes.find(o.isNew)!;
      return { pod, flipMs: first.doneAt - o.t0, probes, violations: atomicityViolations(probes, o.isNew) };
    }),
  );
}

/** Waits until every pod answers every path as `ok` says (unmeasured set-up between rounds). */
export async function waitForAnswers(pods: readonly FleetPod[], prober: Prober, paths: readonly string[], ok: (p: Probe) => boolean, what: string): Promise<void> {
  await Promise.all(pods.map((pod) => Promise.all(paths.map((path) => waitFor(async () => ok(await prober.probe(pod.ip, path)), `${pod.ip} ${path}: ${what}`, 30_000)))));
}

/** LDS ACKs as the control server sees them, with their time (performance.now()). */
export class AckLog {
  private readonly acks: { readonly nodeId: string; readonly version: string; readonly at: number }[] = [];
  private readonly on = (a: XdsAnswer) => {
    if (a.typeUrl === LISTENER_TYPE_URL) this.acks.push({ nodeId: a.nodeId, version: a.version, at: performance.now() });
  };

  constructor(private readonly ads: AdsServer) {
    ads.on('ack', this.on);
  }

  /** When nodeId first ACKed `version` after t0 (undefined if it has not). */
  ackedAt(nodeId: string, version: string, t0: number): number | undefined {
    return this.acks.find((a) => a.nodeId === nodeId && a.version === version && a.at >= t0)?.at;
  }

  close(): void {
    this.ads.off('ack', this.on);
  }
}

/** Nearest-rank percentile of ms values. */
export function percentile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export interface Spread {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export function spread(values: readonly number[]): Spread {
  return { n: values.length, p50: percentile(values, 0.5), p99: percentile(values, 0.99), max: Math.max(...values) };
}

export const fmt = (s: Spread): string => `n=${s.n} p50 ${s.p50.toFixed(0)} ms, p99 ${s.p99.toFixed(0)} ms, max ${s.max.toFixed(0)} ms`;
