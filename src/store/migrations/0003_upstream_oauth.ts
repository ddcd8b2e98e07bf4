import type { Kysely } from 'kysely';

/** The gateway as OAuth client of upstreams: registrations, per-user tokens, flows, connect tickets, cached catalogs. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('upstream_registrations')
    .addColumn('issuer', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('client_secret', 'text') // sealed
    .addColumn('token_endpoint_auth_method', 'text', (c) => c.notNull())
    .addColumn('redirect_uri', 'text', (c) => c.notNull())
    .addColumn('registered_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('upstream_tokens')
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('upstream', 'text', (c) => c.notNull())
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('resource', 'text', (c) => c.notNull())
    .addColumn('access_token', 'text', (c) => c.notNull()) // sealed
    .addColumn('refresh_token', 'text') // sealed
    .addColumn('scope', 'text')
    .addColumn('expires_at', 'bigint')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('lock_owner', 'text')
    .addColumn('lock_until', 'bigint')
    .addPrimaryKeyConstraint('upstream_tokens_pk', ['subject', 'upstream'])
    .execute();

  await db.schema
    .createTable('upstream_flows')
    .addColumn('state_hash', 'text', (c) => c.primaryKey())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('upstream', 'text', (c) => c.notNull())
    .addColumn('binding_hash', 'text', (c) => c.notNull())
    .addColumn('code_verifier', 'text', (c) => c.notNull()) // sealed
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('redirect_uri', 'text', (c) => c.notNull())
    .addColumn('resource', 'text', (c) => c.notNull())
    .addColumn('scope', 'text')
    .addColumn('return_to', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('connect_tickets')
    .addColumn('ticket_hash', 'text', (c) => c.primaryKey())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('upstream', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text') // the MCP client whose call needed the connection
    .addColumn('scope', 'text') // scopes to ask for (a step-up), if not the default ones
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('upstream_consents')
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('upstream', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('scope', 'text')
    .addColumn('consented_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('upstream_consents_pk', ['subject', 'upstream', 'client_id'])
    .execute();

  await db.schema
    .createTable('upstream_catalogs')
    .addColumn('upstream', 'text', (c) => c.primaryKey())
    .addColumn('catalog', 'text', (c) => c.notNull())
    .addColumn('listed_at', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['upstream_catalogs', 'upstream_consents', 'connect_tickets', 'upstream_flows', 'upstream_tokens', 'upstream_registrations']) {
    await db.schema.dropTable(table).execute();
  }
}
