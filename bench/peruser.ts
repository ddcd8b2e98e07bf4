/**
 * Per-user upstream OAuth: what the identity → token lookup adds to a `tools/call` on a warm
 * connection. One upstream process (bench/peers/oauth-echo-upstream.ts) serves the same SDK MCP
 * server (Streamable HTTP, sessions, an `echo` tool) twice: behind the tests' OAuth upstream, which
 * verifies a bearer JWT on every request, and open. Measured in the same run:
 *   (a) directly against the open server,
 *   (b) directly against the JWT-checking server (a token obtained beforehand): (b) − (a) is the upstream's own JWT check,
 *   (c) through Gatehouse, as an `auth_type: none` upstream (the open server),
 *   (d) through Gatehouse, as an `auth_type: headers` upstream sending one fixed bearer JWT (the
 *       JWT-checking server; pooled connection, no lookup): the upstream works as in (e),
 *   (e) through Gatehouse, as an `auth_type: per_user_oauth` upstream, the caller's identity connected
 *       through the real flow, its connection warm: every call reads the identity's token row and
 *       opens it (AES-GCM) before using the identity's own connection.
 * (e) − (d) is the lookup alone (same upstream work); (e) − (c) is what the issue's "versus a `none`
 * upstream" reads, the upstream's JWT check included. Closed-loop clients at concurrency 1 and 16;
 * each target's time is split into rounds, interleaved (a b c d e, b c d e a, …) so that a slow
 * moment of the machine does not fall on one target only.
 *
 *   npm run bench:peruser          (BENCH_DURATION=10 s per target and concurrency, BENCH_ROUNDS=5)
 */
import { createHash, randomBytes } from 'node:crypto';
import { followAuthorization } from '../test/fixtures/oauth-upstream.js';
import { location, readForm, ConsentBrowser } from '../test/helpers/browser.js';
import { makeTempDir } from '../test/helpers/tmp.js';
import { connectLink } from '../test/upstreams/support.js';
import { createKey, gatewayToken, startGateway } from './gatehouse.js';
import { interleavedLoads, saveResult, startServer, table, type LoadResult, type LoadTarget, type ServerProcess } from './lib.js';

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 5));
const CONCURRENCY = [1, 16];
const TARGET_MS = 0.5;
const CALL = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { message: 'hello' } } });
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

interface Target extends LoadTarget {
  name: string;
}

const target = (name: string, url: string, headers: Record<string, string>): Target => ({ name, url, headers: { ...MCP_HEADERS, ...headers }, body: CALL });

/** The JSON-RPC message of a response, whether sent as JSON or as one SSE event. */
async function message(res: Response): Promise<{ result?: { content?: Array<{ text?: string }>; isError?: boolean }; error?: { message: string } }> {
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${res.status}: ${text.slice(0, 300)}`);
  const json = (res.headers.get('content-type') ?? '').includes('text/event-stream') ? /^data: (.*)$/m.exec(text)?.[1] : text;
  if (!json) throw new Error(`no message in: ${text.slice(0, 300)}`);
  return JSON.parse(json);
}

/** One benchmark call; returns the tool's text, throws if it did not run as the tool (a tool error included). */
async function echo(target: Target): Promise<string> {
  const reply = await message(await fetch(target.url, { method: 'POST', headers: target.headers, body: target.body }));
  const text = reply.result?.content?.[0]?.text;
  if (reply.error || reply.result?.isError || text !== 'hello') throw new Error(`${target.name}: ${JSON.stringify(reply).slice(0, 400)}`);
  return text;
}

/** An MCP session at a stateful server, for calling it directly: initialize, initialized; returns its headers. */
async function session(url: string, headers: Record<string, string> = {}): Promise<Record<string, string>> {
  const init = await fetch(url, {
    method: 'POST',
    headers: { ...MCP_HEADERS, ...headers },
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } }),
  });
  const id = init.headers.get('mcp-session-id');
  const reply = await message(init);
  if (!id || !reply.result) throw new Error(`initialize at ${url} failed: ${JSON.stringify(reply)}`);
  const sessionHeaders = { ...headers, 'mcp-session-id': id, 'mcp-protocol-version': '2025-06-18' };
  const initialized = await fetch(url, { method: 'POST', headers: { ...MCP_HEADERS, ...sessionHeaders }, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) });
  await initialized.body?.cancel();
  return sessionHeaders;
}

/** An access token of the upstream's authorization server for its MCP URL, as any client gets one: DCR, PKCE, resource. */
async function upstreamToken(issuer: string, resource: string): Promise<string> {
  const meta = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as Record<string, string>;
  const redirect = 'http://127.0.0.1:54321/callback';
  const registered = await fetch(meta.registration_endpoint!, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'bench', redirect_uris: [redirect], token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'] }),
  });
  const clientId = ((await registered.json()) as { client_id: string }).client_id;
  const verifier = randomBytes(32).toString('base64url');
  const authorize = new URL(meta.authorization_endpoint!);
  for (const [k, v] of Object.entries({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirect,
    scope: 'mcp:tools',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    resource,
  })) {
    authorize.searchParams.set(k, v);
  }
  const back = await followAuthorization({ issuer }, authorize.toString());
  const res = await fetch(meta.token_endpoint!, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: back.searchParams.get('code') ?? '', code_verifier: verifier, redirect_uri: redirect, client_id: clientId, resource }).toString(),
  });
  const token = ((await res.json()) as { access_token?: string }).access_token;
  if (!token) throw new Error(`no upstream token (${res.status})`);
  return token;
}

/** The identity behind `target` connects its upstream account: the call's connect link, the link's page, the upstream's sign-in, the callback. */
async function connect(target: Target, issuer: string): Promise<void> {
  const first = await message(await fetch(target.url, { method: 'POST', headers: target.headers, body: target.body }));
  if (!first.result?.isError) throw new Error(`expected a connect-first tool error, got ${JSON.stringify(first).slice(0, 300)}`);
  const browser = new ConsentBrowser();
  const page = await browser.get(connectLink(first.result.content?.[0]?.text ?? ''));
  const form = readForm(await page.text());
  const started = await browser.post(form.action, form.hidden);
  const callback = await followAuthorization({ issuer }, location(started, 303), browser);
  const done = await browser.get(callback.toString());
  if (done.status !== 200) throw new Error(`connecting failed: ${done.status} ${(await done.text()).slice(0, 300)}`);
}

async function main(): Promise<void> {
  const temp = makeTempDir('gatehouse-bench-');
  const servers: ServerProcess[] = [];
  try {
    const upstream = await startServer(['--import', 'tsx', 'bench/peers/oauth-echo-upstream.ts']);
    servers.push(upstream);
    const { url: jwtUrl, issuer, openUrl } = upstream.ready as { url: string; issuer: string; openUrl: string };
    const fixedToken = await upstreamToken(issuer, jwtUrl);

    const { server: gateway, url: gatewayUrl, config } = await startGateway(temp.dir, [
      `{ name: open, transport: http, url: "${openUrl}", auth_type: none }`,
      `{ name: fixed, transport: http, url: "${jwtUrl}", auth_type: headers, headers: { Authorization: "Bearer ${fixedToken}" } }`,
      `{ name: peruser, transport: http, url: "${jwtUrl}", auth_type: per_user_oauth }`,
    ]);
    servers.push(gateway);
    const key = await createKey(config, temp.dir);
    const bearer = async (name: string) => ({ authorization: `Bearer ${await gatewayToken(gatewayUrl, key, `${gatewayUrl}/mcp/${name}`)}` });

    const targets: Target[] = [
      target('(a) direct, open server', openUrl, await session(openUrl)),
      target('(b) direct, JWT-checking server', jwtUrl, await session(jwtUrl, { authorization: `Bearer ${fixedToken}` })),
      target('(c) Gatehouse → `none` upstream (open)', `${gatewayUrl}/mcp/open`, await bearer('open')),
      target('(d) Gatehouse → `headers` upstream (JWT-checking, fixed token)', `${gatewayUrl}/mcp/fixed`, await bearer('fixed')),
      target('(e) Gatehouse → `per_user_oauth` upstream (JWT-checking, own token)', `${gatewayUrl}/mcp/peruser`, await bearer('peruser')),
    ];
    const [, , none, fixed, perUser] = targets as [Target, Target, Target, Target, Target];
    await connect(perUser, issuer);
    // Every path answers the call as the tool itself, before and after the runs (a tool error is a 200 too).
    for (const t of targets) await echo(t);

    const results: Record<string, Record<number, LoadResult>> = {};
    for (const connections of CONCURRENCY) {
      const measured = await interleavedLoads(targets, connections, DURATION, ROUNDS, (round) =>
        process.stderr.write(`${connections} connection(s), round ${round + 1} of ${ROUNDS} ...\n`),
      );
      for (const t of targets) (results[t.name] ??= {})[connections] = measured.get(t)!;
    }
    for (const t of targets) await echo(t);

    const at = (t: Target, c: number) => results[t.name]![c]!;
    const diff = (x: Target, y: Target, c: number, p: 'p50' | 'p90' | 'p99') => at(x, c)[p] - at(y, c)[p];
    const signed = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(2)}`;
    const rows = targets.map((t) => {
      const cells: Array<string | number> = [t.name];
      for (const c of CONCURRENCY) cells.push(at(t, c).rps, at(t, c).p50, at(t, c).p90, at(t, c).p99);
      cells.push(CONCURRENCY.reduce((n, c) => n + at(t, c).failed, 0));
      return cells;
    });
    const header = ['path', ...CONCURRENCY.flatMap((c) => [`c=${c} calls/s`, 'p50 ms', 'p90 ms', 'p99 ms']), 'failed'];
    const [direct, directJwt] = targets as [Target, Target];
    const lookup = diff(perUser, fixed, 1, 'p50');
    const report = [
      `tools/call of an echo tool, ${DURATION} s per path and concurrency in ${ROUNDS} interleaved rounds, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
      '',
      table(header, rows),
      '',
      `The upstream's own JWT check, (b) − (a): ${signed(diff(directJwt, direct, 1, 'p50'))} ms at p50 (c=1).`,
      `per_user_oauth − none, (e) − (c): ${signed(diff(perUser, none, 1, 'p50'))} ms at p50, ${signed(diff(perUser, none, 1, 'p90'))} at p90, ${signed(diff(perUser, none, 1, 'p99'))} at p99 (c=1; includes the upstream's JWT check).`,
      `per_user_oauth − headers, (e) − (d), the identity → token lookup alone: ${signed(lookup)} ms at p50, ` +
        `${signed(diff(perUser, fixed, 1, 'p90'))} at p90, ${signed(diff(perUser, fixed, 1, 'p99'))} at p99 (c=1); ` +
        `${signed(diff(perUser, fixed, 16, 'p50'))} ms at p50 and ${Math.round((at(perUser, 16).rps / at(fixed, 16).rps) * 100)}% of the throughput at c=16. ` +
        `Target ≤ ${TARGET_MS} ms at p50: ${lookup <= TARGET_MS ? 'met' : 'NOT met'}.`,
    ].join('\n');
    console.log(report);
    saveResult('peruser', { duration: DURATION, rounds: ROUNDS, results });
  } finally {
    for (const s of servers.reverse()) await s.stop();
    temp.remove();
  }
}

await main();
