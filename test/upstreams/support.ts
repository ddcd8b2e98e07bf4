import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { keepAliveFetch, type Fetch } from '../../src/upstreams/http-client.js';
import { ConsentBrowser, location, readForm } from '../helpers/browser.js';
import { createKey } from '../helpers/oauth.js';
import { rpc } from '../helpers/mcp.js';
import type { TestGateway } from '../helpers/gateway.js';
import { followAuthorization, type OAuthUpstream } from '../fixtures/oauth-upstream.js';

/** A per_user_oauth upstream entry for a fixture upstream. */
export function perUserUpstream(name: string, upstream: Pick<OAuthUpstream, 'url'>, extra: Record<string, unknown> = {}) {
  return { name, transport: 'http', url: upstream.url, auth_type: 'per_user_oauth', ...extra };
}

/** The connect link in a tool error (or an error message). */
export function connectLink(text: string): string {
  const m = /(https?:\/\/\S+\/connect\/[A-Za-z0-9_-]{43})/.exec(text);
  if (!m) throw new Error(`no connect link in: ${text.slice(0, 300)}`);
  return m[1]!;
}

/**
 * The user's part of connecting: opens the connect link, continues, signs in at the upstream (as
 * `upstream.nextAccount`), comes back to the gateway's callback. Returns the final page.
 */
export async function connectThroughLink(link: string, upstream: OAuthUpstream, browser = new ConsentBrowser()): Promise<{ status: number; text: string }> {
  const page = await browser.get(link);
  const text = await page.text();
  assert.equal(page.status, 200, text.slice(0, 300));
  const form = readForm(text);
  const started = await browser.post(form.action, form.hidden);
  const authorize = location(started, 303);
  const callback = await followAuthorization(upstream, authorize, browser);
  const done = await browser.get(callback.toString());
  return { status: done.status, text: await done.text() };
}

/** Calls a tool through /mcp; returns the result (or throws on a JSON-RPC error). */
export async function callTool(gw: TestGateway, credential: string, name: string, args: Record<string, unknown> = {}) {
  const res = await rpc(gw, credential, 'tools/call', { name, arguments: args });
  if (res.error) throw new Error(`${name}: ${res.error.message}`);
  return res.result as { content: Array<{ type: string; text: string }>; isError?: boolean };
}

/** A virtual key for a user (owner = user id), and that user's identity subject. */
export async function userKey(gw: TestGateway, owner: string) {
  const { key } = await createKey(gw, { name: `${owner}'s key`, owner });
  return key;
}

/** Calls `tool`, expects the connect-first tool error, connects as `account`, and checks the same call now works. */
export async function connectViaToolError(gw: TestGateway, key: string, upstream: OAuthUpstream, tool: string, account: string) {
  const first = await callTool(gw, key, tool);
  assert.equal(first.isError, true, JSON.stringify(first));
  upstream.nextAccount = account;
  const done = await connectThroughLink(connectLink(first.content[0]!.text), upstream);
  assert.equal(done.status, 200, done.text.slice(0, 500));
  return first.content[0]!.text;
}

/** What an operator does by hand for a pre-registered client: registers the gateway at the upstream's authorization server. */
export async function registerAtUpstream(
  upstream: Pick<OAuthUpstream, 'issuer'>,
  redirectUri: string,
  method: 'none' | 'client_secret_basic' | 'client_secret_post',
): Promise<{ client_id: string; client_secret?: string }> {
  const res = await fetch(`${upstream.issuer}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ redirect_uris: [redirectUri], grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: method, scope: 'mcp:tools' }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return (await res.json()) as { client_id: string; client_secret?: string };
}

/** A local HTTP server and the gateway's upstream HTTP client, both closed when the test ends. */
export async function httpUpstream(t: TestContext, handler: http.RequestListener): Promise<{ url: string; fetch: Fetch }> {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = keepAliveFetch();
  t.after(async () => {
    client.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, fetch: client.fetch };
}
