// The "Node floor" path: bench/proxies/node-floor-hop.mjs as hop A and hop B (see there for why).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { start, waitForPort } from '../lib/procs.mjs';
import { GRPC_PREFIX } from './nginx.mjs';

const HOP = path.join(path.dirname(fileURLToPath(import.meta.url)), 'node-floor-hop.mjs');

export async function startNodeFloorPath(ctx) {
  const { outDir, ports, certs } = ctx;
  const proc = (name, args) => {
    const dir = path.join(outDir, name);
    mkdirSync(dir, { recursive: true });
    return start(name, process.execPath, [HOP, ...args], { stdoutFile: path.join(dir, 'stdout.log'), stderrFile: path.join(dir, 'stderr.log') });
  };
  const b = proc('node-floor-hop-b', ['b', ports.hopB, ports.backendH1, ports.grpcBackend, GRPC_PREFIX, certs.reviews.cert, certs.reviews.key, certs.rootCert].map(String));
  const a = proc('node-floor-hop-a', ['a', ports.hopA, ports.hopB, certs.frontend.cert, certs.frontend.key, certs.rootCert, certs.reviews.dns].map(String));
  await Promise.all([waitForPort(ports.hopB, { proc: b }), waitForPort(ports.hopA, { proc: a })]);
  return {
    entry: { h1: ports.hopA, h2c: ports.hopA, grpc: ports.hopA },
    hops: [a, b],
    configs: [HOP],
    mtlsPort: ports.hopB,
    upstreamProto: 'h2 (node:http2 over TLS, ALPN h2)',
    notes: ['a bare Node two-hop proxy without any sidecar feature: the floor Node sets for this job, not a product'],
    async stop() {
      await Promise.all([a.stop(), b.stop()]);
    },
  };
}
