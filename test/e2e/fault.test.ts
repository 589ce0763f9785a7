// Fault injection end to end: VirtualService `fault` in mesh YAML -> control server -> ADS -> the caller's sidecar,
// through real sidecars over mTLS to real HTTP and gRPC apps: abort percentage, delay, gRPC status, bad YAML.
import t from 'tap';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { loadEchoService, startEchoGrpc } from '../../src/cli/demo-apps.js';
import { seededRng } from '../../src/core/rng.js';
import { startControl } from '../helpers/mesh-ca.js';
import type { StartedSidecar } from '../helpers/mesh.js';
import { meshDir, meshPod, serviceEntryYaml } from '../helpers/mesh-pods.js';
import { waitFor } from '../helpers/tools.js';

// Pod IPs of this file only: listeners bind the translator's fixed ports (15001, 15006) on them.
const NET = '127.61';
const FRONTEND = `${NET}.1.1`;
const REVIEWS = `${NET}.2.1`;
const RATINGS = `${NET}.3.1`;
const GREETER = `${NET}.4.1`;

const ABORT_PERCENT = 30;
const DELAY_MS = 400;

const vs = (name: string, http: string) => `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}]
  http:
${http}
`;

function mesh(abortPercent: number | string = ABORT_PERCENT): string {
  const svc = (name: string, ip: string, port?: string) => `${serviceEntryYaml(name, port)}---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ${name}-1, namespace: default }
spec: { address: ${ip}, serviceAccount: ${name}, labels: { app: ${name} } }
`;
  return `${svc('frontend', FRONTEND)}${svc('reviews', REVIEWS)}${svc('ratings', RATINGS)}${svc('greeter', GREETER, '{ number: 9090, name: grpc, protocol: GRPC }')}${vs('reviews', `  - route: [{ destination: { host: reviews } }]
    fault: { abort: { httpStatus: 503, percentage: { value: ${abortPercent} } } }`)}${vs('ratings', `  - route: [{ destination: { host: ratings } }]
    fault: { delay: { fixedDelay: ${DELAY_MS}ms, percentage: { value: 100 } } }`)}${vs('greeter', `  - match: [{ headers: { x-fault: { exact: "on" } } }]
    route: [{ destination: { host: greeter } }]
    fault: { abort: { grpcStatus: UNAVAILABLE, percentage: { value: 100 } } }
  - route: [{ destination: { host: greeter } }]`)}`;
}

async function app(ip: string, name: string): Promise<http.Server> {
  const s = http.createServer((_req, res) => res.end(name));
  await new Promise<void>((r) => s.listen(9080, ip, r));
  return s;
}

function get(agent: http.Agent, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: FRONTEND, port: 15001, path: '/', headers: { host }, agent }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

async function counter(s: StartedSidecar, name: string, labels: Record<string, string>): Promise<number> {
  const m = await s.registry.getSingleMetric(name)?.get();
  return (m?.values ?? []).filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((n, v) => n + v.value, 0);
}

t.test('fault injection from mesh YAML through real sidecars: abort percentage, delay, gRPC status, bad YAML refused', async (t) => {
  const { dir, file, write, cleanup } = meshDir('outrigger-fault-e2e-');
  t.teardown(cleanup);
  write(mesh());
  const ca = await startControl({ configDir: dir });
  t.teardown(() => ca.close());
  const apps = [await app(REVIEWS, 'reviews'), await app(RATINGS, 'ratings')];
  t.teardown(() => Promise.all(apps.map((s) => new Promise((r) => s.close(r)))));
  const greeter = await startEchoGrpc('greeter', GREETER, 9090);
  t.teardown(() => greeter.close());
  const sidecars = [
    // The caller's sidecar injects the faults; its rng is seeded so the run is reproducible.
    await meshPod(ca, FRONTEND, 'frontend', { app: 'frontend' }, { drainMs: 500, rng: seededRng(61) }),
    ...(await Promise.all(['reviews', 'ratings', 'greeter'].map((sa, i) => meshPod(ca, [REVIEWS, RATINGS, GREETER][i]!, sa, { app: sa }, { drainMs: 500 })))),
  ];
  t.teardown(() => Promise.all(sidecars.map((s) => s.shutdown())));
  for (const s of sidecars) await waitFor(() => s.ready(), 'every sidecar synced');
  const frontend = sidecars[0]!;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  t.teardown(() => agent.destroy());

  t.test('abort: 30 % of 2,000 requests answered 503 by the caller sidecar, within 5 sigma of the binomial', async (t) => {
    // The bound is the binomial's 5 sigma (n = 2000, p = 0.3: sigma = 20.5, so +-102): a fair sampler falls
    // outside it with probability < 1e-6. The seeded rng makes a given run reproducible, but the LB and the
    // 8 concurrent callers share it, so the exact count is not what is asserted.
    const n = 2000;
    const statuses = new Map<number, number>();
    let bodies = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next++ < n) {
          const r = await get(agent, 'reviews:9080');
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          if (r.status === 503 && JSON.parse(r.body).code === 'fault_abort') bodies++;
        }
      }),
    );
    const aborted = statuses.get(503) ?? 0;
    t.equal(aborted + (statuses.get(200) ?? 0), n, `only 200 and 503 (${JSON.stringify([...statuses])})`);
    const sigma = Math.sqrt(n * 0.3 * 0.7);
    t.ok(Math.abs(aborted - n * 0.3) <= 5 * sigma, `${aborted} of ${n} aborted, ${ABORT_PERCENT} % configured`);
    t.equal(bodies, aborted, 'every 503 is the fault filter\'s JSON reply');
    t.equal(await counter(frontend, 'outrigger_http_faults_injected_total', { kind: 'abort' }), aborted, 'counted by kind');
    t.equal(await counter(frontend, 'istio_requests_total', { response_flags: 'FI', response_code: '503' }), aborted, 'flag FI in the standard metrics');
  });

  t.test('delay: the request waits at least fixedDelay, then goes through, flagged DI', async (t) => {
    for (let i = 0; i < 3; i++) {
      const start = performance.now();
      const r = await get(agent, 'ratings:9080');
      // Real time only as a lower bound: the delay cannot end early; how late it ends is the machine's business.
      t.ok(performance.now() - start >= DELAY_MS - 1, `took ${Math.round(performance.now() - start)} ms >= ${DELAY_MS} ms`);
      t.strictSame(r, { status: 200, body: 'ratings' });
    }
    t.equal(await counter(frontend, 'outrigger_http_faults_injected_total', { kind: 'delay' }), 3);
    t.equal(await counter(frontend, 'istio_requests_total', { response_flags: 'DI', response_code: '200' }), 3);
  });

  t.test('gRPC: the faulted route answers the configured grpc-status; the other route reaches the server', async (t) => {
    const Echo = loadEchoService();
    const client = new Echo(`${FRONTEND}:15001`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'greeter:9090' }) as unknown as grpc.Client & {
      Unary(r: object, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, v: { served_by: string }) => void): void;
    };
    t.teardown(() => client.close());
    const call = (fault: boolean) =>
      new Promise<{ err: grpc.ServiceError | null; served?: string }>((res) => {
        const md = new grpc.Metadata();
        if (fault) md.set('x-fault', 'on');
        client.Unary({ message: 'hi' }, md, (err, v) => res({ err, ...(v && { served: v.served_by }) }));
      });
    const ok = await call(false);
    t.equal(ok.err, null);
    t.equal(ok.served, 'greeter', 'unfaulted: the real server answered');
    const faulted = await call(true);
    t.equal(faulted.err?.code, grpc.status.UNAVAILABLE);
    t.equal(faulted.err?.details, 'fault filter abort');
  });

  t.test('a bad fault in the YAML is refused with file:line:field; the sidecars keep the accepted config', async (t) => {
    const bad = mesh(150);
    const line = bad.split('\n').findIndex((l) => l.includes('value: 150')) + 1;
    const rejected = ca.server.nextConfigReload();
    write(bad);
    await rejected;
    t.strictSame(ca.server.status().config?.rejected?.issues, [`${file}:${line} VirtualService reviews: spec.http[0].fault.abort.percentage.value: 150 is outside 0..100`]);
    const r = await get(agent, 'ratings:9080');
    t.equal(r.status, 200, 'still serving');
  });
});
