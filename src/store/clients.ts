import type { Kysely } from 'kysely';
import type { ClientInformation, ClientMetadata } from '../oauth/client-metadata.js';
import type { Database } from './database.js';
import type { Schema } from './schema.js';
import type { TransactionRunner } from './transactions.js';

/** A registered client as stored: its RFC 7591 information plus when it was last used. */
export interface ClientRecord extends ClientInformation {
  /** Last successful authorization (seconds), or null if it never completed one. */
  last_used_at: number | null;
}

/** Registered OAuth clients (RFC 7591). */
export class ClientRepository {
  private readonly db: Kysely<Schema>;
  private readonly transactions: TransactionRunner;

  constructor(database: Database) {
    this.db = database.db;
    this.transactions = database.transactions;
  }

  async insert(client: ClientInformation): Promise<void> {
    const { client_id, client_id_issued_at, ...metadata } = client;
    await this.transactions.run((trx) =>
      trx
        .insertInto('oauth_clients')
        .values({ client_id, issued_at: client_id_issued_at, metadata: JSON.stringify(metadata), last_used_at: null })
        .execute(),
    );
  }

  async find(clientId: string): Promise<ClientRecord | undefined> {
    const row = await this.db.selectFrom('oauth_clients').selectAll().where('client_id', '=', clientId).executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  /** All clients, oldest first. */
  async list(): Promise<ClientRecord[]> {
    const rows = await this.db.selectFrom('oauth_clients').selectAll().orderBy('issued_at').orderBy('client_id').execute();
    return rows.map(toRecord);
  }

  /**
   * Deletes a registration and revokes every grant it holds, in one transaction: a deleted client
   * can neither refresh nor use its access tokens (within the verifier's few seconds).
   */
  async delete(clientId: string, at: number): Promise<boolean> {
    return this.transactions.run(async (trx) => {
      const result = await trx.deleteFrom('oauth_clients').where('client_id', '=', clientId).executeTakeFirst();
      if (result.numDeletedRows === 0n) return false;
      await trx
        .updateTable('grants')
        .set({ revoked_at: at, revoked_reason: 'client deleted' })
        .where('client_id', '=', clientId)
        .where('revoked_at', 'is', null)
        .execute();
      return true;
    });
  }

  /** Records a successful authorization; a used client is never swept as unused. */
  async markUsed(clientId: string, at: number): Promise<void> {
    await this.transactions.run((trx) =>
      trx.updateTable('oauth_clients').set({ last_used_at: at }).where('client_id', '=', clientId).execute(),
    );
  }

  /** Deletes clients issued before `cutoff` that never completed an authorization. */
  async deleteUnusedIssuedBefore(cutoff: number): Promise<number> {
    const result = await this.transactions.run((trx) =>
      trx.deleteFrom('oauth_clients').where('last_used_at', 'is', null).where('issued_at', '<', cutoff).executeTakeFirst(),
    );
    return Number(result.numDeletedRows);
  }
}

function toRecord(row: { client_id: string; metadata: string; issued_at: number; last_used_at: number | null }): ClientRecord {
  const metadata = JSON.parse(row.metadata) as ClientMetadata;
  return {
    client_id: row.client_id,
    client_id_issued_at: Number(row.issued_at),
    ...metadata,
    last_used_at: row.last_used_at === null ? null : Number(row.last_used_at),
  };
}
