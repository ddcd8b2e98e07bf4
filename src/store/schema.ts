import type { Generated } from 'kysely';

/**
 * The database schema as Kysely sees it. Timestamps are whole seconds since the epoch in BIGINT
 * columns (PostgreSQL's int8 is parsed back to a JS number, see database.ts); structured values
 * are JSON in TEXT columns, so one set of queries serves SQLite and PostgreSQL alike.
 */
export interface OAuthClientTable {
  client_id: string;
  /** The registered metadata (RFC 7591 §2) as JSON, without client_id and client_id_issued_at. */
  metadata: string;
  issued_at: number;
  /** Last successful authorization; NULL until the client completes one. */
  last_used_at: number | null;
}

export interface Schema {
  oauth_clients: OAuthClientTable;
}

/** Columns the database fills in itself are typed Generated<…> here. */
export type { Generated };
