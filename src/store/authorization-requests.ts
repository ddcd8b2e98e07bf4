import type { Kysely } from 'kysely';
import type { Database } from './database.js';
import type { AuthorizationRequestTable, Schema } from './schema.js';
import type { TransactionRunner } from './transactions.js';

export type AuthorizationRequestRow = AuthorizationRequestTable;

/**
 * Authorization requests waiting for the user (product §2.3): kept in the database, not in
 * memory, so the consent page and the token request may reach any replica and survive a restart.
 */
export class AuthorizationRequestRepository {
  private readonly db: Kysely<Schema>;
  private readonly transactions: TransactionRunner;

  constructor(database: Database) {
    this.db = database.db;
    this.transactions = database.transactions;
  }

  async insert(row: AuthorizationRequestRow): Promise<void> {
    await this.transactions.run((trx) => trx.insertInto('authorization_requests').values(row).execute());
  }

  /** The request if it exists and has not expired at `now`. */
  async findLive(id: string, now: number): Promise<AuthorizationRequestRow | undefined> {
    const row = await this.db
      .selectFrom('authorization_requests')
      .selectAll()
      .where('id', '=', id)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return row ? { ...row, created_at: Number(row.created_at), expires_at: Number(row.expires_at) } : undefined;
  }

  async setKey(id: string, keyId: string): Promise<void> {
    await this.transactions.run((trx) => trx.updateTable('authorization_requests').set({ key_id: keyId }).where('id', '=', id).execute());
  }

  /** Removes the request; true for exactly one caller, so a double submission acts once. */
  async consume(id: string): Promise<boolean> {
    const result = await this.transactions.run((trx) => trx.deleteFrom('authorization_requests').where('id', '=', id).executeTakeFirst());
    return result.numDeletedRows > 0n;
  }

  async deleteExpired(now: number): Promise<number> {
    const result = await this.transactions.run((trx) =>
      trx.deleteFrom('authorization_requests').where('expires_at', '<=', now).executeTakeFirst(),
    );
    return Number(result.numDeletedRows);
  }
}
