import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { guardedFetch } from '../../src/net/guarded-fetch.js';
import { discover, DiscoveryError, probe } from '../../src/upstream-oauth/discovery.js';

type Routes = Record<string, (req: http.IncomingMessage, body: string) => { status?: number; headers?: Record<string, string>; json?: unknown }>;

/** A server answering JSON by path; records what was asked. */
async function serve(t: TestContext, routes: () => Routes) {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0]!;
      seen.push(`${req.method} ${path}${body.includes('"method"') ? ` ${JSON.parse(body).method}` : ''}`);
      const route = routes()[path];
      const answer = route ? route(req, body) : { status: 404, json: { error: 'not_found' } };
      res.writeHead(answer.status ?? 200, { 'content-type': 'application/json', ...answer.headers });
      res.end(answer.json === undefined ? '' : JSON.stringify(answer.json));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const asMetadata = (issuer: string, extra: Record<string, unknown> = {}) => ({
  issuer,
  authorization_endpoint: `${issuer}/authorize`,
  token_endpoint: `${issuer}/token`,
  registration_endpoint: `${issuer}/register`,
  response_types_supported: ['code'],
  code_challenge_methods_supported: ['S256'],
  ...extra,
});

/** The fetch the gateway uses for metadata: the upstream's own host is allowed, plus `extra`. */
const fetchFor = (upstreamUrl: string, extra: string[] = []) =>
  guardedFetch({ maxBytes: 65536, timeoutMs: 5000, allowedHosts: [new URL(upstreamUrl).hostname, ...extra] });

describe('upstream authorization discovery', () => {
  test('the challenge names the metadata; the resource is sent as published; scopes come from the challenge', async (t) => {
    let origin = '';
    const server = await serve(t, () => ({
      '/mcp': () => ({ status: 401, headers: { 'www-authenticate': `Bearer resource_metadata="${origin}/custom/prm.json", scope="read write"` } }),
      '/custom/prm.json': () => ({ json: { resource: origin, authorization_servers: [`${origin}/tenant`], scopes_supported: ['other'] } }),
      '/.well-known/oauth-authorization-server/tenant': () => ({ json: asMetadata(`${origin}/tenant`) }),
    }));
    origin = server.origin;
    const url = `${origin}/mcp`;
    const challenge = await probe(url, 'http', fetch);
    assert.equal(challenge.scope, 'read write');
    const found = await discover(url, challenge, fetchFor(url));
    assert.equal(found.resource, origin, 'verbatim: no "/" added to a pathless identifier');
    assert.deepEqual(found.scopes, ['read', 'write']);
    assert.equal(found.server.issuer, `${origin}/tenant`);
    assert.ok(!server.seen.includes('GET /.well-known/oauth-authorization-server'), 'no root metadata for an issuer with a path');
  });

  test('without a challenge: path-inserted metadata first, scopes_supported, then none at all', async (t) => {
    let origin = '';
    let scopes: string[] | undefined = ['a', 'b'];
    const server = await serve(t, () => ({
      '/.well-known/oauth-protected-resource/v1/mcp': () => ({ json: { resource: `${origin}/v1/mcp`, authorization_servers: [origin], scopes_supported: scopes } }),
      '/.well-known/oauth-protected-resource': () => ({ json: { resource: 'http://wrong.example', authorization_servers: ['http://wrong.example'] } }),
      '/.well-known/openid-configuration': () => ({
        json: asMetadata(origin, { jwks_uri: `${origin}/jwks`, subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['ES256'] }),
      }),
    }));
    origin = server.origin;
    const url = `${origin}/v1/mcp`;
    const found = await discover(url, {}, fetchFor(url));
    assert.equal(found.resource, url);
    assert.deepEqual(found.scopes, ['a', 'b']);
    assert.ok(server.seen.indexOf('GET /.well-known/openid-configuration') > server.seen.indexOf('GET /.well-known/oauth-authorization-server'), 'RFC 8414 before OpenID Connect');
    scopes = undefined;
    assert.equal((await discover(url, {}, fetchFor(url))).scopes, undefined, 'no scope parameter when nothing names one');
  });

  test('the probe tries tools/list when initialize draws no challenge', async (t) => {
    const server = await serve(t, () => ({
      '/mcp': (_req, body) =>
        JSON.parse(body).method === 'initialize'
          ? { json: { jsonrpc: '2.0', id: 0, result: {} } }
          : { status: 401, headers: { 'www-authenticate': 'Bearer scope="mcp:basic"' } },
    }));
    assert.equal((await probe(`${server.origin}/mcp`, 'http', fetch)).scope, 'mcp:basic');
    assert.deepEqual(server.seen, ['POST /mcp initialize', 'POST /mcp tools/list']);
  });

  test('refused: metadata for another resource, another issuer, no S256, and hosts the SSRF guard does not allow', async (t) => {
    let origin = '';
    let prm: Record<string, unknown> = {};
    let as: Record<string, unknown> = {};
    const server = await serve(t, () => ({
      '/.well-known/oauth-protected-resource/mcp': () => ({ json: prm }),
      '/.well-known/oauth-authorization-server': () => ({ json: as }),
    }));
    origin = server.origin;
    const url = `${origin}/mcp`;
    const refused = async (expected: RegExp) => {
      const err = await discover(url, {}, fetchFor(url)).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof DiscoveryError, String(err));
      assert.match(err.message, expected);
    };
    prm = { resource: `${origin}/other`, authorization_servers: [origin] };
    as = asMetadata(origin);
    await refused(/describes http:\/\/127\.0\.0\.1:\d+\/other, not/);
    prm = { resource: url, authorization_servers: [origin] };
    as = asMetadata('https://issuer.example');
    await refused(/names issuer https:\/\/issuer\.example, not/);
    as = asMetadata(origin, { code_challenge_methods_supported: ['plain'] });
    await refused(/does not support PKCE with S256/);
    as = asMetadata(origin, { code_challenge_methods_supported: undefined });
    await refused(/does not support PKCE with S256/);
    // Metadata that sends the gateway to another host over http, or to a private address.
    prm = { resource: url, authorization_servers: [origin.replace('127.0.0.1', 'localhost')] };
    await refused(/only https URLs are fetched/);
    const allowed = await discover(url, {}, fetchFor(url, ['localhost'])).then(
      () => 'ok',
      (e: Error) => e.message,
    );
    assert.doesNotMatch(allowed, /only https/, 'upstream_oauth.allowed_hosts lets it through');
    prm = { resource: url, authorization_servers: ['https://10.1.2.3'] };
    await refused(/not public/);
  });
});
