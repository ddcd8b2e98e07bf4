import * as oauth from 'oauth4webapi';
import type { Logger } from 'pino';
import { nowSeconds, type Clock } from '../clock.js';
import type { Config, UpstreamConfig } from '../config/schema.js';
import { constantTimeEqual, hashSecret } from '../crypto/hash.js';
import { randomToken } from '../crypto/random.js';
import { guardedFetch, GuardedFetchError, type Fetch } from '../net/guarded-fetch.js';
import type { UpstreamOAuthRepository, UpstreamRegistration, UpstreamTokens } from '../store/upstream-oauth.js';
import { discover, DiscoveryError, probe, type Challenge, type UpstreamAuthorization } from './discovery.js';

/**
 * The gateway as OAuth client of its upstreams (product §3.3), on oauth4webapi: registration at
 * each upstream authorization server, the authorization code flow with PKCE, `resource` and `iss`,
 * and the per-(identity, upstream) tokens — refreshed before they expire and after an upstream
 * rejects them, one refresh at a time per connection across every process sharing the database.
 */

/** The callback the upstream authorization servers redirect to. */
export const CALLBACK_PATH = '/api/oauth/callback';
/** The Client ID Metadata Document the gateway publishes for upstreams that accept one. */
export const CLIENT_DOCUMENT_PATH = '/client-metadata.json';
/** An upstream authorization must come back within this time (product §3.3: 10 minutes). */
export const FLOW_TTL = 600;
/** The subject of the one shared connection of an `auth_type: oauth` upstream. */
export const SHARED_SUBJECT = '*';
/** Where a connect link leads; links live TICKET_TTL seconds. */
export const CONNECT_PATH = '/connect';
export const TICKET_TTL = 600;

/** Refresh this long before the access token expires. */
const REFRESH_MARGIN = 60;
/** A refresh lease is held at most this long; a process that died holding it loses it then. */
const LEASE_SECONDS = 30;
/** Transient refresh failures are retried this many times, with backoff. */
const REFRESH_ATTEMPTS = 3;
const DISCOVERY_TTL_MS = 60 * 60 * 1000;
const FAILED_DISCOVERY_MS = 30 * 1000;
const METADATA_LIMITS = { maxBytes: 256 * 1024, timeoutMs: 10_000 };

/** The identity has no usable connection to the upstream: it must (re)connect in a browser. */
export class ConnectionRequiredError extends Error {
  override name = 'ConnectionRequiredError';
  constructor(
    readonly upstream: string,
    readonly reason: 'missing' | 'needs_reauth' | 'insufficient_scope',
    /** For a step-up: every scope the new authorization must ask for. */
    readonly scope: string | null = null,
  ) {
    super(
      reason === 'missing'
        ? `not connected to ${upstream}`
        : reason === 'needs_reauth'
          ? `the connection to ${upstream} must be renewed`
          : `${upstream} needs more permissions (${scope ?? ''})`,
    );
  }
}

/** The upstream's authorization server cannot be used right now (or at all); the message says why. */
export class UpstreamAuthError extends Error {
  override name = 'UpstreamAuthError';
}

/** A callback that cannot complete a connection; the message is for the user. */
export class CallbackError extends Error {
  override name = 'CallbackError';
}

interface ClientChoice {
  client: oauth.Client;
  auth: oauth.ClientAuth;
}

export interface FlowStart {
  subject: string;
  upstream: UpstreamConfig;
  /** The browser's binding value (the callback must come from the same browser). */
  binding: string;
  /** Where the browser goes once connected (a consent request id), if anywhere. */
  returnTo: string | null;
}

export interface FlowResult {
  subject: string;
  upstream: string;
  returnTo: string | null;
}

export interface UpstreamOAuthDeps {
  repo: UpstreamOAuthRepository;
  config: () => Config;
  issuer: () => string;
  clock: Clock;
  logger: Logger;
  /** The unguarded fetch for the operator's own upstream URLs (the 401 probe). */
  probeFetch?: Fetch;
}

export class UpstreamOAuth {
  private readonly discoveries = new Map<string, { key: string; at: number; value: Promise<UpstreamAuthorization>; failedAt?: number }>();
  private readonly registering = new Map<string, Promise<UpstreamRegistration>>();
  private readonly refreshing = new Map<string, Promise<UpstreamTokens>>();
  /** This process, as the owner of refresh leases. */
  private readonly owner = randomToken(12);

  constructor(private readonly deps: UpstreamOAuthDeps) {}

  callbackUrl(): string {
    return `${this.deps.issuer()}${CALLBACK_PATH}`;
  }

  clientDocumentUrl(): string {
    return `${this.deps.issuer()}${CLIENT_DOCUMENT_PATH}`;
  }

  /** The Client ID Metadata Document served at clientDocumentUrl(). */
  clientDocument(): Record<string, unknown> {
    return {
      client_id: this.clientDocumentUrl(),
      client_name: 'Gatehouse',
      client_uri: this.deps.issuer(),
      redirect_uris: [this.callbackUrl()],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'web',
    };
  }

  // --- discovery ---

  /**
   * How to authorize against `upstream`: cached for an hour, and a failure for half a minute (a
   * page that lists an unreachable upstream does not wait for it on every view). A change of the
   * upstream's URL or of `upstream_oauth.allowed_hosts` discovers again.
   */
  authorization(upstream: UpstreamConfig): Promise<UpstreamAuthorization> {
    if (upstream.transport === 'stdio') return Promise.reject(new UpstreamAuthError(`${upstream.name} is a local process; it takes no OAuth`));
    const key = JSON.stringify([upstream.url, this.deps.config().upstream_oauth.allowed_hosts]);
    const cached = this.discoveries.get(upstream.name);
    const now = this.deps.clock.now();
    if (cached && cached.key === key && now - cached.at < DISCOVERY_TTL_MS && !(cached.failedAt !== undefined && performance.now() - cached.failedAt > FAILED_DISCOVERY_MS)) {
      return cached.value;
    }
    const value = this.discover(upstream);
    const entry: { key: string; at: number; value: Promise<UpstreamAuthorization>; failedAt?: number } = { key, at: now, value };
    this.discoveries.set(upstream.name, entry);
    value.catch(() => {
      entry.failedAt = performance.now();
    });
    return value;
  }

  private async discover(upstream: UpstreamConfig & { url: string; transport: 'http' | 'sse' }): Promise<UpstreamAuthorization> {
    let challenge: Challenge = {};
    try {
      challenge = await probe(upstream.url, upstream.transport, this.deps.probeFetch ?? fetch);
    } catch (err) {
      this.deps.logger.debug({ upstream: upstream.name, err: describe(err) }, 'upstream probe failed; discovering from well-known locations');
    }
    try {
      return await discover(upstream.url, challenge, this.guarded(upstream));
    } catch (err) {
      if (err instanceof DiscoveryError) throw new UpstreamAuthError(`${upstream.name}: ${err.message}`);
      throw new UpstreamAuthError(`${upstream.name}: discovery failed (${describe(err)})`);
    }
  }

  /** Fetch for URLs learned from metadata: https on public addresses, the upstream's own host, or allowed hosts. */
  private guarded(upstream: UpstreamConfig): Fetch {
    const hosts = [...this.deps.config().upstream_oauth.allowed_hosts];
    if (upstream.transport !== 'stdio') hosts.push(new URL(upstream.url).hostname);
    return guardedFetch({ ...METADATA_LIMITS, allowedHosts: hosts });
  }

  private options(upstream: UpstreamConfig, resource?: string) {
    return {
      [oauth.customFetch]: this.guarded(upstream) as never,
      // The guard decides which http URLs are acceptable (the upstream's own host, allowed hosts).
      [oauth.allowInsecureRequests]: true,
      ...(resource !== undefined && { additionalParameters: { resource } }),
    };
  }

  // --- client registration ---

  /** The client to use with this authorization server: configured, a metadata document, or registered. */
  private async clientFor(upstream: UpstreamConfig, auth: UpstreamAuthorization): Promise<ClientChoice> {
    const configured = this.configuredClient(upstream, auth);
    if (configured) return configured;
    if (auth.server.client_id_metadata_document_supported === true && this.deps.issuer().startsWith('https://')) {
      return { client: { client_id: this.clientDocumentUrl(), token_endpoint_auth_method: 'none' }, auth: oauth.None() };
    }
    let registration = await this.deps.repo.registration(auth.server.issuer);
    if (registration && secretExpiring(registration, nowSeconds(this.deps.clock))) {
      // Tokens issued to the old client cannot be refreshed once its secret is gone: new flows use a new client.
      this.deps.logger.info({ upstream: upstream.name, issuer: registration.issuer, client_id: registration.client_id }, 'the client secret at the upstream expires; registering again');
      registration = undefined;
    }
    if (!registration || registration.redirect_uri !== this.callbackUrl()) registration = await this.register(upstream, auth);
    return fromRegistration(registration);
  }

  /** The client a token or flow was issued to, if the gateway still has it. */
  private async clientById(upstream: UpstreamConfig, auth: UpstreamAuthorization, clientId: string): Promise<ClientChoice | undefined> {
    const configured = this.configuredClient(upstream, auth);
    if (configured) return configured.client.client_id === clientId ? configured : undefined;
    if (clientId === this.clientDocumentUrl()) return { client: { client_id: clientId, token_endpoint_auth_method: 'none' }, auth: oauth.None() };
    const registration = await this.deps.repo.registration(auth.server.issuer);
    return registration?.client_id === clientId ? fromRegistration(registration) : undefined;
  }

  private configuredClient(upstream: UpstreamConfig, auth: UpstreamAuthorization): ClientChoice | undefined {
    const id = upstream.oauth?.client_id;
    if (!id) return undefined;
    const secret = upstream.oauth?.client_secret;
    if (!secret) return { client: { client_id: id, token_endpoint_auth_method: 'none' }, auth: oauth.None() };
    // RFC 8414 §2: without a list, client_secret_basic is the default.
    const methods = auth.server.token_endpoint_auth_methods_supported ?? ['client_secret_basic'];
    const method = methods.includes('client_secret_basic') || !methods.includes('client_secret_post') ? 'client_secret_basic' : 'client_secret_post';
    return fromRegistration({
      issuer: auth.server.issuer,
      client_id: id,
      client_secret: secret,
      token_endpoint_auth_method: method,
      redirect_uri: this.callbackUrl(),
      registered_at: 0,
      client_secret_expires_at: null,
    });
  }

  /** RFC 7591 registration as a public client, once per issuer at a time. */
  private register(upstream: UpstreamConfig, auth: UpstreamAuthorization): Promise<UpstreamRegistration> {
    const issuer = auth.server.issuer;
    const pending = this.registering.get(issuer);
    if (pending) return pending;
    const work = this.doRegister(upstream, auth).finally(() => this.registering.delete(issuer));
    this.registering.set(issuer, work);
    return work;
  }

  private async doRegister(upstream: UpstreamConfig, auth: UpstreamAuthorization): Promise<UpstreamRegistration> {
    const server = auth.server;
    if (!server.registration_endpoint) {
      throw new UpstreamAuthError(
        `${upstream.name}: the authorization server ${server.issuer} offers no dynamic client registration; set oauth.client_id (and client_secret) for this upstream`,
      );
    }
    const methods = server.token_endpoint_auth_methods_supported;
    const requested =
      !methods || methods.includes('none') ? 'none' : methods.includes('client_secret_basic') ? 'client_secret_basic' : 'client_secret_post';
    const metadata = {
      client_name: 'Gatehouse',
      client_uri: this.deps.issuer(),
      redirect_uris: [this.callbackUrl()],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: requested,
      application_type: 'web',
    };
    let registered: Awaited<ReturnType<typeof oauth.processDynamicClientRegistrationResponse>>;
    try {
      const response = await oauth.dynamicClientRegistrationRequest(server, metadata, this.options(upstream));
      registered = await oauth.processDynamicClientRegistrationResponse(await withSecretExpiry(response));
    } catch (err) {
      throw new UpstreamAuthError(`${upstream.name}: client registration at ${server.issuer} failed (${describe(err)})`);
    }
    const secret = typeof registered.client_secret === 'string' ? registered.client_secret : null;
    const method =
      typeof registered.token_endpoint_auth_method === 'string'
        ? registered.token_endpoint_auth_method
        : secret
          ? 'client_secret_basic'
          : 'none';
    // RFC 7591 §3.2.1: 0 means the secret does not expire.
    const expiresAt = registered.client_secret_expires_at;
    const registration: UpstreamRegistration = {
      issuer: server.issuer,
      client_id: registered.client_id,
      client_secret: secret,
      token_endpoint_auth_method: method,
      redirect_uri: this.callbackUrl(),
      registered_at: nowSeconds(this.deps.clock),
      client_secret_expires_at: secret !== null && typeof expiresAt === 'number' && expiresAt > 0 ? expiresAt : null,
    };
    await this.deps.repo.saveRegistration(registration);
    this.deps.logger.info({ upstream: upstream.name, issuer: server.issuer, client_id: registration.client_id }, 'registered at upstream authorization server');
    return registration;
  }

  /** The server no longer knows our registered client: forget it, so the next flow registers again. */
  private async forgetClient(upstream: UpstreamConfig, issuer: string, clientId: string): Promise<void> {
    const registration = await this.deps.repo.registration(issuer);
    if (registration?.client_id !== clientId) return;
    await this.deps.repo.deleteRegistration(issuer);
    this.deps.logger.warn({ upstream: upstream.name, issuer, client_id: clientId }, 'the upstream authorization server no longer knows our client; it will be registered again');
  }

  // --- the authorization code flow ---

  /** Starts connecting `subject` to `upstream`: returns the upstream authorization URL to send the browser to. */
  async startFlow(start: FlowStart, scopes?: string[]): Promise<string> {
    const { upstream } = start;
    const auth = await this.authorization(upstream);
    const { client } = await this.clientFor(upstream, auth);
    const endpoint = auth.server.authorization_endpoint;
    if (!endpoint || !this.browserUrlAllowed(upstream, endpoint)) {
      throw new UpstreamAuthError(`${upstream.name}: the authorization endpoint ${String(endpoint).slice(0, 200)} is not an acceptable https URL`);
    }
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const wanted = scopes ?? (upstream.oauth?.scopes.length ? upstream.oauth.scopes : auth.scopes);
    const scope = wanted && wanted.length > 0 ? [...new Set(wanted)].join(' ') : null;
    const now = nowSeconds(this.deps.clock);
    await this.deps.repo.insertFlow({
      state_hash: hashSecret(state),
      subject: start.subject,
      upstream: upstream.name,
      binding_hash: hashSecret(start.binding),
      code_verifier: verifier,
      issuer: auth.server.issuer,
      client_id: client.client_id,
      redirect_uri: this.callbackUrl(),
      resource: auth.resource,
      scope,
      return_to: start.returnTo,
      created_at: now,
      expires_at: now + FLOW_TTL,
    });
    const url = new URL(endpoint);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', client.client_id);
    url.searchParams.set('redirect_uri', this.callbackUrl());
    url.searchParams.set('state', state);
    url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
    url.searchParams.set('code_challenge_method', 'S256');
    url.searchParams.set('resource', auth.resource);
    if (scope) url.searchParams.set('scope', scope);
    return url.href;
  }

  /** The browser is sent here only over https, or to a host the guard accepts for this upstream. */
  private browserUrlAllowed(upstream: UpstreamConfig, url: string): boolean {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return false;
    }
    if (parsed.username || parsed.password) return false;
    if (parsed.protocol === 'https:') return true;
    if (parsed.protocol !== 'http:') return false;
    const hosts = [...this.deps.config().upstream_oauth.allowed_hosts];
    if (upstream.transport !== 'stdio') hosts.push(new URL(upstream.url).hostname);
    return hosts.includes(parsed.hostname);
  }

  /**
   * Completes a flow from the callback's query: the state must be one we issued (once), to this
   * browser, within 10 minutes; `iss` must name the server we sent the user to (RFC 9207).
   */
  async completeFlow(query: URLSearchParams, binding: string | undefined): Promise<FlowResult> {
    const state = query.get('state');
    if (!state) throw new CallbackError('The answer from the authorization server has no state.');
    const flow = await this.deps.repo.consumeFlow(hashSecret(state), nowSeconds(this.deps.clock));
    if (!flow) throw new CallbackError('This connection attempt is unknown, was already used, or took longer than 10 minutes. Start again.');
    if (binding === undefined || !constantTimeEqual(hashSecret(binding), flow.binding_hash)) {
      throw new CallbackError('This connection attempt was started in another browser. Start again from this one.');
    }
    const upstream = this.deps.config().upstreams.find((u) => u.name === flow.upstream);
    if (!upstream || (upstream.auth_type !== 'per_user_oauth' && upstream.auth_type !== 'oauth')) {
      throw new CallbackError(`The MCP server "${flow.upstream}" is no longer configured for OAuth.`);
    }
    const result = { subject: flow.subject, upstream: flow.upstream, returnTo: flow.return_to };
    const auth = await this.authorization(upstream);
    if (auth.server.issuer !== flow.issuer) throw new CallbackError(`The authorization server of "${upstream.name}" changed. Start again.`);
    const choice = await this.clientById(upstream, auth, flow.client_id);
    if (!choice) throw new CallbackError(`The gateway's registration at "${upstream.name}" changed. Start again.`);

    let params: URLSearchParams;
    try {
      params = oauth.validateAuthResponse(auth.server, choice.client, query, state);
    } catch (err) {
      if (err instanceof oauth.AuthorizationResponseError) {
        const denied = err.error === 'access_denied';
        throw new CallbackError(
          denied
            ? `The connection to "${upstream.name}" was not authorized.`
            : `The authorization server of "${upstream.name}" refused: ${err.error}${err.error_description ? ` (${err.error_description.slice(0, 200)})` : ''}.`,
        );
      }
      throw new CallbackError(`The answer from the authorization server of "${upstream.name}" is not valid: ${describe(err)}.`);
    }

    let tokens: oauth.TokenEndpointResponse;
    try {
      const response = await oauth.authorizationCodeGrantRequest(
        auth.server,
        choice.client,
        choice.auth,
        params,
        flow.redirect_uri,
        flow.code_verifier,
        this.options(upstream, flow.resource),
      );
      tokens = await oauth.processAuthorizationCodeResponse(auth.server, choice.client, response);
    } catch (err) {
      if (err instanceof oauth.ResponseBodyError && (err.error === 'invalid_client' || err.error === 'unauthorized_client')) {
        await this.forgetClient(upstream, auth.server.issuer, flow.client_id);
      }
      throw new CallbackError(`Exchanging the code at the authorization server of "${upstream.name}" failed: ${describe(err)}.`);
    }
    await this.deps.repo.saveTokens(this.tokenRow(flow.subject, upstream.name, auth.server.issuer, flow.client_id, flow.resource, tokens, null, flow.scope));
    this.deps.logger.info({ upstream: upstream.name, subject: flow.subject }, 'upstream connected');
    return result;
  }

  private tokenRow(
    subject: string,
    upstream: string,
    issuer: string,
    clientId: string,
    resource: string,
    tokens: oauth.TokenEndpointResponse,
    previousRefresh: string | null,
    requestedScope: string | null,
  ): UpstreamTokens {
    if (tokens.token_type.toLowerCase() !== 'bearer') throw new UpstreamAuthError(`unsupported token type ${tokens.token_type.slice(0, 20)}`);
    const now = nowSeconds(this.deps.clock);
    return {
      subject,
      upstream,
      issuer,
      client_id: clientId,
      resource,
      access_token: tokens.access_token,
      // Without a new refresh token, the old one stays valid (RFC 6749 §6).
      refresh_token: tokens.refresh_token ?? previousRefresh,
      scope: tokens.scope ?? requestedScope,
      expires_at: typeof tokens.expires_in === 'number' ? now + tokens.expires_in : null,
      status: 'active',
      updated_at: now,
    };
  }

  // --- connect links ---

  /** A short-lived link with which `subject` (only) can connect `upstream` in a browser. */
  async connectUrl(subject: string, upstream: string, clientId: string | undefined, scope: string | null): Promise<string> {
    const ticket = randomToken(32);
    await this.deps.repo.insertTicket({
      ticket_hash: hashSecret(ticket),
      subject,
      upstream,
      client_id: clientId ?? null,
      scope,
      expires_at: nowSeconds(this.deps.clock) + TICKET_TTL,
    });
    return `${this.deps.issuer()}${CONNECT_PATH}/${ticket}`;
  }

  /** The live ticket behind a connect link, if any. */
  ticket(raw: string) {
    if (!/^[A-Za-z0-9_-]{43}$/.test(raw)) return Promise.resolve(undefined);
    return this.deps.repo.ticket(hashSecret(raw), nowSeconds(this.deps.clock));
  }

  // --- tokens ---

  /**
   * The upstream answered 403 insufficient_scope (MCP "scope challenge handling"): the user must
   * authorize again, for the scopes they have plus the challenged ones. When the connection already
   * has every challenged scope, authorizing again cannot help, and the error says so.
   */
  async stepUp(subject: string, upstream: UpstreamConfig, challenged: string | undefined): Promise<never> {
    const row = await this.deps.repo.tokens(subject, upstream.name);
    const have = new Set((row?.scope ?? '').split(' ').filter(Boolean));
    const wanted = (challenged ?? '').split(' ').filter(Boolean);
    if (wanted.length === 0 || wanted.every((s) => have.has(s))) {
      throw new UpstreamAuthError(
        `the MCP server "${upstream.name}" refused the request for lack of permissions${wanted.length ? ` (${wanted.join(' ')})` : ''}, which the connection already has`,
      );
    }
    throw new ConnectionRequiredError(upstream.name, 'insufficient_scope', [...new Set([...have, ...wanted])].join(' '));
  }

  /** A fresh token was refused too: the grant is of no use any more. */
  async rejected(subject: string, upstream: UpstreamConfig): Promise<never> {
    await this.deps.repo.markNeedsReauth(subject, upstream.name, nowSeconds(this.deps.clock));
    this.deps.logger.warn({ upstream: upstream.name, subject }, 'the upstream refused a fresh token; the connection needs to be renewed');
    throw new ConnectionRequiredError(upstream.name, 'needs_reauth');
  }

  /** A usable access token of `subject` for `upstream`, refreshed first when it is about to expire. */
  async accessToken(subject: string, upstream: UpstreamConfig): Promise<string> {
    const row = await this.deps.repo.accessToken(subject, upstream.name);
    if (!row) throw new ConnectionRequiredError(upstream.name, 'missing');
    if (row.status !== 'active') throw new ConnectionRequiredError(upstream.name, 'needs_reauth');
    const now = nowSeconds(this.deps.clock);
    if (row.expires_at === null || row.expires_at - REFRESH_MARGIN > now) return row.access_token;
    return (await this.refresh(subject, upstream, row.access_token)).access_token;
  }

  /** The upstream rejected `rejected`: a newer token, refreshed now unless another request already did. */
  async afterRejection(subject: string, upstream: UpstreamConfig, rejected: string): Promise<string> {
    const row = await this.deps.repo.accessToken(subject, upstream.name);
    if (!row) throw new ConnectionRequiredError(upstream.name, 'missing');
    if (row.status !== 'active') throw new ConnectionRequiredError(upstream.name, 'needs_reauth');
    if (row.access_token !== rejected) return row.access_token;
    return (await this.refresh(subject, upstream, row.access_token)).access_token;
  }

  /** One refresh per connection: coalesced within this process, leased in the database across processes. */
  private refresh(subject: string, upstream: UpstreamConfig, seen: string): Promise<UpstreamTokens> {
    const key = `${subject}\u0000${upstream.name}`;
    const pending = this.refreshing.get(key);
    if (pending) return pending;
    const work = this.refreshUnderLease(subject, upstream, seen).finally(() => this.refreshing.delete(key));
    this.refreshing.set(key, work);
    return work;
  }

  /** `seen` is the access token the caller has: a row with another one was refreshed by someone else. */
  private async refreshUnderLease(subject: string, upstream: UpstreamConfig, seen: string): Promise<UpstreamTokens> {
    const repo = this.deps.repo;
    // The wait is in real time, whatever clock the leases are dated by.
    const deadline = performance.now() + (LEASE_SECONDS + 5) * 1000;
    for (let wait = 50; ; wait = Math.min(wait * 2, 500)) {
      const now = nowSeconds(this.deps.clock);
      if (await repo.tryLock(subject, upstream.name, this.owner, now, now + LEASE_SECONDS)) break;
      // Another process is refreshing: use its result when it lands.
      await sleep(wait);
      const row = await repo.tokens(subject, upstream.name);
      if (!row) throw new ConnectionRequiredError(upstream.name, 'missing');
      if (row.status !== 'active') throw new ConnectionRequiredError(upstream.name, 'needs_reauth');
      if (row.access_token !== seen) return row;
      if (performance.now() > deadline) throw new UpstreamAuthError(`${upstream.name}: a token refresh by another gateway process did not finish`);
    }
    // Leased. Someone may have refreshed between our read and the lease.
    const current = await repo.tokens(subject, upstream.name);
    if (!current) throw new ConnectionRequiredError(upstream.name, 'missing');
    if (current.access_token !== seen || current.status !== 'active') {
      await repo.unlock(subject, upstream.name, this.owner);
      if (current.status !== 'active') throw new ConnectionRequiredError(upstream.name, 'needs_reauth');
      return current;
    }
    try {
      return await this.refreshNow(upstream, current);
    } finally {
      // saveTokens and markNeedsReauth release the lease themselves; this covers failures.
      await repo.unlock(subject, upstream.name, this.owner).catch(() => {});
    }
  }

  private async refreshNow(upstream: UpstreamConfig, current: UpstreamTokens): Promise<UpstreamTokens> {
    const { subject } = current;
    const dead = async (why: string): Promise<never> => {
      await this.deps.repo.markNeedsReauth(subject, upstream.name, nowSeconds(this.deps.clock));
      this.deps.logger.warn({ upstream: upstream.name, subject, reason: why }, 'upstream connection needs to be renewed');
      throw new ConnectionRequiredError(upstream.name, 'needs_reauth');
    };
    if (!current.refresh_token) return dead('the access token expired and there is no refresh token');
    const auth = await this.authorization(upstream);
    if (auth.server.issuer !== current.issuer) return dead('the upstream moved to another authorization server');
    const choice = await this.clientById(upstream, auth, current.client_id);
    if (!choice) return dead('the client the tokens were issued to is gone');

    let lastError: unknown;
    for (let attempt = 0; attempt < REFRESH_ATTEMPTS; attempt++) {
      if (attempt > 0) await sleep(200 * 4 ** (attempt - 1));
      try {
        const response = await oauth.refreshTokenGrantRequest(
          auth.server,
          choice.client,
          choice.auth,
          current.refresh_token,
          this.options(upstream, current.resource),
        );
        const tokens = await oauth.processRefreshTokenResponse(auth.server, choice.client, response);
        const row = this.tokenRow(subject, upstream.name, current.issuer, current.client_id, current.resource, tokens, current.refresh_token, current.scope);
        // Stored before anyone uses it: a rotated refresh token that was used but not kept would end the connection.
        await this.deps.repo.saveTokens(row);
        return row;
      } catch (err) {
        if (err instanceof oauth.ResponseBodyError) {
          if (err.error === 'invalid_client' || err.error === 'unauthorized_client') {
            await this.forgetClient(upstream, current.issuer, current.client_id);
            return dead(`refresh refused: ${err.error}`);
          }
          if (err.error === 'invalid_grant' || err.error === 'invalid_scope') return dead(`refresh refused: ${err.error}`);
          if (err.status < 500 && err.error !== 'temporarily_unavailable') return dead(`refresh refused: ${err.error}`);
        }
        lastError = err;
      }
    }
    const now = nowSeconds(this.deps.clock);
    this.deps.logger.warn({ upstream: upstream.name, subject, err: describe(lastError) }, 'refreshing an upstream token failed');
    // Still valid for a little while: use it, the next call tries again.
    if (current.expires_at !== null && current.expires_at > now) return current;
    throw new UpstreamAuthError(`${upstream.name}: the token could not be refreshed (${describe(lastError)})`);
  }

  /** Ends a connection: revoked at the upstream where it offers revocation (RFC 7009), then deleted here. */
  async disconnect(subject: string, upstream: UpstreamConfig | undefined, name: string): Promise<boolean> {
    const row = await this.deps.repo.tokens(subject, name).catch(() => undefined);
    if (row && upstream) await this.revoke(upstream, row);
    return this.deps.repo.deleteTokens(subject, name);
  }

  private async revoke(upstream: UpstreamConfig, row: UpstreamTokens): Promise<void> {
    try {
      const auth = await this.authorization(upstream);
      if (!auth.server.revocation_endpoint || auth.server.issuer !== row.issuer) return;
      const choice = await this.clientById(upstream, auth, row.client_id);
      if (!choice) return;
      // The refresh token first: revoking it ends the grant (and, at most servers, its access tokens).
      for (const [token, hint] of [
        [row.refresh_token, 'refresh_token'],
        [row.access_token, 'access_token'],
      ] as const) {
        if (!token) continue;
        const response = await oauth.revocationRequest(auth.server, choice.client, choice.auth, token, {
          ...this.options(upstream),
          additionalParameters: { token_type_hint: hint },
        });
        await oauth.processRevocationResponse(response);
      }
    } catch (err) {
      this.deps.logger.warn({ upstream: upstream.name, subject: row.subject, err: describe(err) }, 'revoking at the upstream failed; the connection is deleted anyway');
    }
  }
}

function fromRegistration(r: UpstreamRegistration): ClientChoice {
  const client: oauth.Client = { client_id: r.client_id, token_endpoint_auth_method: r.token_endpoint_auth_method };
  if (!r.client_secret || r.token_endpoint_auth_method === 'none') return { client, auth: oauth.None() };
  return { client, auth: r.token_endpoint_auth_method === 'client_secret_post' ? oauth.ClientSecretPost(r.client_secret) : clientSecretBasic(r.client_secret) };
}

/**
 * HTTP Basic client authentication (RFC 6749 §2.3.1): id and secret form-urlencoded, then base64.
 * oauth4webapi's own also escapes "-", "." and "_", which the form encoding leaves alone; servers
 * that compare the decoded header without percent-decoding it (many do) then refuse a client_id
 * like "pre-registered-client". This one encodes exactly as application/x-www-form-urlencoded.
 */
function clientSecretBasic(secret: string): oauth.ClientAuth {
  const encode = (value: string) => new URLSearchParams([['', value]]).toString().slice(1);
  return (_as, client, _body, headers) => {
    headers.set('authorization', `Basic ${Buffer.from(`${encode(client.client_id)}:${encode(secret)}`).toString('base64')}`);
  };
}

/** Seconds before a client secret's expiry when a new registration is made instead of using it. */
const SECRET_EXPIRY_MARGIN = 60;

/** Whether a registration's secret has expired, or will within the margin (a flow takes a while). */
function secretExpiring(registration: UpstreamRegistration, now: number): boolean {
  return registration.client_secret_expires_at !== null && registration.client_secret_expires_at - SECRET_EXPIRY_MARGIN <= now;
}

/**
 * RFC 7591 §3.2.1 requires `client_secret_expires_at` with a secret, and oauth4webapi refuses a
 * response without it; servers that leave it out mean a secret that does not expire (0). The
 * registration is redone anyway when the server stops accepting it (invalid_client).
 */
async function withSecretExpiry(response: Response): Promise<Response> {
  if (!response.ok) return response;
  const body = (await response
    .clone()
    .json()
    .catch(() => undefined)) as Record<string, unknown> | undefined;
  if (!body || typeof body !== 'object' || body.client_secret === undefined || body.client_secret_expires_at !== undefined) return response;
  return new Response(JSON.stringify({ ...body, client_secret_expires_at: 0 }), { status: response.status, headers: response.headers });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** An error as one short line, without anything that could be a secret (no response bodies). */
export function describe(err: unknown): string {
  if (err instanceof oauth.ResponseBodyError) return `${err.error} (HTTP ${err.status})`;
  if (err instanceof GuardedFetchError || err instanceof UpstreamAuthError) return err.message;
  if (err instanceof oauth.OperationProcessingError) {
    // An answer that is not OAuth at all (a 5xx page, a gateway timeout): its status says enough.
    if (err.cause instanceof Response) return `HTTP ${err.cause.status}`;
    return err.message.slice(0, 200);
  }
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!.slice(0, 200);
}
