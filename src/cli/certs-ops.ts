// `outrigger certs renew` (the file-based rotation job for VMs and CronJobs) and `outrigger certs rotate-root`.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { systemClock } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import { CaClient, type CaCredential } from '../identity/ca-client.js';
import { writeFilesAtomic } from '../identity/ca-dir.js';
import { loadMaterial, type TlsMaterial } from '../identity/cert-source.js';
import { requestSvid } from '../identity/workload-identity.js';
import { UsageError, commandFlags, durationFlag, identityFlag, trustDomainFlag } from './args.js';
import { RENEW_HELP, ROTATE_ROOT_HELP } from './certs-ops-help.js';
import { fetchStatus } from './control.js';

function currentMaterial(dir: string): TlsMaterial | string {
  try {
    return loadMaterial({ certificateChain: { kind: 'file', path: path.join(dir, 'cert-chain.pem') }, privateKey: { kind: 'file', path: path.join(dir, 'key.pem') } }, 1);
  } catch (e) {
    return errorMessage(e);
  }
}

export async function renewMain(argv: string[]): Promise<number> {
  const values = commandFlags(
    argv,
    {
      dir: { type: 'string' },
      identity: { type: 'string' },
      'trust-domain': { type: 'string' },
      ca: { type: 'string' },
      'ca-root': { type: 'string' },
      'ca-server-name': { type: 'string' },
      token: { type: 'string' },
      ttl: { type: 'string' },
      'renew-before': { type: 'string' },
      force: { type: 'boolean' },
    },
    RENEW_HELP,
  );
  if (!values) return 0;
  if (!values.dir) throw new UsageError('--dir DIR is required');
  if (values.identity === undefined) throw new UsageError('--identity NS/SA is required (namespace/serviceaccount)');
  const trustDomain = trustDomainFlag(values['trust-domain']);
  const spiffeId = identityFlag('--identity', values.identity, trustDomain);
  const ttlMs = durationFlag('ttl', values.ttl, 3600_000);
  const dir = values.dir;
  const clock = systemClock;
  const now = clock.now();
  const cur = currentMaterial(dir);
  const valid = typeof cur !== 'string' && cur.notAfter > now && cur.spiffeId === spiffeId;
  if (valid && !values.force) {
    const before = values['renew-before'] ? durationFlag('renew-before', values['renew-before'], 0) : (cur.notAfter - cur.notBefore) / 2;
    const left = cur.notAfter - now;
    if (left > before) {
      process.stdout.write(`not needed: ${spiffeId} is valid for ${Math.round(left / 1000)}s more (renews with less than ${Math.round(before / 1000)}s left)\n`);
      return 0;
    }
  }
  let credential: CaCredential;
  if (valid) credential = { certChainPem: cur.certChainPem, keyPem: cur.keyPem };
  else if (values.token) credential = { token: readFileSync(values.token, 'utf8').trim() };
  else {
    const why = typeof cur === 'string' ? cur : cur.spiffeId !== spiffeId ? `the SVID in ${dir} is ${cur.spiffeId}, not ${spiffeId}` : 'the SVID expired';
    process.stderr.write(`renew failed: no valid SVID to renew with (${why}) and no --token\n`);
    return 1;
  }
  const rootFile = values['ca-root'] ?? path.join(dir, 'root-cert.pem');
  const client = new CaClient({ address: values.ca ?? '127.0.0.1:15012', roots: () => readFileSync(rootFile, 'utf8'), clock, trustDomain, ...(values['ca-server-name'] && { serverName: values['ca-server-name'] }) });
  try {
    const s = await requestSvid(client, { spiffeId, ttlMs, instance: `renew-${randomUUID()}`, credential });
    // All three staged and fsynced before any rename; key and chain are a pair, and the sidecar's watcher
    // skips the moment when only one of them is new.
    await writeFilesAtomic(dir, { 'root-cert.pem': s.bundlePem, 'key.pem': s.keyPem, 'cert-chain.pem': s.chainPem }, ['key.pem']);
    const m = loadMaterial({ certificateChain: { kind: 'inline', value: s.chainPem }, privateKey: { kind: 'inline', value: s.keyPem } }, 1);
    process.stdout.write(`renewed: ${spiffeId}, serial ${m.serial}, valid until ${new Date(m.notAfter).toISOString()}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`renew failed: ${errorMessage(e)}\n`);
    return 1;
  }
}

export async function rotateRootMain(argv: string[]): Promise<number> {
  const values = commandFlags(argv, { control: { type: 'string' }, 'new-ca': { type: 'string' }, timeout: { type: 'string' } }, ROTATE_ROOT_HELP);
  if (!values) return 0;
  const base = values.control ?? 'http://127.0.0.1:15014';
  const timeoutMs = durationFlag('timeout', values.timeout, 30 * 60_000);
  const url = new URL('/ca/rotate-root', base);
  if (values['new-ca']) url.searchParams.set('source', path.resolve(values['new-ca']));
  const res = await fetch(url, { method: 'POST', headers: { 'x-outrigger-admin': 'rotate-root' } }).catch((e: Error & { cause?: { code?: string } }) => {
    throw new Error(`cannot reach the control server at ${base}: ${e.cause?.code ?? e.message}`);
  });
  if (res.status !== 202) throw new Error(`${url.href} answered HTTP ${res.status}: ${(await res.text()).trim()}`);
  const deadline = systemClock.now() + timeoutMs;
  const printed = new Set<string>();
  for (;;) {
    const s = (await fetchStatus(base)).root_rotation;
    for (const [phase, at] of Object.entries(s.reached)) {
      if (printed.has(phase)) continue;
      printed.add(phase);
      process.stdout.write(`${at}  ${phase}\n`);
    }
    if (s.state === 'done') {
      process.stdout.write('root rotation complete\n');
      return 0;
    }
    if (s.state === 'failed') {
      process.stderr.write(`root rotation stopped in phase ${s.phase}: ${s.error ?? 'unknown error'}\n`);
      return 1;
    }
    if (systemClock.now() > deadline) {
      process.stderr.write(`still running after ${timeoutMs / 1000}s (phase ${s.phase}${s.waiting ? `, waiting for ${s.waiting.for}: ${s.waiting.caughtUp}/${s.waiting.sidecars}` : ''}); follow it with \`outrigger status\`\n`);
      return 1;
    }
    // Polling a status page, not synchronising a test: a human watches this.
    await new Promise((r) => setTimeout(r, 500));
  }
}
