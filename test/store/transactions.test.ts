import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { migrateToLatest, openDatabase } from '../../src/store/database.js';
import { createPostgresDatabase, storageKinds, type StorageKind } from '../helpers/postgres.js';
import { makeTempDir } from '../helpers/tmp.js';

async function open(t: TestContext, kind: StorageKind) {
  const temp = makeTempDir();
  t.after(temp.remove);
  let postgres: string | undefined;
  if (kind === 'postgres') {
    const pgdb = await createPostgresDatabase();
    t.after(pgdb.drop);
    postgres = pgdb.url;
  }
  const database = await openDatabase({ data_dir: temp.dir, sqlite: path.join(temp.dir, 'gatehouse.db'), postgres });
  t.after(() => database.close());
  await migrateToLatest(database);
  return database;
}

const row = (id: string) => ({ client_id: id, metadata: '{}', issued_at: 1, last_used_at: null });

for (const { kind, skip } of storageKinds) {
  describe(`units of work (${kind})`, { skip }, () => {
    test('concurrent units all commit; a failing one is rolled back alone and rejects alone', async (t) => {
      const database = await open(t, kind);
      const { transactions, db } = database;
      const results = await Promise.allSettled([
        transactions.run((trx) => trx.insertInto('oauth_clients').values(row('a')).execute().then(() => 'a')),
        transactions.run(async (trx) => {
          await trx.insertInto('oauth_clients').values(row('half')).execute();
          throw new Error('unit failed after a write');
        }),
        transactions.run((trx) => trx.insertInto('oauth_clients').values(row('a')).execute()), // duplicate key
        transactions.run((trx) => trx.insertInto('oauth_clients').values(row('b')).execute().then(() => 'b')),
      ]);
      assert.deepEqual(
        results.map((r) => r.status),
        ['fulfilled', 'rejected', 'rejected', 'fulfilled'],
      );
      assert.deepEqual(results[0]!.status === 'fulfilled' && results[0]!.value, 'a');
      const ids = (await db.selectFrom('oauth_clients').select('client_id').orderBy('client_id').execute()).map((r) => r.client_id);
      assert.deepEqual(ids, ['a', 'b'], 'the failed unit left nothing behind');
    });

    test('a unit sees the writes of the units before it', async (t) => {
      const { transactions } = await open(t, kind);
      const first = transactions.run((trx) => trx.insertInto('oauth_clients').values(row('x')).execute());
      const second = transactions.run(async (trx) => {
        const found = await trx.selectFrom('oauth_clients').select('client_id').where('client_id', '=', 'x').executeTakeFirst();
        return found?.client_id;
      });
      await first;
      assert.equal(await second, 'x');
    });

    test('many concurrent units: every one committed exactly once', async (t) => {
      const { transactions, db } = await open(t, kind);
      await Promise.all(
        Array.from({ length: 300 }, (_, i) =>
          transactions.run((trx) => trx.insertInto('oauth_clients').values(row(`c${i}`)).execute()),
        ),
      );
      const { n } = (await db.selectFrom('oauth_clients').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow());
      assert.equal(Number(n), 300);
    });
  });
}
