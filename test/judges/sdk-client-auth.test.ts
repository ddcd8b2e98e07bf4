import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { InvalidClientMetadataError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import type { OAuthClientMetadata } from '@modelcontextprotocol/sdk/shared/auth.js';
import { consentForCode, MemoryProvider } from '../helpers/sdk-provider.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { AUTHORIZE, createKey, pkce, tokenRequest } from '../helpers/oauth.js';
import { bounded, STEP_TIMEOUT_MS } from '../helpers/bounded.js';

/**
 * The MCP TypeScript SDK client running its own OAuth flow (`auth()`) against the gateway:
 * discovery (RFC 9728 protected resource metadata, RFC 8414 AS metadata), registration (RFC 7591)
 * or a Client ID Metadata Document, the authorization request, the code exchange, and a refresh.
 * The browser's part is done by ConsentBrowser; nothing listens on the redirect URI.
 */

/** A fetch for the SDK that records each exchange, so a failure can show what was said. */
function recordingFetch(trace: string[]): typeof fetch {
  return async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
    const body = init?.body === undefined || init.body === null ? '' : ` body=${String(init.body)}`;
    const res = await fetch(input, { ...init, signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
    const text = await res.clone().text();
    trace.push(`${method} ${url}${body}\n  -> ${res.status} ${text.slice(0, 500)}`);
    return res;
  };
}

/** Runs the SDK's auth(); on failure, the error carries the HTTP exchanges it made. */
async function sdkAuth(
  provider: MemoryProvider,
  options: { serverUrl: string; authorizationCode?: string },
): Promise<'AUTHORIZED' | 'REDIRECT'> {
  const trace: string[] = [];
  try {
    return await bounded('auth()', auth(provider, { ...options, fetchFn: recordingFetch(trace) }));
  } catch (err) {
    (err as Error).message += `\nHTTP exchanges:\n${trace.join('\n')}`;
    throw err;
  }
}

/** A port nothing listens on is fine: ConsentBrowser stops at the redirect and hands us the URL. */
const CALLBACK = 'http://127.0.0.1:47613/callback';

function clientMetadata(name: string): OAuthClientMetadata {
  return {
    client_name: name,
    redirect_uris: [CALLBACK],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
}

/** Serves a Client ID Metadata Document at http://127.0.0.1:<port>/client.json, naming itself. */
async function serveClientDocument(t: TestContext): Promise<{ url: string; fetches: () => number }> {
  let fetches = 0;
  let url = '';
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/client.json') {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' });
      res.end(JSON.stringify({ client_id: url, ...clientMetadata('CIMD SDK test client') }));
      return;
    }
    res.writeHead(404).end();
  });
  server.requestTimeout = STEP_TIMEOUT_MS;
  await bounded('document server listen', new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve)));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/client.json`;
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url, fetches: () => fetches };
}

async function gateway(t: TestContext, config?: Record<string, unknown>): Promise<{ gw: TestGateway; issuer: string; serverUrl: string }> {
  const gw = await bounded('startGateway', startGateway(config ? { config } : {}));
  t.after(() => gw.close());
  const issuer = gw.gatehouse.issuer();
  return { gw, issuer, serverUrl: `${issuer}/mcp` };
}

/** Checks the authorization URL the SDK built, and returns it. */
function checkAuthorizationUrl(provider: MemoryProvider, issuer: string, clientId: string): URL {
  assert.equal(provider.redirects.length, 1, 'the SDK sends the user to the authorization endpoint once');
  const url = provider.redirects[0]!;
  assert.equal(`${url.origin}${url.pathname}`, issuer + AUTHORIZE);
  const q = url.searchParams;
  assert.equal(q.get('response_type'), 'code');
  assert.equal(q.get('client_id'), clientId);
  assert.equal(q.get('redirect_uri'), CALLBACK);
  assert.equal(q.get('code_challenge_method'), 'S256');
  assert.match(q.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
  assert.equal(q.get('resource'), `${issuer}/mcp`);
  // Scope selection (SEP-835): the protected resource metadata's scopes_supported.
  assert.equal(q.get('scope'), 'mcp:read mcp:write');
  assert.equal(q.get('state'), provider.expectedState);
  return url;
}

/** The browser's part: consent with a fresh key; returns the code from the redirect. */
async function consent(gw: TestGateway, provider: MemoryProvider, authorizationUrl: URL, issuer: string): Promise<string> {
  const { key } = await createKey(gw);
  return consentForCode(provider, authorizationUrl, key, issuer);
}

/** Code exchange, then a refresh, both by the SDK; checks the tokens it saved. */
async function exchangeAndRefresh(gw: TestGateway, provider: MemoryProvider, serverUrl: string, code: string, clientId: string) {
  assert.equal(await sdkAuth(provider, { serverUrl, authorizationCode: code }), 'AUTHORIZED');
  const first = provider.tokens();
  assert.ok(first, 'the SDK saved tokens');
  assert.equal(first.token_type, 'Bearer');
  assert.equal(first.scope, 'mcp:read mcp:write');
  assert.ok(first.refresh_token, 'a refresh_token for a client that registered the refresh_token grant');
  const claims = await gw.gatehouse.accessTokens.verify(first.access_token, serverUrl);
  assert.equal(claims.client_id, clientId);
  assert.equal(claims.aud, serverUrl);

  // Stored tokens with a refresh_token: auth() without a code refreshes instead of redirecting.
  assert.equal(await sdkAuth(provider, { serverUrl }), 'AUTHORIZED');
  const second = provider.tokens();
  assert.ok(second);
  assert.equal(provider.tokenHistory.length, 2, 'one save for the code exchange, one for the refresh');
  assert.equal(provider.redirects.length, 1, 'no second trip to the authorization endpoint');
  assert.ok(second.refresh_token);
  assert.notEqual(second.refresh_token, first.refresh_token, 'the refresh token is rotated');
  assert.notEqual(second.access_token, first.access_token);
  const refreshedClaims = await gw.gatehouse.accessTokens.verify(second.access_token, serverUrl);
  assert.equal(refreshedClaims.client_id, clientId);
  assert.equal(refreshedClaims.sid, claims.sid, 'the same grant');
  assert.deepEqual(provider.invalidated, [], 'the SDK never had to discard credentials');
}

describe('MCP TypeScript SDK auth() against the gateway', () => {
  test('dynamic registration, authorization code with PKCE, and a refresh', async (t) => {
    const { gw, issuer, serverUrl } = await gateway(t);
    const provider = new MemoryProvider(CALLBACK, clientMetadata('SDK auth() test client'));

    assert.equal(await sdkAuth(provider, { serverUrl }), 'REDIRECT');
    const info = provider.clientInformation();
    assert.ok(info, 'the SDK registered a client');
    assert.match(info.client_id, /^[0-9a-f-]{36}$/);
    assert.equal(info.client_secret, undefined, 'a public client');
    assert.ok(await gw.gatehouse.clients.find(info.client_id), 'the registration is stored');

    const authorizationUrl = checkAuthorizationUrl(provider, issuer, info.client_id);
    const code = await consent(gw, provider, authorizationUrl, issuer);
    await exchangeAndRefresh(gw, provider, serverUrl, code, info.client_id);
  });

  test('a Client ID Metadata Document client (http on loopback, allowed by allow_private_network)', async (t) => {
    const doc = await serveClientDocument(t);
    const { gw, issuer, serverUrl } = await gateway(t, { oauth_server: { client_metadata_documents: { allow_private_network: true } } });

    const asResponse = await bounded('AS metadata', fetch(`${issuer}/.well-known/oauth-authorization-server`));
    const asMetadata = (await asResponse.json()) as Record<string, unknown>;
    assert.equal(asMetadata.client_id_metadata_document_supported, true);

    // The SDK's own CIMD branch (SEP-991) requires clientMetadataUrl to be https with a path and
    // refuses anything else before any request is built. A test cannot serve trusted https
    // locally, so this checks that refusal and then does not use the branch:
    const refusing = new MemoryProvider(CALLBACK, clientMetadata('CIMD SDK test client'));
    refusing.clientMetadataUrl = doc.url;
    await assert.rejects(sdkAuth(refusing, { serverUrl }), InvalidClientMetadataError);
    assert.equal(refusing.clientInformation(), undefined, 'no registration was made instead');

    // Choice: the SDK still drives the flow. All its CIMD branch does is store
    // `{ client_id: clientMetadataUrl, issuer }` as the client information and skip registration;
    // seeding the provider with exactly that puts the SDK in the same state, so discovery, the
    // authorization URL, the code exchange and the refresh below are all the SDK's own requests,
    // with the document URL as client_id. The gateway's part is the real CIMD path: it fetches
    // and validates the document (counted below).
    const provider = new MemoryProvider(CALLBACK, clientMetadata('CIMD SDK test client'), { client_id: doc.url, issuer });
    assert.equal(await sdkAuth(provider, { serverUrl }), 'REDIRECT');
    assert.equal(provider.clientInformation()?.client_id, doc.url, 'no dynamic registration');
    const authorizationUrl = checkAuthorizationUrl(provider, issuer, doc.url);
    const code = await consent(gw, provider, authorizationUrl, issuer);
    assert.ok(doc.fetches() >= 1, 'the gateway fetched the metadata document');
    await exchangeAndRefresh(gw, provider, serverUrl, code, doc.url);
  });

  test('the same http/loopback client_id is refused by default (SSRF guard), with an HTML page', async (t) => {
    const doc = await serveClientDocument(t);
    const { gw } = await gateway(t);
    const { challenge } = pkce();
    const url = new URL(gw.url + AUTHORIZE);
    for (const [k, v] of Object.entries({
      response_type: 'code',
      client_id: doc.url,
      redirect_uri: CALLBACK,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state: 'abc',
      resource: `${gw.gatehouse.issuer()}/mcp`,
    })) {
      url.searchParams.set(k, v);
    }
    const res = await fetch(url, { redirect: 'manual', headers: { accept: 'text/html' }, signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
    const body = await res.text();
    assert.equal(res.status, 400, body.slice(0, 300));
    assert.equal(res.headers.get('location'), null, 'no redirect to an unverified redirect URI');
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(body, /<html/i);
    assert.match(body, /Unknown application/);
    assert.equal(doc.fetches(), 0, 'the gateway did not fetch the http/loopback document');

    // The token endpoint does not accept it either.
    const token = await tokenRequest(gw, {
      grant_type: 'authorization_code',
      code: 'x',
      code_verifier: 'a'.repeat(43),
      redirect_uri: CALLBACK,
      client_id: doc.url,
    });
    assert.equal(token.status, 401, JSON.stringify(token.json));
    assert.equal(token.json.error, 'invalid_client');
    assert.equal(doc.fetches(), 0);
  });
});
