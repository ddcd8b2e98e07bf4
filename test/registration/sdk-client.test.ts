import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { registerClient } from '@modelcontextprotocol/sdk/client/auth.js';
import { startGateway } from '../helpers/gateway.js';
import { REGISTER } from '../helpers/http.js';

/** The MCP TypeScript SDK's own registration call, as SDK-based MCP clients make it. */
describe('MCP TypeScript SDK registerClient', () => {
  test('registers, and the SDK parses the response', async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close());
    const info = await registerClient(gw.url, {
      metadata: {
        issuer: gw.url,
        authorization_endpoint: `${gw.url}/api/oauth/per-user/authorize`,
        token_endpoint: `${gw.url}/api/oauth/per-user/token`,
        registration_endpoint: `${gw.url}${REGISTER}`,
        response_types_supported: ['code'],
      },
      clientMetadata: {
        client_name: 'SDK test client',
        redirect_uris: ['http://127.0.0.1:33418/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      },
      scope: 'mcp:read mcp:write',
    });
    assert.match(info.client_id, /^[0-9a-f-]{36}$/);
    assert.equal(info.client_secret, undefined, 'a public client gets no secret');
    assert.equal(info.client_name, 'SDK test client');
    assert.deepEqual(info.redirect_uris, ['http://127.0.0.1:33418/callback']);
    assert.deepEqual(info.grant_types, ['authorization_code', 'refresh_token']);
    assert.equal(info.scope, 'mcp:read mcp:write');
    assert.equal(typeof info.client_id_issued_at, 'number');
    assert.ok(await gw.gatehouse.clients.find(info.client_id));
  });

  test('a refused registration surfaces as an SDK OAuth error carrying our description', async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close());
    await assert.rejects(
      registerClient(gw.url, {
        metadata: {
          issuer: gw.url,
          authorization_endpoint: `${gw.url}/a`,
          token_endpoint: `${gw.url}/t`,
          registration_endpoint: `${gw.url}${REGISTER}`,
          response_types_supported: ['code'],
        },
        clientMetadata: { redirect_uris: ['http://evil.example/cb'], client_name: 'x' },
      }),
      (err: Error) => /plain http is allowed only on localhost/.test(err.message),
    );
  });
});
