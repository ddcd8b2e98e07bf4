import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * PostgreSQL for the suites that run on both databases. CI (and any developer machine) sets
 * GATEHOUSE_TEST_POSTGRES_URL to a database the tests may create other databases from; without it
 * those suites are skipped and say why.
 */
export const postgresUrl = process.env.GATEHOUSE_TEST_POSTGRES_URL || undefined;

export const POSTGRES_SKIP_REASON = 'GATEHOUSE_TEST_POSTGRES_URL is not set';

export type StorageKind = 'sqlite' | 'postgres';

/** Both databases; the PostgreSQL one is skipped (with its reason) when not configured. */
export const storageKinds: Array<{ kind: StorageKind; skip: string | false }> = [
  { kind: 'sqlite', skip: false },
  { kind: 'postgres', skip: postgresUrl ? false : POSTGRES_SKIP_REASON },
];

async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A new, empty database for one test, and how to drop it. */
export async function createPostgresDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  if (!postgresUrl) throw new Error(POSTGRES_SKIP_REASON);
  const name = `gatehouse_test_${randomBytes(6).toString('hex')}`;
  await withAdmin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(postgresUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => withAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}
