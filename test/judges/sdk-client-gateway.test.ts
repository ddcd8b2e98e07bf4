/**
 * Judge: the MCP TypeScript SDK client (Client + StreamableHTTPClientTransport) against the
 * gateway's `/mcp`, signing in on its own: the 401 challenge, protected resource and AS metadata,
 * dynamic registration, PKCE, the code exchange (`transport.finishAuth`), then a new connection
 * with the token that lists the aggregated catalog and calls a tool of each upstream. A client
 * whose key only allows `mcp:read` lists but cannot call (403 insufficient_scope). The browser's
 * part is ConsentBrowser; nothing listens on the redirect URI.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientMetadata } from '@modelcontextprotocol/sdk/shared/auth.js';
import { startHttpFixture, type HttpFixture } from '../fixtures/http-fixture.js';
import { consentForCode, MemoryProvider } from '../helpers/sdk-provider.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { upstreamsReady } from '../helpers/mcp.js';
import { AUTHORIZE, createKey } from '../helpers/oauth.js';
import { bounded } from '../helpers/bounded.js';

/** Keeps tokens out of test output. */
const redact = (text: string) =>
  text.replace(/eyJ[\w-]+\.[\w-]+\.[\w-]+/g, '<jwt>').replace(/("refresh_token"\s*:\s*")[^"]*/g, '$1<redacted>');

/** A fetch for the SDK that records each exchange, so a failure can show what was said. */
function recordingFetch(trace: string[]): typeof fetch {
  return async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
    const res = await fetch(input, init);
    const type = res.headers.get('content-type') ?? '';
    // An event stream stays open: do not wait for its body.
    const text = type.includes('text/event-stream') ? '(event stream)' : redact(await res.clone().text()).slice(0, 300);
    const challenge = res.headers.get('www-authenticate');
    trace.push(`${method} ${url} -> ${res.status}${challenge ? ` [WWW-Authenticate: ${challenge}]` : ''} ${text}`);
    return res;
  };
}

/** A port nothing listens on is fine: ConsentBrowser stops at the redirect and hands us the URL. */
const CALLBACK = 'http://127.0.0.1:47614/callback';

function clientMetadata(name: string, extra: Partial<OAuthClientMetadata> = {}): OAuthClientMetadata {
  return {
    client_name: name,
    redirect_uris: [CALLBACK],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    ...extra,
  };
}

interface Session {
  client: Client;
  provider: MemoryProvider;
  /** The HTTP exchanges of both connections, for failure messages. */
  trace: string[];
}

describe('MCP TypeScript SDK client through the gateway', () => {
  let gw: TestGateway;
  let alpha: HttpFixture;
  let beta: HttpFixture;
  let issuer: string;
  let serverUrl: string;
  const clients: Client[] = [];

  before(async () => {
    [alpha, beta] = await Promise.all([startHttpFixture('alpha'), startHttpFixture('beta')]);
    gw = await startGateway({
      config: {
        upstreams: [
          { name: 'alpha', transport: 'http', url: alpha.url, auth_type: 'none' },
          { name: 'beta', transport: 'http', url: beta.url, auth_type: 'none' },
        ],
        oauth_server: { enabled: true },
      },
    });
    await upstreamsReady(gw, ['alpha', 'beta']);
    issuer = gw.gatehouse.issuer();
    serverUrl = `${issuer}/mcp`;
  });

  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await gw?.close();
    await Promise.all([alpha?.close(), beta?.close()]);
  });

  /**
   * The SDK's flow as an application runs it: connect → UnauthorizedError after
   * redirectToAuthorization(url); the browser's part; transport.finishAuth(code); connect again
   * with a new transport.
   */
  async function signIn(provider: MemoryProvider, key: string): Promise<Session> {
    const trace: string[] = [];
    const fail = (err: unknown) => {
      if (err instanceof Error) err.message += `\nHTTP exchanges:\n${trace.join('\n')}`;
      throw err;
    };
    const first = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider, fetch: recordingFetch(trace) });
    const unauthenticated = new Client({ name: 'gatehouse-judge', version: '1.0.0' });
    await assert.rejects(bounded('first connect', unauthenticated.connect(first)), UnauthorizedError);
    await unauthenticated.close().catch(() => {});

    assert.equal(provider.redirects.length, 1, `the SDK sends the user to the authorization endpoint once\n${trace.join('\n')}`);
    const url = provider.redirects[0]!;
    assert.equal(`${url.origin}${url.pathname}`, issuer + AUTHORIZE);
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(url.searchParams.get('resource'), serverUrl);
    assert.equal(url.searchParams.get('redirect_uri'), CALLBACK);
    assert.equal(url.searchParams.get('client_id'), provider.clientInformation()?.client_id);

    const code = await consentForCode(provider, url, key, issuer);
    await bounded('finishAuth', first.finishAuth(code)).catch(fail);
    assert.ok(provider.tokens()?.access_token, 'the SDK saved an access token');

    const client = new Client({ name: 'gatehouse-judge', version: '1.0.0' });
    clients.push(client);
    const second = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider, fetch: recordingFetch(trace) });
    await bounded('second connect', client.connect(second)).catch(fail);
    return { client, provider, trace };
  }

  /** No upstream ever saw any access token the SDK held, nor any Authorization header at all. */
  function assertTokensStayedHere(provider: MemoryProvider) {
    const seen = JSON.stringify([...alpha.log.headers, ...beta.log.headers]);
    assert.ok(alpha.log.headers.length > 0 && beta.log.headers.length > 0, 'both upstreams were reached');
    for (const tokens of provider.tokenHistory) {
      assert.equal(seen.includes(tokens.access_token), false, 'the access token reached an upstream');
      if (tokens.refresh_token) assert.equal(seen.includes(tokens.refresh_token), false, 'the refresh token reached an upstream');
    }
    const withAuthorization = [...alpha.log.headers, ...beta.log.headers].filter((h) => h.authorization !== undefined);
    assert.deepEqual(withAuthorization, [], 'auth_type none: the upstreams get no Authorization header');
  }

  test('signs in, lists both upstreams, and calls alpha-echo and beta-echo', async () => {
    const { key } = await createKey(gw, { name: 'sdk judge' });
    const provider = new MemoryProvider(CALLBACK, clientMetadata('SDK gateway judge'));
    const { client, trace } = await signIn(provider, key);

    const claims = await gw.gatehouse.accessTokens.verify(provider.tokens()!.access_token, serverUrl);
    assert.equal(claims.aud, serverUrl);
    assert.equal(claims.scope, 'mcp:read mcp:write');
    assert.equal(claims.client_id, provider.clientInformation()?.client_id);

    const { tools } = await bounded('listTools', client.listTools());
    const names = tools.map((t) => t.name);
    for (const n of ['alpha-echo', 'alpha-add', 'beta-echo', 'beta-add']) assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);

    const callsBefore = { alpha: alpha.log.calls.length, beta: beta.log.calls.length };
    const fromAlpha = await bounded('call alpha-echo', client.callTool({ name: 'alpha-echo', arguments: { message: 'hi from the SDK' } }));
    assert.equal(fromAlpha.isError ?? false, false, JSON.stringify(fromAlpha));
    assert.deepEqual(fromAlpha.content, [{ type: 'text', text: 'alpha: hi from the SDK' }]);
    const fromBeta = await bounded('call beta-echo', client.callTool({ name: 'beta-echo', arguments: { message: 'hi again' } }));
    assert.equal(fromBeta.isError ?? false, false, JSON.stringify(fromBeta));
    assert.deepEqual(fromBeta.content, [{ type: 'text', text: 'beta: hi again' }]);
    assert.deepEqual(alpha.log.calls.slice(callsBefore.alpha), [{ tool: 'echo', args: { message: 'hi from the SDK' } }]);
    assert.deepEqual(beta.log.calls.slice(callsBefore.beta), [{ tool: 'echo', args: { message: 'hi again' } }]);

    assert.deepEqual(provider.invalidated, [], `the SDK never had to discard credentials\n${trace.join('\n')}`);
    assertTokensStayedHere(provider);
  });

  test('a client limited to mcp:read lists, and calling a tool is refused with 403 insufficient_scope', async (t) => {
    const { key } = await createKey(gw, { name: 'sdk reader', scopes: 'mcp:read' });
    const provider = new MemoryProvider(CALLBACK, clientMetadata('SDK read-only judge', { scope: 'mcp:read' }));
    const { client, trace } = await signIn(provider, key);

    // The SDK asks for the scope of the 401 challenge (SEP-835: it outranks clientMetadata.scope);
    // the key's ceiling narrows the grant to mcp:read.
    assert.equal(provider.tokens()?.scope, 'mcp:read');
    const claims = await gw.gatehouse.accessTokens.verify(provider.tokens()!.access_token, serverUrl);
    assert.equal(claims.scope, 'mcp:read');

    const { tools } = await bounded('listTools', client.listTools());
    const names = tools.map((t) => t.name);
    for (const n of ['alpha-echo', 'beta-echo']) assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);

    const callsBefore = alpha.log.calls.length;
    const traceBefore = trace.length;
    const err = await bounded(
      'call alpha-echo (read-only)',
      client.callTool({ name: 'alpha-echo', arguments: { message: 'not allowed' } }).then(
        (result) => assert.fail(`the call succeeded: ${JSON.stringify(result)}`),
        (e: unknown) => e,
      ),
    );
    const exchanges = trace.slice(traceBefore).join('\n');
    const summary = trace.slice(traceBefore).map((l) => /^\S+ \S+ -> \d+/.exec(l)?.[0] ?? l.slice(0, 80));
    t.diagnostic(`refused call: ${(err as Error).message}; exchanges: ${summary.join(' | ')}`);
    assert.ok(err instanceof Error, String(err));
    // The SDK tries to step up (SEP-835) by refreshing; the refreshed token is still mcp:read, the
    // same 403 comes back, and the transport gives up with a StreamableHTTPError(403).
    assert.equal((err as Error & { code?: unknown }).code, 403, `${err.message}\n${exchanges}`);
    assert.match(err.message, /403/);
    const refusals = trace.slice(traceBefore).filter((l) => l.startsWith(`POST ${serverUrl} -> 403`));
    assert.ok(refusals.length >= 1, exchanges);
    for (const line of refusals) {
      assert.match(line, /error="insufficient_scope"/, line);
      assert.match(line, /scope="mcp:write"/, line);
    }
    // Whatever the step-up attempt obtained is still within the key's ceiling.
    for (const saved of provider.tokenHistory) assert.equal(saved.scope, 'mcp:read', JSON.stringify({ scope: saved.scope }));
    assert.equal(alpha.log.calls.length, callsBefore, 'the upstream never saw the refused call');
    assertTokensStayedHere(provider);
  });
});
