import { chmodSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import {
  Kysely,
  Migrator,
  PostgresDialect,
  SqliteAdapter,
  SqliteDialect,
  type DialectAdapter,
  type MigrationResultSet,
  type SqliteDatabase,
  type SqliteStatement,
} from 'kysely';
import pg from 'pg';
import { migrations } from './migrations/index.js';
import type { Schema } from './schema.js';
import { TransactionRunner } from './transactions.js';

export type DatabaseKind = 'sqlite' | 'postgres';

export interface StorageSettings {
  data_dir: string;
  sqlite: string;
  postgres?: string | undefined;
}

/** One open database: the Kysely handle every repository shares, and how to close it. */
export interface Database {
  readonly db: Kysely<Schema>;
  readonly kind: DatabaseKind;
  /** Where it is, for messages: the SQLite file, or the PostgreSQL URL without its password. */
  readonly location: string;
  /** Atomic units of work (group-committed on SQLite). Every write goes through it. */
  readonly transactions: TransactionRunner;
  close(): Promise<void>;
}

/** A storage fault, worded for an operator; it never carries a connection string's password. */
export class StorageError extends Error {
  override name = 'StorageError';
}

const INT8_OID = 20;

/** Opens (creating if needed) the configured database. Does not run migrations. */
export async function openDatabase(storage: StorageSettings): Promise<Database> {
  return storage.postgres ? openPostgres(storage.postgres) : openSqlite(storage.sqlite);
}

/**
 * SQLite runs DDL inside transactions, though Kysely's adapter does not say so. Saying so makes
 * each migration all-or-nothing, and makes two processes that migrate at once (`serve` starting
 * while `gatehouse migrate` runs) collide on SQLITE_BUSY, which migrateToLatest retries, instead
 * of one of them creating a table the other has just created.
 */
class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class GatehouseSqliteDialect extends SqliteDialect {
  override createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter();
  }
}

function openSqlite(file: string): Database {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  let handle: BetterSqlite3.Database;
  try {
    handle = new BetterSqlite3(file);
  } catch (err) {
    throw new StorageError(`cannot open the SQLite database ${file}: ${(err as Error).message}`);
  }
  // WAL lets the CLI read and write while `serve` runs; FULL makes every commit durable (fsync of
  // the WAL), which matters because a lost registration or refresh token logs a user out.
  handle.pragma('journal_mode = WAL');
  handle.pragma('synchronous = FULL');
  handle.pragma('busy_timeout = 5000');
  handle.pragma('foreign_keys = ON');
  // The file holds hashed and encrypted secrets: keep it readable by its owner only.
  chmodSync(file, 0o600);
  const db = new Kysely<Schema>({ dialect: new GatehouseSqliteDialect({ database: withStatementCache(handle) }) });
  return {
    db,
    kind: 'sqlite',
    location: file,
    transactions: new TransactionRunner(db, 'sqlite'),
    close: () => db.destroy(),
  };
}

/**
 * Kysely prepares every query anew; better-sqlite3 statements can be reused, and preparing costs
 * more than running a small query. The cache is bounded: multi-row inserts make many shapes.
 */
function withStatementCache(handle: BetterSqlite3.Database, size = 256): SqliteDatabase {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => handle.close(),
    prepare(query: string) {
      let stmt = cache.get(query);
      if (stmt) {
        cache.delete(query); // re-insert: most recently used last
      } else {
        stmt = handle.prepare(query);
        if (cache.size >= size) cache.delete(cache.keys().next().value!);
      }
      cache.set(query, stmt);
      return stmt as unknown as SqliteStatement;
    },
  };
}

/** A PostgreSQL URL with its password replaced, safe to print. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparseable URL)';
  }
}

async function openPostgres(url: string): Promise<Database> {
  const location = redactUrl(url);
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    connectionTimeoutMillis: 5000,
    // BIGINT columns hold timestamps in seconds: well inside Number's exact range.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle connection dropped by the server must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  try {
    const client = await pool.connect();
    client.release();
  } catch (err) {
    await pool.end().catch(() => {});
    throw new StorageError(`cannot connect to PostgreSQL at ${location}: ${describePgError(err)}`);
  }
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  return { db, kind: 'postgres', location, transactions: new TransactionRunner(db, 'postgres'), close: () => db.destroy() };
}

function describePgError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const message = (e.message ?? String(err)).replace(/postgres(ql)?:\/\/\S+/g, (m) => redactUrl(m));
  return e.code ? `${e.code}: ${message}` : message;
}

/** Brings the schema to the latest version. Safe to run concurrently from several processes. */
export async function migrateToLatest(database: Database): Promise<MigrationResultSet> {
  const migrator = new Migrator({
    db: database.db,
    provider: { getMigrations: async () => migrations },
  });
  // PostgreSQL serializes concurrent migrators with a lock; SQLite makes the loser fail with
  // SQLITE_BUSY, and its next attempt finds the schema already current.
  for (let attempt = 1; ; attempt++) {
    const result = await migrator.migrateToLatest();
    if (!result.error) return result;
    const code = (result.error as { code?: unknown }).code;
    if (database.kind === 'sqlite' && typeof code === 'string' && code.startsWith('SQLITE_BUSY') && attempt < 20) {
      await new Promise((resolve) => setTimeout(resolve, 25 * attempt));
      continue;
    }
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    const message = result.error instanceof Error ? result.error.message : String(result.error);
    throw new StorageError(`migration ${failed} failed on ${database.location}: ${message}`);
  }
}

/**
 * Whether an error means the database is unreachable or busy (worth a 503 and a retry) rather
 * than a bug. SQLite: busy/locked/I/O/full; PostgreSQL: connection, resource and shutdown classes.
 */
export function isStorageUnavailable(err: unknown): boolean {
  if (err instanceof StorageError) return true;
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string') {
    if (/^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|PROTOCOL)/.test(code)) return true;
    if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN'].includes(code)) return true;
    if (/^(08|53|57P)/.test(code)) return true; // SQLSTATE connection exception, insufficient resources, operator intervention
  }
  return typeof message === 'string' && /timeout exceeded when trying to connect|Connection terminated|driver has already been destroyed/.test(message);
}
