// Test tools: whether a foreign client (curl, openssl, h2load) is installed, condition waits, and `outrigger …` run in-process.
import { spawnSync } from 'node:child_process';

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Waits until cond() holds, checking every few ms; fails loudly after timeoutMs. A condition wait, not a sleep. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Asserts fn throws an error satisfying pred (a predicate or a message pattern). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function throwsWhere(t: { ok: (...a: any[]) => unknown; fail: (...a: any[]) => unknown }, fn: () => unknown, pred: ((e: unknown) => boolean) | RegExp, msg?: string): void {
  try {
    fn();
  } catch (e) {
    t.ok(pred instanceof RegExp ? pred.test((e as Error).message) : pred(e), msg ?? `threw ${(e as Error).message}`);
    return;
  }
  t.fail(msg ? `${msg}: did not throw` : 'did not throw');
}
