/**
 * Registration throughput: RFC 7591 registrations per second and p50/p99 latency with 16
 * connections for 10 s, against
 *   - Gatehouse (the built gateway, SQLite with synchronous=FULL: every registration is on disk
 *     before its 201; request logging on; rate limit off),
 *   - the MCP TypeScript SDK's reference `mcpAuthRouter` (Express, in-memory store),
 *   - oidc-provider 9 with registration enabled (Koa, in-memory LRU adapter),
 * each started here, alone on the machine while it is measured. Then each is topped up to 100,000
 * registrations and its resident memory read. Prints one table, ratios relative to Gatehouse.
 *
 *   npm run bench:register            (BENCH_DURATION=10 BENCH_CONNECTIONS=16 by default)
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import BetterSqlite3 from 'better-sqlite3';
import { makeTempDir } from '../test/helpers/tmp.js';
import { rssMiB, saveResult, startServer, table, type ServerProcess } from './lib.js';
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const MEMORY_AT = 100_000;

/** The seed's example registration (a public client, as Claude Code sends it). */
const BODY = JSON.stringify({
  client_name: 'Claude Code',
  redirect_uris: ['http://localhost:54321/callback'],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
});

interface Target {
  name: string;
  start(): Promise<{ server: ServerProcess; url: string; registerPath: string }>;
  /** Rows actually stored, where that can be checked from outside. */
  persisted?: () => number;
}

interface Row {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  ok: number;
  failed: number;
  rssMiB: number;
  persisted?: number;
}

async function load(url: string, options: { duration?: number; amount?: number }): Promise<autocannon.Result> {
  return autocannon({
    url,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: BODY,
    connections: CONNECTIONS,
    pipelining: 1,
    ...(options.amount !== undefined ? { amount: options.amount } : { duration: options.duration ?? DURATION }),
  });
}

async function measure(target: Target): Promise<Row> {
  const { server, url, registerPath } = await target.start();
  try {
    const endpoint = url + registerPath;
    await load(endpoint, { duration: 1 }); // warm-up: JIT, connection pools
    const result = await load(endpoint, { duration: DURATION });
    // Top up to MEMORY_AT registrations in all (warm-up included), then read the resident set.
    const soFar = await countOk(target, result);
    if (soFar < MEMORY_AT) await load(endpoint, { amount: MEMORY_AT - soFar });
    const row: Row = {
      name: target.name,
      rps: Math.round(result.requests.average),
      p50: result.latency.p50,
      p99: result.latency.p99,
      ok: result['2xx'],
      failed: result.non2xx + result.errors + result.timeouts,
      rssMiB: rssMiB(server.child.pid!),
    };
    if (target.persisted) row.persisted = target.persisted();
    return row;
  } finally {
    await server.stop();
  }
}

/** Registrations made so far: exact where the store can be read, else warm-up + measured run. */
async function countOk(target: Target, result: autocannon.Result): Promise<number> {
  return target.persisted ? target.persisted() : result['2xx'] + Math.round(result.requests.average);
}

async function main(): Promise<void> {
  const temp = makeTempDir('gatehouse-bench-');
  const config = path.join(temp.dir, 'gatehouse.yaml');
  writeFileSync(
    config,
    [
      'server: { host: 127.0.0.1 }',
      'oauth_server: { rate_limits: { register: { max: 0, window: 60 } } }',
      'upstreams:',
      '  - { name: notion, transport: http, url: "https://mcp.notion.com/mcp", auth_type: per_user_oauth }',
      '',
    ].join('\n'),
  );
  const dbFile = path.join(temp.dir, 'gatehouse.db');
  const countRows = () => {
    const db = new BetterSqlite3(dbFile, { readonly: true });
    try {
      return (db.prepare('SELECT count(*) AS n FROM oauth_clients').get() as { n: number }).n;
    } finally {
      db.close();
    }
  };

  const targets: Target[] = [
    {
      name: 'Gatehouse (SQLite, durable)',
      async start() {
        const server = await startServer(['dist/cli.js', 'serve', '--config', config, '--data', temp.dir, '--port', '0']);
        return { server, url: server.ready.url!, registerPath: '/api/oauth/per-user/register' };
      },
      persisted: countRows,
    },
    {
      name: 'MCP SDK mcpAuthRouter (in-memory)',
      async start() {
        const server = await startServer(['--import', 'tsx', 'bench/peers/sdk-auth-router.ts']);
        return { server, url: server.ready.url!, registerPath: server.ready.register! };
      },
    },
    {
      name: 'oidc-provider 9 (in-memory)',
      async start() {
        const server = await startServer(['--import', 'tsx', 'bench/peers/oidc-provider.ts']);
        return { server, url: server.ready.url!, registerPath: server.ready.register! };
      },
    },
  ];

  // BENCH_ONLY=gatehouse measures just that one (for quick iterations; no comparison).
  const only = process.env.BENCH_ONLY?.toLowerCase();
  const rows: Row[] = [];
  try {
    for (const target of targets.filter((t) => !only || t.name.toLowerCase().startsWith(only))) {
      process.stderr.write(`measuring ${target.name} ...\n`);
      rows.push(await measure(target));
    }
  } finally {
    temp.remove();
  }

  const gatehouse = rows[0]!;
  const fastestPeer = Math.max(...rows.slice(1).map((r) => r.rps));
  const report = [
    `Registrations: ${CONNECTIONS} connections, ${DURATION} s, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
    '',
    table(
      ['server', 'registrations/s', 'p50 ms', 'p99 ms', 'failed', 'RSS after 100k', 'Gatehouse ÷ this'],
      rows.map((r) => [r.name, r.rps, r.p50, r.p99, r.failed, `${r.rssMiB} MiB`, `${(gatehouse.rps / r.rps).toFixed(2)}×`]),
    ),
    '',
    `Gatehouse stored ${gatehouse.persisted} registrations (every 201 is a row on disk).`,
    `Target (Gatehouse ≥ the faster in-memory peer): ${gatehouse.rps >= fastestPeer ? 'met' : 'NOT met'} ` +
      `(${(gatehouse.rps / fastestPeer).toFixed(2)}× the faster peer).`,
  ].join('\n');
  console.log(report);
  saveResult('register', { rows });
}

await main();
