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
 *   npm run bench:toolcall          (BENCH_DURATION=10 by default)
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConsentBrowser } from '../test/helpers/browser.js';
import { runCli } from '../test/helpers/process.js';
import { makeTempDir } from '../test/helpers/tmp.js';
import { closedLoop, rssMiB, saveResult, startServer, table, type LoadResult, type ServerProcess } from './lib.js';

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const IDLE_CLIENTS = 1000;
const CALL = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { message: 'hello' } } });

interface Target {
  name: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

type Measurement = LoadResult;

async function measure(target: Target, connections: number): Promise<Measurement> {
  const request = {
    url: target.url,
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...target.headers },
    body: target.body,
  };
  await closedLoop(request, connections, 1); // warm-up: JIT, pooled connections
  return closedLoop(request, connections, DURATION);
}

/** A gateway access token for /mcp/echo, through the real flow: key, registration, consent, code, token. */
async function accessToken(gateway: string, config: string, dataDir: string): Promise<string> {
  const key = (await runCli(['keys', 'create', '--name', 'bench', '--config', config, '--data', dataDir])).stdout.trim();
  const redirect = 'http://127.0.0.1:54321/callback';
  const registered = await fetch(`${gateway}/api/oauth/per-user/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'bench', redirect_uris: [redirect] }),
  });
  const clientId = ((await registered.json()) as { client_id: string }).client_id;
  const verifier = randomBytes(32).toString('base64url');
  const authorize = new URL(`${gateway}/api/oauth/per-user/authorize`);
  for (const [k, v] of Object.entries({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirect,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    resource: `${gateway}/mcp/echo`,
  })) {
    authorize.searchParams.set(k, v);
  }
  const back = await new ConsentBrowser().authorize(authorize.toString(), key);
  const res = await fetch(`${gateway}/api/oauth/per-user/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: back.searchParams.get('code')!,
      code_verifier: verifier,
      redirect_uri: redirect,
      client_id: clientId,
    }).toString(),
  });
  return ((await res.json()) as { access_token: string }).access_token;
}

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
    const config = path.join(temp.dir, 'gatehouse.yaml');
    writeFileSync(
      config,
      [
        'server: { host: 127.0.0.1 }',
        'oauth_server:',
        '  enabled: true',
        '  access_token_ttl: 3600',
        '  rate_limits: { register: { max: 0, window: 60 }, authorize: { max: 0, window: 60 }, token: { max: 0, window: 60 } }',
        'upstreams:',
        `  - { name: echo, transport: http, url: "${upstreamUrl}", auth_type: none }`,
        '',
      ].join('\n'),
    );
    const gateway = await startServer(['dist/cli.js', 'serve', '--config', config, '--data', temp.dir, '--port', '0']);
    servers.push(gateway);
    const gatewayUrl = gateway.ready.url!;
    const token = await accessToken(gatewayUrl, config, temp.dir);
    const raw = await startServer(['--import', 'tsx', 'bench/peers/raw-proxy.ts', upstreamUrl]);
    servers.push(raw);
    const naive = await startServer(['--import', 'tsx', 'bench/peers/naive-proxy.ts', upstreamUrl]);
    servers.push(naive);

    const targets: Target[] = [
      { name: '(a) direct to the upstream', url: upstreamUrl, headers: {}, body: CALL },
      { name: '(b) Gatehouse (JWT, SQLite, pooled)', url: `${gatewayUrl}/mcp/echo`, headers: { authorization: `Bearer ${token}` }, body: CALL },
      { name: '(c) raw pass-through proxy (floor)', url: raw.ready.url!, headers: {}, body: CALL },
      { name: '(d) naive SDK proxy', url: naive.ready.url!, headers: {}, body: CALL },
    ];
    // The gateway's tool is the same tool: check once that it answers as the others do.
    const check = await fetch(targets[1]!.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}` }, body: CALL });
    if (check.status !== 200) throw new Error(`the gateway refused the benchmark call: ${check.status} ${await check.text()}`);

    const results: Record<string, Record<number, Measurement>> = {};
    for (const connections of [1, 16]) {
      for (const target of targets) {
        process.stderr.write(`measuring ${target.name}, ${connections} connection(s) ...\n`);
        (results[target.name] ??= {})[connections] = await measure(target, connections);
      }
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
      `tools/call of an echo tool, ${DURATION} s per measurement, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
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
