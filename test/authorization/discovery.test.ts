import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PER_USER_UPSTREAM, startGateway, type TestGateway } from '../helpers/gateway.js';
import { obtainTokens } from '../helpers/oauth.js';

const DOCS_UPSTREAM = { name: 'docs', transport: 'http', url: 'https://docs.example/mcp', auth_type: 'none' };

async function getJson(url: string) {
  const res = await fetch(url);
  return { status: res.status, headers: res.headers, json: (await res.json()) as any };
}

describe('discovery (product §2.2)', () => {
  let gw: TestGateway;
  let issuer: string;
  before(async () => {
    gw = await startGateway({ config: { upstreams: [PER_USER_UPSTREAM, DOCS_UPSTREAM] } });
    issuer = gw.gatehouse.issuer();
  });
  after(() => gw.close());

  test('RFC 8414 authorization server metadata: every field, every URL from the issuer', async () => {
    const { status, headers, json } = await getJson(`${gw.url}/.well-known/oauth-authorization-server`);
    assert.equal(status, 200);
    assert.match(headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(headers.get('access-control-allow-origin'), '*');
    assert.deepEqual(json, {
      issuer,
      authorization_endpoint: `${issuer}/api/oauth/per-user/authorize`,
      token_endpoint: `${issuer}/api/oauth/per-user/token`,
      registration_endpoint: `${issuer}/api/oauth/per-user/register`,
      revocation_endpoint: `${issuer}/api/oauth/per-user/revoke`,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      response_types_supported: ['code'],
      response_modes_supported: ['query'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['none'],
      revocation_endpoint_auth_methods_supported: ['none'],
      scopes_supported: ['mcp:read', 'mcp:write'],
      authorization_response_iss_parameter_supported: true,
      client_id_metadata_document_supported: true,
    });
  });

  test('RFC 9728 protected resource metadata: root, /mcp, and one per upstream', async () => {
    const aggregate = {
      resource: `${issuer}/mcp`,
      authorization_servers: [issuer],
      scopes_supported: ['mcp:read', 'mcp:write'],
      bearer_methods_supported: ['header'],
      resource_name: 'Gatehouse MCP gateway',
    };
    assert.deepEqual((await getJson(`${gw.url}/.well-known/oauth-protected-resource`)).json, aggregate);
    assert.deepEqual((await getJson(`${gw.url}/.well-known/oauth-protected-resource/mcp`)).json, aggregate);
    for (const name of ['notion', 'docs']) {
      const { status, json } = await getJson(`${gw.url}/.well-known/oauth-protected-resource/mcp/${name}`);
      assert.equal(status, 200);
      assert.equal(json.resource, `${issuer}/mcp/${name}`);
      assert.deepEqual(json.authorization_servers, [issuer]);
      assert.equal(JSON.stringify(json).includes('offline_access'), false);
    }
    const unknown = await fetch(`${gw.url}/.well-known/oauth-protected-resource/mcp/nope`);
    assert.equal(unknown.status, 404);
  });

  test('JWKS publishes the ES256 public key, and no private part', async () => {
    const { status, json } = await getJson(`${gw.url}/.well-known/jwks.json`);
    assert.equal(status, 200);
    assert.equal(json.keys.length, 1);
    const [key] = json.keys;
    assert.equal(key.kty, 'EC');
    assert.equal(key.crv, 'P-256');
    assert.equal(key.alg, 'ES256');
    assert.equal(typeof key.kid, 'string');
    assert.equal('d' in key, false);
  });

  test('the issuer is the same string in metadata, iss parameter, JWT and resource metadata', async () => {
    const flow = await obtainTokens(gw);
    const [, payload] = flow.tokens.access_token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    const metadata = (await getJson(`${gw.url}/.well-known/oauth-authorization-server`)).json;
    const prm = (await getJson(`${gw.url}/.well-known/oauth-protected-resource/mcp`)).json;
    assert.equal(metadata.issuer, issuer);
    assert.equal(flow.back.searchParams.get('iss'), issuer);
    assert.equal(claims.iss, issuer);
    assert.equal(prm.authorization_servers[0], issuer);
    assert.equal(issuer.endsWith('/'), false);
  });
});

describe('discovery: issuer from server.public_url', () => {
  test('a configured public_url is the issuer verbatim (a trailing slash is dropped once, everywhere)', async (t) => {
    const gw = await startGateway({ config: { server: { public_url: 'https://gatehouse.example.com/' } } });
    t.after(() => gw.close());
    const { json } = await getJson(`${gw.url}/.well-known/oauth-authorization-server`);
    assert.equal(json.issuer, 'https://gatehouse.example.com');
    assert.equal(json.token_endpoint, 'https://gatehouse.example.com/api/oauth/per-user/token');
    // Never derived from the Host header.
    const spoofed = await fetch(`${gw.url}/.well-known/oauth-authorization-server`, { headers: { host: 'evil.example' } });
    assert.equal(((await spoofed.json()) as any).issuer, 'https://gatehouse.example.com');
  });

  test('an issuer with a path serves path-inserted metadata (RFC 8414 §3.1)', async (t) => {
    const gw = await startGateway({ config: { server: { public_url: 'https://example.com/gatehouse' } } });
    t.after(() => gw.close());
    const inserted = await getJson(`${gw.url}/.well-known/oauth-authorization-server/gatehouse`);
    assert.equal(inserted.json.issuer, 'https://example.com/gatehouse');
    const prm = await getJson(`${gw.url}/.well-known/oauth-protected-resource/gatehouse/mcp`);
    assert.equal(prm.json.resource, 'https://example.com/gatehouse/mcp');
  });
});

describe('discovery behind the gate', () => {
  test('with the OAuth surface closed, every discovery document is 404', async (t) => {
    const gw = await startGateway({ config: { upstreams: [DOCS_UPSTREAM] } });
    t.after(() => gw.close());
    for (const path of [
      '/.well-known/oauth-authorization-server',
      '/.well-known/oauth-protected-resource',
      '/.well-known/oauth-protected-resource/mcp',
      '/.well-known/jwks.json',
    ]) {
      assert.equal((await fetch(gw.url + path)).status, 404, path);
    }
  });

  test('client_id_metadata_document_supported follows the setting', async (t) => {
    const gw = await startGateway({ config: { oauth_server: { client_metadata_documents: { enabled: false } } } });
    t.after(() => gw.close());
    const { json } = await getJson(`${gw.url}/.well-known/oauth-authorization-server`);
    assert.equal(json.client_id_metadata_document_supported, false);
  });
});
