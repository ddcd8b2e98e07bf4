import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHttpFixture, type HttpFixture } from '../fixtures/http-fixture.js';
import { PER_USER_UPSTREAM, startGateway, type TestGateway } from '../helpers/gateway.js';
import { mcpPost, rpc, upstreamsReady } from '../helpers/mcp.js';
import { createKey, obtainTokens, tokenRequest } from '../helpers/oauth.js';

const LIST = { jsonrpc: '2.0', id: 1, method: 'tools/list' };
const CALL = { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'alpha-echo', arguments: { message: 'hi' } } };

/** Product §3.1: credentials, identities and challenges on /mcp. */
describe('/mcp authentication and authorization', () => {
  let gw: TestGateway;
  let alpha: HttpFixture;
  let beta: HttpFixture;
  let issuer: string;
  before(async () => {
    [alpha, beta] = await Promise.all([startHttpFixture('alpha'), startHttpFixture('beta')]);
    gw = await startGateway({
      config: {
        upstreams: [
          { name: 'alpha', transport: 'http', url: alpha.url, auth_type: 'none' },
          { name: 'beta', transport: 'http', url: beta.url, auth_type: 'none', tools_to_execute: ['echo', 'add'] },
          PER_USER_UPSTREAM,
        ],
      },
    });
    issuer = gw.gatehouse.issuer();
    await upstreamsReady(gw, ['alpha', 'beta']);
  });
  after(async () => {
    await gw.close();
    await Promise.all([alpha.close(), beta.close()]);
  });

  test('no credential: 401 with the exact challenge, path-inserted for each endpoint', async () => {
    const res = await mcpPost(gw, LIST);
    assert.equal(res.status, 401);
    assert.equal(
      res.headers.get('www-authenticate'),
      `Bearer resource_metadata="${issuer}/.well-known/oauth-protected-resource/mcp", scope="mcp:read mcp:write"`,
    );
    const one = await mcpPost(gw, LIST, { path: '/mcp/alpha' });
    assert.equal(
      one.headers.get('www-authenticate'),
      `Bearer resource_metadata="${issuer}/.well-known/oauth-protected-resource/mcp/alpha", scope="mcp:read mcp:write"`,
    );
    // The metadata it points to exists and names that endpoint.
    const prm = (await (await fetch(`${gw.url}/.well-known/oauth-protected-resource/mcp/alpha`)).json()) as { resource: string };
    assert.equal(prm.resource, `${issuer}/mcp/alpha`);
  });

  test('a bad, expired or foreign token: 401 invalid_token, exactly', async () => {
    const res = await mcpPost(gw, LIST, { credential: 'not.a.jwt' });
    assert.equal(res.status, 401);
    assert.equal(
      res.headers.get('www-authenticate'),
      `Bearer resource_metadata="${issuer}/.well-known/oauth-protected-resource/mcp", scope="mcp:read mcp:write", error="invalid_token", error_description="the token is malformed"`,
    );
    const { tokens } = await obtainTokens(gw);
    gw.clock.advance(901);
    const expired = await mcpPost(gw, LIST, { credential: tokens.access_token });
    assert.equal(expired.status, 401);
    assert.match(expired.headers.get('www-authenticate') ?? '', /error="invalid_token", error_description="the token has expired"/);
  });

  test('a token for another endpoint (audience) is refused; for this one, accepted', async () => {
    const { tokens } = await obtainTokens(gw, { resource: `${issuer}/mcp/alpha` });
    const elsewhere = await mcpPost(gw, LIST, { credential: tokens.access_token });
    assert.equal(elsewhere.status, 401);
    assert.match(elsewhere.headers.get('www-authenticate') ?? '', /another resource/);
    const here = await mcpPost(gw, LIST, { credential: tokens.access_token, path: '/mcp/alpha' });
    assert.equal(here.status, 200);
    assert.ok(here.json.result.tools.some((t: { name: string }) => t.name === 'echo'));
  });

  test('a read-only token lists but cannot call: 403 insufficient_scope naming mcp:write', async () => {
    const readOnly = await createKey(gw, { name: 'reader', scopes: 'mcp:read' });
    const { tokens } = await obtainTokens(gw, { key: readOnly.key });
    assert.equal(tokens.scope, 'mcp:read');
    assert.equal((await mcpPost(gw, LIST, { credential: tokens.access_token })).status, 200);
    const call = await mcpPost(gw, CALL, { credential: tokens.access_token });
    assert.equal(call.status, 403);
    assert.equal(
      call.headers.get('www-authenticate'),
      `Bearer resource_metadata="${issuer}/.well-known/oauth-protected-resource/mcp", scope="mcp:write", error="insufficient_scope", error_description="this request needs the mcp:write scope"`,
    );
    assert.equal(call.json.error, 'insufficient_scope');
    // The same ceiling applies to the key used directly.
    assert.equal((await mcpPost(gw, CALL, { credential: readOnly.key })).status, 403);
  });

  test('a virtual key works as Bearer and as X-Gatehouse-Key; both at once is refused', async () => {
    const { key } = await createKey(gw, { name: 'direct' });
    assert.equal((await mcpPost(gw, LIST, { credential: key })).status, 200);
    assert.equal((await mcpPost(gw, LIST, { headers: { 'x-gatehouse-key': key } })).status, 200);
    const both = await mcpPost(gw, LIST, { credential: key, headers: { 'x-gatehouse-key': key } });
    assert.equal(both.status, 400);
    assert.match(both.headers.get('www-authenticate') ?? '', /error="invalid_request"/);
    const wrong = await mcpPost(gw, LIST, { headers: { 'x-gatehouse-key': 'sk-gw-nope' } });
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
  });

  test('never from the query string, never from a session id, never another scheme', async () => {
    const { key } = await createKey(gw, { name: 'q' });
    const query = await fetch(`${gw.url}/mcp?access_token=${key}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(LIST),
    });
    assert.equal(query.status, 400);
    assert.equal((await mcpPost(gw, LIST, { headers: { 'mcp-session-id': key } })).status, 401);
    assert.equal((await mcpPost(gw, LIST, { headers: { authorization: `Basic ${Buffer.from(`x:${key}`).toString('base64')}` } })).status, 401);
  });

  test('a revoked grant or a revoked key stops working within 5 seconds', async () => {
    const k = await createKey(gw, { name: 'to revoke' });
    const flow = await obtainTokens(gw, { key: k.key });
    assert.equal((await mcpPost(gw, LIST, { credential: flow.tokens.access_token })).status, 200);
    assert.equal((await mcpPost(gw, LIST, { credential: k.key })).status, 200);
    await tokenRequest(gw, { token: flow.tokens.refresh_token!, client_id: flow.clientId }, '/api/oauth/per-user/revoke');
    await gw.gatehouse.virtualKeys.revoke(k.record.id);
    gw.clock.advance(3);
    const token = await mcpPost(gw, LIST, { credential: flow.tokens.access_token });
    assert.equal(token.status, 401);
    assert.match(token.headers.get('www-authenticate') ?? '', /revoked/);
    assert.equal((await mcpPost(gw, LIST, { credential: k.key })).status, 401);
  });

  test('a key narrowed to one upstream sees and calls nothing else, even by guessing names', async () => {
    const narrow = await createKey(gw, { name: 'alpha only', upstreams: ['alpha'] });
    const tools = (await rpc(gw, narrow.key, 'tools/list')).result.tools as Array<{ name: string }>;
    assert.ok(tools.length > 0);
    assert.ok(tools.every((t) => t.name.startsWith('alpha-')), JSON.stringify(tools.map((t) => t.name)));
    const before = beta.log.calls.length;
    const guessed = await rpc(gw, narrow.key, 'tools/call', { name: 'beta-echo', arguments: { message: 'x' } });
    assert.equal(guessed.error?.code, -32602);
    assert.match(guessed.error!.message, /unknown tool/);
    assert.equal(beta.log.calls.length, before, 'beta never saw the call');
    assert.equal((await mcpPost(gw, LIST, { credential: narrow.key, path: '/mcp/beta' })).status, 403);
    const resources = (await rpc(gw, narrow.key, 'resources/list')).result.resources as Array<{ uri: string }>;
    assert.ok(resources.every((r) => r.uri.startsWith('gatehouse://alpha/')));
    assert.equal((await rpc(gw, narrow.key, 'resources/read', { uri: 'gatehouse://beta/fixture://readme' })).error?.code, -32602);
    assert.equal((await rpc(gw, narrow.key, 'prompts/get', { name: 'beta-greet', arguments: { who: 'x' } })).error?.code, -32602);
  });

  test("a key's tool patterns and the operator's tools_to_execute filter listing and calling alike", async () => {
    const k = await createKey(gw, { name: 'echo only', tools: ['alpha/echo', 'beta/*'] });
    const names = ((await rpc(gw, k.key, 'tools/list')).result.tools as Array<{ name: string }>).map((t) => t.name).sort();
    // beta exposes only echo and add (tools_to_execute); the key allows alpha's echo only.
    assert.deepEqual(names, ['alpha-echo', 'beta-add', 'beta-echo']);
    assert.equal((await rpc(gw, k.key, 'tools/call', { name: 'alpha-add', arguments: { a: 1, b: 2 } })).error?.code, -32602);
    const all = await createKey(gw, { name: 'all' });
    assert.equal((await rpc(gw, all.key, 'tools/call', { name: 'beta-secret_admin', arguments: {} })).error?.code, -32602);
    const ok = await rpc(gw, all.key, 'tools/call', { name: 'beta-echo', arguments: { message: 'm' } });
    assert.equal(ok.result.content[0].text, 'beta: m');
  });

  test('auth_mode limits what /mcp accepts', async (t) => {
    const keysOnly = await startGateway({ config: { gateway: { auth_mode: 'headers' }, upstreams: [{ name: 'alpha', transport: 'http', url: alpha.url, auth_type: 'none' }, PER_USER_UPSTREAM] } });
    t.after(() => keysOnly.close());
    const { key } = await createKey(keysOnly);
    const { tokens } = await obtainTokens(keysOnly);
    assert.equal((await mcpPost(keysOnly, LIST, { credential: key })).status, 200);
    const jwt = await mcpPost(keysOnly, LIST, { credential: tokens.access_token });
    assert.equal(jwt.status, 401);
    const none = await mcpPost(keysOnly, LIST);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="gatehouse", scope="mcp:read mcp:write"', 'no OAuth to point to');

    const oauthOnly = await startGateway({ config: { gateway: { auth_mode: 'oauth' } } });
    t.after(() => oauthOnly.close());
    const k2 = await createKey(oauthOnly);
    assert.equal((await mcpPost(oauthOnly, LIST, { credential: k2.key })).status, 401);
  });
});
