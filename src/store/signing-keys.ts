import type { Kysely } from 'kysely';
import type { Database } from './database.js';
import type { Schema, SigningKeyTable } from './schema.js';
import type { TransactionRunner } from './transactions.js';

export type SigningKeyRow = SigningKeyTable;

/** ES256 signing keys; the private JWK is stored sealed. */
export class SigningKeyRepository {
  private readonly db: Kysely<Schema>;
  private readonly transactions: TransactionRunner;

  constructor(database: Database) {
    this.db = database.db;
    this.transactions = database.transactions;
  }

  /** Keys still published: current ones, and retired ones retired after `retiredAfter`. Newest first. */
  async published(retiredAfter: number): Promise<SigningKeyRow[]> {
    const rows = await this.db
      .selectFrom('signing_keys')
      .selectAll()
      .where((eb) => eb.or([eb('retired_at', 'is', null), eb('retired_at', '>', retiredAfter)]))
      .orderBy('created_at', 'desc')
      .orderBy('kid', 'desc')
      .execute();
    return rows.map(normalize);
  }

  /** Adds a key and, in the same transaction, retires every other current key. */
  async addCurrent(row: SigningKeyRow): Promise<void> {
    await this.transactions.run(async (trx) => {
      await trx.updateTable('signing_keys').set({ retired_at: row.created_at }).where('retired_at', 'is', null).execute();
      await trx.insertInto('signing_keys').values(row).execute();
    });
  }

  /** Adds a key only if there is no current key yet (first start); returns whether it was added. */
  async addFirst(row: SigningKeyRow): Promise<boolean> {
    return this.transactions.run(async (trx) => {
      const existing = await trx.selectFrom('signing_keys').select('kid').where('retired_at', 'is', null).executeTakeFirst();
      if (existing) return false;
      await trx.insertInto('signing_keys').values(row).execute();
      return true;
    });
  }

  async deleteRetiredBefore(cutoff: number): Promise<number> {
    const result = await this.transactions.run((trx) =>
      trx.deleteFrom('signing_keys').where('retired_at', 'is not', null).where('retired_at', '<', cutoff).executeTakeFirst(),
    );
    return Number(result.numDeletedRows);
  }
}

function normalize(row: SigningKeyRow): SigningKeyRow {
  return { ...row, created_at: Number(row.created_at), retired_at: row.retired_at === null ? null : Number(row.retired_at) };
}
