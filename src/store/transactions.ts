import { CompiledQuery, type Kysely, type Transaction } from 'kysely';
import type { DatabaseKind } from './database.js';
import type { Schema } from './schema.js';

/** A unit of work: database statements only (no network, no waiting on anything else). */
export type Unit<T> = (trx: Transaction<Schema> | Kysely<Schema>) => Promise<T>;

const SAVEPOINT = CompiledQuery.raw('SAVEPOINT unit');
const RELEASE = CompiledQuery.raw('RELEASE unit');
const ROLLBACK_TO = CompiledQuery.raw('ROLLBACK TO unit');

interface Pending {
  unit: Unit<unknown>;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

/**
 * Runs units of work atomically.
 *
 * On PostgreSQL each unit is its own transaction; the server already commits concurrent
 * transactions together (group commit).
 *
 * SQLite has one writer and, with synchronous=FULL, one fsync per commit: about 0.2 ms here,
 * which would cap durable writes at a few thousand per second and block the event loop meanwhile.
 * So units submitted during the same turn of the event loop share one transaction (one fsync),
 * each inside its own savepoint: a unit that throws is rolled back alone and rejects alone, the
 * others commit. Units run one after another, so each sees the effects of those before it, as
 * with separate transactions. No unit's promise settles before the shared commit is on disk.
 */
export class TransactionRunner {
  private queue: Pending[] = [];
  private scheduled = false;

  constructor(
    private readonly db: Kysely<Schema>,
    private readonly kind: DatabaseKind,
  ) {}

  run<T>(unit: Unit<T>): Promise<T> {
    if (this.kind === 'postgres') return this.db.transaction().execute(unit);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ unit, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    this.scheduled = false;
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    try {
      const trx = await this.db.startTransaction().execute();
      try {
        for (const item of batch) {
          // Plain statements rather than Kysely's savepoint builders: this loop is on every write's path.
          await trx.executeQuery(SAVEPOINT);
          try {
            const value = await item.unit(trx);
            await trx.executeQuery(RELEASE);
            outcomes.push({ ok: true, value });
          } catch (error) {
            await trx.executeQuery(ROLLBACK_TO);
            await trx.executeQuery(RELEASE);
            outcomes.push({ ok: false, error });
          }
        }
        await trx.commit().execute();
      } catch (error) {
        await trx.rollback().execute().catch(() => {});
        throw error;
      }
    } catch (error) {
      // The transaction itself failed (busy, I/O, disk full): nothing of the batch was kept.
      for (const item of batch) item.reject(error);
      return;
    }
    batch.forEach((item, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) item.resolve(outcome.value);
      else item.reject(outcome.error);
    });
  }
}
