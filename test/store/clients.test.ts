import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import type { ClientInformation } from '../../src/oauth/client-metadata.js';
import { ClientRepository } from '../../src/store/clients.js';
import { migrateToLatest, type Database } from '../../src/store/database.js';
import { migrations } from '../../src/store/migrations/index.js';
import { storageKinds } from '../helpers/postgres.js';
import { freshDatabase } from '../helpers/storage.js';

const client = (id: string, issuedAt: number): ClientInformation => ({
  client_id: id,
  client_id_issued_at: issuedAt,
  client_name: `client ${id}`,
  redirect_uris: ['http://localhost/cb', 'cursor://anysphere.cursor-mcp/oauth/callback'],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
  scope: 'mcp:read',
  contacts: ['a@example.com'],
});

for (const { kind, skip } of storageKinds) {
  describe(`storage: clients (${kind})`, { skip }, () => {
    test('migrations create the schema, and running them again changes nothing', async (t) => {
      const { open } = await freshDatabase(t, kind);
      const db = await open();
      const first = await migrateToLatest(db);
      assert.deepEqual(first.results?.map((r) => [r.migrationName, r.status]), Object.keys(migrations).map((m) => [m, 'Success']));
      const again = await migrateToLatest(db);
      assert.deepEqual(again.results, []);
    });

    test('concurrent migrations from several connections apply each migration once', async (t) => {
      const { open } = await freshDatabase(t, kind);
      const dbs: Database[] = await Promise.all([open(), open(), open()]);
      const results = await Promise.all(dbs.map((db) => migrateToLatest(db)));
      const applied = results.flatMap((r) => r.results ?? []).filter((r) => r.status === 'Success');
      assert.equal(applied.length, Object.keys(migrations).length);
    });

    test('insert, find, list, markUsed, delete round-trip every field', async (t) => {
      const { open } = await freshDatabase(t, kind);
      const db = await open();
      await migrateToLatest(db);
      const repo = new ClientRepository(db);
      // A timestamp beyond 2^31 checks that BIGINT comes back as a number on both databases.
      const late = 4_102_444_800;
      await repo.insert(client('b', late));
      await repo.insert(client('a', 1_795_000_000));
      const found = await repo.find('b');
      assert.deepEqual(found, { ...client('b', late), last_used_at: null });
      assert.equal(await repo.find('missing'), undefined);
      assert.deepEqual((await repo.list()).map((c) => c.client_id), ['a', 'b'], 'oldest first');
      await repo.markUsed('a', late + 5);
      assert.equal((await repo.find('a'))?.last_used_at, late + 5);
      assert.equal(await repo.delete('a', 1), true);
      assert.equal(await repo.delete('a', 1), false);
      assert.deepEqual((await repo.list()).map((c) => c.client_id), ['b']);
    });

    test('a duplicate client_id is refused by the database, not overwritten', async (t) => {
      const { open } = await freshDatabase(t, kind);
      const db = await open();
      await migrateToLatest(db);
      const repo = new ClientRepository(db);
      await repo.insert(client('same', 1));
      await assert.rejects(repo.insert({ ...client('same', 2), client_name: 'impostor' }));
      assert.equal((await repo.find('same'))?.client_name, 'client same');
    });

    test('deleteUnusedIssuedBefore removes only never-used clients issued before the cutoff', async (t) => {
      const { open } = await freshDatabase(t, kind);
      const db = await open();
      await migrateToLatest(db);
      const repo = new ClientRepository(db);
      await repo.insert(client('old-unused', 100));
      await repo.insert(client('old-used', 100));
      await repo.insert(client('new-unused', 300));
      await repo.markUsed('old-used', 150);
      assert.equal(await repo.deleteUnusedIssuedBefore(200), 1);
      assert.deepEqual((await repo.list()).map((c) => c.client_id).sort(), ['new-unused', 'old-used']);
    });

    test('data written by one connection is read by a new one (it is on disk, not in memory)', async (t) => {
      const { open } = await freshDatabase(t, kind);
      const writer = await open();
      await migrateToLatest(writer);
      await new ClientRepository(writer).insert(client('durable', 1));
      await writer.close();
      const reader = await open();
      assert.ok(await new ClientRepository(reader).find('durable'));
    });
  });
}

describe('storage: SQLite specifics', () => {
  test('WAL journal, durable commits, busy timeout, and a file only its owner can read', async (t) => {
    const { settings, open } = await freshDatabase(t, 'sqlite');
    const db = await open();
    await migrateToLatest(db);
    const pragma = async (name: string) =>
      Object.values((await sql.raw(`PRAGMA ${name}`).execute(db.db)).rows[0] as object)[0];
    assert.equal(await pragma('journal_mode'), 'wal');
    assert.equal(await pragma('synchronous'), 2, 'FULL');
    assert.equal(await pragma('busy_timeout'), 5000);
    assert.equal(statSync(settings.sqlite).mode & 0o777, 0o600);
  });
});
