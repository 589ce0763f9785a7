#!/usr/bin/env node
// Mesh-CA benchmarks (issue 3): CSRs signed per second on one core, and the time from sidecar start to
// ready, with an SVID from the CA versus with certificate files, in the same run. Writes the "Mesh CA"
// section of bench/RESULTS.md (between markers, leaving the data-plane tables of `npm run bench` alone).
// Settings: BENCH_STARTS (sidecar starts per kind, default 7), plus ca-issuance.mjs's BENCH_CA_*.
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as procs from './lib/procs.mjs';
import { replaceSection } from './lib/report.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const DIST = path.join(ROOT, 'dist');
const OUT = path.join(BENCH, 'out', 'identity');
const STARTS = Number(process.env.BENCH_STARTS ?? 7);
const log = (m) => console.error(`[bench-identity ${new Date().toISOString().slice(11, 19)}] ${m}`);

if (!existsSync(path.join(DIST, 'cli', 'main.js'))) {
  log('dist/ is missing: run `npm run build` first');
  process.exit(2);
}
const { SIDECAR_NODE_FLAGS } = await import(pathToFileURL(path.join(DIST, 'cli', 'node-flags.js')).href);
const MAIN = path.join(DIST, 'cli', 'main.js');

/** An inbound mTLS sidecar: the one listener every workload has; `tls` is its CommonTlsContext. */
function bootstrap(adminPort, inPort, tls, metadata) {
  return {
    node: { id: 'bench', cluster: 'bench', ...(metadata && { metadata }) },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } },
    static_resources: {
      listeners: [
        {
          name: 'inbound',
          address: { socket_address: { address: '127.0.0.1', port_value: inPort } },
          filter_chains: [
            {
              transport_socket: {
                name: 'tls',
                typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', require_client_certificate: true, common_tls_context: tls },
              },
              filters: [
                {
                  name: 'hcm',
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'in',
                    route_config: { virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200 } }] }] },
                    http_filters: [{ name: 'router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [],
    },
  };
}

/** Milliseconds from spawn to admin /ready answering 200, polled every 5 ms. */
async function startToReady(name, configFile, adminPort) {
  const t0 = performance.now();
  const p = procs.start(name, process.execPath, [...SIDECAR_NODE_FLAGS, MAIN, 'sidecar', '--config', configFile, '--access-log', 'off', '--log-level', 'warn'], {
    stderrFile: path.join(OUT, `${name}.log`),
  });
  try {
    for (;;) {
      if (!p.alive) throw new Error(`${name} exited before it was ready; see ${path.join(OUT, `${name}.log`)}`);
      const r = await procs.httpGet(adminPort, '/ready', { timeoutMs: 500 }).catch(() => undefined);
      if (r?.status === 200) return performance.now() - t0;
      if (performance.now() - t0 > 30_000) throw new Error(`${name} not ready after 30 s`);
      await new Promise((res) => setTimeout(res, 5));
    }
  } finally {
    await p.stop();
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  procs.installCleanup(log);
  const startedAt = new Date();
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const [grpcPort, monPort, adminPort, inPort] = await procs.freePorts(4);

  log('dev PKI for the file-certificate sidecar (outrigger certs dev)');
  const dev = await procs.run(process.execPath, [MAIN, 'certs', 'dev', '--dir', path.join(OUT, 'dev'), '--workloads', 'default/reviews']);
  if (dev.code !== 0) throw new Error(`certs dev failed: ${dev.stderr}`);
  const files = path.join(OUT, 'dev', 'default.reviews');
  const fileTls = {
    tls_certificates: [{ certificate_chain: { filename: path.join(files, 'cert-chain.pem') }, private_key: { filename: path.join(files, 'key.pem') } }],
    validation_context: { trusted_ca: { filename: path.join(files, 'root-cert.pem') } },
  };
  writeFileSync(path.join(OUT, 'files.json'), JSON.stringify(bootstrap(adminPort, inPort, fileTls)));

  log('control server (the mesh CA)');
  const caDir = path.join(OUT, 'ca');
  const control = procs.start('control', process.execPath, [MAIN, 'control', '--ca-dir', caDir, '--grpc-address', `127.0.0.1:${grpcPort}`, '--monitoring-address', `127.0.0.1:${monPort}`, '--log-level', 'warn'], {
    stderrFile: path.join(OUT, 'control.log'),
  });
  const results = { files: [], ca: [] };
  try {
    await procs.waitForHttp200(monPort, '/ready', { proc: control });
    writeFileSync(path.join(OUT, 'root-cert.pem'), readFileSync(path.join(caDir, 'root-cert.pem')));
    // Interleaved, so drifts of the shared machine hit both kinds alike; one warm-up start of each first.
    for (let i = -1; i < STARTS; i++) {
      const tok = await procs.run(process.execPath, [MAIN, 'certs', 'token', '--identity', 'default/reviews', '--ttl', '10m', '--ca-dir', caDir, '--out', path.join(OUT, 'token')]);
      if (tok.code !== 0) throw new Error(`certs token failed: ${tok.stderr}`);
      const sds = { tls_certificate_sds_secret_configs: [{ name: 'default' }], validation_context_sds_secret_config: { name: 'ROOTCA' } };
      const md = { CA_ADDR: `127.0.0.1:${grpcPort}`, CA_ROOT_CERT: path.join(OUT, 'root-cert.pem'), BOOTSTRAP_TOKEN: path.join(OUT, 'token'), NAMESPACE: 'default', SERVICE_ACCOUNT: 'reviews' };
      writeFileSync(path.join(OUT, 'ca.json'), JSON.stringify(bootstrap(adminPort, inPort, sds, md)));
      const f = await startToReady('sidecar-files', path.join(OUT, 'files.json'), adminPort);
      const c = await startToReady('sidecar-ca', path.join(OUT, 'ca.json'), adminPort);
      if (i >= 0) {
        results.files.push(f);
        results.ca.push(c);
      }
      log(`start ${i < 0 ? 'warm-up' : i + 1}: files ${f.toFixed(0)} ms, CA ${c.toFixed(0)} ms`);
    }
  } finally {
    await control.stop();
  }

  log('CA issuance rate (bench/ca-issuance.mjs, pinned to one core when taskset exists)');
  const taskset = (await procs.run('sh', ['-c', 'command -v taskset'])).code === 0;
  const issuance = await procs.run(taskset ? 'taskset' : process.execPath, [...(taskset ? ['-c', '0', process.execPath] : []), path.join(BENCH, 'ca-issuance.mjs')], { timeoutMs: 300_000 });
  if (issuance.code !== 0) throw new Error(`ca-issuance failed: ${issuance.stderr}`);
  const row = issuance.stdout.split('\n').find((l) => l.startsWith('| CA issuance'));
  const header = issuance.stdout.split('\n').filter((l) => l.startsWith('| benchmark') || l.startsWith('|---'));

  const mf = median(results.files);
  const mc = median(results.ca);
  const md = [
    '## Mesh CA (issue 3)',
    '',
    `- command: \`npm run bench:identity\`; ${startedAt.toISOString()}; ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} at the end; node ${process.version}`,
    '',
    'CSRs parsed, verified, checked against the proven identity and signed (P-256 CSRs, an intermediate CA), one',
    'process pinned to one core (`taskset -c 0`). Target ≥ 500/s.',
    '',
    ...header,
    row ?? '| CA issuance | (no result) |',
    '',
    `Sidecar start to ready (spawn → admin \`/ready\` 200), median of ${STARTS} interleaved starts each. "files" loads`,
    'certificate files from disk; "CA" makes its key, sends a CSR with a bootstrap token over TLS gRPC and waits',
    'for the SVID before it binds its listener.',
    '',
    '| sidecar | median ms | min ms | max ms | × files |',
    '|---|---|---|---|---|',
    `| files | ${mf.toFixed(0)} | ${Math.min(...results.files).toFixed(0)} | ${Math.max(...results.files).toFixed(0)} | 1.00× |`,
    `| CA (token → SVID) | ${mc.toFixed(0)} | ${Math.min(...results.ca).toFixed(0)} | ${Math.max(...results.ca).toFixed(0)} | ${(mc / mf).toFixed(2)}× |`,
    '',
    `The SVID adds ${(mc - mf).toFixed(0)} ms to a start (loading gRPC and the CSR code, one TLS handshake, one signature).`,
  ].join('\n');
  const resultsFile = path.join(BENCH, 'RESULTS.md');
  writeFileSync(resultsFile, replaceSection(existsSync(resultsFile) ? readFileSync(resultsFile, 'utf8') : '', 'identity', md));
  console.log(md);
  log(`wrote bench/RESULTS.md (section "Mesh CA") in ${((Date.now() - startedAt.getTime()) / 1000).toFixed(0)} s`);
  return 0;
}

procs.runMain(main, log);
