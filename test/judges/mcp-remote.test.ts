/**
 * Judge: mcp-remote (`mcp-remote-client`, pinned in devDependencies), the stdio bridge many desktop
 * MCP clients use, against the gateway's `/mcp`. It discovers the authorization server from the
 * 401, registers (RFC 7591), sends the user to the authorization endpoint with PKCE and `resource`,
 * exchanges the code, then connects over Streamable HTTP and lists the tools: the aggregated
 * catalog of two upstreams, under their prefixed names.
 */
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { startHttpFixture } from '../fixtures/http-fixture.js';
import { ConsentBrowser } from '../helpers/browser.js';
import { startGateway } from '../helpers/gateway.js';
import { upstreamsReady } from '../helpers/mcp.js';
import { createKey } from '../helpers/oauth.js';
import { cleanEnv, ROOT } from '../helpers/process.js';
import { makeTempDir } from '../helpers/tmp.js';
import { spawnJudge } from './support/judge.js';

const CLIENT = 'node_modules/mcp-remote/dist/client.js';
/** mcp-remote prints this line, then the authorize URL on the next one (stderr). */
const BROWSER_PROMPT = 'Please authorize this client by visiting:';
const TIMEOUT_MS = 60_000;

test('judge: mcp-remote-client signs in through the gateway and lists the aggregated tools', { timeout: TIMEOUT_MS + 15_000 }, async (t) => {
  const [alpha, beta] = await Promise.all([startHttpFixture('alpha'), startHttpFixture('beta')]);
  t.after(() => Promise.all([alpha.close(), beta.close()]));
  const gw = await startGateway({
    config: {
      upstreams: [
        { name: 'alpha', transport: 'http', url: alpha.url, auth_type: 'none' },
        { name: 'beta', transport: 'http', url: beta.url, auth_type: 'none' },
      ],
      oauth_server: { enabled: true },
    },
  });
  t.after(() => gw.close());
  await upstreamsReady(gw, ['alpha', 'beta']);
  const issuer = gw.gatehouse.issuer();
  assert.match(issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
  const { key } = await createKey(gw, { name: 'mcp-remote' });

  const configDir = makeTempDir('gatehouse-mcp-remote-');
  t.after(configDir.remove);

  const judge = spawnJudge(t, process.execPath, [CLIENT, `${issuer}/mcp`], {
    cwd: ROOT,
    env: { ...cleanEnv(), MCP_REMOTE_CONFIG_DIR: configDir.dir, BROWSER: 'true' },
    // stdin stays open: mcp-remote quits when it ends.
    stdin: 'pipe',
    timeoutMs: TIMEOUT_MS,
  });

  // The browser's part: the line after the prompt is the authorize URL. Consent with the key, then
  // deliver the final redirect to mcp-remote's callback server with a plain GET, as a browser would.
  let browserError: unknown;
  let browserDone: Promise<void> | undefined;
  let authorizeUrl: URL | undefined;
  let callback: URL | undefined;
  let callbackStatus: number | undefined;
  let promptSeen = false;
  createInterface({ input: judge.child.stderr }).on('line', (line) => {
    if (line.includes(BROWSER_PROMPT)) {
      promptSeen = true;
    } else if (promptSeen && !browserDone && line.trim() !== '') {
      browserDone = (async () => {
        authorizeUrl = new URL(line.trim());
        const back = await new ConsentBrowser().authorize(authorizeUrl.toString(), key);
        callback = new URL(back);
        // mcp-remote's callback server listens on 127.0.0.1 only; its redirect URI says `localhost`.
        const deliver = new URL(back);
        if (deliver.hostname === 'localhost') deliver.hostname = '127.0.0.1';
        const res = await fetch(deliver, { signal: AbortSignal.timeout(10_000) });
        callbackStatus = res.status;
        await res.arrayBuffer();
      })().catch((err: unknown) => {
        browserError = err;
        judge.kill();
      });
    }
  });

  const { code, signal } = await judge.exited;
  await browserDone;
  judge.child.stdin?.destroy();
  const { stdout, stderr, timedOut } = judge;
  const report = `\n--- stderr ---\n${stderr}\n--- stdout ---\n${stdout}`;
  const listed = [...new Set([...stderr.slice(stderr.indexOf('Tools:')).matchAll(/"name": "([a-z0-9_]+-[A-Za-z0-9_.-]+)"/g)].map((m) => m[1]))];
  t.diagnostic(`mcp-remote listed: ${listed.join(', ')}`);

  assert.ok(!timedOut, `mcp-remote-client did not finish within ${TIMEOUT_MS} ms${report}`);
  assert.equal(browserError, undefined, `the browser part of the flow failed: ${String(browserError)}${report}`);
  assert.ok(authorizeUrl && callback, `mcp-remote-client never printed an authorize URL${report}`);

  // What mcp-remote asked for: our authorization endpoint, PKCE S256, the /mcp resource.
  assert.equal(`${authorizeUrl.origin}${authorizeUrl.pathname}`, `${issuer}/api/oauth/per-user/authorize`);
  assert.equal(authorizeUrl.searchParams.get('code_challenge_method'), 'S256');
  assert.equal(authorizeUrl.searchParams.get('resource'), `${issuer}/mcp`);
  // What it got back: a code, its state, and our issuer (RFC 9207).
  assert.equal(callback.searchParams.get('error'), null, `authorization error: ${callback}${report}`);
  assert.ok(callback.searchParams.get('code'), `no code in ${callback}`);
  assert.equal(callback.searchParams.get('state'), authorizeUrl.searchParams.get('state'));
  assert.equal(callback.searchParams.get('iss'), issuer);
  assert.equal(callbackStatus, 200, `the callback server refused the redirect${report}`);

  // Its exit code is 0 even when calls fail: the output says whether the tools were listed.
  assert.match(stderr, /Connected successfully!/, `no connection${report}`);
  assert.doesNotMatch(stderr, /Error requesting tools list/, `tools/list failed${report}`);
  assert.match(stderr, /Tools:/, `no tools listed${report}`);
  // What it printed after `Tools:` (the result it parsed), up to its next step.
  const toolsOutput = stderr.slice(stderr.indexOf('Tools:')).split('Requesting resource list')[0]!;
  for (const name of ['alpha-echo', 'alpha-add', 'beta-echo', 'beta-add']) {
    assert.ok(toolsOutput.includes(`"name": "${name}"`), `${name} not listed${report}`);
  }
  assert.equal(signal, null, `killed by ${signal}${report}`);
  assert.equal(code, 0, `exit code ${code}${report}`);

  // The gateway's own record: mcp-remote registered itself (RFC 7591).
  const requests = gw.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
  const registered = requests.find((l) => l.path === '/api/oauth/per-user/register' && l.status === 201);
  assert.ok(registered, `no successful registration in the gateway log`);
  // The gateway never forwarded mcp-remote's access token (a JWT) to an upstream.
  const upstreamHeaders = JSON.stringify([...alpha.log.headers, ...beta.log.headers]);
  assert.doesNotMatch(upstreamHeaders, /eyJ[A-Za-z0-9_-]+\.eyJ/, 'a JWT reached an upstream');
});
