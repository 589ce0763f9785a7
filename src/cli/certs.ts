// `outrigger certs <sub>`: mesh certificate tooling as a table of subcommands (token, dev, renew, rotate-root).
import path from 'node:path';
import { systemClock } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import { writeFilesAtomic } from '../identity/ca-dir.js';
import { writeDevCerts } from '../identity/dev-certs.js';
import { MAX_TOKEN_TTL_MS, loadOrCreateTokenKey, mintBootstrapToken } from '../identity/token.js';
import { UsageError, commandFlags, durationFlag, identityFlag, trustDomainFlag } from './args.js';
import { RENEW_HELP, ROTATE_ROOT_HELP } from './certs-ops-help.js';

/** One `outrigger certs` subcommand. Adding one is adding an entry to `subcommands` below. */
interface Subcommand {
  /** One line for `outrigger certs --help`. */
  readonly summary: string;
  readonly help: string;
  /** Throws UsageError (or a parseArgs error) for bad usage: certsMain prints it with `help` and exits 2. */
  run(argv: string[]): Promise<number>;
}

const TOKEN_HELP = `Usage: outrigger certs token --identity NS/SA [options]

Mints a bootstrap token: a signed, single-use, short-lived JWT that lets one workload get its first SVID
from the control server (the file-mode stand-in for a Kubernetes service-account token). It is signed with
the token key in the control server's CA directory (token-key.pem, made on first use), so run this where
that directory is. Give the token to the sidecar through node metadata BOOTSTRAP_TOKEN (a file path).

Options:
  --identity NS/SA     the workload identity: spiffe://TRUST_DOMAIN/ns/NS/sa/SA
  --ttl DURATION       how long the token may be used (default 10m, at most 24h); it works once
  --ca-dir DIR         the control server's CA directory (default ./ca)
  --trust-domain TD    default cluster.local (must be the control server's)
  --out FILE           write the token to FILE (mode 0600, atomically) instead of printing it
  -h, --help           this help

Exit codes: 0 token written, 2 bad usage, 1 failure (e.g. the CA directory is unusable).
`;

const DEV_HELP = `Usage: outrigger certs dev [options]

Writes a development PKI (see certs-dev/README.md): a root, an intermediate signed by it, and an X509-SVID
per workload issued by the intermediate. Keys are mode 0600. Re-running renews the workload SVIDs under
the same root and intermediate, so running sidecars keep trusting each other. Not for production: the
root key sits next to the leaves.

  DIR/root-cert.pem, root-key.pem            the root (trust bundle)
  DIR/ca/{ca-cert,ca-key,cert-chain,root-cert}.pem
                                             the intermediate in Istio's plugged-in CA layout:
                                             \`outrigger control --ca-dir DIR/ca\` issues from it
  DIR/NS.SA/{cert-chain,key,root-cert}.pem   a workload, as Istio mounts it at /etc/certs

Options:
  --dir DIR              output directory (default certs-dev/out)
  --trust-domain TD      default cluster.local
  --workloads LIST       comma-separated NS/SA (default default/frontend,default/backend)
  --ttl DURATION         workload SVID lifetime (default 24h)
  --new-ca               make a new root and intermediate even if DIR has usable ones
  -h, --help             this help
`;

function when(ms: number): string {
  return new Date(ms).toISOString();
}

async function tokenMain(argv: string[]): Promise<number> {
  const values = commandFlags(
    argv,
    {
      identity: { type: 'string' },
      ttl: { type: 'string' },
      'ca-dir': { type: 'string' },
      'trust-domain': { type: 'string' },
      out: { type: 'string' },
    },
    TOKEN_HELP,
  );
  if (!values) return 0;
  if (values.identity === undefined) throw new UsageError('--identity NS/SA is required');
  const spiffeId = identityFlag('--identity', values.identity, trustDomainFlag(values['trust-domain']));
  const ttlMs = durationFlag('ttl', values.ttl, 10 * 60_000);
  if (ttlMs <= 0 || ttlMs > MAX_TOKEN_TTL_MS) throw new UsageError(`--ttl: must be more than 0 and at most 24h, not ${JSON.stringify(values.ttl)}`);
  const caDir = values['ca-dir'] ?? 'ca';
  const key = await loadOrCreateTokenKey(caDir);
  if (key.created) process.stderr.write(`created the token-signing key ${key.file} (a control server with --ca-dir ${caDir} verifies tokens with it)\n`);
  const clock = systemClock;
  const token = await mintBootstrapToken(key, { spiffeId, ttlMs, clock });
  const about = `bootstrap token for ${spiffeId}, usable once until ${when(clock.now() + ttlMs)}`;
  if (values.out) {
    await writeFilesAtomic(path.dirname(values.out), { [path.basename(values.out)]: `${token}\n` }, [path.basename(values.out)]);
    process.stderr.write(`wrote ${about} to ${values.out}\n`);
  } else {
    // The token alone on stdout, so TOKEN=$(outrigger certs token …) works; the note goes to stderr.
    process.stdout.write(`${token}\n`);
    process.stderr.write(`${about}\n`);
  }
  return 0;
}

async function devMain(argv: string[]): Promise<number> {
  const values = commandFlags(
    argv,
    {
      dir: { type: 'string' },
      'trust-domain': { type: 'string' },
      workloads: { type: 'string' },
      ttl: { type: 'string' },
      'new-ca': { type: 'boolean' },
    },
    DEV_HELP,
  );
  if (!values) return 0;
  const trustDomain = trustDomainFlag(values['trust-domain']);
  const workloads = (values.workloads ?? 'default/frontend,default/backend')
    .split(',')
    .map((w) => w.trim())
    .filter((w) => w !== '');
  for (const w of workloads) identityFlag('--workloads', w, trustDomain);
  const ttlMs = durationFlag('ttl', values.ttl, 24 * 3600_000);
  if (ttlMs <= 0) throw new UsageError(`--ttl: must be positive, not ${JSON.stringify(values.ttl)}`);
  const dir = values.dir ?? path.join('certs-dev', 'out');
  const r = await writeDevCerts({ dir, trustDomain, workloads, ttlMs, clock: systemClock, newCa: values['new-ca'] === true });
  const out: string[] = [];
  if (r.ca === 'reused') out.push(`dev PKI for ${trustDomain} in ${dir}: reused the root and intermediate, renewed the workload SVIDs`);
  else out.push(`dev PKI for ${trustDomain} in ${dir}: new root and intermediate${r.caReplacedBecause ? ` (${r.caReplacedBecause})` : ''}`);
  out.push(`  root          ${r.rootCert} (key ${path.basename(r.rootKey)}), valid until ${when(r.rootNotAfter)}`);
  out.push(`  intermediate  ${r.caDir}/ ca-cert.pem ca-key.pem cert-chain.pem root-cert.pem, valid until ${when(r.intermediateNotAfter)}`);
  out.push(`                (a plugged-in CA dir: outrigger control --ca-dir ${r.caDir})`);
  for (const w of r.workloads) out.push(`  ${w.spiffeId}\n                ${w.dir}/ cert-chain.pem key.pem root-cert.pem, valid until ${when(w.notAfter)}`);
  out.push('keys are mode 0600; never use these in production');
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}

const subcommands: Record<string, Subcommand> = {
  token: { summary: 'mint a single-use bootstrap token for a workload identity', help: TOKEN_HELP, run: tokenMain },
  dev: { summary: 'write a dev root, intermediate and workload SVIDs (certs-dev/)', help: DEV_HELP, run: devMain },
  // These two speak gRPC / HTTP to a running control server; loaded only when used.
  renew: { summary: 'renew the SVID files in a directory when due (VMs, CronJobs)', help: RENEW_HELP, run: async (argv) => (await import('./certs-ops.js')).renewMain(argv) },
  'rotate-root': { summary: 'walk a running mesh through a zero-downtime root rotation', help: ROTATE_ROOT_HELP, run: async (argv) => (await import('./certs-ops.js')).rotateRootMain(argv) },
};

export const CERTS_HELP = `Usage: outrigger certs <subcommand> [options]

Subcommands:
${Object.entries(subcommands)
  .map(([name, s]) => `  ${name.padEnd(12)}${s.summary}`)
  .join('\n')}

Run \`outrigger certs <subcommand> --help\` for its options.
`;

function isUsageError(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return e instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_'));
}

export async function certsMain(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    (name ? process.stdout : process.stderr).write(CERTS_HELP);
    return name ? 0 : 2;
  }
  const sub = subcommands[name];
  if (!sub) {
    process.stderr.write(`outrigger certs: unknown subcommand ${JSON.stringify(name)}\n\n${CERTS_HELP}`);
    return 2;
  }
  try {
    return await sub.run(rest);
  } catch (e) {
    // Usage errors get the subcommand's help, not the command's; everything else goes to main's handler.
    if (!isUsageError(e)) throw e;
    process.stderr.write(`outrigger certs ${name}: ${errorMessage(e)}\n\n${sub.help}`);
    return 2;
  }
}
