import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { authorizeWithConsent, createKey, pkce, registerClient, tokenRequest } from '../helpers/oauth.js';

/** Product §2.5: the authorization_code grant. */
describe('token endpoint: authorization_code', () => {
  let gw: TestGateway;
  let mcp: string;
  before(async () => {
    gw = await startGateway();
    mcp = `${gw.gatehouse.issuer()}/mcp`;
  });
  after(() => gw.close());

  const exchange = (flow: Awaited<ReturnType<typeof authorizeWithConsent>>, over: Record<string, string | undefined> = {}) => {
    const params: Record<string, string> = {};
    for (const [k, v] of Object.entries({
      grant_type: 'authorization_code',
      code: flow.code,
      code_verifier: flow.verifier,
      redirect_uri: flow.redirectUri,
      client_id: flow.clientId,
      ...over,
    })) {
      if (v !== undefined) params[k] = v;
    }
    return tokenRequest(gw, params);
  };

  test('success: a Bearer ES256 JWT with the listed claims, a refresh token, no-store', async () => {
    const flow = await authorizeWithConsent(gw);
    const res = await exchange(flow);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.equal(res.headers.get('pragma'), 'no-cache');
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(Object.keys(res.json).sort(), ['access_token', 'expires_in', 'refresh_token', 'scope', 'token_type']);
    assert.equal(res.json.token_type, 'Bearer');
    assert.equal(res.json.expires_in, 900);
    assert.equal(res.json.scope, 'mcp:read mcp:write');
    const [header, payload] = res.json.access_token.split('.').slice(0, 2).map((p: string) => JSON.parse(Buffer.from(p, 'base64url').toString()));
    assert.equal(header.alg, 'ES256');
    assert.equal(header.typ, 'at+jwt');
    assert.deepEqual(Object.keys(payload).sort(), ['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'scope', 'sid', 'sub']);
    assert.equal(payload.aud, mcp);
    assert.equal(payload.iss, gw.gatehouse.issuer());
    assert.equal(payload.client_id, flow.clientId);
    assert.equal(payload.exp - payload.iat, 900);
    assert.match(payload.sub, /^key:vk_/);
    const verified = await gw.gatehouse.accessTokens.verify(res.json.access_token, mcp);
    assert.equal(verified.client_id, flow.clientId);
  });

  test('PKCE: a missing, malformed or wrong verifier is refused; the code stays usable after a wrong one', async () => {
    const flow = await authorizeWithConsent(gw);
    const missing = await exchange(flow, { code_verifier: undefined });
    assert.equal(missing.status, 400);
    assert.equal(missing.json.error, 'invalid_request');
    const malformed = await exchange(flow, { code_verifier: 'short' });
    assert.equal(malformed.json.error, 'invalid_request');
    const wrong = await exchange(flow, { code_verifier: pkce().verifier });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.json.error, 'invalid_grant');
    assert.match(wrong.json.error_description, /code_verifier does not match/);
    assert.equal((await exchange(flow)).status, 200);
  });

  test('code reuse: the second use fails and revokes the tokens issued from the first', async () => {
    const flow = await authorizeWithConsent(gw);
    const first = await exchange(flow);
    assert.equal(first.status, 200);
    await gw.gatehouse.accessTokens.verify(first.json.access_token, mcp); // cached as live
    const second = await exchange(flow);
    assert.equal(second.status, 400);
    assert.equal(second.json.error, 'invalid_grant');
    assert.match(second.json.error_description, /already used/);
    const refresh = await tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: first.json.refresh_token, client_id: flow.clientId });
    assert.equal(refresh.json.error, 'invalid_grant');
    gw.clock.advance(3); // past the verifier's status cache (≤ 5 s, product §2.5)
    await assert.rejects(gw.gatehouse.accessTokens.verify(first.json.access_token, mcp), /revoked/);
  });

  test('an expired code is refused', async () => {
    const flow = await authorizeWithConsent(gw);
    gw.clock.advance(121);
    const res = await exchange(flow);
    assert.equal(res.json.error, 'invalid_grant');
    assert.match(res.json.error_description, /expired/);
  });

  test('another client, another redirect URI, or an unknown code: invalid_grant', async () => {
    const flow = await authorizeWithConsent(gw);
    const other = await registerClient(gw);
    assert.equal((await exchange(flow, { client_id: other })).json.error, 'invalid_grant');
    assert.equal((await exchange(flow, { redirect_uri: 'http://127.0.0.1:1/callback' })).json.error, 'invalid_grant');
    assert.equal((await exchange(flow, { code: 'x'.repeat(43) })).json.error, 'invalid_grant');
    assert.equal((await exchange(flow)).status, 200, 'none of those spent the code');
  });

  test('the loopback port used at authorization is the one to repeat at the token endpoint', async () => {
    const flow = await authorizeWithConsent(gw, { redirectUri: 'http://127.0.0.1:61234/callback' });
    assert.equal((await exchange(flow, { redirect_uri: 'http://127.0.0.1:54321/callback' })).json.error, 'invalid_grant');
    assert.equal((await exchange(flow)).status, 200);
  });

  test('resource: must match the authorized one (invalid_target); may be omitted', async () => {
    const flow = await authorizeWithConsent(gw, { resource: `${mcp}/notion` });
    const mismatch = await exchange(flow, { resource: mcp });
    assert.equal(mismatch.status, 400);
    assert.equal(mismatch.json.error, 'invalid_target');
    const ok = await exchange(flow, { resource: `${mcp}/notion` });
    assert.equal(ok.status, 200);
    await gw.gatehouse.accessTokens.verify(ok.json.access_token, `${mcp}/notion`);
    await assert.rejects(gw.gatehouse.accessTokens.verify(ok.json.access_token, mcp), /another resource/);
  });

  test('a client that did not register refresh_token gets no refresh token', async () => {
    const clientId = await registerClient(gw, { grant_types: ['authorization_code'] });
    const flow = await authorizeWithConsent(gw, { clientId });
    const res = await exchange(flow);
    assert.equal(res.status, 200);
    assert.equal('refresh_token' in res.json, false);
  });

  test('a deleted client cannot exchange its code: invalid_client, 401', async () => {
    const flow = await authorizeWithConsent(gw);
    await gw.gatehouse.clients.delete(flow.clientId, Math.floor(gw.clock.now() / 1000));
    const res = await exchange(flow);
    assert.equal(res.status, 401);
    assert.equal(res.json.error, 'invalid_client');
    assert.ok(res.headers.get('www-authenticate'));
  });

  test('a deactivated key cannot complete the exchange', async () => {
    const { key, record } = await createKey(gw);
    const flow = await authorizeWithConsent(gw, { key });
    await gw.gatehouse.virtualKeys.revoke(record.id);
    const res = await exchange(flow);
    assert.equal(res.json.error, 'invalid_grant');
    assert.match(res.json.error_description, /no longer active/);
  });
});
