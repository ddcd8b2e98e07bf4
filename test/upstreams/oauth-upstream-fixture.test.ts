/**
 * Self-test of test/fixtures/oauth-upstream.ts: that it behaves like a real protected MCP server
 * with its own authorization server, as a gateway acting as an OAuth client will meet it. The
 * OAuth client here is written out by hand (DCR, PKCE S256, resource indicator, code exchange,
 * refresh, revocation), and once more is the MCP TypeScript SDK's own client doing discovery and
 * sign-in by itself. The browser's part is followAuthorization (ConsentBrowser, cookies kept).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test, type TestContext } from 'node:test';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { followAuthorization, OAUTH_UPSTREAM_SCOPE, startOAuthUpstream, type OAuthUpstream, type OAuthUpstreamOptions } from '../fixtures/oauth-upstream.js';
import { ConsentBrowser } from '../helpers/browser.js';
import { MemoryProvider } from '../helpers/sdk-provider.js';
import { bounded } from '../helpers/bounded.js';

/** Nothing listens here: followAuthorization stops at the redirect and hands back the URL. */
const CALLBACK = 'http://127.0.0.1:47615/callback';

async function start(t: TestContext, options?: OAuthUpstreamOptions): Promise<OAuthUpstream> {
  const upstream = await bounded('start upstream', startOAuthUpstream(options));
  t.after(() => upstream.close());
  return upstream;
}

interface AsMetadata {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  registration_endpoint: string;
  revocation_endpoint: string;
  jwks_uri: string;
  code_challenge_methods_supported: string[];
}

async function getJson(url: string): Promise<{ status: number; json: any }> {
  const res = await bounded(`GET ${url}`, fetch(url));
  return { status: res.status, json: await res.json() };
}

async function asMetadata(upstream: OAuthUpstream): Promise<AsMetadata> {
  const { status, json } = await getJson(`${upstream.issuer}/.well-known/oauth-authorization-server`);
  assert.equal(status, 200);
  return json as AsMetadata;
}

async function postForm(url: string, fields: Record<string, string>): Promise<{ status: number; json: any }> {
  const res = await bounded(
    `POST ${url}`,
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() }),
  );
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/** RFC 7591 registration of a public client. */
async function register(upstream: OAuthUpstream): Promise<any> {
  const { registration_endpoint } = await asMetadata(upstream);
  const res = await bounded(
    'register',
    fetch(registration_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'fixture self-test',
        redirect_uris: [CALLBACK],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      }),
    }),
  );
  const json = await res.json();
  assert.equal(res.status, 201, JSON.stringify(json));
  return json;
}

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** The authorization request through the browser, as `account`; returns where the AS sent it back. */
async function authorize(
  upstream: OAuthUpstream,
  clientId: string,
  options: { account?: string; resource?: string | null; scope?: string; browser?: ConsentBrowser; challenge?: string } = {},
) {
  if (options.account) upstream.nextAccount = options.account;
  const { authorization_endpoint } = await asMetadata(upstream);
  const { verifier, challenge } = pkce();
  const state = randomBytes(8).toString('hex');
  const url = new URL(authorization_endpoint);
  const params: Record<string, string | undefined> = {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: CALLBACK,
    code_challenge: options.challenge ?? challenge,
    code_challenge_method: 'S256',
    state,
    scope: options.scope ?? OAUTH_UPSTREAM_SCOPE,
    resource: options.resource === null ? undefined : (options.resource ?? upstream.url),
  };
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  const back = await bounded('authorize', followAuthorization(upstream, url.toString(), options.browser));
  assert.equal(`${back.origin}${back.pathname}`, CALLBACK);
  assert.equal(back.searchParams.get('state'), state);
  assert.equal(back.searchParams.get('iss'), upstream.issuer);
  return { back, verifier };
}

/** Authorization code flow end to end: the token response. */
async function signIn(upstream: OAuthUpstream, clientId: string, account: string, browser?: ConsentBrowser) {
  const { back, verifier } = await authorize(upstream, clientId, { account, browser });
  const code = back.searchParams.get('code');
  assert.ok(code, `no code in ${back}`);
  const { token_endpoint } = await asMetadata(upstream);
  const res = await postForm(token_endpoint, {
    grant_type: 'authorization_code',
    code,
    redirect_uri: CALLBACK,
    code_verifier: verifier,
    client_id: clientId,
    resource: upstream.url,
  });
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return res.json as { access_token: string; refresh_token: string; token_type: string; expires_in: number; scope?: string };
}

async function refresh(upstream: OAuthUpstream, clientId: string, refreshToken: string) {
  const { token_endpoint } = await asMetadata(upstream);
  return postForm(token_endpoint, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId, resource: upstream.url });
}

/** An SDK client whose every request carries `accessToken`. */
async function connect(t: TestContext, upstream: OAuthUpstream, accessToken: string) {
  const transport = new StreamableHTTPClientTransport(new URL(upstream.url), { requestInit: { headers: { Authorization: `Bearer ${accessToken}` } } });
  const client = new Client({ name: 'fixture-self-test', version: '1.0.0' });
  t.after(() => client.close().catch(() => {}));
  await bounded('connect', client.connect(transport));
  return { client, transport };
}

async function whoami(client: Client): Promise<string> {
  const result = await bounded('whoami', client.callTool({ name: 'whoami', arguments: {} }));
  assert.equal(result.isError ?? false, false, JSON.stringify(result));
  return (result.content as Array<{ type: string; text: string }>)[0]!.text;
}

/** A raw JSON-RPC POST to the MCP endpoint. */
async function mcpPost(upstream: OAuthUpstream, body: unknown, headers: Record<string, string> = {}) {
  const res = await bounded(
    'POST /mcp',
    fetch(upstream.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
      body: JSON.stringify(body),
    }),
  );
  return { status: res.status, challenge: res.headers.get('www-authenticate'), text: await res.text() };
}

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1.0.0' } },
};

describe('OAuth-protected upstream fixture', () => {
  test('the MCP endpoint refuses a request without a valid token: 401 and a Bearer challenge naming its metadata', async (t) => {
    const upstream = await start(t);
    const none = await mcpPost(upstream, INITIALIZE);
    assert.equal(none.status, 401);
    assert.match(none.challenge ?? '', /^Bearer /);
    assert.ok(none.challenge!.includes(`resource_metadata="${upstream.resourceMetadataUrl}"`), none.challenge!);
    assert.ok(none.challenge!.includes(`scope="${OAUTH_UPSTREAM_SCOPE}"`), none.challenge!);
    assert.equal(none.challenge!.includes('error='), false, 'no error code when no credential was sent (RFC 6750 §3.1)');

    const garbage = await mcpPost(upstream, INITIALIZE, { authorization: 'Bearer not-a-token' });
    assert.equal(garbage.status, 401);
    assert.ok(garbage.challenge!.includes('error="invalid_token"'), garbage.challenge!);
    assert.ok(garbage.challenge!.includes(`resource_metadata="${upstream.resourceMetadataUrl}"`), garbage.challenge!);
    assert.equal(upstream.unauthorized, 2);
  });

  test('protected resource metadata (RFC 9728) and AS metadata (RFC 8414) are discoverable from the challenge', async (t) => {
    const upstream = await start(t);
    const { challenge } = await mcpPost(upstream, INITIALIZE);
    const prmUrl = /resource_metadata="([^"]+)"/.exec(challenge ?? '')?.[1];
    assert.equal(prmUrl, `${new URL(upstream.url).origin}/.well-known/oauth-protected-resource/mcp`, 'path-inserted well-known URL');

    const prm = await getJson(prmUrl!);
    assert.equal(prm.status, 200);
    assert.equal(prm.json.resource, upstream.url);
    assert.deepEqual(prm.json.authorization_servers, [upstream.issuer]);
    assert.deepEqual(prm.json.scopes_supported, [OAUTH_UPSTREAM_SCOPE]);

    const as = await getJson(`${prm.json.authorization_servers[0]}/.well-known/oauth-authorization-server`);
    assert.equal(as.status, 200);
    assert.equal(as.json.issuer, upstream.issuer);
    assert.deepEqual(as.json.code_challenge_methods_supported, ['S256']);
    for (const endpoint of ['authorization_endpoint', 'token_endpoint', 'registration_endpoint', 'revocation_endpoint', 'jwks_uri']) {
      assert.ok(String(as.json[endpoint]).startsWith(`${upstream.issuer}/`), `${endpoint}: ${as.json[endpoint]}`);
    }
    assert.ok(as.json.grant_types_supported.includes('refresh_token'));
    assert.ok(as.json.token_endpoint_auth_methods_supported.includes('none'));
    // The OpenID Connect location serves the same document.
    const oidc = await getJson(`${upstream.issuer}/.well-known/openid-configuration`);
    assert.equal(oidc.json.registration_endpoint, as.json.registration_endpoint);
  });

  test('a public client registers, alice signs in with PKCE and the resource, and whoami says alice', async (t) => {
    const upstream = await start(t);
    const client = await register(upstream);
    assert.equal(client.token_endpoint_auth_method, 'none');
    assert.equal(client.client_secret, undefined, 'a public client gets no secret');
    assert.equal(upstream.registrations, 1);

    const tokens = await signIn(upstream, client.client_id, 'alice');
    assert.equal(tokens.token_type, 'Bearer');
    assert.equal(tokens.expires_in, 3600);
    assert.equal(tokens.scope, OAUTH_UPSTREAM_SCOPE);
    assert.ok(tokens.refresh_token, 'a refresh token without offline_access');
    const header = decodeProtectedHeader(tokens.access_token);
    assert.equal(header.alg, 'ES256');
    assert.equal(header.typ, 'at+jwt');
    const claims = decodeJwt(tokens.access_token);
    assert.equal(claims.aud, upstream.url);
    assert.equal(claims.iss, upstream.issuer);
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.client_id, client.client_id);
    assert.equal(claims.scope, OAUTH_UPSTREAM_SCOPE);
    assert.equal(upstream.tokenRequests.authorization_code, 1);

    const { client: mcp } = await connect(t, upstream, tokens.access_token);
    assert.equal(await whoami(mcp), 'alice');
    const echoed = await bounded('echo', mcp.callTool({ name: 'echo', arguments: { message: 'hello' } }));
    assert.deepEqual(echoed.content, [{ type: 'text', text: 'hello' }]);
    assert.deepEqual(upstream.calls, [
      { tool: 'whoami', sub: 'alice', clientId: client.client_id, args: {} },
      { tool: 'echo', sub: 'alice', clientId: client.client_id, args: { message: 'hello' } },
    ]);
  });

  test('bob signs in through the same browser and gets bob; a session stays bound to the user who opened it', async (t) => {
    const upstream = await start(t);
    const { client_id } = await register(upstream);
    const browser = new ConsentBrowser();
    const alice = await signIn(upstream, client_id, 'alice', browser);
    // The browser still holds alice's session at the AS: the login is asked for anyway.
    const bob = await signIn(upstream, client_id, 'bob', browser);
    assert.equal(decodeJwt(bob.access_token).sub, 'bob');

    const { client: asAlice, transport: aliceTransport } = await connect(t, upstream, alice.access_token);
    const { client: asBob } = await connect(t, upstream, bob.access_token);
    assert.equal(await whoami(asAlice), 'alice');
    assert.equal(await whoami(asBob), 'bob');

    // Bob's token on alice's session: as if the session did not exist.
    const crossed = await mcpPost(
      upstream,
      { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'whoami', arguments: {} } },
      { authorization: `Bearer ${bob.access_token}`, 'mcp-session-id': aliceTransport.sessionId!, 'mcp-protocol-version': '2025-06-18' },
    );
    assert.equal(crossed.status, 404, crossed.text);
    assert.equal(upstream.sessionMismatches, 1);

    // Bob's sign-in ended alice's session at the AS, but not her grant: her refresh token lives on.
    const aliceRefreshed = await refresh(upstream, client_id, alice.refresh_token);
    assert.equal(aliceRefreshed.status, 200, JSON.stringify(aliceRefreshed.json));
    assert.equal(decodeJwt(aliceRefreshed.json.access_token).sub, 'alice');
  });

  test('refresh rotates the refresh token; the new access token works on the open session; the old refresh token is refused', async (t) => {
    const upstream = await start(t);
    const { client_id } = await register(upstream);
    const first = await signIn(upstream, client_id, 'alice');

    // Every request is authenticated with its own token: a session opened with the first access
    // token goes on with the refreshed one.
    const { transport } = await connect(t, upstream, first.access_token);
    const refreshed = await refresh(upstream, client_id, first.refresh_token);
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.json));
    assert.ok(refreshed.json.refresh_token);
    assert.notEqual(refreshed.json.refresh_token, first.refresh_token, 'rotated');
    assert.notEqual(refreshed.json.access_token, first.access_token);
    assert.equal(decodeJwt(refreshed.json.access_token).aud, upstream.url);
    assert.equal(decodeJwt(refreshed.json.access_token).sub, 'alice');
    const call = await mcpPost(
      upstream,
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'whoami', arguments: {} } },
      { authorization: `Bearer ${refreshed.json.access_token}`, 'mcp-session-id': transport.sessionId!, 'mcp-protocol-version': '2025-06-18' },
    );
    assert.equal(call.status, 200, call.text);
    assert.ok(call.text.includes('"text":"alice"'), call.text);
    // The session alone is no credential.
    const bare = await mcpPost(
      upstream,
      { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'whoami', arguments: {} } },
      { 'mcp-session-id': transport.sessionId!, 'mcp-protocol-version': '2025-06-18' },
    );
    assert.equal(bare.status, 401);

    const again = await refresh(upstream, client_id, refreshed.json.refresh_token);
    assert.equal(again.status, 200, JSON.stringify(again.json));

    // Reusing a rotated refresh token is refused, and oidc-provider then revokes the whole grant:
    // even the latest refresh token stops working.
    const reused = await refresh(upstream, client_id, first.refresh_token);
    assert.equal(reused.status, 400);
    assert.equal(reused.json.error, 'invalid_grant');
    const latest = await refresh(upstream, client_id, again.json.refresh_token);
    assert.equal(latest.status, 400);
    assert.equal(latest.json.error, 'invalid_grant');
    assert.equal(upstream.tokenRequests.refresh_token, 4);
    assert.equal(upstream.tokenRequests.authorization_code, 1);
  });

  test('only a JWT for exactly this MCP server, from this AS, is accepted', async (t) => {
    const upstream = await start(t);
    const other = await start(t);
    const { client_id } = await register(upstream);

    // Another resource indicator is not served by this AS.
    const wrong = await authorize(upstream, client_id, { resource: `${upstream.url}/other` });
    assert.equal(wrong.back.searchParams.get('error'), 'invalid_target');

    // Without a resource (and with openid), the AS issues an opaque token for its userinfo.
    const { back, verifier } = await authorize(upstream, client_id, { resource: null, scope: 'openid' });
    const { token_endpoint } = await asMetadata(upstream);
    const opaque = await postForm(token_endpoint, {
      grant_type: 'authorization_code',
      code: back.searchParams.get('code')!,
      redirect_uri: CALLBACK,
      code_verifier: verifier,
      client_id,
    });
    assert.equal(opaque.status, 200, JSON.stringify(opaque.json));
    const refused = await mcpPost(upstream, INITIALIZE, { authorization: `Bearer ${opaque.json.access_token}` });
    assert.equal(refused.status, 401);
    assert.ok(refused.challenge!.includes('error="invalid_token"'));

    // A token of another upstream (another AS, another audience).
    const foreignClient = await register(other);
    const foreign = await signIn(other, foreignClient.client_id, 'alice');
    const alien = await mcpPost(upstream, INITIALIZE, { authorization: `Bearer ${foreign.access_token}` });
    assert.equal(alien.status, 401);
    assert.ok(alien.challenge!.includes('error="invalid_token"'));

    // A wrong PKCE verifier.
    const pkceFail = await authorize(upstream, client_id);
    const bad = await postForm(token_endpoint, {
      grant_type: 'authorization_code',
      code: pkceFail.back.searchParams.get('code')!,
      redirect_uri: CALLBACK,
      code_verifier: randomBytes(32).toString('base64url'),
      client_id,
      resource: upstream.url,
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error, 'invalid_grant');

    // A genuine token with its payload altered (sub → mallory): the signature no longer holds.
    const genuine = await signIn(upstream, client_id, 'alice');
    const [h, p, sig] = genuine.access_token.split('.');
    const forgedPayload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), sub: 'mallory' })).toString('base64url');
    const forged = await mcpPost(upstream, INITIALIZE, { authorization: `Bearer ${h}.${forgedPayload}.${sig}` });
    assert.equal(forged.status, 401);
    assert.ok(forged.challenge!.includes('error="invalid_token"'));
    assert.equal((await mcpPost(upstream, INITIALIZE, { authorization: `Bearer ${genuine.access_token}` })).status, 200);
  });

  test('with accessTokenTtl=120, a token is refused once expired, and a refreshed one is accepted', async (t) => {
    const upstream = await start(t, { accessTokenTtl: 120 });
    const { client_id } = await register(upstream);
    const tokens = await signIn(upstream, client_id, 'alice');
    assert.equal(tokens.expires_in, 120);
    const claims = decodeJwt(tokens.access_token);
    assert.equal(claims.exp! - claims.iat!, 120);

    const { transport } = await connect(t, upstream, tokens.access_token);
    // oidc-provider has no fake clock; the fixture ages issued tokens at the MCP server instead
    // of this test waiting. Half the lifetime leaves a minute of real time for a slow machine.
    upstream.ageAccessTokens(60);
    const stillValid = await mcpPost(upstream, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, {
      authorization: `Bearer ${tokens.access_token}`,
      'mcp-session-id': transport.sessionId!,
      'mcp-protocol-version': '2025-06-18',
    });
    assert.equal(stillValid.status, 200, stillValid.text);

    upstream.ageAccessTokens(61);
    const expired = await mcpPost(upstream, { jsonrpc: '2.0', id: 4, method: 'tools/list' }, {
      authorization: `Bearer ${tokens.access_token}`,
      'mcp-session-id': transport.sessionId!,
      'mcp-protocol-version': '2025-06-18',
    });
    assert.equal(expired.status, 401);
    assert.ok(expired.challenge!.includes('error="invalid_token"'), expired.challenge!);
    assert.match(expired.challenge!, /error_description="[^"]*exp claim/);

    const refreshed = await refresh(upstream, client_id, tokens.refresh_token);
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.json));
    const { client: mcp } = await connect(t, upstream, refreshed.json.access_token);
    assert.equal(await whoami(mcp), 'alice');
  });

  test('forgetClients: the old client_id is invalid_client at the token and authorization endpoints', async (t) => {
    const upstream = await start(t);
    const { client_id } = await register(upstream);
    const tokens = await signIn(upstream, client_id, 'alice');
    upstream.forgetClients();

    const refused = await refresh(upstream, client_id, tokens.refresh_token);
    assert.equal(refused.status, 401);
    assert.equal(refused.json.error, 'invalid_client');
    assert.equal(upstream.tokenRequests.refresh_token, 1, 'failed token requests are counted too');

    const { authorization_endpoint } = await asMetadata(upstream);
    const url = new URL(authorization_endpoint);
    const { challenge } = pkce();
    for (const [k, v] of Object.entries({ response_type: 'code', client_id, redirect_uri: CALLBACK, code_challenge: challenge, code_challenge_method: 'S256', resource: upstream.url, scope: OAUTH_UPSTREAM_SCOPE })) {
      url.searchParams.set(k, v);
    }
    const page = await bounded('authorize', fetch(url, { redirect: 'manual' }));
    assert.equal(page.status, 400, 'an unknown client cannot be redirected to: an error page');
    assert.match(await page.text(), /invalid_client/);

    // Registering again works.
    const again = await register(upstream);
    assert.notEqual(again.client_id, client_id);
    assert.equal(upstream.registrations, 2);
  });

  test('revocation (RFC 7009) of the refresh token makes it unusable; revokeAllGrants and invalidateAccessTokens', async (t) => {
    const upstream = await start(t);
    const { client_id } = await register(upstream);
    const { revocation_endpoint } = await asMetadata(upstream);

    const tokens = await signIn(upstream, client_id, 'alice');
    const revoked = await postForm(revocation_endpoint, { token: tokens.refresh_token, token_type_hint: 'refresh_token', client_id });
    assert.equal(revoked.status, 200);
    assert.equal(upstream.revocations, 1);
    const refused = await refresh(upstream, client_id, tokens.refresh_token);
    assert.equal(refused.status, 400);
    assert.equal(refused.json.error, 'invalid_grant');
    // oidc-provider will not revoke a JWT access token (structured tokens are not revocable there).
    const jwtRevocation = await postForm(revocation_endpoint, { token: tokens.access_token, client_id });
    assert.equal(jwtRevocation.status, 400);
    assert.equal(jwtRevocation.json.error, 'unsupported_token_type');

    // revokeAllGrants: refresh fails, the JWT access token still works until invalidateAccessTokens.
    const second = await signIn(upstream, client_id, 'bob');
    upstream.revokeAllGrants();
    const afterRevokeAll = await refresh(upstream, client_id, second.refresh_token);
    assert.equal(afterRevokeAll.status, 400);
    assert.equal(afterRevokeAll.json.error, 'invalid_grant');
    const { client: mcp } = await connect(t, upstream, second.access_token);
    assert.equal(await whoami(mcp), 'bob');
    upstream.invalidateAccessTokens();
    const dead = await mcpPost(upstream, INITIALIZE, { authorization: `Bearer ${second.access_token}` });
    assert.equal(dead.status, 401);
    assert.ok(dead.challenge!.includes('error="invalid_token"'));
    // A new sign-in still works after all that.
    const third = await signIn(upstream, client_id, 'carol');
    const { client: fresh } = await connect(t, upstream, third.access_token);
    assert.equal(await whoami(fresh), 'carol');
  });

  test('the MCP SDK client discovers and signs in by itself (401 → PRM → AS metadata → DCR → PKCE + resource)', async (t) => {
    const upstream = await start(t, { account: 'dora' });
    const provider = new MemoryProvider(CALLBACK, {
      client_name: 'SDK self-test',
      redirect_uris: [CALLBACK],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    });
    const first = new StreamableHTTPClientTransport(new URL(upstream.url), { authProvider: provider });
    const unauthenticated = new Client({ name: 'sdk-self-test', version: '1.0.0' });
    await assert.rejects(bounded('first connect', unauthenticated.connect(first)), UnauthorizedError);
    await unauthenticated.close().catch(() => {});
    assert.equal(upstream.registrations, 1);
    const url = provider.redirects[0]!;
    assert.equal(url.searchParams.get('resource'), upstream.url);
    assert.equal(url.searchParams.get('scope'), OAUTH_UPSTREAM_SCOPE);
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');

    const back = await bounded('browser', followAuthorization(upstream, url.toString()));
    const code = back.searchParams.get('code');
    assert.ok(code, `no code in ${back}`);
    await bounded('finishAuth', first.finishAuth(code));
    assert.equal(decodeJwt(provider.tokens()!.access_token).aud, upstream.url);

    const client = new Client({ name: 'sdk-self-test', version: '1.0.0' });
    t.after(() => client.close().catch(() => {}));
    await bounded('second connect', client.connect(new StreamableHTTPClientTransport(new URL(upstream.url), { authProvider: provider })));
    assert.equal(await whoami(client), 'dora');
    assert.deepEqual(provider.invalidated, []);
  });
});
