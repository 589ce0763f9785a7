// Loads the built project (dist/) for micro-benchmarks, refusing to run on a missing build.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist');

/** An importer of dist/ modules by their path under dist; exits 2 when `probe` was not built. */
export function distLoader(probe) {
  if (!existsSync(path.join(DIST, probe))) {
    console.error('dist/ is missing: run `npm run build` first');
    process.exit(2);
  }
  return (p) => import(pathToFileURL(path.join(DIST, p)).href);
}

/**
 * What an HTTP filter micro-bench needs besides its filter's own modules: the filter built from its factory with
 * the deps a sidecar's inbound listener gives it (metrics in a private registry), and requests as the chain sees them.
 */
export async function filterKit(load) {
  const [{ RequestRecord }, { createMetrics }, { silentLogger }, { seededRng }, { Registry }] = await Promise.all([
    load('dataplane/exchange.js'),
    load('telemetry/metrics.js'),
    load('telemetry/logger.js'),
    load('core/rng.js'),
    import('prom-client'),
  ]);
  return {
    create: (factory, name, config, clock) =>
      factory.create({ name, typeUrl: factory.typeUrl, optional: false, config }, { listenerName: 'virtualInbound', clock, rng: seededRng(1), metrics: createMetrics(new Registry()), logger: silentLogger() }),
    /** A GET over HTTP/2 on connection `conn` (remote address, TLS, peer). */
    get: (authority, path, headers, conn) => new RequestRecord(0, 0, 'id', 'GET', authority, path, 'HTTP/2', headers, false, conn),
  };
}
