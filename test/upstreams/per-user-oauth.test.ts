import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { startOAuthUpstream } from '../fixtures/oauth-upstream.js';
import { startGateway, type RawConfig } from '../helpers/gateway.js';
import { catalogChange, rpc } from '../helpers/mcp.js';
import { makeTempDir } from '../helpers/tmp.js';
import { callTool, connectLink, connectThroughLink, connectViaToolError, perUserUpstream, userKey } from './support.js';

async function setup(t: TestContext, options: { config?: RawConfig; upstream?: Parameters<typeof startOAuthUpstream>[0] } = {}) {
  const upstream = await startOAuthUpstream(options.upstream);
  t.after(() => upstream.close());
  const gw = await startGateway({ config: { upstreams: [perUserUpstream('docs', upstream)], ...options.config } });
  t.after(() => gw.close());
  return { gw, upstream };
}

const text = (r: { content: Array<{ text: string }> }) => r.content[0]!.text;

describe('per-user upstream OAuth', () => {
  test('two identities connect two upstream accounts; each call runs as its own account', async (t) => {
    const { gw, upstream } = await setup(t);
    const alice = await userKey(gw, 'alice');
    const bob = await userKey(gw, 'bob');

    const message = await connectViaToolError(gw, alice, upstream, 'docs-whoami', 'alice-at-docs');
    assert.match(message, /To use "docs", connect your docs account: open http:\/\/127\.0\.0\.1:\d+\/connect\/\S+ in your browser/);
    await connectViaToolError(gw, bob, upstream, 'docs-whoami', 'bob-at-docs');

    const calls = await Promise.all([
      callTool(gw, alice, 'docs-whoami'),
      callTool(gw, bob, 'docs-whoami'),
      callTool(gw, alice, 'docs-whoami'),
      callTool(gw, bob, 'docs-whoami'),
    ]);
    assert.deepEqual(calls.map(text), ['alice-at-docs', 'bob-at-docs', 'alice-at-docs', 'bob-at-docs']);
    assert.equal(upstream.sessionMismatches, 0, 'no upstream session is shared between users');
    assert.equal(upstream.registrations, 1, 'one registration per upstream authorization server');
    assert.equal(gw.gatehouse.upstreams.personal.size(), 2);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(metrics, /gatehouse_upstream_connections\{upstream="docs"\} 2/, 'one connection per identity');
  });

  test('the tools of a per-user upstream are listed before connecting, from the last listing', async (t) => {
    const { gw, upstream } = await setup(t);
    const alice = await userKey(gw, 'alice');
    const carol = await userKey(gw, 'carol');
    // Nobody has listed the upstream yet: nothing to show, and a call leads to connecting.
    assert.deepEqual((await rpc(gw, carol, 'tools/list')).result.tools, []);
    // Connecting opens Alice's connection, which lists the catalog.
    const listed = catalogChange(gw, 'docs');
    await connectViaToolError(gw, alice, upstream, 'docs-echo', 'alice');
    await listed;
    const names = (await rpc(gw, carol, 'tools/list')).result.tools.map((tool: { name: string }) => tool.name).sort();
    assert.deepEqual(names, ['docs-echo', 'docs-whoami']);
    // Carol has not connected: her call does not run, and says how to connect.
    const result = await callTool(gw, carol, 'docs-echo', { message: 'hi' });
    assert.equal(result.isError, true);
    assert.match(text(result), /connect your docs account/);
    assert.equal(upstream.calls.filter((c) => c.tool === 'echo').length, 0);
    // A tool the upstream does not have is unknown, connected or not.
    const unknown = await rpc(gw, carol, 'tools/call', { name: 'docs-nope', arguments: {} });
    assert.match(unknown.error?.message ?? '', /unknown tool/);
  });

  test('the catalog survives a restart (kept in the database)', async (t) => {
    const upstream = await startOAuthUpstream();
    t.after(() => upstream.close());
    const config = { upstreams: [perUserUpstream('docs', upstream)] };
    const temp = makeTempDir();
    t.after(temp.remove);
    const first = await startGateway({ config, dataDir: temp.dir });
    const alice = await userKey(first, 'alice');
    const listed = catalogChange(first, 'docs');
    await connectViaToolError(first, alice, upstream, 'docs-whoami', 'alice');
    await listed;
    await first.gatehouse.close();
    const second = await startGateway({ config, dataDir: first.dataDir });
    t.after(() => second.close());
    const names = (await rpc(second, alice, 'tools/list')).result.tools.map((tool: { name: string }) => tool.name).sort();
    assert.deepEqual(names, ['docs-echo', 'docs-whoami']);
    // And the connection itself survived: the call runs at once.
    assert.equal(text(await callTool(second, alice, 'docs-whoami')), 'alice');
  });

  test('an expired upstream access token is refreshed before the call', async (t) => {
    const { gw, upstream } = await setup(t, { upstream: { accessTokenTtl: 120 } });
    const alice = await userKey(gw, 'alice');
    await connectViaToolError(gw, alice, upstream, 'docs-whoami', 'alice');
    assert.equal(text(await callTool(gw, alice, 'docs-whoami')), 'alice');
    assert.equal(upstream.tokenRequests.refresh_token, 0);
    // Past the token's lifetime for the gateway, and for the upstream.
    gw.clock.advance(121);
    upstream.ageAccessTokens(121);
    assert.equal(text(await callTool(gw, alice, 'docs-whoami')), 'alice');
    assert.equal(upstream.tokenRequests.refresh_token, 1);
  });

  test('an access token the upstream rejects is refreshed, and the call retried', async (t) => {
    const { gw, upstream } = await setup(t);
    const alice = await userKey(gw, 'alice');
    await connectViaToolError(gw, alice, upstream, 'docs-whoami', 'alice');
    upstream.invalidateAccessTokens();
    assert.equal(text(await callTool(gw, alice, 'docs-whoami')), 'alice');
    assert.equal(upstream.tokenRequests.refresh_token, 1);
  });

  test('20 concurrent calls at expiry: exactly one refresh reaches the upstream', async (t) => {
    const { gw, upstream } = await setup(t, { upstream: { accessTokenTtl: 120 } });
    const alice = await userKey(gw, 'alice');
    await connectViaToolError(gw, alice, upstream, 'docs-whoami', 'alice');
    await callTool(gw, alice, 'docs-whoami');
    gw.clock.advance(121);
    upstream.ageAccessTokens(121);
    const results = await Promise.all(Array.from({ length: 20 }, () => callTool(gw, alice, 'docs-whoami')));
    assert.deepEqual(new Set(results.map(text)), new Set(['alice']));
    assert.equal(upstream.tokenRequests.refresh_token, 1);
  });

  test('a refused refresh marks the connection for renewal and offers a new connect link', async (t) => {
    const { gw, upstream } = await setup(t, { upstream: { accessTokenTtl: 120 } });
    const alice = await userKey(gw, 'alice');
    await connectViaToolError(gw, alice, upstream, 'docs-whoami', 'alice');
    upstream.revokeAllGrants();
    gw.clock.advance(121);
    upstream.ageAccessTokens(121);
    const result = await callTool(gw, alice, 'docs-whoami');
    assert.equal(result.isError, true);
    assert.match(text(result), /Your connection to "docs" has expired or was revoked; connect your docs account again: open http/);
    const [row] = await gw.gatehouse.upstreamOAuth.connections('alice');
    assert.equal(row?.status, 'needs_reauth');
    // Reconnecting through the new link restores the connection.
    const done = await connectThroughLink(connectLink(text(result)), upstream);
    assert.equal(done.status, 200);
    assert.equal(text(await callTool(gw, alice, 'docs-whoami')), 'alice');
    assert.equal((await gw.gatehouse.upstreamOAuth.connections('alice'))[0]?.status, 'active');
  });

  test('an upstream that forgot the gateway\'s client: registered again automatically', async (t) => {
    const { gw, upstream } = await setup(t, { upstream: { accessTokenTtl: 120 } });
    const alice = await userKey(gw, 'alice');
    await connectViaToolError(gw, alice, upstream, 'docs-whoami', 'alice');
    assert.equal(upstream.registrations, 1);
    upstream.forgetClients();
    gw.clock.advance(121);
    upstream.ageAccessTokens(121);
    // The refresh meets invalid_client: the registration is dropped and the user reconnects.
    const result = await callTool(gw, alice, 'docs-whoami');
    assert.equal(result.isError, true);
    const done = await connectThroughLink(connectLink(text(result)), upstream);
    assert.equal(done.status, 200, done.text.slice(0, 300));
    assert.equal(upstream.registrations, 2);
    assert.equal(text(await callTool(gw, alice, 'docs-whoami')), 'alice');
  });

  test('seeing and removing connections: /api/me/connections; removing revokes at the upstream', async (t) => {
    const { gw, upstream } = await setup(t);
    const alice = await userKey(gw, 'alice');
    const auth = { authorization: `Bearer ${alice}` };
    let res = await fetch(`${gw.url}/api/me/connections`, { headers: auth });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { connections: [{ upstream: 'docs', status: 'not_connected' }] });

    await connectViaToolError(gw, alice, upstream, 'docs-whoami', 'alice');
    res = await fetch(`${gw.url}/api/me/connections`, { headers: auth });
    const body = (await res.json()) as { connections: Array<Record<string, unknown>> };
    assert.equal(body.connections[0]?.upstream, 'docs');
    assert.equal(body.connections[0]?.status, 'active');
    assert.equal(body.connections[0]?.scope, 'mcp:tools');
    assert.ok(!JSON.stringify(body).includes('token":'), 'no token in the listing');

    const revokedBefore = upstream.revocations;
    res = await fetch(`${gw.url}/api/me/connections/docs`, { method: 'DELETE', headers: auth });
    assert.equal(res.status, 204);
    assert.ok(upstream.revocations > revokedBefore, 'revoked at the upstream');
    res = await fetch(`${gw.url}/api/me/connections/docs`, { method: 'DELETE', headers: auth });
    assert.equal(res.status, 404);
    const after = await callTool(gw, alice, 'docs-whoami');
    assert.equal(after.isError, true, 'disconnected: the next call asks to connect again');

    res = await fetch(`${gw.url}/api/me/connections`);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer /);
  });
});

test('idle per-user connections are closed, and reopened on the next call', async (t) => {
  const upstream = await startOAuthUpstream();
  t.after(() => upstream.close());
  const gw = await startGateway({ config: { upstreams: [perUserUpstream('docs', upstream)] } });
  t.after(() => gw.close());
  const alice = await userKey(gw, 'alice');
  await connectViaToolError(gw, alice, upstream, 'docs-whoami', 'alice');
  assert.equal((await callTool(gw, alice, 'docs-whoami')).content[0]!.text, 'alice');
  const personal = gw.gatehouse.upstreams.personal;
  assert.equal(personal.size(), 1);
  gw.clock.advance(9 * 60);
  personal.sweep();
  assert.equal(personal.size(), 1, 'used 9 minutes ago: kept');
  gw.clock.advance(2 * 60);
  personal.sweep();
  assert.equal(personal.size(), 0, 'idle for 11 minutes: closed');
  assert.equal((await callTool(gw, alice, 'docs-whoami')).content[0]!.text, 'alice');
  assert.equal(personal.size(), 1);
});

test('a refresh that meets an outage is retried with backoff; the connection stays active', async (t) => {
  const upstream = await startOAuthUpstream({ accessTokenTtl: 120 });
  t.after(() => upstream.close());
  const gw = await startGateway({ config: { upstreams: [perUserUpstream('docs', upstream)] } });
  t.after(() => gw.close());
  const alice = await userKey(gw, 'alice');
  await connectViaToolError(gw, alice, upstream, 'docs-whoami', 'alice');
  gw.clock.advance(121);
  upstream.ageAccessTokens(121);
  upstream.failTokenRequests(2);
  assert.equal((await callTool(gw, alice, 'docs-whoami')).content[0]!.text, 'alice');
  assert.equal(upstream.tokenRequests.refresh_token, 3, 'two failures, then the refresh that worked');
  assert.equal((await gw.gatehouse.upstreamOAuth.connections('alice'))[0]?.status, 'active');
  // An outage longer than the retries: the call fails as unavailable, and nothing is lost.
  gw.clock.advance(121);
  upstream.ageAccessTokens(121);
  upstream.failTokenRequests(3);
  const failed = await callTool(gw, alice, 'docs-whoami');
  assert.equal(failed.isError, true);
  assert.match(failed.content[0]!.text, /cannot be used right now: the token could not be refreshed \(HTTP 503\)/);
  assert.equal((await gw.gatehouse.upstreamOAuth.connections('alice'))[0]?.status, 'active');
  assert.equal((await callTool(gw, alice, 'docs-whoami')).content[0]!.text, 'alice', 'the next call refreshes');
});
