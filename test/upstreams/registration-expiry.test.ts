import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { startGateway } from '../helpers/gateway.js';

/**
 * RFC 7591 §3.2.1: a client secret may come with `client_secret_expires_at` (0: never). The gateway
 * registers again before it would start a flow with a secret about to expire, and keeps a secret
 * that does not expire. The upstream here is a stub: an MCP URL that challenges, its RFC 9728
 * metadata, and an authorization server that offers only client_secret_basic, so registrations
 * carry a secret.
 */
async function upstreamStub(t: TestContext, secretLifetime: (now: number) => number) {
  const registrations: string[] = [];
  let origin = '';
  let now = 0;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const json = (status: number, value: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(value));
      };
      if (path === '/mcp') {
        return json(401, { error: 'unauthorized' }, { 'www-authenticate': `Bearer resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"` });
      }
      if (path === '/.well-known/oauth-protected-resource/mcp') return json(200, { resource: `${origin}/mcp`, authorization_servers: [origin] });
      if (path === '/.well-known/oauth-authorization-server') {
        return json(200, {
          issuer: origin,
          authorization_endpoint: `${origin}/authorize`,
          token_endpoint: `${origin}/token`,
          registration_endpoint: `${origin}/register`,
          response_types_supported: ['code'],
          code_challenge_methods_supported: ['S256'],
          token_endpoint_auth_methods_supported: ['client_secret_basic'],
        });
      }
      if (path === '/register' && req.method === 'POST') {
        const metadata = JSON.parse(body) as Record<string, unknown>;
        const clientId = `client-${registrations.length + 1}`;
        registrations.push(clientId);
        return json(201, {
          ...metadata,
          client_id: clientId,
          client_secret: `secret-${clientId}`,
          client_secret_expires_at: secretLifetime(now),
        });
      }
      return json(404, { error: 'not_found' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/mcp`,
    registrations,
    /** The stub's idea of now (seconds), for the expiry it hands out: the gateway's fake clock. */
    setNow: (seconds: number) => {
      now = seconds;
    },
  };
}

async function gatewayFor(t: TestContext, upstreamUrl: string) {
  const gw = await startGateway({ config: { upstreams: [{ name: 'stub', transport: 'http', url: upstreamUrl, auth_type: 'per_user_oauth' }] } });
  t.after(() => gw.close());
  const upstream = gw.gatehouse.config().upstreams.find((u) => u.name === 'stub')!;
  const start = async () => {
    const url = new URL(await gw.gatehouse.upstreamAuth.startFlow({ subject: 'alice', upstream, binding: 'browser', returnTo: null }));
    return url.searchParams.get('client_id');
  };
  return { gw, start };
}

test('a client secret about to expire: the next flow registers a new client', async (t) => {
  const stub = await upstreamStub(t, (now) => now + 3600);
  const { gw, start } = await gatewayFor(t, stub.url);
  stub.setNow(Math.floor(gw.clock.now() / 1000));

  assert.equal(await start(), 'client-1');
  gw.clock.advance(3600 - 61);
  assert.equal(await start(), 'client-1', 'still more than a minute left: the same client');
  assert.deepEqual(stub.registrations, ['client-1']);

  gw.clock.advance(2);
  assert.equal(await start(), 'client-2', 'within a minute of expiry: registered again');
  assert.deepEqual(stub.registrations, ['client-1', 'client-2']);
  const stored = await gw.gatehouse.upstreamOAuth.registration(new URL(stub.url).origin);
  assert.equal(stored?.client_id, 'client-2');
  assert.equal(stored?.client_secret, 'secret-client-2');
});

test('a client secret that does not expire (0) is kept for good', async (t) => {
  const stub = await upstreamStub(t, () => 0);
  const { gw, start } = await gatewayFor(t, stub.url);
  assert.equal(await start(), 'client-1');
  assert.equal((await gw.gatehouse.upstreamOAuth.registration(new URL(stub.url).origin))?.client_secret_expires_at, null);
  gw.clock.advance(10 * 365 * 86400);
  assert.equal(await start(), 'client-1');
  assert.deepEqual(stub.registrations, ['client-1']);
});
