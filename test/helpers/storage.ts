import path from 'node:path';
import type { TestContext } from 'node:test';
import { openDatabase } from '../../src/store/database.js';
import { createPostgresDatabase, type StorageKind } from './postgres.js';
import { makeTempDir } from './tmp.js';

/** A fresh, empty database of the given kind for one test; `open` opens it (again), closed after the test. */
export async function freshDatabase(t: TestContext, kind: StorageKind) {
  const temp = makeTempDir();
  t.after(temp.remove);
  const settings = { data_dir: temp.dir, sqlite: path.join(temp.dir, 'gatehouse.db'), postgres: undefined as string | undefined };
  if (kind === 'postgres') {
    const pgdb = await createPostgresDatabase();
    t.after(pgdb.drop);
    settings.postgres = pgdb.url;
  }
  const open = async () => {
    const db = await openDatabase(settings);
    t.after(() => db.close());
    return db;
  };
  return { settings, open };
}
