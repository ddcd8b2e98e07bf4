import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { storageKinds } from '../helpers/postgres.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { createKey, obtainTokens, registerClient, tokenRequest } from '../helpers/oauth.js';

/**
 * Product §2.5: refresh tokens rotate on every use; the previous one stays valid until the new
 * one is first used (a lost response must not log the user out); presenting an older one revokes
 * the grant; a concurrent duplicate is refused cleanly without logging anyone out.
 */
for (const { kind, skip } of storageKinds) {
  describe(`token endpoint: refresh_token (${kind})`, { skip }, () => {
    let gw: TestGateway;
    let mcp: string;
    before(async () => {
      gw = await startGateway({ storage: kind });
      mcp = `${gw.gatehouse.issuer()}/mcp`;
    });
    after(() => gw.close());

    const refresh = (clientId: string, token: string, extra: Record<string, string> = {}) =>
      tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: token, client_id: clientId, ...extra });

    test('rotation: a new pair each time, each access token valid', async () => {
      const { clientId, tokens } = await obtainTokens(gw);
      let current = tokens.refresh_token!;
      for (let i = 0; i < 3; i++) {
        gw.clock.advance(5);
        const res = await refresh(clientId, current);
        assert.equal(res.status, 200, JSON.stringify(res.json));
        assert.equal(res.headers.get('cache-control'), 'no-store');
        assert.notEqual(res.json.refresh_token, current);
        assert.equal(res.json.scope, 'mcp:read mcp:write');
        await gw.gatehouse.accessTokens.verify(res.json.access_token, mcp);
        current = res.json.refresh_token;
      }
    });

    test('a lost response: the old token still works (once more), and the user stays signed in', async () => {
      const { clientId, tokens } = await obtainTokens(gw);
      const lost = await refresh(clientId, tokens.refresh_token!); // the client never sees this answer
      assert.equal(lost.status, 200);
      gw.clock.advance(5); // the client retries after its timeout
      const retry = await refresh(clientId, tokens.refresh_token!);
      assert.equal(retry.status, 200, JSON.stringify(retry.json));
      // The token from the lost answer was replaced, never used: refused, but nothing is revoked.
      const stale = await refresh(clientId, lost.json.refresh_token);
      assert.equal(stale.json.error, 'invalid_grant');
      gw.clock.advance(5);
      const next = await refresh(clientId, retry.json.refresh_token);
      assert.equal(next.status, 200, 'the retried pair keeps working');
    });

    test('replay of an older token after its successor was used revokes the whole grant', async () => {
      const { clientId, tokens } = await obtainTokens(gw);
      gw.clock.advance(5);
      const second = await refresh(clientId, tokens.refresh_token!);
      gw.clock.advance(5);
      const third = await refresh(clientId, second.json.refresh_token);
      assert.equal(third.status, 200);
      await gw.gatehouse.accessTokens.verify(third.json.access_token, mcp);
      gw.clock.advance(5);
      const replay = await refresh(clientId, tokens.refresh_token!);
      assert.equal(replay.status, 400);
      assert.equal(replay.json.error, 'invalid_grant');
      assert.match(replay.json.error_description, /revoked/);
      // Everything of the grant is dead: the newest refresh token, and (within seconds) its access token.
      assert.equal((await refresh(clientId, third.json.refresh_token)).json.error, 'invalid_grant');
      gw.clock.advance(3);
      await assert.rejects(gw.gatehouse.accessTokens.verify(third.json.access_token, mcp), /revoked/);
    });

    test('two concurrent refreshes: one new pair wins, the other gets a clean retryable error, nobody is logged out', async () => {
      const { clientId, tokens } = await obtainTokens(gw);
      const [a, b] = await Promise.all([refresh(clientId, tokens.refresh_token!), refresh(clientId, tokens.refresh_token!)]);
      const statuses = [a.status, b.status].sort();
      assert.deepEqual(statuses, [200, 503]);
      const winner = a.status === 200 ? a : b;
      const loser = a.status === 200 ? b : a;
      assert.equal(loser.json.error, 'temporarily_unavailable');
      assert.ok(Number(loser.headers.get('retry-after')) > 0);
      assert.equal(loser.headers.get('cache-control'), 'no-store');
      // The winner's pair works: the user is not logged out.
      await gw.gatehouse.accessTokens.verify(winner.json.access_token, mcp);
      gw.clock.advance(5);
      const next = await refresh(clientId, winner.json.refresh_token);
      assert.equal(next.status, 200);
    });

    test('many concurrent refreshes of one token: exactly one wins', async () => {
      const { clientId, tokens } = await obtainTokens(gw);
      const results = await Promise.all(Array.from({ length: 8 }, () => refresh(clientId, tokens.refresh_token!)));
      assert.equal(results.filter((r) => r.status === 200).length, 1);
      assert.ok(results.every((r) => r.status === 200 || (r.status === 503 && r.json.error === 'temporarily_unavailable')));
    });

    test('scope narrowing: a subset is granted for the access token; a wider scope is invalid_scope', async () => {
      const { clientId, tokens } = await obtainTokens(gw);
      const narrow = await refresh(clientId, tokens.refresh_token!, { scope: 'mcp:read' });
      assert.equal(narrow.status, 200);
      assert.equal(narrow.json.scope, 'mcp:read');
      const claims = await gw.gatehouse.accessTokens.verify(narrow.json.access_token, mcp);
      assert.equal(claims.scope, 'mcp:read');
      gw.clock.advance(5);
      // The grant keeps its scope: a later refresh without scope gets all of it back.
      const full = await refresh(clientId, narrow.json.refresh_token);
      assert.equal(full.json.scope, 'mcp:read mcp:write');

      const readOnly = await createKey(gw, { name: 'reader', scopes: 'mcp:read' });
      const limited = await obtainTokens(gw, { key: readOnly.key });
      assert.equal(limited.tokens.scope, 'mcp:read');
      const wider = await refresh(limited.clientId, limited.tokens.refresh_token!, { scope: 'mcp:read mcp:write' });
      assert.equal(wider.status, 400);
      assert.equal(wider.json.error, 'invalid_scope');
      // A refused request does not spend the token.
      assert.equal((await refresh(limited.clientId, limited.tokens.refresh_token!)).status, 200);
    });

    test('a refresh token is bound to its client, its resource, its lifetime, its key', async () => {
      const { clientId, tokens } = await obtainTokens(gw);
      const other = await registerClient(gw);
      assert.equal((await refresh(other, tokens.refresh_token!)).json.error, 'invalid_grant');
      assert.equal((await refresh(clientId, tokens.refresh_token!, { resource: `${mcp}/notion` })).json.error, 'invalid_target');
      assert.equal((await refresh(clientId, 'x'.repeat(43))).json.error, 'invalid_grant');

      const expiring = await obtainTokens(gw);
      gw.clock.advance(30 * 86400 + 1);
      const expired = await refresh(expiring.clientId, expiring.tokens.refresh_token!);
      assert.equal(expired.json.error, 'invalid_grant');
      assert.match(expired.json.error_description, /expired/);

      const key = await createKey(gw, { name: 'to revoke' });
      const withKey = await obtainTokens(gw, { key: key.key });
      await gw.gatehouse.accessTokens.verify(withKey.tokens.access_token, mcp);
      await gw.gatehouse.virtualKeys.revoke(key.record.id);
      assert.equal((await refresh(withKey.clientId, withKey.tokens.refresh_token!)).json.error, 'invalid_grant');
      gw.clock.advance(3);
      await assert.rejects(gw.gatehouse.accessTokens.verify(withKey.tokens.access_token, mcp), /revoked/);
    });
  });
}
