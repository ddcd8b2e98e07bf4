import type { Compilable, CompiledQuery, Kysely, QueryResult, Transaction } from 'kysely';
import type { Schema } from './schema.js';

/** A stand-in for the value of argument `index`, used while the query is built once. */
class Slot {
  constructor(readonly index: number) {}
}

/**
 * A query built and compiled once, then run with new arguments: for the hot paths (token
 * refresh, token verification), where Kysely's building and compiling would otherwise cost more
 * than SQLite running the statement. `build` receives one placeholder per argument and must use
 * each as a plain value (a comparison operand or a column value), never to choose the query's shape.
 */
export function prepared<Args extends unknown[], Row>(
  arity: Args['length'],
  // Placeholders stand where the arguments' values go; they are typed `never` so any column accepts them.
  build: (...slots: never[]) => Compilable<Row>,
): (executor: Kysely<Schema> | Transaction<Schema>, ...args: Args) => Promise<QueryResult<Row>> {
  let compiled: CompiledQuery<Row> | undefined;
  let positions: number[] = [];
  return (executor, ...args) => {
    if (!compiled) {
      const slots = Array.from({ length: arity }, (_, i) => new Slot(i)) as never[];
      compiled = build(...slots).compile();
      positions = compiled.parameters.map((p) => (p instanceof Slot ? p.index : -1));
      if (positions.filter((p) => p >= 0).length !== arity) {
        throw new Error('a prepared query must use each of its arguments exactly once, as a value');
      }
    }
    const query = compiled;
    const parameters = query.parameters.map((p, i) => (positions[i]! >= 0 ? args[positions[i]!] : p));
    return executor.executeQuery<Row>({ ...query, parameters });
  };
}
