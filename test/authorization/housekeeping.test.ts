import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { startGateway } from '../helpers/gateway.js';
import { obtainTokens, tokenRequest } from '../helpers/oauth.js';
import { storageKinds } from '../helpers/postgres.js';

const HOUR = 3600;
const DAY = 86400;

/**
 * Grants that nobody can use any more are removed, so the grant tables do not grow with every
 * client that signed in once: a grant whose refresh tokens have all expired (for longer than an
 * access token lives) goes, one that keeps being refreshed stays, and so does a revoked one for its
 * 30 days of "revoked" answers.
 */
for (const { kind, skip } of storageKinds) {
  describe(`housekeeping of grants (${kind})`, { skip }, () => {
    test('an abandoned grant goes once no token of it can be live; a grant in use stays', async (t) => {
      const gw = await startGateway({ storage: kind, config: { oauth_server: { access_token_ttl: HOUR, refresh_token_ttl: DAY } } });
      t.after(() => gw.close());
      const grantOf = (accessToken: string) => String(decodeJwt(accessToken).sid);

      const abandoned = await obtainTokens(gw);
      const inUse = await obtainTokens(gw);
      const abandonedGrant = grantOf(abandoned.tokens.access_token);
      const inUseGrant = grantOf(inUse.tokens.access_token);
      assert.notEqual(abandonedGrant, inUseGrant);

      // The grant in use is refreshed every 12 hours; the other is left alone.
      let refreshToken = inUse.tokens.refresh_token!;
      const refresh = async () => {
        const res = await tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: inUse.clientId });
        assert.equal(res.status, 200, JSON.stringify(res.json));
        refreshToken = res.json.refresh_token;
      };
      gw.clock.advance(12 * HOUR);
      await refresh();
      gw.clock.advance(12 * HOUR);
      await refresh();

      // The abandoned grant's refresh token expired just now: an access token minted with it could
      // still be live for an hour, so the grant stays that long.
      gw.clock.advance(HOUR);
      await gw.gatehouse.housekeep();
      assert.ok(await gw.gatehouse.grants.find(abandonedGrant), 'kept while one of its access tokens could be live');

      gw.clock.advance(HOUR + 1);
      await refresh();
      const report = await gw.gatehouse.housekeep();
      assert.ok(report.expiredGrantData >= 2, `its refresh token and the grant are removed (${report.expiredGrantData})`);
      assert.equal(await gw.gatehouse.grants.find(abandonedGrant), undefined);
      assert.ok(await gw.gatehouse.grants.find(inUseGrant), 'a grant that is refreshed stays');

      // Refreshing keeps working after the clean-up, and the abandoned refresh token is refused.
      gw.clock.advance(60);
      await refresh();
      const stale = await tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: abandoned.tokens.refresh_token!, client_id: abandoned.clientId });
      assert.equal(stale.json.error, 'invalid_grant');
    });

    test('a revoked grant is kept 30 days, then removed', async (t) => {
      const gw = await startGateway({ storage: kind });
      t.after(() => gw.close());
      const { tokens } = await obtainTokens(gw);
      const grant = String(decodeJwt(tokens.access_token).sid);
      await gw.gatehouse.grants.revokeGrant(grant, Math.floor(gw.clock.now() / 1000), 'test');
      gw.clock.advance(30 * DAY);
      await gw.gatehouse.housekeep();
      assert.ok(await gw.gatehouse.grants.find(grant), 'answers "revoked" for 30 days');
      gw.clock.advance(1);
      await gw.gatehouse.housekeep();
      assert.equal(await gw.gatehouse.grants.find(grant), undefined);
    });
  });
}
