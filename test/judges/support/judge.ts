import { spawn, type ChildProcessByStdio, type SpawnOptions } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { TestContext } from 'node:test';

/** Lets the conformance tool load on Node 20 (it imports fs.globSync for a command we do not use). */
export const CONFORMANCE_SHIM = './test/judges/support/globsync-shim.mjs';
export const CONFORMANCE = 'node_modules/@modelcontextprotocol/conformance/dist/index.js';

/** One check of a conformance scenario, as its checks.json records it. */
export interface Check {
  id: string;
  status: string;
  description?: string;
  errorMessage?: string;
}

/** One line per check that is a FAILURE or a WARNING: scenario, id, status and why. */
export function failingChecks(results: Array<{ scenario: string; checks: Check[] }>): string[] {
  return results.flatMap(({ scenario, checks }) =>
    checks
      .filter((c) => c.status === 'FAILURE' || c.status === 'WARNING')
      .map((c) => `  ${scenario} ${c.id} ${c.status}: ${(c.errorMessage ?? c.description ?? '').slice(0, 300)}`),
  );
}

export interface Judge {
  child: ChildProcessByStdio<Writable | null, Readable, Readable>;
  /** Everything the program wrote so far. */
  readonly stdout: string;
  readonly stderr: string;
  /** Whether the deadline killed it. */
  readonly timedOut: boolean;
  /** Resolves when it exits (the deadline included). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Kills it (and its process group when it was started `detached`). */
  kill(): void;
}

/**
 * Starts an outside program for a test, its output kept, killed when it runs past `timeoutMs` or
 * when the test ends. `detached` starts it in its own process group, all killed together.
 */
export function spawnJudge(
  t: TestContext,
  command: string,
  args: string[],
  options: Pick<SpawnOptions, 'cwd' | 'env' | 'detached'> & { stdin?: 'ignore' | 'pipe'; timeoutMs: number },
): Judge {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    detached: options.detached ?? false,
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
  }) as ChildProcessByStdio<Writable | null, Readable, Readable>;
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const kill = () => {
    try {
      if (options.detached) process.kill(-child.pid!, 'SIGKILL');
      else child.kill('SIGKILL');
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, options.timeoutMs);
  void exited.then(() => clearTimeout(timer));
  t.after(() => {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) kill();
  });
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    get timedOut() {
      return timedOut;
    },
    exited,
    kill,
  };
}
