import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { Database } from '../store/database.js';
import type { UpstreamPool } from '../upstreams/pool.js';
import type { Metrics } from './metrics.js';

const DATABASE_TIMEOUT_MS = 2000;

/**
 * `/healthz`: the process answers. `/readyz`: it can serve — the database answers within 2 s
 * (503 otherwise); upstream states are reported but do not make the gateway unready, since an
 * upstream that is down fails only its own calls. `/metrics`: Prometheus text format.
 */
export function operationsEndpoints(app: FastifyInstance, deps: { database: Database; pool: UpstreamPool; metrics: Metrics }): void {
  app.get('/healthz', async (_request, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    let database = 'ok';
    try {
      await Promise.race([
        sql`select 1`.execute(deps.database.db),
        new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), DATABASE_TIMEOUT_MS).unref()),
      ]);
    } catch (err) {
      database = `unavailable: ${(err as Error).message.slice(0, 200)}`;
    }
    const upstreams = Object.fromEntries(
      deps.pool.all().map((c) => [c.name, { state: c.state, tools: c.catalog.tools.length, ...(c.lastError && { error: c.lastError }) }]),
    );
    const ready = database === 'ok';
    return reply
      .code(ready ? 200 : 503)
      .header('cache-control', 'no-store')
      .send({ status: ready ? 'ready' : 'unavailable', database, upstreams });
  });

  app.get('/metrics', async (_request, reply) =>
    reply.header('content-type', deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics()),
  );
}
