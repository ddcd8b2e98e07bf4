/**
 * The MCP client that `conformance client --suite auth` judges: a real Gatehouse, started in this
 * process, whose only upstream is the suite's mock MCP server (`auth_type: per_user_oauth`), and a
 * user of it who calls that server's tool through the gateway and connects their account the way a
 * person would — connect link from the tool error, the gateway's connect page, the upstream's
 * authorization server, the gateway's callback. What the suite sees is the gateway acting as OAuth
 * client: discovery, registration (configured, Client ID Metadata Document or DCR), PKCE,
 * `resource`, scopes, token endpoint authentication, step-up and its retry limit.
 *
 *   node --import tsx test/judges/support/conformance-client-driver.ts <mcp server url>
 *
 * The tool appends the server URL as the last argument and sets MCP_CONFORMANCE_SCENARIO (and, for
 * auth/pre-registration, MCP_CONFORMANCE_CONTEXT with the client credentials). The gateway's public
 * URL is https://conformance-test.local (auth/basic-cimd expects the client_id
 * https://conformance-test.local/client-metadata.json, the gateway's own document), while it
 * listens on 127.0.0.1: this script is the reverse proxy and the browser, sending the gateway's
 * requests to the listening address with `Host: conformance-test.local` and keeping its cookies
 * (Secure and __Host- ones included: the hop to 127.0.0.1 is plain http).
 *
 * At most MAX_AUTHORIZATIONS authorizations (auth/scope-retry-limit allows 3). The last line on
 * stdout is `RESULT <json>` ({ok, authorizations, seconds, detail}); the exit code is 0 exactly when the
 * tool call succeeded. Everything is bounded by DEADLINE_MS, below the suite's per-scenario timeout.
 */
import http from 'node:http';
import https from 'node:https';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildApp, type Gatehouse } from '../../../src/app.js';
import { loadConfig } from '../../../src/config/load.js';
import { createLogger } from '../../../src/logging.js';
import { readForm } from '../../helpers/browser.js';

const PUBLIC_URL = 'https://conformance-test.local';
const UPSTREAM = 'conf';
const TOOL = `${UPSTREAM}-test-tool`;
const MAX_AUTHORIZATIONS = 3;
const DEADLINE_MS = Number(process.env.CONFORMANCE_DRIVER_DEADLINE_MS ?? 25_000);
const REQUEST_TIMEOUT_MS = 15_000;
const CONNECT_LINK = /(https?:\/\/\S+\/connect\/[A-Za-z0-9_-]{43})/;

interface Result {
  ok: boolean;
  detail: string;
}

class DriverError extends Error {
  override name = 'DriverError';
}

/** A page or body as one line of text (an error page's message). */
function textOf(body: string): string {
  return body
    .replace(/<(style|script)[^>]*>[\s\S]*?<\/\1>/g, ' ')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 400);
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

const publicOrigin = new URL(PUBLIC_URL).origin;
let listening: URL | undefined;
const cookies = new Map<string, string>();
/** Authorizations started so far (connect forms submitted). */
let authorizations = 0;
/** The gateway's data directory, removed however the driver ends. */
let dataDir: string | undefined;

/** One HTTP request, bounded; requests for the gateway's public origin go to where it listens. */
function request(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  const target = new URL(url);
  const toGateway = target.origin === publicOrigin;
  const headers: Record<string, string> = { ...options.headers };
  if (options.body !== undefined) headers['content-length'] = String(Buffer.byteLength(options.body));
  let transport: typeof http | typeof https = target.protocol === 'https:' ? https : http;
  let host = target.hostname;
  let port = target.port;
  if (toGateway) {
    if (!listening) throw new DriverError('the gateway is not listening yet');
    transport = http;
    host = listening.hostname;
    port = listening.port;
    headers.host = target.host;
    // The browser's cookies for the gateway, whatever their Secure/__Host- attributes say.
    if (cookies.size > 0) headers.cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  return new Promise<Reply>((resolve, reject) => {
    const req = transport.request(
      { host, port, method: options.method ?? 'GET', path: target.pathname + target.search, headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          if (toGateway) {
            for (const line of res.headers['set-cookie'] ?? []) {
              const pair = line.split(';', 1)[0]!;
              const eq = pair.indexOf('=');
              if (eq > 0) cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
            }
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
        });
      },
    );
    req.on('error', (err) => reject(new DriverError(`${options.method ?? 'GET'} ${target.origin}${target.pathname}: ${err.message}`)));
    req.end(options.body);
  });
}

function redirect(reply: Reply, what: string): string {
  const location = reply.headers.location;
  if (reply.status < 300 || reply.status >= 400 || !location) {
    throw new DriverError(`${what}: expected a redirect, got HTTP ${reply.status}: ${textOf(reply.body)}`);
  }
  return location;
}

let nextId = 1;

/** tools/call through the gateway's /mcp with the user's virtual key: the JSON-RPC result. */
async function callTool(key: string): Promise<{ isError?: boolean; content?: Array<{ type: string; text?: string }> }> {
  const id = nextId++;
  const reply = await request(`${PUBLIC_URL}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${key}` },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: TOOL, arguments: {} } }),
  });
  if (reply.status !== 200) throw new DriverError(`tools/call: HTTP ${reply.status}: ${reply.body.slice(0, 300)}`);
  // JSON, or an event stream whose last message for this id is the answer.
  const messages = String(reply.headers['content-type']).startsWith('text/event-stream')
    ? reply.body
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => JSON.parse(l.slice(5)) as Record<string, unknown>)
    : [JSON.parse(reply.body) as Record<string, unknown>];
  const answer = messages.find((m) => m.id === id);
  if (!answer) throw new DriverError(`tools/call: no answer in ${reply.body.slice(0, 300)}`);
  if (answer.error) throw new DriverError(`tools/call: JSON-RPC error ${JSON.stringify(answer.error).slice(0, 300)}`);
  return answer.result as { isError?: boolean; content?: Array<{ type: string; text?: string }> };
}

/** The user's part of connecting: connect page, its form, the upstream's authorization server, the callback. */
async function connect(link: string): Promise<void> {
  const page = await request(link, { headers: { accept: 'text/html' } });
  if (page.status !== 200) throw new DriverError(`connect page: HTTP ${page.status}: ${textOf(page.body)}`);
  const form = readForm(page.body);
  const started = await request(form.action, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
    body: new URLSearchParams(form.hidden).toString(),
  });
  const authorize = redirect(started, 'connect form');
  // The upstream's authorization server (the suite's mock redirects at once, no sign-in page).
  const answered = await request(authorize, { headers: { accept: 'text/html' } });
  const callback = new URL(redirect(answered, 'upstream authorization endpoint'), authorize);
  if (callback.origin !== publicOrigin) throw new DriverError(`the authorization server sent the browser to ${callback.origin}, not the gateway`);
  const done = await request(callback.href, { headers: { accept: 'text/html' } });
  if (done.status !== 200) throw new DriverError(`callback: HTTP ${done.status}: ${textOf(done.body)}`);
}

async function drive(gatehouse: Gatehouse): Promise<Result> {
  const { key } = await gatehouse.virtualKeys.create({ name: 'conformance', owner: 'conformance-user' });
  for (;;) {
    const result = await callTool(key);
    const text = (result.content ?? []).map((c) => c.text ?? '').join('\n');
    if (result.isError !== true) return { ok: true, detail: `${TOOL} answered: ${text.slice(0, 200)}` };
    const link = CONNECT_LINK.exec(text)?.[1];
    if (!link) return { ok: false, detail: `tool error without a connect link: ${text.slice(0, 400)}` };
    if (authorizations >= MAX_AUTHORIZATIONS) {
      return { ok: false, detail: `gave up: a connect link after ${authorizations} authorizations: ${text.slice(0, 300)}` };
    }
    authorizations++;
    console.log(`authorization ${authorizations}: ${text.slice(0, 300)}`);
    await connect(link);
  }
}

async function main(): Promise<Result> {
  const serverUrl = process.argv.at(-1);
  if (!serverUrl || !/^https?:\/\//.test(serverUrl)) throw new DriverError(`expected the MCP server URL as the last argument, got ${serverUrl}`);
  const context = process.env.MCP_CONFORMANCE_CONTEXT ? (JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT) as Record<string, unknown>) : {};
  console.log(`scenario ${process.env.MCP_CONFORMANCE_SCENARIO ?? '(none)'}, server ${serverUrl}`);

  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-conformance-client-'));
  dataDir = dir;
  let gatehouse: Gatehouse | undefined;
  try {
    const upstream: Record<string, unknown> = { name: UPSTREAM, transport: 'http', url: serverUrl, auth_type: 'per_user_oauth' };
    if (typeof context.client_id === 'string') {
      upstream.oauth = { client_id: context.client_id, ...(typeof context.client_secret === 'string' && { client_secret: context.client_secret }) };
    }
    const file = path.join(dir, 'gatehouse.json');
    writeFileSync(
      file,
      JSON.stringify({
        server: { host: '127.0.0.1', port: 0, public_url: PUBLIC_URL },
        storage: { data_dir: dir },
        upstreams: [upstream],
        log: { level: 'info' },
      }),
    );
    const config = loadConfig({ file, env: {} });
    // The gateway's log goes to stderr (the suite keeps it as stderr.txt).
    gatehouse = await buildApp(config, { logger: createLogger(config.log.level, process.stderr) });
    listening = new URL(await gatehouse.listen());
    return await drive(gatehouse);
  } finally {
    await gatehouse?.close().catch((err: unknown) => console.error(`closing the gateway: ${String(err)}`));
  }
}

const deadline = setTimeout(() => finish({ ok: false, detail: `did not finish within ${DEADLINE_MS} ms` }), DEADLINE_MS);

function finish(result: Result): never {
  clearTimeout(deadline);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  const seconds = Math.round(performance.now()) / 1000;
  console.log(`RESULT ${JSON.stringify({ ok: result.ok, authorizations, seconds, detail: result.detail })}`);
  process.exit(result.ok ? 0 : 1);
}

main().then(finish, (err: unknown) =>
  finish({ ok: false, detail: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }),
);
