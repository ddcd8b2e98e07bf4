import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { rawRequest } from '../helpers/http.js';
import { obtainTokens, REVOKE, TOKEN } from '../helpers/oauth.js';

/** Malformed requests to the token and revocation endpoints: a 4xx with the right code, never a 500. */
describe('token endpoint: malformed requests', () => {
  let gw: TestGateway;
  let clientId: string;
  let refreshToken: string;
  before(async () => {
    gw = await startGateway();
    const flow = await obtainTokens(gw);
    clientId = flow.clientId;
    refreshToken = flow.tokens.refresh_token!;
  });
  after(() => gw.close());

  const post = (body: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' }, path = TOKEN) =>
    rawRequest(gw.url + path, { body, headers });

  const expect = (res: Awaited<ReturnType<typeof post>>, status: number, error: string, reason?: RegExp) => {
    assert.equal(res.status, status, res.text);
    assert.deepEqual(Object.keys(res.json).sort(), ['error', 'error_description']);
    assert.equal(res.json.error, error);
    if (reason) assert.match(res.json.error_description, reason);
    assert.equal(res.headers['cache-control'], 'no-store');
  };

  test('missing or unknown grant_type', async () => {
    expect(await post(`client_id=${clientId}`), 400, 'invalid_request', /grant_type is required/);
    expect(await post(`grant_type=password&client_id=${clientId}&username=a&password=b`), 400, 'unsupported_grant_type');
    expect(await post(`grant_type=client_credentials&client_id=${clientId}`), 400, 'unsupported_grant_type');
  });

  test('missing parameters', async () => {
    expect(await post('grant_type=refresh_token'), 400, 'invalid_request', /client_id is required/);
    expect(await post(`grant_type=refresh_token&client_id=${clientId}`), 400, 'invalid_request', /refresh_token is required/);
    expect(await post(`grant_type=authorization_code&client_id=${clientId}`), 400, 'invalid_request', /code is required/);
  });

  test('a repeated parameter is refused (RFC 6749 §3.1)', async () => {
    expect(await post(`grant_type=refresh_token&client_id=${clientId}&refresh_token=a&refresh_token=${refreshToken}`), 400, 'invalid_request', /repeated/);
  });

  test('bad encodings and content types', async () => {
    expect(await post(Buffer.from(`grant_type=refresh_token&client_id=${clientId}&refresh_token=\xff`, 'latin1')), 400, 'invalid_request', /ASCII/);
    expect(await post(`grant_type=refresh_token&client_id=${clientId}&refresh_token=%C3%28`), 400, 'invalid_request', /UTF-8/);
    expect(await post(JSON.stringify({ grant_type: 'refresh_token' }), { 'content-type': 'application/json' }), 400, 'invalid_request', /x-www-form-urlencoded/);
    expect(await post('grant_type=refresh_token', { 'content-type': 'text/plain' }), 400, 'invalid_request');
    expect(await post(''), 400, 'invalid_request');
  });

  test('a huge body is refused with 413', async () => {
    expect(await post(`grant_type=refresh_token&client_id=${clientId}&refresh_token=${'a'.repeat(20_000)}`), 413, 'invalid_request');
  });

  test('huge values within the limit are simply invalid', async () => {
    expect(await post(`grant_type=refresh_token&client_id=${'c'.repeat(10_000)}&refresh_token=x`), 401, 'invalid_client');
  });

  test('client authentication: a secret is invalid_client (401, WWW-Authenticate); Basic without one is accepted', async () => {
    const withSecret = await post(`grant_type=refresh_token&refresh_token=x`, {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${clientId}:secret`).toString('base64')}`,
    });
    expect(withSecret, 401, 'invalid_client');
    assert.match(String(withSecret.headers['www-authenticate']), /^Basic/);
    expect(await post(`grant_type=refresh_token&refresh_token=x`, { 'content-type': 'application/x-www-form-urlencoded', authorization: 'Bearer abc' }), 401, 'invalid_client');
    const basicNoSecret = await post(`grant_type=refresh_token&refresh_token=unknown`, {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${clientId}:`).toString('base64')}`,
    });
    expect(basicNoSecret, 400, 'invalid_grant');
    expect(
      await post(`grant_type=refresh_token&refresh_token=x&client_id=other`, {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${clientId}:`).toString('base64')}`,
      }),
      400,
      'invalid_request',
      /differs/,
    );
  });

  test('an unknown client is invalid_client, 401', async () => {
    expect(await post(`grant_type=refresh_token&client_id=nobody&refresh_token=${refreshToken}`), 401, 'invalid_client');
  });

  test('GET and other methods on the token endpoint are 404 JSON', async () => {
    const res = await rawRequest(gw.url + TOKEN, { method: 'GET' });
    assert.equal(res.status, 404);
    assert.equal(res.json.error, 'not_found');
  });

  test('the revocation endpoint refuses malformed bodies the same way', async () => {
    expect(await post(`token=a&token=b`, undefined, REVOKE), 400, 'invalid_request', /repeated/);
    expect(await post(Buffer.from('token=\xff', 'latin1'), undefined, REVOKE), 400, 'invalid_request');
    expect(await post(`token=${'a'.repeat(20_000)}`, undefined, REVOKE), 413, 'invalid_request');
  });

  test('the gateway still answers after all of that', async () => {
    const res = await post(`grant_type=refresh_token&client_id=${clientId}&refresh_token=${refreshToken}`);
    assert.equal(res.status, 200);
  });
});

describe('rate limits on authorize and token', () => {
  test('per address and per client, with Retry-After; configurable', async (t) => {
    const gw = await startGateway({
      config: {
        oauth_server: {
          rate_limits: { authorize: { max: 3, window: 60, per_client: 100 }, token: { max: 100, window: 60, per_client: 2 } },
        },
      },
    });
    t.after(() => gw.close());
    const authorize = (localAddress: string) =>
      rawRequest(`${gw.url}/api/oauth/per-user/authorize?client_id=x`, { method: 'GET', localAddress });
    for (let i = 0; i < 3; i++) assert.equal((await authorize('127.0.0.1')).status, 400);
    const limited = await authorize('127.0.0.1');
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers['retry-after']) > 0);
    assert.equal((await authorize('127.0.0.2')).status, 400, 'another address is unaffected');

    // Per client: two token requests for client "c1" from any address, then 429; "c2" unaffected.
    const token = (client: string, localAddress: string) =>
      rawRequest(gw.url + TOKEN, {
        body: `grant_type=refresh_token&client_id=${client}&refresh_token=x`,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        localAddress,
      });
    assert.equal((await token('c1', '127.0.0.1')).status, 401);
    assert.equal((await token('c1', '127.0.0.2')).status, 401);
    const perClient = await token('c1', '127.0.0.3');
    assert.equal(perClient.status, 429);
    assert.equal(perClient.json.error, 'too_many_requests');
    assert.equal((await token('c2', '127.0.0.3')).status, 401);
  });
});
