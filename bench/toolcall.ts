/**
 * Tool calls: `tools/call` of a trivial echo tool on an MCP server over Streamable HTTP
 * (stateless), measured in the same run
 *   (a) directly against the upstream,
 *   (b) through Gatehouse (JWT authentication, SQLite, warm pooled upstream connection, request log on),
 *   (c) through a raw pass-through proxy (node:http, keep-alive agent, no parsing, no auth): the floor for any Node hop,
 *   (d) through a naive proxy built from the SDK's own server and client classes,
 * at concurrency 1 and 16: calls/s, p50/p99, and each proxy's added latency over (a). Then the
 * gateway's resident memory with 1,000 idle connected clients (each holding a GET event stream).
 *
 *   npm run bench:toolcall          (BENCH_DURATION=10 s per path and concurrency, BENCH_ROUNDS=5)
 */
import http from 'node:http';
import { makeTempDir } from '../test/helpers/tmp.js';
import { createKey, gatewayToken, startGateway } from './gatehouse.js';
import { interleavedLoads, rssMiB, saveResult, startServer, table, type LoadResult, type LoadTarget, type ServerProcess } from './lib.js';

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 5));
const IDLE_CLIENTS = 1000;
const CALL = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { message: 'hello' } } });

interface Target extends LoadTarget {
  name: string;
}

type Measurement = LoadResult;

const target = (name: string, url: string, headers: Record<string, string> = {}): Target => ({
  name,
  url,
  headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
  body: CALL,
});

/** Opens `count` GET event streams (idle connected clients); returns how to close them. */
async function idleClients(url: string, token: string, count: number): Promise<() => void> {
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const requests: http.ClientRequest[] = [];
  await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<void>((resolve, reject) => {
          const req = http.get(url, { agent, headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } }, (res) => {
            if (res.statusCode !== 200) reject(new Error(`stream refused: ${res.statusCode}`));
            res.once('data', () => resolve());
          });
          req.on('error', reject);
          requests.push(req);
        }),
    ),
  );
  return () => {
    for (const r of requests) r.destroy();
  };
}

async function main(): Promise<void> {
  const temp = makeTempDir('gatehouse-bench-');
  const servers: ServerProcess[] = [];
  try {
    const upstream = await startServer(['--import', 'tsx', 'bench/peers/echo-upstream.ts']);
    servers.push(upstream);
    const upstreamUrl = upstream.ready.url!;
    const { server: gateway, url: gatewayUrl, config } = await startGateway(temp.dir, [`{ name: echo, transport: http, url: "${upstreamUrl}", auth_type: none }`]);
    servers.push(gateway);
    const token = await gatewayToken(gatewayUrl, await createKey(config, temp.dir), `${gatewayUrl}/mcp/echo`);
    const raw = await startServer(['--import', 'tsx', 'bench/peers/raw-proxy.ts', upstreamUrl]);
    servers.push(raw);
    const naive = await startServer(['--import', 'tsx', 'bench/peers/naive-proxy.ts', upstreamUrl]);
    servers.push(naive);

    const targets: Target[] = [
      target('(a) direct to the upstream', upstreamUrl),
      target('(b) Gatehouse (JWT, SQLite, pooled)', `${gatewayUrl}/mcp/echo`, { authorization: `Bearer ${token}` }),
      target('(c) raw pass-through proxy (floor)', raw.ready.url!),
      target('(d) naive SDK proxy', naive.ready.url!),
    ];
    // The gateway's tool is the same tool: check once that it answers as the others do.
    const check = await fetch(targets[1]!.url, { method: 'POST', headers: targets[1]!.headers, body: CALL });
    if (check.status !== 200) throw new Error(`the gateway refused the benchmark call: ${check.status} ${await check.text()}`);

    const results: Record<string, Record<number, Measurement>> = {};
    for (const connections of [1, 16]) {
      const measured = await interleavedLoads(targets, connections, DURATION, ROUNDS, (round) =>
        process.stderr.write(`${connections} connection(s), round ${round + 1} of ${ROUNDS} ...\n`),
      );
      for (const t of targets) (results[t.name] ??= {})[connections] = measured.get(t)!;
    }

    const gatewayPid = gateway.child.pid!;
    const rssBefore = rssMiB(gatewayPid);
    const closeIdle = await idleClients(`${gatewayUrl}/mcp/echo`, token, IDLE_CLIENTS);
    const rssIdle = rssMiB(gatewayPid);
    closeIdle();

    const direct = results[targets[0]!.name]!;
    const rows = targets.map((t) => {
      const r = results[t.name]!;
      const c1 = r[1]!;
      const c16 = r[16]!;
      const added = t === targets[0] ? '—' : `+${(c1.p50 - direct[1]!.p50).toFixed(2)}`;
      const share = t === targets[0] ? '100%' : `${Math.round((c16.rps / direct[16]!.rps) * 100)}%`;
      return [t.name, c1.rps, c1.p50, c1.p99, added, c16.rps, c16.p50, c16.p99, share, c1.failed + c16.failed];
    });
    const g = results[targets[1]!.name]!;
    const floor = results[targets[2]!.name]!;
    const naiveR = results[targets[3]!.name]!;
    const gatewayAdded = g[1]!.p50 - direct[1]!.p50;
    const floorAdded = floor[1]!.p50 - direct[1]!.p50;
    const report = [
      `tools/call of an echo tool, ${DURATION} s per path and concurrency in ${ROUNDS} interleaved rounds, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
      '',
      table(['path', 'c=1 calls/s', 'p50 ms', 'p99 ms', 'added p50 ms', 'c=16 calls/s', 'p50 ms', 'p99 ms', 'of direct', 'failed'], rows),
      '',
      `Gatehouse adds ${gatewayAdded.toFixed(2)} ms at p50 (c=1), the floor ${floorAdded.toFixed(2)} ms: ` +
        `${(gatewayAdded / Math.max(floorAdded, 0.01)).toFixed(2)}× the floor's (target ≤ 2×).`,
      `At c=16 Gatehouse keeps ${Math.round((g[16]!.rps / direct[16]!.rps) * 100)}% of direct throughput (target ≥ 75%) ` +
        `and does ${(g[16]!.rps / naiveR[16]!.rps).toFixed(2)}× the naive proxy (target ≥ 1.5×).`,
      `Gatehouse resident memory: ${rssBefore} MiB after the runs, ${rssIdle} MiB with ${IDLE_CLIENTS} idle connected clients ` +
        `(+${(rssIdle - rssBefore).toFixed(1)} MiB).`,
    ].join('\n');
    console.log(report);
    saveResult('toolcall', { results, rssBefore, rssIdle });
  } finally {
    for (const s of servers.reverse()) await s.stop();
    temp.remove();
  }
}

await main();
