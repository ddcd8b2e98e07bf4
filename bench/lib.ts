import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

/** Shared by the benchmarks: starting servers as processes, reading their memory, reporting. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface ServerProcess {
  child: ChildProcess;
  /** The JSON line the server printed when it was ready. */
  ready: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * Starts `node <args>` and waits for the JSON line that says where it listens (a line with `url`
 * and either `register` or the gateway's "gatehouse listening" message). Its standard output goes
 * to a file, as a service's log would, read here only until that line: a pipe would wake this
 * process (the load generator) for every log line and slow the measurement of what it drives.
 */
export async function startServer(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-log-'));
  const logFile = path.join(dir, 'stdout.log');
  const out = openSync(logFile, 'w');
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', out, process.env.BENCH_STDERR ? 'inherit' : 'ignore'] });
  closeSync(out);
  const removeLog = () => rmSync(dir, { recursive: true, force: true });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = performance.now() + 30_000;
  try {
    for (let offset = 0; performance.now() < deadline; ) {
      const text = readFileSync(logFile);
      const end = text.lastIndexOf(10); // the last complete line
      const complete = end >= offset ? text.subarray(offset, end).toString('utf8').split('\n') : [];
      offset = Math.max(offset, end + 1);
      for (const raw of complete) {
        let line: Record<string, string>;
        try {
          line = JSON.parse(raw) as Record<string, string>;
        } catch {
          continue;
        }
        if (line.url && (line.ready === 'true' || line.register || line.msg === 'gatehouse listening')) {
          return {
            child,
            ready: line,
            async stop() {
              if (child.exitCode === null && child.signalCode === null) {
                child.kill('SIGTERM');
                await exited;
              }
              removeLog();
            },
          };
        }
      }
      if (child.exitCode !== null || child.signalCode !== null) break;
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20))]);
    }
  } catch (err) {
    child.kill('SIGKILL');
    removeLog();
    throw err;
  }
  child.kill('SIGKILL');
  removeLog();
  throw new Error(`${args.join(' ')} exited or did not listen within 30 s`);
}

/** Resident set size of a process, in MiB (Linux). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round((kb / 1024) * 10) / 10;
}

/** The p-th percentile (0–100) of latencies in ms, rounded to 0.01. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Math.round(sorted[Math.max(i, 0)]! * 100) / 100;
}

export function saveResult(name: string, data: unknown): void {
  mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(path.join(ROOT, 'bench', 'results', `${name}.json`), JSON.stringify({ date: new Date().toISOString(), ...(data as object) }, null, 2));
}

/** A markdown table. */
export function table(header: string[], rows: Array<Array<string | number>>): string {
  return [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** One POST, repeated: where, with which headers and body. */
export interface LoadTarget {
  url: string;
  headers: Record<string, string>;
  body: string;
}

export interface LoadResult {
  rps: number;
  /** Latency percentiles in milliseconds, to 0.01 ms. */
  p50: number;
  p90: number;
  p99: number;
  failed: number;
}

/** What one closed-loop load measured: every latency in ms (unsorted), failures, and how long it ran. */
export interface LoadSamples {
  latencies: number[];
  failed: number;
  seconds: number;
}

/**
 * A closed-loop load: `connections` clients, each sending one request and waiting for its answer
 * before the next, over keep-alive connections, for `seconds`. Latency is measured per request
 * with the high-resolution clock (autocannon rounds to whole milliseconds, too coarse for a hop
 * that adds half of one); kept raw, so that several slices of one target can be summarized together.
 */
async function closedLoopSamples(
  target: LoadTarget,
  connections: number,
  seconds: number,
): Promise<LoadSamples> {
  const url = new URL(target.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const headers = { ...target.headers, 'content-length': String(Buffer.byteLength(target.body)) };
  const once = () =>
    new Promise<boolean>((resolve) => {
      const req = http.request(url, { method: 'POST', headers, agent }, (res) => {
        res.resume();
        res.once('end', () => resolve((res.statusCode ?? 0) < 300));
      });
      req.once('error', () => resolve(false));
      req.end(target.body);
    });
  const latencies: number[] = [];
  let failed = 0;
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        const ok = await once();
        latencies.push(performance.now() - t0);
        if (!ok) failed++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  return { latencies, failed, seconds: elapsed };
}

/** Throughput and latency percentiles of one or more slices of the same load. */
export function summarize(slices: LoadSamples[]): LoadResult {
  const latencies = slices.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const elapsed = slices.reduce((sum, s) => sum + s.seconds, 0);
  const failed = slices.reduce((sum, s) => sum + s.failed, 0);
  return { rps: Math.round(latencies.length / elapsed), p50: percentile(latencies, 50), p90: percentile(latencies, 90), p99: percentile(latencies, 99), failed };
}

/**
 * Closed-loop loads of several targets at `connections` each, compared fairly on a shared machine:
 * after a 1 s warm-up of each, every target's `seconds` are split into `rounds` slices run in
 * rotating order (a b c, b c a, c a b, …), so that a slow moment of the machine does not fall on
 * one target only.
 */
export async function interleavedLoads<T extends LoadTarget>(
  targets: T[],
  connections: number,
  seconds: number,
  rounds: number,
  progress: (round: number) => void = () => {},
): Promise<Map<T, LoadResult>> {
  const slices = new Map<T, LoadSamples[]>(targets.map((t) => [t, []]));
  for (const t of targets) await closedLoopSamples(t, connections, 1);
  for (let round = 0; round < rounds; round++) {
    progress(round);
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(i + round) % targets.length]!;
      slices.get(t)!.push(await closedLoopSamples(t, connections, seconds / rounds));
    }
  }
  return new Map(targets.map((t) => [t, summarize(slices.get(t)!)]));
}
