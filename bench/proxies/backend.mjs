// The backend every path ends at: one nginx (1 worker, keep-alive) returning a fixed 1 KiB body over HTTP/1.1
// and h2c, and one grpc-js echo server (the project's outrigger.demo.v1.Echo) for the gRPC runs.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { start, waitForPort } from '../lib/procs.mjs';
import { startNginx } from './nginx.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const BODY_BYTES = Number(process.env.BENCH_BODY_BYTES ?? 1024);

export function backendConfig({ ports }) {
  // `return 200 "<text>"` sends exactly these bytes; no trailing newline, so the body is BODY_BYTES long.
  const body = 'x'.repeat(BODY_BYTES);
  return `  server {
    listen 127.0.0.1:${ports.backendH1};
    # h2c prior knowledge, for the direct row of the h2load (h2c) latency run.
    listen 127.0.0.1:${ports.backendH2c} http2;
    default_type text/plain;
    location / {
      return 200 "${body}";
    }
  }`;
}

export async function startBackend(ctx) {
  const { outDir, ports } = ctx;
  const ng = await startNginx(outDir, 'backend-nginx', backendConfig(ctx));
  const grpc = start('grpc-echo', process.execPath, [path.join(HERE, '..', 'grpc', 'echo-server.mjs'), String(ports.grpcBackend)], {
    stdoutFile: path.join(outDir, 'grpc-echo.log'),
    stderrFile: path.join(outDir, 'grpc-echo.log'),
  });
  await Promise.all([
    waitForPort(ports.backendH1, { proc: ng.proc }),
    waitForPort(ports.backendH2c, { proc: ng.proc }),
    waitForPort(ports.grpcBackend, { proc: grpc }),
  ]);
  return {
    nginx: ng.proc,
    grpc,
    conf: ng.conf,
    async stop() {
      await Promise.all([ng.proc.stop(), grpc.stop()]);
    },
  };
}
