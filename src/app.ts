import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config/schema.js';
import { allowAnyOriginIn } from './http/cors.js';
import { installErrorHandling } from './http/errors.js';
import { useStrictJsonBodies } from './http/json-body.js';
import { RequestLog } from './http/request-log.js';
import { createLogger, type Logger } from './logging.js';
import { NotFoundError, TooManyRequestsError } from './oauth/errors.js';
import { oauthServerLive } from './oauth/gate.js';
import { registrationEndpoint } from './oauth/register.js';
import { UnusedClientSweeper } from './oauth/unused-clients.js';
import { ClientRepository } from './store/clients.js';
import { migrateToLatest, openDatabase, type Database } from './store/database.js';

export interface AppDeps {
  /** Time source; tests pass one they can move. */
  clock?: Clock;
  logger?: Logger;
  /** An open database; by default the one `config.storage` names is opened (and closed with the app). */
  database?: Database;
}

/** A running (or ready-to-listen) gateway. */
export interface Gatehouse {
  readonly app: FastifyInstance;
  readonly database: Database;
  readonly clients: ClientRepository;
  readonly logger: Logger;
  /** The live configuration. */
  config(): Config;
  /**
   * Applies a reloaded configuration. Settings read per request (upstreams, the OAuth gate, policies,
   * limits) take effect at once; the returned messages name settings that need a restart.
   */
  reload(next: Config): string[];
  /** Binds `server.host`/`server.port`; resolves to the URL it listens on. */
  listen(): Promise<string>;
  /** The issuer: `server.public_url`, or the listening address when none is configured. */
  issuer(): string;
  sweepUnusedClients(): Promise<number>;
  close(): Promise<void>;
}

/** How often registrations that were never used are looked for. */
const SWEEP_INTERVAL_MS = 60 * 60 * 1000;

/** Settings that are bound at start (listening socket, database, keys); a reload cannot change them. */
const RESTART_ONLY = ['server', 'storage', 'security'] as const;

/** The composition root: configuration and dependencies in, a gateway out. Used by the CLI and tests. */
export async function buildApp(initial: Config, deps: AppDeps = {}): Promise<Gatehouse> {
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? createLogger(initial.log.level);
  let current = initial;
  const config = () => current;

  const database = deps.database ?? (await openDatabase(initial.storage));
  const ownsDatabase = deps.database === undefined;
  try {
    await migrateToLatest(database);
  } catch (err) {
    if (ownsDatabase) await database.close();
    throw err;
  }
  const clients = new ClientRepository(database);

  const app: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new RequestLog(),
    trustProxy: initial.server.trust_proxy,
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });
  installErrorHandling(app);
  useStrictJsonBodies(app);
  // Helmet's full set (CSP, frame-ancestors...) is for HTML pages, which enable it per route;
  // JSON responses get the two headers that matter for them.
  await app.register(helmet, { global: false });
  app.addHook('onRequest', (_request, reply, done) => {
    void reply.header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
    done();
  });
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) =>
      new TooManyRequestsError(`too many requests from this address; retry in ${context.after}`),
  });

  // The OAuth authorization server's public endpoints: CORS for any origin, and the gate.
  await app.register(async (scope) => {
    allowAnyOriginIn(scope);
    scope.addHook('onRequest', async () => {
      if (!oauthServerLive(current)) throw new NotFoundError();
    });
    registrationEndpoint(scope, { clients, clock, config });
  });

  const sweeper = new UnusedClientSweeper(clients, clock, () => current.oauth_server.unused_client_ttl, logger);
  let issuer: string | undefined = initial.server.public_url;
  const currentIssuer = () => {
    if (issuer === undefined) throw new Error('the issuer is known once the gateway listens or server.public_url is set');
    return issuer;
  };

  return {
    app,
    database,
    clients,
    logger,
    config,
    reload(next) {
      const warnings: string[] = [];
      const kept: Config = { ...next };
      for (const section of RESTART_ONLY) {
        if (JSON.stringify(next[section]) !== JSON.stringify(current[section])) {
          warnings.push(`changes to "${section}" take effect after a restart`);
        }
        (kept as Record<string, unknown>)[section] = current[section];
      }
      logger.level = next.log.level;
      current = kept;
      return warnings;
    },
    async listen() {
      const { host, port } = current.server;
      await app.listen({ host, port });
      const address = app.server.address();
      if (issuer === undefined && address !== null && typeof address === 'object') {
        const unspecified = address.address === '0.0.0.0' || address.address === '::';
        const h = unspecified ? '127.0.0.1' : address.family === 'IPv6' ? `[${address.address}]` : address.address;
        issuer = `http://${h}:${address.port}`;
        if (unspecified) {
          logger.warn({ issuer }, 'listening on all interfaces without server.public_url; clients elsewhere need it set');
        }
      }
      sweeper.start(SWEEP_INTERVAL_MS);
      const listening = address !== null && typeof address === 'object' ? address : undefined;
      if (!listening) return currentIssuer();
      const h = listening.family === 'IPv6' ? `[${listening.address}]` : listening.address;
      return `http://${h}:${listening.port}`;
    },
    issuer: currentIssuer,
    sweepUnusedClients: () => sweeper.sweep(),
    async close() {
      sweeper.stop();
      await app.close();
      if (ownsDatabase) await database.close();
    },
  };
}
