// Runs `outrigger …` in this test's process, with stdout and stderr captured.

/**
 * `outrigger …` in this process through main() (the command table and its lazy import included), with
 * stdout/stderr captured: a spawned process per case costs seconds of TypeScript loading. No assertion may
 * run while captured (tap writes its output to stdout).
 */
export async function runCli(args: string[], o: { cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const { main } = await import('../../src/cli/main.js');
  const out = { stdout: '', stderr: '' };
  const [ow, ew, cwd] = [process.stdout.write, process.stderr.write, process.cwd()];
  const capture = (k: 'stdout' | 'stderr') => ((c: string | Uint8Array) => ((out[k] += typeof c === 'string' ? c : Buffer.from(c).toString()), true)) as typeof process.stdout.write;
  process.stdout.write = capture('stdout');
  process.stderr.write = capture('stderr');
  try {
    if (o.cwd) process.chdir(o.cwd);
    const code = await main(args);
    return { code, ...out };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
    process.chdir(cwd);
  }
}

