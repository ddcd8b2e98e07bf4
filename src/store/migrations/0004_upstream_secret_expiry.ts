import type { Kysely } from 'kysely';

/** When the client secret of a registration at an upstream expires (RFC 7591 client_secret_expires_at); null: never. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('upstream_registrations').addColumn('client_secret_expires_at', 'bigint').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('upstream_registrations').dropColumn('client_secret_expires_at').execute();
}
