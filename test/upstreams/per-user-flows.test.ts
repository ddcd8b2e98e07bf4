import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { followAuthorization, startOAuthUpstream } from '../fixtures/oauth-upstream.js';
import { ConsentBrowser, location, readForm } from '../helpers/browser.js';
import { startGateway, type RawConfig } from '../helpers/gateway.js';
import { authorizeUrl, pkce, REDIRECT, registerClient } from '../helpers/oauth.js';
import { freePort } from '../helpers/ports.js';
import { makeTempDir } from '../helpers/tmp.js';
import { callTool, connectLink, connectThroughLink, connectViaToolError, perUserUpstream, registerAtUpstream, userKey } from './support.js';

const text = (r: { content: Array<{ text: string }> }) => r.content[0]!.text;

async function setup(t: TestContext, config: (upstream: Awaited<ReturnType<typeof startOAuthUpstream>>) => RawConfig = (u) => ({ upstreams: [perUserUpstream('docs', u)] })) {
  const upstream = await startOAuthUpstream();
  t.after(() => upstream.close());
  const gw = await startGateway({ config: config(upstream) });
  t.after(() => gw.close());
  return { gw, upstream };
}

/** Starts connecting through a link; returns the upstream authorization URL and the browser. */
async function startConnecting(link: string, browser = new ConsentBrowser()) {
  const page = await browser.get(link);
  const form = readForm(await page.text());
  const started = await browser.post(form.action, form.hidden);
  return { authorize: location(started, 303), browser };
}

describe('per-user upstream OAuth: flows', () => {
  test('a client that declared URL elicitation gets the MCP URL-elicitation error; after connecting, the same session succeeds', async (t) => {
    const { gw, upstream } = await setup(t);
    const key = await userKey(gw, 'alice');
    const client = new Client({ name: 'elicit', version: '1' }, { capabilities: { elicitation: { url: {} } } });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
    t.after(() => client.close());

    const err = await client.callTool({ name: 'docs-whoami', arguments: {} }).then(
      () => assert.fail('the call should need a connection first'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof McpError, String(err));
    assert.equal(err.code, ErrorCode.UrlElicitationRequired);
    const elicitation = (err.data as { elicitations: Array<{ mode: string; url: string; message: string; elicitationId: string }> }).elicitations[0]!;
    assert.equal(elicitation.mode, 'url');
    assert.match(elicitation.message, /connect your docs account/);
    upstream.nextAccount = 'alice-at-docs';
    assert.equal((await connectThroughLink(elicitation.url, upstream)).status, 200);

    const result = await client.callTool({ name: 'docs-whoami', arguments: {} });
    assert.equal((result.content as Array<{ text: string }>)[0]!.text, 'alice-at-docs');

    // A client that did not declare it gets the tool error with the same kind of link.
    const plain = new Client({ name: 'plain', version: '1' }, { capabilities: { elicitation: {} } });
    await plain.connect(
      new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${await userKey(gw, 'bob')}` } } }),
    );
    t.after(() => plain.close());
    const refused = (await plain.callTool({ name: 'docs-whoami', arguments: {} })) as { isError?: boolean; content: Array<{ text: string }> };
    assert.equal(refused.isError, true);
    connectLink(refused.content[0]!.text);
  });

  test('a connect link names the identity and starts nothing by itself; it is bound to its identity and expires', async (t) => {
    const { gw, upstream } = await setup(t);
    const alice = await userKey(gw, 'alice');
    const link = connectLink(text(await callTool(gw, alice, 'docs-whoami')));
    const browser = new ConsentBrowser();
    const page = await browser.get(link);
    const html = await page.text();
    assert.equal(page.status, 200);
    assert.match(html, /Connect your docs account/);
    assert.match(html, /<strong>alice<\/strong>/);
    assert.match(html, new RegExp(`Sign in at</dt><dd><strong>${new URL(upstream.issuer).host}`));
    assert.match(page.headers.get('content-security-policy') ?? '', new RegExp(`form-action 'self' ${new URL(upstream.issuer).origin}`));
    assert.equal(upstream.tokenRequests.authorization_code, 0);

    // Without this page's CSRF token (a forged form elsewhere), nothing starts.
    const forged = await browser.post(readForm(html).action, { csrf_token: 'x'.repeat(43) });
    assert.equal(forged.status, 400);
    // A made-up or expired link.
    assert.equal((await browser.get(`${gw.url}/connect/${'A'.repeat(43)}`)).status, 400);
    gw.clock.advance(601);
    const expired = await browser.get(link);
    assert.equal(expired.status, 400);
    assert.match(await expired.text(), /expired/);
  });

  test('the callback refuses a replayed state, another browser, a wrong iss, and reports a denial', async (t) => {
    const { gw, upstream } = await setup(t);
    const alice = await userKey(gw, 'alice');
    const link = connectLink(text(await callTool(gw, alice, 'docs-whoami')));

    // Completed once: the same callback again is refused.
    const first = await startConnecting(link);
    const callback = await followAuthorization(upstream, first.authorize, first.browser);
    assert.equal((await first.browser.get(callback.toString())).status, 200);
    const replay = await first.browser.get(callback.toString());
    assert.equal(replay.status, 400);
    assert.match(await replay.text(), /already used/);

    // Another browser with the right state.
    const second = await startConnecting(link);
    const stolen = await followAuthorization(upstream, second.authorize, second.browser);
    const elsewhere = await new ConsentBrowser().get(stolen.toString());
    assert.equal(elsewhere.status, 400);
    assert.match(await elsewhere.text(), /another browser/);

    // An answer claiming another issuer (RFC 9207), and a denial.
    for (const [params, expected] of [
      [{ code: 'x', iss: 'https://evil.example' }, /not valid/],
      [{ error: 'access_denied' }, /was not authorized/],
    ] as const) {
      const attempt = await startConnecting(link);
      const state = new URL(attempt.authorize).searchParams.get('state')!;
      const url = new URL(`${gw.url}/api/oauth/callback`);
      for (const [k, v] of Object.entries({ ...params, state })) url.searchParams.set(k, v);
      if (!('iss' in params)) url.searchParams.set('iss', upstream.issuer);
      const res = await attempt.browser.get(url.toString());
      assert.equal(res.status, 400);
      assert.match(await res.text(), expected);
    }
    assert.equal(upstream.tokenRequests.authorization_code, 1, 'only the genuine callback exchanged a code');
  });

  test('a restart between authorization and callback: the flow lives in the database', async (t) => {
    const upstream = await startOAuthUpstream();
    t.after(() => upstream.close());
    const temp = makeTempDir();
    t.after(temp.remove);
    const port = await freePort();
    const config = { server: { port, public_url: `http://127.0.0.1:${port}` }, upstreams: [perUserUpstream('docs', upstream)] };
    const first = await startGateway({ config, dataDir: temp.dir });
    const alice = await userKey(first, 'alice');
    const { authorize, browser } = await startConnecting(connectLink(text(await callTool(first, alice, 'docs-whoami'))));
    await first.gatehouse.close();
    const second = await startGateway({ config, dataDir: temp.dir });
    t.after(() => second.close());
    const callback = await followAuthorization(upstream, authorize, browser);
    const done = await browser.get(callback.toString());
    assert.equal(done.status, 200, await done.text());
    assert.equal(text(await callTool(second, alice, 'docs-whoami')), 'user');
  });

  test('a pre-registered client (no DCR): the configured client_id and secret are used', async (t) => {
    const upstream = await startOAuthUpstream();
    t.after(() => upstream.close());
    const gw = await startGateway({ config: { upstreams: [perUserUpstream('docs', upstream)] } });
    t.after(() => gw.close());
    // The operator registers the gateway at the upstream by hand, then configures it.
    const registered = await registerAtUpstream(upstream, `${gw.url}/api/oauth/callback`, 'client_secret_basic');
    const before = upstream.registrations;
    gw.reload({ upstreams: [perUserUpstream('docs', upstream, { oauth: { client_id: registered.client_id, client_secret: registered.client_secret } })] });

    const alice = await userKey(gw, 'alice');
    await connectViaToolError(gw, alice, upstream, 'docs-whoami', 'alice');
    assert.equal(text(await callTool(gw, alice, 'docs-whoami')), 'alice');
    assert.equal(upstream.registrations, before, 'no dynamic registration');
    assert.deepEqual(new Set(upstream.calls.map((c) => c.clientId)), new Set([registered.client_id]));
    // The link's page recorded nothing for a call without an OAuth client; the consent page does (below).
  });

  test('the consent page lists the per-user upstreams; Connect runs the upstream flow and returns; a static client_id records the consent first', async (t) => {
    const upstream = await startOAuthUpstream();
    t.after(() => upstream.close());
    const gw = await startGateway({ config: { upstreams: [perUserUpstream('docs', upstream)] } });
    t.after(() => gw.close());
    const { client_id: staticId } = await registerAtUpstream(upstream, `${gw.url}/api/oauth/callback`, 'none');
    gw.reload({ upstreams: [perUserUpstream('docs', upstream, { oauth: { client_id: staticId, scopes: ['mcp:tools'] } })] });

    const clientId = await registerClient(gw, { client_name: 'Editor' });
    const key = await userKey(gw, 'alice');
    const { challenge } = pkce();
    const browser = new ConsentBrowser();
    const start = await browser.get(
      authorizeUrl(gw, { response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256', state: 's', resource: `${gw.url}/mcp` }),
    );
    let page = await browser.get(location(start, 302));
    let form = readForm(await page.text());
    const identified = await browser.post(form.action, { ...form.hidden, action: 'identify', virtual_key: key });
    page = await browser.get(location(identified, 303));
    let html = await page.text();
    assert.match(html, /Your accounts/);
    assert.match(html, /<strong>docs<\/strong> — Not connected/);
    assert.match(html, /permissions: mcp:tools/);
    assert.match(page.headers.get('content-security-policy') ?? '', new RegExp(new URL(upstream.issuer).origin));
    assert.deepEqual(await gw.gatehouse.upstreamOAuth.consents('alice'), []);

    form = readForm(html);
    upstream.nextAccount = 'alice-at-docs';
    const connect = await browser.post(form.action, { ...form.hidden, action: 'connect', upstream: 'docs' });
    const consents = await gw.gatehouse.upstreamOAuth.consents('alice');
    assert.deepEqual(
      consents.map((c) => [c.upstream, c.client_id, c.scope]),
      [['docs', clientId, 'mcp:tools']],
      'recorded before the browser left for the upstream',
    );
    const callback = await followAuthorization(upstream, location(connect, 303), browser);
    const back = await browser.get(callback.toString());
    page = await browser.get(location(back, 303));
    html = await page.text();
    assert.match(html, /<strong>docs<\/strong> — Connected/);
    form = readForm(html);
    const allowed = await browser.post(form.action, { ...form.hidden, action: 'allow' });
    assert.ok(location(allowed, 303).startsWith(REDIRECT));
    assert.equal(text(await callTool(gw, key, 'docs-whoami')), 'alice-at-docs');
  });

  test('the admin API lists and removes anyone\'s connections; without the admin token it is closed', async (t) => {
    const { gw, upstream } = await setup(t, (u) => ({ upstreams: [perUserUpstream('docs', u)], admin: { token: 'admin-token-0123456789' } }));
    const alice = await userKey(gw, 'alice');
    await connectViaToolError(gw, alice, upstream, 'docs-whoami', 'alice');
    const admin = { authorization: 'Bearer admin-token-0123456789' };
    assert.equal((await fetch(`${gw.url}/api/admin/connections`)).status, 401);
    assert.equal((await fetch(`${gw.url}/api/admin/connections`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status, 401);
    const list = (await (await fetch(`${gw.url}/api/admin/connections`, { headers: admin })).json()) as { connections: Array<Record<string, unknown>> };
    assert.deepEqual(list.connections.map((c) => [c.subject, c.upstream, c.status]), [['alice', 'docs', 'active']]);
    const none = (await (await fetch(`${gw.url}/api/admin/connections?subject=bob`, { headers: admin })).json()) as { connections: unknown[] };
    assert.deepEqual(none.connections, []);
    assert.equal((await fetch(`${gw.url}/api/admin/connections/alice/docs`, { method: 'DELETE', headers: admin })).status, 204);
    assert.equal((await fetch(`${gw.url}/api/admin/connections/alice/docs`, { method: 'DELETE', headers: admin })).status, 404);
    assert.equal((await callTool(gw, alice, 'docs-whoami')).isError, true);
  });

  test('secrets at rest: no upstream token, refresh token, code verifier or client secret in the database files or the logs', async (t) => {
    const upstream = await startOAuthUpstream({ accessTokenTtl: 120 });
    t.after(() => upstream.close());
    const gw = await startGateway({ config: { upstreams: [perUserUpstream('docs', upstream)], log: { level: 'debug' } } });
    t.after(() => gw.close());
    const alice = await userKey(gw, 'alice');
    const bob = await userKey(gw, 'bob');
    await connectViaToolError(gw, alice, upstream, 'docs-whoami', 'alice');
    await connectViaToolError(gw, bob, upstream, 'docs-whoami', 'bob');
    gw.clock.advance(121);
    upstream.ageAccessTokens(121);
    await callTool(gw, alice, 'docs-whoami'); // a refresh, with rotation
    // A confidential registration too (a client secret to keep).
    const { client_id, client_secret } = await registerAtUpstream(upstream, `${gw.url}/api/oauth/callback`, 'client_secret_post');
    gw.reload({ upstreams: [perUserUpstream('docs', upstream, { oauth: { client_id, client_secret } })] });
    const carol = await userKey(gw, 'carol');
    await connectViaToolError(gw, carol, upstream, 'docs-whoami', 'carol');

    assert.ok(upstream.secrets.size >= 8, `secrets seen: ${upstream.secrets.size}`);
    await gw.gatehouse.close();
    const files = readdirSync(gw.dataDir).filter((f) => f.startsWith('gatehouse.db'));
    assert.ok(files.includes('gatehouse.db'));
    const stored = files.map((f) => readFileSync(path.join(gw.dataDir, f)).toString('latin1')).join('\n');
    const logs = gw.logs.join('\n');
    for (const secret of upstream.secrets) {
      assert.ok(!stored.includes(secret), `a secret in the database files: ${secret.slice(0, 8)}…`);
      assert.ok(!logs.includes(secret), `a secret in the logs: ${secret.slice(0, 8)}…`);
    }
  });
});
