import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test, type TestContext } from 'node:test';
import { SecretBox } from '../../src/crypto/encryption.js';
import { migrateToLatest } from '../../src/store/database.js';
import { UpstreamOAuthRepository, type UpstreamTokens } from '../../src/store/upstream-oauth.js';
import { storageKinds, type StorageKind } from '../helpers/postgres.js';
import { freshDatabase } from '../helpers/storage.js';

async function repository(t: TestContext, kind: StorageKind) {
  const { open } = await freshDatabase(t, kind);
  const db = await open();
  await migrateToLatest(db);
  return { db, repo: new UpstreamOAuthRepository(db, new SecretBox(randomBytes(32))) };
}

const tokens = (subject: string, upstream: string, over: Partial<UpstreamTokens> = {}): UpstreamTokens => ({
  subject,
  upstream,
  issuer: 'https://as.example',
  client_id: 'gatehouse-client',
  resource: 'https://mcp.example/mcp',
  access_token: `at-${subject}-${upstream}`,
  refresh_token: `rt-${subject}-${upstream}`,
  scope: 'read write',
  expires_at: 4_102_444_800,
  status: 'active',
  updated_at: 1_800_000_000,
  ...over,
});

for (const { kind, skip } of storageKinds) {
  describe(`storage: upstream OAuth (${kind})`, { skip }, () => {
    test('tokens round-trip, sealed at rest and bound to their row', async (t) => {
      const { db, repo } = await repository(t, kind);
      await repo.saveTokens(tokens('alice', 'notion'));
      await repo.saveTokens(tokens('bob', 'notion', { refresh_token: null, expires_at: null }));
      assert.deepEqual(await repo.tokens('alice', 'notion'), tokens('alice', 'notion'));
      assert.deepEqual(await repo.tokens('bob', 'notion'), tokens('bob', 'notion', { refresh_token: null, expires_at: null }));
      assert.equal(await repo.tokens('alice', 'github'), undefined);

      const raw = await db.db.selectFrom('upstream_tokens').selectAll().execute();
      const text = JSON.stringify(raw);
      assert.ok(!text.includes('at-alice') && !text.includes('rt-alice') && !text.includes('at-bob'), 'no token in plain text');

      // Alice's sealed token copied into Bob's row does not open as Bob's.
      const alice = raw.find((r) => r.subject === 'alice')!;
      await db.db.updateTable('upstream_tokens').set({ access_token: alice.access_token }).where('subject', '=', 'bob').execute();
      await assert.rejects(repo.tokens('bob', 'notion'));
    });

    test('saving again replaces the connection; connections list without secrets', async (t) => {
      const { repo } = await repository(t, kind);
      await repo.saveTokens(tokens('alice', 'notion'));
      await repo.saveTokens(tokens('alice', 'github'));
      await repo.saveTokens(tokens('alice', 'notion', { access_token: 'newer', updated_at: 1_800_000_100 }));
      await repo.saveTokens(tokens('bob', 'notion'));
      assert.equal((await repo.tokens('alice', 'notion'))?.access_token, 'newer');
      const mine = await repo.connections('alice');
      assert.deepEqual(mine.map((c) => c.upstream), ['github', 'notion']);
      assert.ok(mine.every((c) => !('access_token' in c) && !('refresh_token' in c)));
      assert.equal((await repo.connections()).length, 3);
      assert.equal(await repo.deleteTokens('alice', 'notion'), true);
      assert.equal(await repo.deleteTokens('alice', 'notion'), false);
      assert.deepEqual((await repo.connections('alice')).map((c) => c.upstream), ['github']);
    });

    test('the per-call read follows the row: a refresh, needs_reauth, a delete, a token copied from another row', async (t) => {
      const { db, repo } = await repository(t, kind);
      await repo.saveTokens(tokens('alice', 'notion'));
      await repo.saveTokens(tokens('bob', 'notion'));
      const read = () => repo.accessToken('alice', 'notion');
      assert.deepEqual(await read(), { access_token: 'at-alice-notion', expires_at: 4_102_444_800, status: 'active' });
      assert.deepEqual(await read(), { access_token: 'at-alice-notion', expires_at: 4_102_444_800, status: 'active' }, 'read again (unchanged)');
      await repo.saveTokens(tokens('alice', 'notion', { access_token: 'refreshed', expires_at: 4_102_444_900 }));
      assert.deepEqual(await read(), { access_token: 'refreshed', expires_at: 4_102_444_900, status: 'active' });
      await repo.markNeedsReauth('alice', 'notion', 1_800_000_200);
      assert.equal((await read())?.status, 'needs_reauth');
      assert.equal(await repo.deleteTokens('alice', 'notion'), true);
      assert.equal(await read(), undefined);

      // Bob's current sealed token, copied into his row from Alice's: it does not open as his.
      await repo.saveTokens(tokens('alice', 'notion'));
      assert.equal((await repo.accessToken('bob', 'notion'))?.access_token, 'at-bob-notion');
      const alice = await db.db.selectFrom('upstream_tokens').select('access_token').where('subject', '=', 'alice').executeTakeFirstOrThrow();
      await db.db.updateTable('upstream_tokens').set({ access_token: alice.access_token }).where('subject', '=', 'bob').execute();
      await assert.rejects(repo.accessToken('bob', 'notion'));
    });

    test('needs_reauth keeps the row and releases the lease', async (t) => {
      const { repo } = await repository(t, kind);
      await repo.saveTokens(tokens('alice', 'notion'));
      assert.equal(await repo.tryLock('alice', 'notion', 'p1', 100, 200), true);
      await repo.markNeedsReauth('alice', 'notion', 150);
      const row = await repo.tokens('alice', 'notion');
      assert.equal(row?.status, 'needs_reauth');
      assert.equal(row?.updated_at, 150);
      assert.equal(await repo.tryLock('alice', 'notion', 'p2', 151, 250), true, 'the lease was released');
    });

    test('one refresh lease per connection; it expires, and only its owner releases it', async (t) => {
      const { repo } = await repository(t, kind);
      await repo.saveTokens(tokens('alice', 'notion'));
      await repo.saveTokens(tokens('bob', 'notion'));
      assert.equal(await repo.tryLock('alice', 'notion', 'p1', 100, 130), true);
      assert.equal(await repo.tryLock('alice', 'notion', 'p2', 110, 140), false, 'held by p1');
      assert.equal(await repo.tryLock('bob', 'notion', 'p2', 110, 140), true, 'another connection is independent');
      await repo.unlock('alice', 'notion', 'p2'); // not p2's lease
      assert.equal(await repo.tryLock('alice', 'notion', 'p3', 120, 150), false);
      assert.equal(await repo.tryLock('alice', 'notion', 'p3', 130, 160), true, 'an expired lease is taken over');
      await repo.unlock('alice', 'notion', 'p3');
      assert.equal(await repo.tryLock('alice', 'notion', 'p4', 131, 161), true);
      assert.equal(await repo.tryLock('carol', 'notion', 'p1', 100, 130), false, 'no connection, no lease');
      // Saving the refreshed tokens releases the lease.
      await repo.saveTokens(tokens('alice', 'notion', { access_token: 'refreshed' }));
      assert.equal(await repo.tryLock('alice', 'notion', 'p5', 132, 162), true);
    });

    test('concurrent lease attempts: exactly one wins', async (t) => {
      const { repo } = await repository(t, kind);
      await repo.saveTokens(tokens('alice', 'notion'));
      const wins = await Promise.all(Array.from({ length: 20 }, (_, i) => repo.tryLock('alice', 'notion', `p${i}`, 100, 200)));
      assert.equal(wins.filter(Boolean).length, 1);
    });

    test('a flow is consumed once, and not after it expires; its verifier is sealed', async (t) => {
      const { db, repo } = await repository(t, kind);
      const flow = {
        state_hash: 'h1',
        subject: 'alice',
        upstream: 'notion',
        binding_hash: 'b1',
        code_verifier: 'verifier-secret-value',
        issuer: 'https://as.example',
        client_id: 'c',
        redirect_uri: 'https://gw/api/oauth/callback',
        resource: 'https://mcp.example/mcp',
        scope: 'read',
        return_to: 'consent-1',
        created_at: 100,
        expires_at: 700,
      };
      await repo.insertFlow(flow);
      await repo.insertFlow({ ...flow, state_hash: 'h2', return_to: null });
      assert.ok(!JSON.stringify(await db.db.selectFrom('upstream_flows').selectAll().execute()).includes('verifier-secret-value'));
      assert.deepEqual(await repo.consumeFlow('h1', 200), flow);
      assert.equal(await repo.consumeFlow('h1', 200), undefined, 'single use');
      assert.equal(await repo.consumeFlow('h2', 700), undefined, 'expired');
      assert.equal(await repo.consumeFlow('h2', 100), undefined, 'an expired flow is removed when presented');
    });

    test('tickets expire; prune removes expired flows and tickets', async (t) => {
      const { repo } = await repository(t, kind);
      await repo.insertTicket({ ticket_hash: 't1', subject: 'alice', upstream: 'notion', client_id: 'c1', scope: 'a b', expires_at: 500 });
      assert.deepEqual(await repo.ticket('t1', 499), { subject: 'alice', upstream: 'notion', client_id: 'c1', scope: 'a b', expires_at: 500 });
      assert.equal(await repo.ticket('t1', 500), undefined);
      assert.equal(await repo.ticket('t2', 0), undefined);
      await repo.insertFlow({
        state_hash: 'h',
        subject: 'a',
        upstream: 'u',
        binding_hash: 'b',
        code_verifier: 'v',
        issuer: 'i',
        client_id: 'c',
        redirect_uri: 'r',
        resource: 'u',
        scope: null,
        return_to: null,
        created_at: 0,
        expires_at: 400,
      });
      assert.equal(await repo.prune(450), 1);
      assert.equal(await repo.prune(600), 1);
      assert.equal(await repo.prune(600), 0);
    });

    test('registrations per issuer, client secrets sealed', async (t) => {
      const { db, repo } = await repository(t, kind);
      const reg = { issuer: 'https://as.example', client_id: 'cid', client_secret: 'shh-secret', token_endpoint_auth_method: 'client_secret_basic', redirect_uri: 'https://gw/api/oauth/callback', registered_at: 5, client_secret_expires_at: 1_900_000_000 };
      await repo.saveRegistration(reg);
      const other = { ...reg, issuer: 'https://other.example', client_secret: null, client_secret_expires_at: null };
      await repo.saveRegistration(other);
      assert.deepEqual(await repo.registration(reg.issuer), reg);
      assert.deepEqual(await repo.registration(other.issuer), other);
      assert.ok(!JSON.stringify(await db.db.selectFrom('upstream_registrations').selectAll().execute()).includes('shh-secret'));
      await repo.saveRegistration({ ...reg, client_id: 'cid2' });
      assert.equal((await repo.registration(reg.issuer))?.client_id, 'cid2', 'replaced');
      await repo.deleteRegistration(reg.issuer);
      assert.equal(await repo.registration(reg.issuer), undefined);
    });

    test('consents are recorded per (identity, upstream, client), the latest one kept', async (t) => {
      const { repo } = await repository(t, kind);
      await repo.recordConsent({ subject: 'alice', upstream: 'notion', client_id: 'c1', scope: 'read', consented_at: 1 });
      await repo.recordConsent({ subject: 'alice', upstream: 'notion', client_id: 'c1', scope: 'read write', consented_at: 2 });
      await repo.recordConsent({ subject: 'alice', upstream: 'notion', client_id: 'c2', scope: null, consented_at: 3 });
      await repo.recordConsent({ subject: 'bob', upstream: 'notion', client_id: 'c1', scope: null, consented_at: 4 });
      assert.deepEqual(await repo.consents('alice'), [
        { subject: 'alice', upstream: 'notion', client_id: 'c1', scope: 'read write', consented_at: 2 },
        { subject: 'alice', upstream: 'notion', client_id: 'c2', scope: null, consented_at: 3 },
      ]);
    });

    test('catalogs are kept per upstream, the latest listing wins', async (t) => {
      const { repo } = await repository(t, kind);
      await repo.saveCatalog('notion', { tools: [{ name: 'a' }] }, 1);
      await repo.saveCatalog('notion', { tools: [{ name: 'b' }] }, 2);
      await repo.saveCatalog('github', { tools: [] }, 3);
      const all = await repo.catalogs();
      assert.deepEqual(all.sort((a, b) => a.upstream.localeCompare(b.upstream)), [
        { upstream: 'github', catalog: { tools: [] }, listed_at: 3 },
        { upstream: 'notion', catalog: { tools: [{ name: 'b' }] }, listed_at: 2 },
      ]);
    });
  });
}
