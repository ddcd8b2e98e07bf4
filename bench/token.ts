/**
 * Token endpoint: refresh-grant throughput (with rotation, public client) and p50/p99 latency,
 * and full authorization-code flows per second (authorize → sign-in/consent → code → token),
 * for Gatehouse (the built gateway, SQLite with synchronous=FULL, request log on, rate limits off)
 * and oidc-provider 9 (in-memory adapter, auto-approved interactions), measured in the same run,
 * each server alone in its own process.
 *
 *   npm run bench:token            (BENCH_DURATION=10 BENCH_CONNECTIONS=16 by default)
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import { ConsentBrowser } from '../test/helpers/browser.js';
import { runCli } from '../test/helpers/process.js';
import { makeTempDir } from '../test/helpers/tmp.js';
import { percentile, saveResult, startServer, table, type ServerProcess } from './lib.js';

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const REDIRECT_URI = 'http://127.0.0.1:54321/callback';

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

interface Peer {
  name: string;
  server: ServerProcess;
  tokenUrl: string;
  clientId: string;
  /** One whole authorization-code flow, as a user and client would do it; returns the refresh token. */
  flow(): Promise<string>;
}

async function exchange(tokenUrl: string, params: Record<string, string>): Promise<{ refresh_token: string; access_token: string }> {
  const res = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params).toString(),
  });
  const body = (await res.json()) as { refresh_token: string; access_token: string; error?: string };
  if (res.status !== 200 || !body.refresh_token) throw new Error(`token request failed: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

async function startGatehouse(dataDir: string): Promise<Peer> {
  const config = path.join(dataDir, 'gatehouse.yaml');
  writeFileSync(
    config,
    [
      'server: { host: 127.0.0.1 }',
      'oauth_server:',
      '  rate_limits:',
      '    register: { max: 0, window: 60 }',
      '    authorize: { max: 0, window: 60 }',
      '    token: { max: 0, window: 60 }',
      'upstreams:',
      '  - { name: notion, transport: http, url: "https://mcp.notion.com/mcp", auth_type: per_user_oauth }',
      '',
    ].join('\n'),
  );
  const key = (await runCli(['keys', 'create', '--name', 'bench', '--config', config, '--data', dataDir])).stdout.trim();
  const server = await startServer(['dist/cli.js', 'serve', '--config', config, '--data', dataDir, '--port', '0']);
  const url = server.ready.url!;
  const registered = await fetch(`${url}/api/oauth/per-user/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'bench', redirect_uris: [REDIRECT_URI], grant_types: ['authorization_code', 'refresh_token'] }),
  });
  const clientId = ((await registered.json()) as { client_id: string }).client_id;
  const tokenUrl = `${url}/api/oauth/per-user/token`;
  return {
    name: 'Gatehouse (SQLite, durable)',
    server,
    tokenUrl,
    clientId,
    async flow() {
      const { verifier, challenge } = pkce();
      const authorize = new URL(`${url}/api/oauth/per-user/authorize`);
      for (const [k, v] of Object.entries({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: REDIRECT_URI,
        code_challenge: challenge,
        code_challenge_method: 'S256',
        state: 'bench',
      })) {
        authorize.searchParams.set(k, v);
      }
      const back = await new ConsentBrowser().authorize(authorize.toString(), key);
      const code = back.searchParams.get('code')!;
      const tokens = await exchange(tokenUrl, {
        grant_type: 'authorization_code',
        code,
        code_verifier: verifier,
        redirect_uri: REDIRECT_URI,
        client_id: clientId,
      });
      return tokens.refresh_token;
    },
  };
}

async function startOidcProvider(): Promise<Peer> {
  const server = await startServer(['--import', 'tsx', 'bench/peers/oidc-provider-auth.ts']);
  const { url, client_id: clientId } = server.ready as { url: string; client_id: string };
  const tokenUrl = `${url}/token`;
  return {
    name: 'oidc-provider 9 (in-memory)',
    server,
    tokenUrl,
    clientId,
    async flow() {
      const { verifier, challenge } = pkce();
      const authorize = new URL(`${url}/auth`);
      for (const [k, v] of Object.entries({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: REDIRECT_URI,
        code_challenge: challenge,
        code_challenge_method: 'S256',
        scope: 'openid',
        state: 'bench',
      })) {
        authorize.searchParams.set(k, v);
      }
      // Its browser part: redirects (with cookies) through the auto-approved interaction.
      const browser = new ConsentBrowser();
      let next = authorize.toString();
      for (let hops = 0; hops < 10 && !next.startsWith(REDIRECT_URI); hops++) {
        const res = await browser.get(next);
        const location = res.headers.get('location');
        await res.arrayBuffer();
        if (!location) throw new Error(`oidc-provider flow stopped at ${res.status}`);
        next = new URL(location, url).toString();
      }
      const code = new URL(next).searchParams.get('code');
      if (!code) throw new Error(`no code in ${next}`);
      const tokens = await exchange(tokenUrl, {
        grant_type: 'authorization_code',
        code,
        code_verifier: verifier,
        redirect_uri: REDIRECT_URI,
        client_id: clientId,
      });
      return tokens.refresh_token;
    },
  };
}

interface Row {
  name: string;
  flowsPerSecond: number;
  flowP50: number;
  flowP99: number;
  refreshPerSecond: number;
  refreshP50: number;
  refreshP99: number;
  refreshFailed: number;
}

/** `CONNECTIONS` concurrent users each completing flows back to back for `DURATION` seconds. */
async function measureFlows(peer: Peer, pool: string[]): Promise<{ perSecond: number; p50: number; p99: number }> {
  const latencies: number[] = [];
  const deadline = performance.now() + DURATION * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        pool.push(await peer.flow());
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { perSecond: Math.round(latencies.length / seconds), p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

/**
 * Refresh grants, each with a live token: requests take a token from the pool and give back the
 * one they receive, so every request rotates a token that is current.
 */
async function measureRefresh(peer: Peer, pool: string[]): Promise<autocannon.Result> {
  return autocannon({
    url: peer.tokenUrl,
    connections: CONNECTIONS,
    duration: DURATION,
    pipelining: 1,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        setupRequest: (request) => {
          const token = pool.shift();
          if (!token) throw new Error('the refresh token pool ran dry');
          return { ...request, body: `grant_type=refresh_token&refresh_token=${token}&client_id=${encodeURIComponent(peer.clientId)}` };
        },
        onResponse: (status, body) => {
          if (status === 200) pool.push((JSON.parse(body) as { refresh_token: string }).refresh_token);
        },
      },
    ],
  });
}

async function measure(start: () => Promise<Peer>): Promise<Row> {
  const peer = await start();
  try {
    const pool: string[] = [];
    for (let i = 0; i < 20; i++) pool.push(await peer.flow()); // warm-up
    const flows = await measureFlows(peer, pool);
    const refresh = await measureRefresh(peer, pool);
    return {
      name: peer.name,
      flowsPerSecond: flows.perSecond,
      flowP50: flows.p50,
      flowP99: flows.p99,
      refreshPerSecond: Math.round(refresh.requests.average),
      refreshP50: refresh.latency.p50,
      refreshP99: refresh.latency.p99,
      refreshFailed: refresh.non2xx + refresh.errors + refresh.timeouts,
    };
  } finally {
    await peer.server.stop();
  }
}

async function main(): Promise<void> {
  const temp = makeTempDir('gatehouse-bench-');
  const rows: Row[] = [];
  try {
    process.stderr.write('measuring Gatehouse ...\n');
    rows.push(await measure(() => startGatehouse(temp.dir)));
    if (process.env.BENCH_ONLY?.toLowerCase() !== 'gatehouse') {
      process.stderr.write('measuring oidc-provider ...\n');
      rows.push(await measure(startOidcProvider));
    }
  } finally {
    temp.remove();
  }
  const [gatehouse, peer] = rows as [Row, Row | undefined];
  const lines = [
    `Token endpoint: ${CONNECTIONS} connections, ${DURATION} s per measurement, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
    '',
    table(
      ['server', 'refresh grants/s', 'p50 ms', 'p99 ms', 'failed', 'full flows/s', 'flow p50 ms', 'flow p99 ms'],
      rows.map((r) => [r.name, r.refreshPerSecond, r.refreshP50, r.refreshP99, r.refreshFailed, r.flowsPerSecond, r.flowP50, r.flowP99]),
    ),
  ];
  if (peer) {
    const ratio = gatehouse.refreshPerSecond / peer.refreshPerSecond;
    lines.push(
      '',
      `Refresh throughput: Gatehouse ${ratio.toFixed(2)}× oidc-provider (target ≥ 2×: ${ratio >= 2 ? 'met' : 'NOT met'}); ` +
        `full flows ${(gatehouse.flowsPerSecond / peer.flowsPerSecond).toFixed(2)}×.`,
    );
  }
  console.log(lines.join('\n'));
  saveResult('token', { rows });
}

await main();
