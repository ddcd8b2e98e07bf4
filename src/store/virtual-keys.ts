import type { Kysely } from 'kysely';
import type { Database } from './database.js';
import type { Schema, VirtualKeyTable } from './schema.js';
import type { TransactionRunner } from './transactions.js';

/** A virtual key as stored: everything but the key itself (only its hash is kept). */
export interface VirtualKeyRecord {
  id: string;
  prefix: string;
  name: string;
  owner: string | null;
  /** Upstream names the key may reach; null = all. */
  upstreams: string[] | null;
  /** `upstream/tool` patterns (`*` wildcards) the key may call; null = all. */
  tools: string[] | null;
  /** Scope ceiling, space-separated. */
  scopes: string;
  expires_at: number | null;
  active: boolean;
  created_at: number;
  revoked_at: number | null;
}

export class VirtualKeyRepository {
  private readonly db: Kysely<Schema>;
  private readonly transactions: TransactionRunner;

  constructor(database: Database) {
    this.db = database.db;
    this.transactions = database.transactions;
  }

  async insert(record: VirtualKeyRecord, keyHash: string): Promise<void> {
    await this.transactions.run((trx) => trx.insertInto('virtual_keys').values({ ...toRow(record), key_hash: keyHash }).execute());
  }

  async findByHash(keyHash: string): Promise<VirtualKeyRecord | undefined> {
    const row = await this.db.selectFrom('virtual_keys').selectAll().where('key_hash', '=', keyHash).executeTakeFirst();
    return row ? fromRow(row) : undefined;
  }

  async find(id: string): Promise<VirtualKeyRecord | undefined> {
    const row = await this.db.selectFrom('virtual_keys').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? fromRow(row) : undefined;
  }

  async list(): Promise<VirtualKeyRecord[]> {
    const rows = await this.db.selectFrom('virtual_keys').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(fromRow);
  }

  /** Deactivates a key; returns false if there is no such key or it was already inactive. */
  async deactivate(id: string, at: number): Promise<boolean> {
    const result = await this.transactions.run((trx) =>
      trx.updateTable('virtual_keys').set({ active: 0, revoked_at: at }).where('id', '=', id).where('active', '=', 1).executeTakeFirst(),
    );
    return result.numUpdatedRows > 0n;
  }
}

function toRow(r: VirtualKeyRecord): Omit<VirtualKeyTable, 'key_hash'> {
  return {
    id: r.id,
    prefix: r.prefix,
    name: r.name,
    owner: r.owner,
    upstreams: r.upstreams === null ? null : JSON.stringify(r.upstreams),
    tools: r.tools === null ? null : JSON.stringify(r.tools),
    scopes: r.scopes,
    expires_at: r.expires_at,
    active: r.active ? 1 : 0,
    created_at: r.created_at,
    revoked_at: r.revoked_at,
  };
}

function fromRow(row: VirtualKeyTable): VirtualKeyRecord {
  return {
    id: row.id,
    prefix: row.prefix,
    name: row.name,
    owner: row.owner,
    upstreams: row.upstreams === null ? null : (JSON.parse(row.upstreams) as string[]),
    tools: row.tools === null ? null : (JSON.parse(row.tools) as string[]),
    scopes: row.scopes,
    expires_at: row.expires_at === null ? null : Number(row.expires_at),
    active: Number(row.active) === 1,
    created_at: Number(row.created_at),
    revoked_at: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}
