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
