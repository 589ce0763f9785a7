#!/usr/bin/env node
// Makes development SVIDs: node certs-dev/make-certs.mjs [--trust-domain TD] [--ttl-hours N] [--out DIR] ns/sa ...
// Needs `npm run build` first (it uses the sidecar's own CA code from dist/). See certs-dev/README.md.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'trust-domain': { type: 'string', default: 'cluster.local' }, 'ttl-hours': { type: 'string', default: '24' }, out: { type: 'string', default: path.join(here, 'out') } },
});
if (!positionals.length) {
  process.stderr.write('usage: node certs-dev/make-certs.mjs [--trust-domain TD] [--ttl-hours N] [--out DIR] namespace/serviceaccount ...\n');
  process.exit(2);
}
const { writeDevCerts } = await import(path.join(here, '..', 'dist', 'identity', 'dev-certs.js'));
const { systemClock } = await import(path.join(here, '..', 'dist', 'core', 'clock.js'));
try {
  const r = await writeDevCerts({ dir: values.out, trustDomain: values['trust-domain'], workloads: positionals, ttlMs: Number(values['ttl-hours']) * 3600_000, clock: systemClock });
  process.stdout.write(`trust bundle ${r.rootCert}\n`);
  for (const w of r.workloads) process.stdout.write(`${w.spiffeId} → ${w.dir}/cert-chain.pem, key.pem\n`);
} catch (e) {
  process.stderr.write(`make-certs: ${e.message}\n`);
  process.exit(2);
}
