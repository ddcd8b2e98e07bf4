import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startGateway } from '../helpers/gateway.js';
import { obtainTokens, tokenRequest } from '../helpers/oauth.js';

test('smoke: a full authorization code flow and a refresh', async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const flow = await obtainTokens(gw);
  assert.equal(flow.back.searchParams.get('state'), flow.state);
  assert.equal(flow.back.searchParams.get('iss'), gw.gatehouse.issuer());
  assert.equal(flow.tokens.token_type, 'Bearer');
  const claims = await gw.gatehouse.accessTokens.verify(flow.tokens.access_token, `${gw.gatehouse.issuer()}/mcp`);
  assert.equal(claims.client_id, flow.clientId);
  const refreshed = await tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: flow.tokens.refresh_token!, client_id: flow.clientId });
  assert.equal(refreshed.status, 200, JSON.stringify(refreshed.json));
  assert.notEqual(refreshed.json.refresh_token, flow.tokens.refresh_token);
});
