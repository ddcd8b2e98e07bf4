import cookie from '@fastify/cookie';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config/schema.js';
import { consentEndpoints } from './consent/routes.js';
import { loadEncryptionKey, SecretBox } from './crypto/encryption.js';
import { allowAnyOriginIn } from './http/cors.js';
import { Drain } from './http/drain.js';
import { installErrorHandling } from './http/errors.js';
import { useStrictFormBodies } from './http/form.js';
import { useStrictJsonBodies } from './http/json-body.js';
import { RequestLog } from './http/request-log.js';
import { VirtualKeys } from './identity/virtual-keys.js';
import { createLogger, type Logger } from './logging.js';
import { AccessTokens } from './oauth/access-tokens.js';
import { authorizationEndpoint } from './oauth/authorize.js';
import { ClientMetadataDocuments } from './oauth/client-metadata-documents.js';
import { ClientResolver } from './oauth/clients.js';
import type { OAuthContext } from './oauth/context.js';
import { NotFoundError } from './oauth/errors.js';
import { oauthServerLive } from './oauth/gate.js';
import { Housekeeping, type HousekeepingReport } from './oauth/housekeeping.js';
import { discoveryEndpoints } from './oauth/metadata.js';
import { registrationEndpoint } from './oauth/register.js';
import { revocationEndpoint } from './oauth/revoke.js';
import { SigningKeys } from './oauth/signing-keys.js';
import { tokenEndpoint } from './oauth/token.js';
import { AuthorizationRequestRepository } from './store/authorization-requests.js';
import { ClientRepository } from './store/clients.js';
import { migrateToLatest, openDatabase, type Database } from './store/database.js';
import { GrantRepository } from './store/grants.js';
import { SigningKeyRepository } from './store/signing-keys.js';
import { VirtualKeyRepository } from './store/virtual-keys.js';
import { UpstreamOAuthRepository } from './store/upstream-oauth.js';
import { UpstreamOAuth } from './upstream-oauth/client.js';
import { UserConnections } from './upstream-oauth/connections.js';
import { ConsentConnections } from './upstream-oauth/consent.js';
import { connectionEndpoints, upstreamConnectEndpoints, type ConnectContext } from './upstream-oauth/routes.js';
import { UpstreamPool } from './upstreams/pool.js';
import { Upstreams } from './upstreams/upstreams.js';
import { CredentialResolver } from './gateway/credentials.js';
import { Dispatcher } from './gateway/dispatch.js';
import { mcpEndpoints } from './gateway/endpoint.js';
import { SessionIds } from './gateway/sessions.js';
import { Subscriptions } from './gateway/subscriptions.js';
import { VERSION } from './version.js';
import { operationsEndpoints } from './ops/health.js';
import { Metrics } from './ops/metrics.js';

export interface AppDeps {
  /** Time source; tests pass one they can move. */
  clock?: Clock;
  logger?: Logger;
  /** An open database; by default the one `config.storage` names is opened (and closed with the app). */
  database?: Database;
}

/** Everything but HTTP: storage, keys, identities. The CLI's commands use this alone. */
export interface Services {
  readonly database: Database;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly clients: ClientRepository;
  readonly virtualKeys: VirtualKeys;
  readonly signingKeys: SigningKeys;
  readonly grants: GrantRepository;
  readonly requests: AuthorizationRequestRepository;
  /** The gateway's registrations, tokens and flows as OAuth client of upstreams. */
  readonly upstreamOAuth: UpstreamOAuthRepository;
  /** Encryption at rest, and the keys derived from the same secret. */
  readonly box: SecretBox;
  close(): Promise<void>;
}

/** Opens the database, migrates it, loads the signing keys. Fails (closing what it opened) if any of it fails. */
export async function openServices(config: () => Config, deps: AppDeps = {}): Promise<Services> {
  const initial = config();
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? createLogger(initial.log.level);
  const database = deps.database ?? (await openDatabase(initial.storage));
  const ownsDatabase = deps.database === undefined;
  const close = async () => {
    if (ownsDatabase) await database.close();
  };
  try {
    await migrateToLatest(database);
    const box = new SecretBox(loadEncryptionKey(initial.security.encryption_key, initial.storage.data_dir).key);
    const signingKeys = new SigningKeys(
      new SigningKeyRepository(database),
      box,
      clock,
      () => config().oauth_server.access_token_ttl,
      logger,
    );
    await signingKeys.init();
    return {
      database,
      clock,
      logger,
      clients: new ClientRepository(database),
      virtualKeys: new VirtualKeys(new VirtualKeyRepository(database), clock),
      signingKeys,
      grants: new GrantRepository(database),
      requests: new AuthorizationRequestRepository(database),
      upstreamOAuth: new UpstreamOAuthRepository(database, box),
      box,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** A running (or ready-to-listen) gateway. */
export interface Gatehouse extends Omit<Services, 'close'> {
  readonly app: FastifyInstance;
  /** The access token verifier that /mcp uses. */
  readonly accessTokens: AccessTokens;
  /** The upstream connections: shared ones, and each user's own to OAuth upstreams. */
  readonly upstreams: Upstreams;
  /** The gateway as OAuth client of its upstreams. */
  readonly upstreamAuth: UpstreamOAuth;
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
  /** Runs the periodic clean-up now (expired requests, codes, tokens, keys, unused clients). */
  housekeep(): Promise<HousekeepingReport>;
  close(): Promise<void>;
}

/** How often housekeeping runs, and how often signing keys are re-read (rotations by the CLI or a replica). */
const HOUSEKEEPING_INTERVAL_MS = 10 * 60 * 1000;
const KEY_RELOAD_INTERVAL_MS = 60 * 1000;

/** How long a shutdown waits for requests in flight. */
const DRAIN_TIMEOUT_MS = 30_000;

/** Settings that are bound at start (listening socket, database, keys); a reload cannot change them. */
const RESTART_ONLY = ['server', 'storage', 'security'] as const;

/** The composition root: configuration and dependencies in, a gateway out. Used by the CLI and tests. */
export async function buildApp(initial: Config, deps: AppDeps = {}): Promise<Gatehouse> {
  let current = initial;
  const config = () => current;
  const services = await openServices(config, deps);
  const { clock, logger } = services;

  let issuer: string | undefined = initial.server.public_url;
  const currentIssuer = () => {
    if (issuer === undefined) throw new Error('the issuer is known once the gateway listens or server.public_url is set');
    return issuer;
  };
  const issuerPath = initial.server.public_url ? new URL(initial.server.public_url).pathname.replace(/\/$/, '') : '';

  const accessTokens = new AccessTokens(
    services.signingKeys,
    services.grants,
    clock,
    currentIssuer,
    () => current.oauth_server.access_token_ttl,
  );
  const ctx: OAuthContext = {
    config,
    issuer: currentIssuer,
    clock,
    logger,
    clients: services.clients,
    clientResolver: new ClientResolver(services.clients, new ClientMetadataDocuments(clock), config, clock),
    requests: services.requests,
    grants: services.grants,
    virtualKeys: services.virtualKeys,
    accessTokens,
    signingKeys: services.signingKeys,
  };

  const upstreamAuth = new UpstreamOAuth({ repo: services.upstreamOAuth, config, issuer: currentIssuer, clock, logger });
  const personal = new UserConnections({ config, oauth: upstreamAuth, repo: services.upstreamOAuth, clock, logger, clientVersion: VERSION });
  await personal.load();
  const upstreams = new Upstreams(new UpstreamPool(config, logger, VERSION), personal);
  // Metrics are created before the app so the request log can count each request it logs.
  const metrics = new Metrics(upstreams);
  const app: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new RequestLog((method, route, status, seconds) => metrics.request(method, route, status, seconds)),
    // Requests log through the gateway's logger itself (the request log names each request's id):
    // a child logger per request would cost more than the line it writes.
    childLoggerFactory: (parent) => parent,
    trustProxy: initial.server.trust_proxy,
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });
  installErrorHandling(app);
  const drain = new Drain(app);
  useStrictJsonBodies(app);
  useStrictFormBodies(app);
  // Only its counters are used (src/oauth/rate-limits.ts), per route, from the live configuration.
  await app.register(rateLimit, { global: false });
  // HTML pages set their own strict headers (src/consent/html.ts); JSON responses get these.
  app.addHook('onRequest', (_request, reply, done) => {
    void reply.header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
    done();
  });

  const credentials = new CredentialResolver({ config, issuer: currentIssuer, accessTokens, virtualKeys: services.virtualKeys, clock });
  const connectContext: ConnectContext = {
    config,
    issuer: currentIssuer,
    clock,
    logger,
    oauth: upstreamAuth,
    repo: services.upstreamOAuth,
    personal,
    virtualKeys: services.virtualKeys,
    credentials,
  };
  const consentConnections = new ConsentConnections(connectContext);

  const gate = async () => {
    if (!oauthServerLive(current)) throw new NotFoundError();
  };
  // The authorization server's machine-facing endpoints: any origin may call them (no cookies).
  await app.register(async (scope) => {
    allowAnyOriginIn(scope);
    scope.addHook('onRequest', gate);
    registrationEndpoint(scope, { clients: services.clients, clock, config });
    discoveryEndpoints(scope, ctx, issuerPath);
    tokenEndpoint(scope, ctx);
    revocationEndpoint(scope, ctx);
  });
  // The browser-facing steps: same-origin only, bound to the browser by a cookie (parsed here only).
  await app.register(async (scope) => {
    await scope.register(cookie);
    scope.addHook('onRequest', gate);
    authorizationEndpoint(scope, ctx);
    consentEndpoints(scope, ctx, consentConnections);
  });
  // Connecting upstream accounts (connect links, the upstream callback), seeing and removing them.
  await app.register(async (scope) => {
    await scope.register(cookie);
    upstreamConnectEndpoints(scope, connectContext);
  });
  await app.register(async (scope) => {
    allowAnyOriginIn(scope);
    connectionEndpoints(scope, connectContext);
  });

  // The MCP gateway: /mcp and /mcp/<upstream>, over the shared and the per-user upstream connections.
  const subscriptions = new Subscriptions(upstreams);
  mcpEndpoints(app, {
    config,
    issuer: currentIssuer,
    credentials,
    dispatcher: new Dispatcher(config, upstreams, upstreamAuth, logger, VERSION, subscriptions, metrics),
    subscriptions,
    upstreams,
    logger,
    drain,
    sessions: new SessionIds(services.box.deriveKey('mcp-session')),
  });
  operationsEndpoints(app, { database: services.database, pool: upstreams.pool, metrics });

  const housekeeping = new Housekeeping(services, () => current, logger);
  upstreams.sync();

  return {
    ...services,
    app,
    accessTokens,
    upstreams,
    upstreamAuth,
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
      upstreams.sync();
      return warnings;
    },
    async listen() {
      const { host, port } = current.server;
      await app.listen({ host, port });
      const address = app.server.address();
      const listening = address !== null && typeof address === 'object' ? address : undefined;
      if (issuer === undefined && listening) {
        const unspecified = listening.address === '0.0.0.0' || listening.address === '::';
        const h = unspecified ? '127.0.0.1' : listening.family === 'IPv6' ? `[${listening.address}]` : listening.address;
        issuer = `http://${h}:${listening.port}`;
        if (unspecified) {
          logger.warn({ issuer }, 'listening on all interfaces without server.public_url; clients elsewhere need it set');
        }
      }
      housekeeping.start(HOUSEKEEPING_INTERVAL_MS);
      services.signingKeys.start(KEY_RELOAD_INTERVAL_MS);
      if (!listening) return currentIssuer();
      const h = listening.family === 'IPv6' ? `[${listening.address}]` : listening.address;
      return `http://${h}:${listening.port}`;
    },
    issuer: currentIssuer,
    housekeep: () => housekeeping.run(),
    async close() {
      housekeeping.stop();
      services.signingKeys.stop();
      await drain.close(app, DRAIN_TIMEOUT_MS);
      await upstreams.close();
      await services.close();
    },
  };
}
