#!/usr/bin/env node
// Kept for old habits: node certs-dev/make-certs.mjs [--trust-domain TD] [--ttl-hours N] [--out DIR] ns/sa ... runs `outrigger certs dev`.
// Needs `npm run build` first (it runs the CLI from dist/). See certs-dev/README.md.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'trust-domain': { type: 'string', default: 'cluster.local' }, 'ttl-hours': { type: 'string', default: '24' }, out: { type: 'string', default: path.join(here, 'out') } },
});
if (!positionals.length) {
  process.stderr.write('usage: node certs-dev/make-certs.mjs [--trust-domain TD] [--ttl-hours N] [--out DIR] namespace/serviceaccount ...\n(same as: outrigger certs dev --dir DIR --trust-domain TD --ttl Nh --workloads ns/sa,...)\n');
  process.exit(2);
}
const { certsMain } = await import(path.join(here, '..', 'dist', 'cli', 'certs.js'));
const argv = ['dev', '--dir', values.out, '--trust-domain', values['trust-domain'], '--ttl', `${values['ttl-hours']}h`, '--workloads', positionals.join(',')];
process.exitCode = await certsMain(argv).catch((e) => {
  process.stderr.write(`make-certs: ${e.message}\n`);
  return 1;
});
