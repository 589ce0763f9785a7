#!/usr/bin/env -S node --max-semi-space-size=2 --heap-growing-percent=20
// `outrigger <command>`: the only place implementations are wired together. Exit 0 ok, 2 usage/config, 1 runtime.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError, errorMessage } from '../core/errors.js';
import { UsageError } from './args.js';
import { CONTROL_HELP, STATUS_HELP } from './control-help.js';
import { DEMO_HELP } from './demo-help.js';
import { sidecarMain, SIDECAR_HELP } from './sidecar.js';
import { VALIDATE_HELP } from './validate-help.js';

const HELP = `Usage: outrigger <command> [options]

Commands:
  sidecar --config FILE   run a sidecar from an Envoy v3 bootstrap
  control                 run the control server (mesh CA, and xDS from Istio-kind YAML with --config)
  validate DIR            check a mesh config directory (Istio kinds); every problem with its file and line
  status                  show the control server's CA, mesh config and every proxy's xDS sync state
  certs <sub>             mesh certificates: token, dev, renew, rotate-root
  demo                    run the local multi-cloud mesh: bookinfo over xDS and mTLS, live (what \`npm start\` runs)

Run \`outrigger <command> --help\` for a command's options.
`;

const commands: Record<string, { run: (argv: string[]) => Promise<number>; help: string }> = {
  sidecar: { run: sidecarMain, help: SIDECAR_HELP },
  validate: { run: async (argv) => (await import('./validate.js')).validateMain(argv), help: VALIDATE_HELP },
  // The demo pulls in gRPC and the CA; a sidecar process never loads them (memory).
  demo: { run: async (argv) => (await import('./demo.js')).demoMain(argv), help: DEMO_HELP },
  control: { run: async (argv) => (await import('./control.js')).controlMain(argv), help: CONTROL_HELP },
  status: { run: async (argv) => (await import('./control.js')).statusMain(argv), help: STATUS_HELP },
  // jose and @peculiar/x509 load only for `certs`; certs prints its subcommands' help itself.
  certs: { run: async (argv) => (await import('./certs.js')).certsMain(argv), help: 'Usage: outrigger certs <subcommand> [options]; run `outrigger certs --help`\n' },
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP);
    return cmd ? 0 : 2;
  }
  const c = commands[cmd];
  if (!c) {
    process.stderr.write(`outrigger: unknown command ${JSON.stringify(cmd)}\n\n${HELP}`);
    return 2;
  }
  try {
    return await c.run(rest);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`outrigger ${cmd}: invalid configuration:\n${e.issues.map((i) => `  ${i.file ?? ''}${i.line ? `:${i.line}` : ''}${i.file ? ' ' : ''}${i.path}: ${i.message}`).join('\n')}\n`);
      return 2;
    }
    if (e instanceof UsageError || (e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || (e as { code?: string }).code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      process.stderr.write(`outrigger ${cmd}: ${errorMessage(e)}\n\n${c.help}`);
      return 2;
    }
    if (['CERT_LOAD_FAILED', 'KEY_MISMATCH', 'CA_DIR_INVALID'].includes((e as { code?: string }).code ?? '')) {
      process.stderr.write(`outrigger ${cmd}: ${errorMessage(e)}\n`);
      return 2;
    }
    process.stderr.write(`outrigger ${cmd}: ${errorMessage(e)}\n`);
    return 1;
  }
}

// Run only when executed (bin symlink, node dist/cli/main.js), not when imported by tests.
const isEntry = !!process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isEntry) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`outrigger: ${errorMessage(e)}\n`);
      process.exit(1);
    },
  );
}
