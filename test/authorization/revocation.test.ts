import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { obtainTokens, registerClient, REVOKE, tokenRequest } from '../helpers/oauth.js';

/** RFC 7009 revocation: always 200; the grant stops working at once for refresh, within seconds for access. */
describe('revocation endpoint', () => {
  let gw: TestGateway;
  let mcp: string;
  before(async () => {
    gw = await startGateway();
    mcp = `${gw.gatehouse.issuer()}/mcp`;
  });
  after(() => gw.close());

  const revoke = (params: Record<string, string>) => tokenRequest(gw, params, REVOKE);

  test('revoking the refresh token ends the grant: refresh at once, access tokens within 5 seconds', async () => {
    const { clientId, tokens } = await obtainTokens(gw);
    await gw.gatehouse.accessTokens.verify(tokens.access_token, mcp);
    const res = await revoke({ token: tokens.refresh_token!, token_type_hint: 'refresh_token', client_id: clientId });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const refresh = await tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: clientId });
    assert.equal(refresh.json.error, 'invalid_grant');
    // This replica forgot its cached status; others see it within the cache's 2 s.
    await assert.rejects(gw.gatehouse.accessTokens.verify(tokens.access_token, mcp), /revoked/);
  });

  test('revoking the access token ends the grant too', async () => {
    const { clientId, tokens } = await obtainTokens(gw);
    assert.equal((await revoke({ token: tokens.access_token, token_type_hint: 'access_token', client_id: clientId })).status, 200);
    await assert.rejects(gw.gatehouse.accessTokens.verify(tokens.access_token, mcp), /revoked/);
    const refresh = await tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: clientId });
    assert.equal(refresh.json.error, 'invalid_grant');
  });

  test('a wrong hint still finds the token', async () => {
    const { clientId, tokens } = await obtainTokens(gw);
    assert.equal((await revoke({ token: tokens.refresh_token!, token_type_hint: 'access_token', client_id: clientId })).status, 200);
    const refresh = await tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: clientId });
    assert.equal(refresh.json.error, 'invalid_grant');
  });

  test('unknown tokens get 200 as well; another client cannot revoke my tokens', async () => {
    assert.equal((await revoke({ token: 'nonsense' })).status, 200);
    assert.equal((await revoke({ token: 'eyJhbGciOiJub25lIn0.e30.' })).status, 200);
    const { clientId, tokens } = await obtainTokens(gw);
    const other = await registerClient(gw);
    assert.equal((await revoke({ token: tokens.refresh_token!, client_id: other })).status, 200);
    const refresh = await tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: clientId });
    assert.equal(refresh.status, 200, 'still valid');
  });

  test('a request without token is invalid_request', async () => {
    const res = await revoke({ client_id: 'x' });
    assert.equal(res.status, 400);
    assert.equal(res.json.error, 'invalid_request');
  });
});
