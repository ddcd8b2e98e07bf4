import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { register } from '../helpers/http.js';

const REDIRECT = { redirect_uris: ['http://localhost:54321/callback'] };

/** Product §2.1: each field rule, with the RFC 7591 error code it must produce. */
describe('registration field rules (product §2.1)', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway();
  });
  after(() => gw.close());

  const ok = async (extra: Record<string, unknown>) => {
    const res = await register(gw.url, { ...REDIRECT, ...extra });
    assert.equal(res.status, 201, `${JSON.stringify(extra)} -> ${res.text}`);
    return res.json;
  };
  const refused = async (extra: Record<string, unknown>, error: string, reason: RegExp) => {
    const res = await register(gw.url, { ...REDIRECT, ...extra });
    assert.equal(res.status, 400, `${JSON.stringify(extra).slice(0, 200)} -> ${res.text}`);
    assert.deepEqual(Object.keys(res.json).sort(), ['error', 'error_description']);
    assert.equal(res.json.error, error);
    assert.match(res.json.error_description, reason);
  };

  test('defaults: grant_types, response_types, token_endpoint_auth_method, scope', async () => {
    const body = await ok({});
    assert.deepEqual(body.grant_types, ['authorization_code']);
    assert.deepEqual(body.response_types, ['code']);
    assert.equal(body.token_endpoint_auth_method, 'none');
    assert.equal(body.scope, 'mcp:read mcp:write');
    assert.equal('client_name' in body, false, 'no client_name is invented');
  });

  test('client_name: up to 256 characters; longer, empty, non-string or with control characters refused', async () => {
    assert.equal((await ok({ client_name: 'n'.repeat(256) })).client_name.length, 256);
    assert.equal((await ok({ client_name: 'Café ☕ 客户端' })).client_name, 'Café ☕ 客户端');
    await refused({ client_name: 'n'.repeat(257) }, 'invalid_client_metadata', /client_name must be at most 256/);
    await refused({ client_name: '' }, 'invalid_client_metadata', /client_name must not be empty/);
    await refused({ client_name: 42 }, 'invalid_client_metadata', /client_name must be a string/);
    await refused({ client_name: 'Claude\u0000Code' }, 'invalid_client_metadata', /control/);
    // U+202E would render "Claude Code\u202Eedoc" reversed on the consent page.
    await refused({ client_name: 'Trusted \u202Eevil' }, 'invalid_client_metadata', /bidirectional/);
  });

  test('grant_types: authorization_code and refresh_token only, authorization_code required', async () => {
    assert.deepEqual((await ok({ grant_types: ['authorization_code', 'refresh_token'] })).grant_types, [
      'authorization_code',
      'refresh_token',
    ]);
    assert.deepEqual((await ok({ grant_types: ['authorization_code', 'authorization_code'] })).grant_types, [
      'authorization_code',
    ]);
    await refused({ grant_types: ['implicit'] }, 'invalid_client_metadata', /grant_types may contain only/);
    await refused({ grant_types: ['client_credentials'] }, 'invalid_client_metadata', /grant_types may contain only/);
    await refused({ grant_types: ['refresh_token'] }, 'invalid_client_metadata', /must include "authorization_code"/);
    await refused({ grant_types: [] }, 'invalid_client_metadata', /grant_types must not be empty/);
    await refused({ grant_types: 'authorization_code' }, 'invalid_client_metadata', /grant_types must be an array/);
  });

  test('response_types: only code', async () => {
    assert.deepEqual((await ok({ response_types: ['code'] })).response_types, ['code']);
    await refused({ response_types: ['token'] }, 'invalid_client_metadata', /response_types may contain only "code"/);
    await refused({ response_types: ['code', 'id_token'] }, 'invalid_client_metadata', /only "code"/);
    await refused({ response_types: [] }, 'invalid_client_metadata', /must not be empty/);
  });

  test('token_endpoint_auth_method: only none', async () => {
    assert.equal((await ok({ token_endpoint_auth_method: 'none' })).token_endpoint_auth_method, 'none');
    for (const method of ['client_secret_basic', 'client_secret_post', 'private_key_jwt', '']) {
      await refused({ token_endpoint_auth_method: method }, 'invalid_client_metadata', /must be "none"/);
    }
  });

  test('scope: a subset of mcp:read mcp:write', async () => {
    assert.equal((await ok({ scope: 'mcp:read' })).scope, 'mcp:read');
    assert.equal((await ok({ scope: 'mcp:write mcp:read' })).scope, 'mcp:write mcp:read');
    assert.equal((await ok({ scope: 'mcp:read  mcp:read' })).scope, 'mcp:read');
    await refused({ scope: 'mcp:read admin' }, 'invalid_client_metadata', /scope "admin" is not offered/);
    await refused({ scope: 'offline_access' }, 'invalid_client_metadata', /not offered/);
    await refused({ scope: '' }, 'invalid_client_metadata', /at least one/);
    await refused({ scope: ['mcp:read'] }, 'invalid_client_metadata', /space-separated string/);
  });

  test('client_uri and logo_uri: absolute http(s) URLs, stored and echoed', async () => {
    const body = await ok({ client_uri: 'https://claude.ai', logo_uri: 'https://claude.ai/logo.png' });
    assert.equal(body.client_uri, 'https://claude.ai');
    assert.equal(body.logo_uri, 'https://claude.ai/logo.png');
    await refused({ client_uri: 'javascript:alert(1)' }, 'invalid_client_metadata', /client_uri must be an absolute http/);
    await refused({ logo_uri: 'data:image/png;base64,AAAA' }, 'invalid_client_metadata', /logo_uri must be an absolute http/);
    await refused({ logo_uri: 'logo.png' }, 'invalid_client_metadata', /logo_uri/);
    await refused({ client_uri: 'https://u:p@claude.ai' }, 'invalid_client_metadata', /client_uri/);
  });

  test('contacts, software_id, software_version, application_type: stored and echoed', async () => {
    const sent = {
      contacts: ['ops@example.com', 'sec@example.com'],
      software_id: '4NRB1-0XZABZI9E6-5SM3R',
      software_version: '2.1.0',
      application_type: 'native',
    };
    const body = await ok(sent);
    for (const [k, v] of Object.entries(sent)) assert.deepEqual(body[k], v, k);
    const stored = await gw.gatehouse.clients.find(body.client_id);
    for (const [k, v] of Object.entries(sent)) assert.deepEqual((stored as any)[k], v, `${k} stored`);
    assert.equal((await ok({ application_type: 'web' })).application_type, 'web');
    await refused({ application_type: 'desktop' }, 'invalid_client_metadata', /application_type must be "web" or "native"/);
    await refused({ contacts: 'ops@example.com' }, 'invalid_client_metadata', /contacts must be an array/);
    await refused({ contacts: Array(11).fill('a@b.c') }, 'invalid_client_metadata', /at most 10/);
    await refused({ software_id: 'x'.repeat(257) }, 'invalid_client_metadata', /software_id must be at most 256/);
    await refused({ software_version: 3 }, 'invalid_client_metadata', /software_version must be a string/);
  });

  test('unknown members are ignored (RFC 7591 §2), not stored nor echoed', async () => {
    const body = await ok({ jwks_uri: 'https://x.example/jwks', tos_uri: 'https://x.example/tos', extra: { deep: [1, 2] } });
    assert.equal('jwks_uri' in body, false);
    assert.equal('extra' in body, false);
    const stored = await gw.gatehouse.clients.find(body.client_id);
    assert.equal(stored && 'extra' in stored, false);
  });

  test('a member sent as null counts as absent', async () => {
    const body = await ok({ client_name: null, scope: null, grant_types: null });
    assert.equal('client_name' in body, false);
    assert.equal(body.scope, 'mcp:read mcp:write');
    assert.deepEqual(body.grant_types, ['authorization_code']);
  });

  test('the first fault is reported when there are several', async () => {
    await refused({ client_name: 5, scope: 'nope' }, 'invalid_client_metadata', /client_name/);
  });
});
