import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startGateway } from '../helpers/gateway.js';
import { register } from '../helpers/http.js';
import { storageKinds } from '../helpers/postgres.js';

const DAY = 86400;

/**
 * Product §2.1: registrations never used in a successful authorization are removed after the idle
 * period (default 30 days), so floods of one-off registrations do not pile up forever.
 */
for (const { kind, skip } of storageKinds) {
  describe(`removal of unused registrations (${kind})`, { skip }, () => {
    test('an unused client goes after 30 days, not before; a used one stays', async (t) => {
      const gw = await startGateway({ storage: kind });
      t.after(() => gw.close());
      const unused = (await register(gw.url, { redirect_uris: ['http://localhost/a'] })).json.client_id;
      const used = (await register(gw.url, { redirect_uris: ['http://localhost/b'] })).json.client_id;
      await gw.gatehouse.clients.markUsed(used, Math.floor(gw.clock.now() / 1000) + 60);

      gw.clock.advance(30 * DAY);
      assert.equal((await gw.gatehouse.housekeep()).unusedClients, 0, 'exactly 30 days old is not yet expired');
      assert.ok(await gw.gatehouse.clients.find(unused));

      gw.clock.advance(1);
      assert.equal((await gw.gatehouse.housekeep()).unusedClients, 1);
      assert.equal(await gw.gatehouse.clients.find(unused), undefined);
      assert.ok(await gw.gatehouse.clients.find(used), 'a client that completed an authorization is kept');

      gw.clock.advance(365 * DAY);
      assert.equal((await gw.gatehouse.housekeep()).unusedClients, 0);
      assert.ok(await gw.gatehouse.clients.find(used));
    });

    test('the idle period is configurable, and a later registration is not swept with an earlier one', async (t) => {
      const gw = await startGateway({ storage: kind, config: { oauth_server: { unused_client_ttl: '2h' } } });
      t.after(() => gw.close());
      const early = (await register(gw.url, { redirect_uris: ['http://localhost/a'] })).json.client_id;
      gw.clock.advance(3600);
      const late = (await register(gw.url, { redirect_uris: ['http://localhost/b'] })).json.client_id;
      gw.clock.advance(3601);
      assert.equal((await gw.gatehouse.housekeep()).unusedClients, 1);
      assert.equal(await gw.gatehouse.clients.find(early), undefined);
      assert.ok(await gw.gatehouse.clients.find(late));
    });
  });
}
