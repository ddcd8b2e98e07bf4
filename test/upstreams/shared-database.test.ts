import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startOAuthUpstream } from '../fixtures/oauth-upstream.js';
import { startGateway, type RawConfig } from '../helpers/gateway.js';
import { createPostgresDatabase, storageKinds } from '../helpers/postgres.js';
import { makeTempDir } from '../helpers/tmp.js';
import { callTool, connectViaToolError, perUserUpstream, userKey } from './support.js';

for (const { kind, skip } of storageKinds) {
  describe(`per-user upstream OAuth across gateway processes (${kind})`, { skip }, () => {
    test('two gateways on one database: 20 concurrent calls at expiry, one refresh reaches the upstream', async (t) => {
      const upstream = await startOAuthUpstream({ accessTokenTtl: 120 });
      t.after(() => upstream.close());
      const temp = makeTempDir();
      t.after(temp.remove);
      const storage: RawConfig = {};
      if (kind === 'postgres') {
        const pg = await createPostgresDatabase();
        t.after(pg.drop);
        storage.postgres = pg.url;
      }
      const config = { storage, upstreams: [perUserUpstream('docs', upstream)] };
      const one = await startGateway({ config, dataDir: temp.dir });
      t.after(() => one.close());
      const two = await startGateway({ config, dataDir: temp.dir });
      t.after(() => two.close());

      const alice = await userKey(one, 'alice');
      await connectViaToolError(one, alice, upstream, 'docs-whoami', 'alice');
      // Both processes have a warm connection before the token expires.
      assert.equal((await callTool(one, alice, 'docs-whoami')).content[0]!.text, 'alice');
      assert.equal((await callTool(two, alice, 'docs-whoami')).content[0]!.text, 'alice');

      one.clock.advance(121);
      two.clock.advance(121);
      upstream.ageAccessTokens(121);
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => callTool(i % 2 ? one : two, alice, 'docs-whoami')));
      assert.deepEqual(new Set(results.map((r) => r.content[0]!.text)), new Set(['alice']));
      assert.equal(upstream.tokenRequests.refresh_token, 1, 'one refresh for both processes (a database lease, not a process mutex)');
      // The rotated refresh token was kept: the next refresh works.
      one.clock.advance(121);
      two.clock.advance(121);
      upstream.ageAccessTokens(121);
      assert.equal((await callTool(two, alice, 'docs-whoami')).content[0]!.text, 'alice');
      assert.equal(upstream.tokenRequests.refresh_token, 2);
    });
  });
}
