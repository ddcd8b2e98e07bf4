import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConsentBrowser, location } from '../helpers/browser.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { authorizeUrl, createKey, pkce, REDIRECT, registerClient } from '../helpers/oauth.js';

/** Product §2.3 and §2.6 at authorization time. */
describe('authorization endpoint', () => {
  let gw: TestGateway;
  let clientId: string;
  let issuer: string;
  const { challenge } = pkce();
  const valid = (over: Record<string, string | undefined> = {}) => ({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: 'st-123',
    ...over,
  });

  before(async () => {
    gw = await startGateway();
    issuer = gw.gatehouse.issuer();
    clientId = await registerClient(gw, {
      redirect_uris: [REDIRECT, 'cursor://anysphere.cursor-mcp/oauth/callback', 'https://claude.ai/api/mcp/auth_callback'],
      scope: 'mcp:read mcp:write',
    });
  });
  after(() => gw.close());

  const get = (params: Record<string, string | undefined>) => fetch(authorizeUrl(gw, params), { redirect: 'manual' });

  /** An HTML error page: never a redirect to the client. */
  async function expectPage(res: Response, text: RegExp) {
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('location'), null);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    const body = await res.text();
    assert.match(body, text);
    assert.match(res.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
  }

  /** A redirect to the client with error, error_description, state and iss (RFC 6749 §4.1.2.1, RFC 9207). */
  function expectRedirectError(res: Response, error: string, base = REDIRECT) {
    assert.equal(res.status, 302);
    const to = new URL(location(res, 302));
    assert.equal(`${to.protocol}//${to.host}${to.pathname}`, base);
    assert.equal(to.searchParams.get('error'), error);
    assert.ok(to.searchParams.get('error_description'));
    assert.equal(to.searchParams.get('state'), 'st-123');
    assert.equal(to.searchParams.get('iss'), issuer);
  }

  test('a valid request goes to the consent page, bound to the browser by an HttpOnly cookie', async () => {
    const res = await get(valid());
    assert.equal(res.status, 302);
    assert.match(location(res, 302), new RegExp(`^${issuer}/oauth/consent\\?request=[A-Za-z0-9_-]+$`));
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('gatehouse_auth='));
    assert.ok(cookie);
    assert.match(cookie, /HttpOnly/i);
    assert.match(cookie, /SameSite=Lax/i);
    assert.match(cookie, /Path=\//);
  });

  test('unknown client: an HTML error page, no redirect', async () => {
    await expectPage(await get(valid({ client_id: '00000000-0000-4000-8000-000000000000' })), /Unknown application/);
    await expectPage(await get(valid({ client_id: undefined })), /incomplete/);
  });

  test('unregistered redirect URI, or another path on loopback: an HTML error page, no redirect', async () => {
    await expectPage(await get(valid({ redirect_uri: 'https://evil.example/callback' })), /did not register/);
    await expectPage(await get(valid({ redirect_uri: 'http://127.0.0.1:54321/other' })), /did not register/);
    await expectPage(await get(valid({ redirect_uri: 'http://localhost:54321/callback' })), /did not register/);
    await expectPage(await get(valid({ redirect_uri: `${REDIRECT}#frag` })), /did not register/);
    await expectPage(await get(valid({ redirect_uri: 'javascript:alert(1)' })), /did not register/);
  });

  test('loopback redirect URIs match on any port (RFC 8252 §7.3)', async () => {
    const res = await get(valid({ redirect_uri: 'http://127.0.0.1:61000/callback' }));
    assert.equal(res.status, 302);
    assert.match(location(res, 302), /\/oauth\/consent\?request=/);
  });

  test('private-use and https redirect URIs work when registered', async () => {
    for (const uri of ['cursor://anysphere.cursor-mcp/oauth/callback', 'https://claude.ai/api/mcp/auth_callback']) {
      const res = await get(valid({ redirect_uri: uri }));
      assert.equal(res.status, 302, uri);
      assert.match(location(res, 302), /\/oauth\/consent\?request=/);
    }
  });

  test('without redirect_uri, the only registered one is used; with several registered it is required', async () => {
    const single = await registerClient(gw, { redirect_uris: [REDIRECT] });
    assert.equal((await get(valid({ client_id: single, redirect_uri: undefined }))).status, 302);
    await expectPage(await get(valid({ redirect_uri: undefined })), /did not register/);
  });

  test('PKCE is required, and only S256', async () => {
    expectRedirectError(await get(valid({ code_challenge: undefined })), 'invalid_request');
    expectRedirectError(await get(valid({ code_challenge_method: undefined })), 'invalid_request');
    expectRedirectError(await get(valid({ code_challenge_method: 'plain' })), 'invalid_request');
    expectRedirectError(await get(valid({ code_challenge: 'too-short' })), 'invalid_request');
  });

  test('response_type other than code', async () => {
    expectRedirectError(await get(valid({ response_type: 'token' })), 'unsupported_response_type');
    expectRedirectError(await get(valid({ response_type: undefined })), 'invalid_request');
  });

  test('resource must be one of ours (RFC 8707): otherwise invalid_target', async () => {
    expectRedirectError(await get(valid({ resource: 'https://other.example/mcp' })), 'invalid_target');
    expectRedirectError(await get(valid({ resource: `${issuer}/mcp/nope` })), 'invalid_target');
    expectRedirectError(await get(valid({ resource: `${issuer}/mcp/` })), 'invalid_target');
    assert.equal((await get(valid({ resource: `${issuer}/mcp` }))).status, 302);
    assert.equal((await get(valid({ resource: `${issuer}/mcp/notion` }))).status, 302);
  });

  test('scope beyond what the client registered: invalid_scope', async () => {
    const readOnly = await registerClient(gw, { scope: 'mcp:read' });
    expectRedirectError(await get(valid({ client_id: readOnly, scope: 'mcp:write' })), 'invalid_scope');
    expectRedirectError(await get(valid({ scope: 'openid' })), 'invalid_scope');
    assert.equal((await get(valid({ client_id: readOnly, scope: 'mcp:read' }))).status, 302);
  });

  test('errors on a private-use redirect URI go back to the app, with state and iss', async () => {
    const res = await get(valid({ redirect_uri: 'cursor://anysphere.cursor-mcp/oauth/callback', response_type: 'token' }));
    expectRedirectError(res, 'unsupported_response_type', 'cursor://anysphere.cursor-mcp/oauth/callback');
  });

  test('repeated parameters, bad encoding and huge values are refused with a page, never a 500', async () => {
    const base = authorizeUrl(gw, valid());
    await expectPage(await fetch(`${base}&client_id=${clientId}`, { redirect: 'manual' }), /malformed/);
    await expectPage(await fetch(`${base}&x=%FF`, { redirect: 'manual' }), /malformed/);
    const huge = await get(valid({ state: 'x'.repeat(5000) }));
    assert.ok(huge.status === 302 || huge.status === 400 || huge.status === 414 || huge.status === 431, String(huge.status));
    if (huge.status === 302) assert.equal(new URL(location(huge, 302)).searchParams.get('state'), null, 'an oversized state is not echoed');
  });

  test('an unregistered client with a valid flow otherwise still gets no code', async () => {
    const key = (await createKey(gw)).key;
    await assert.rejects(new ConsentBrowser().authorize(authorizeUrl(gw, valid({ client_id: 'nope' })), key), /expected 302, got 400/);
  });
});
