import type { FastifyRequest } from 'fastify';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import { hashSecret } from '../crypto/hash.js';
import { identityOf, VIRTUAL_KEY_PREFIX, type VirtualKeys } from '../identity/virtual-keys.js';
import { InvalidTokenError, type AccessTokens } from '../oauth/access-tokens.js';
import { SUPPORTED_SCOPES } from '../oauth/client-metadata.js';
import { oauthServerLive } from '../oauth/gate.js';
import type { Reach } from './catalog.js';

/**
 * From a request's credential to the caller (product §3.1): the gateway's access token (a JWT for
 * exactly this endpoint), or a virtual key in `Authorization: Bearer sk-gw-…` or
 * `X-Gatehouse-Key`, as `gateway.auth_mode` allows. Exactly one credential per request; never
 * from the query string; an MCP session id is never one.
 */
export interface Caller {
  /** Whose request this is: the key's owner, or `key:<id>`. */
  subject: string;
  /** The OAuth client, for a token; undefined for a key used directly. */
  clientId?: string | undefined;
  via: 'oauth' | 'key';
  scopes: readonly string[];
  reach: Reach;
}

/** A refusal, as the HTTP status, the RFC 6750 error and the challenge to send. */
export class AuthenticationError extends Error {
  constructor(
    readonly status: 401 | 403 | 400,
    readonly error: string | undefined,
    readonly description: string,
    readonly challenge: string,
  ) {
    super(description);
  }
}

export interface CredentialSettings {
  config: () => Config;
  issuer: () => string;
  accessTokens: AccessTokens;
  virtualKeys: VirtualKeys;
  clock: Clock;
}

/** Key lookups are cached this long: a revoked key stops within it (product: ≤ 5 s). */
const KEY_CACHE_MS = 2000;
const KEY_CACHE_ENTRIES = 10_000;

export class CredentialResolver {
  private readonly keyCache = new Map<string, { caller: Caller | undefined; until: number }>();

  constructor(private readonly settings: CredentialSettings) {}

  /** The RFC 9728 metadata URL for an endpoint: path-inserted (`/mcp` or `/mcp/<upstream>`). */
  resourceMetadataUrl(upstream: string | undefined): string {
    const issuer = this.settings.issuer();
    const url = new URL(issuer);
    const path = url.pathname.replace(/\/$/, '');
    return `${url.origin}/.well-known/oauth-protected-resource${path}/mcp${upstream === undefined ? '' : `/${upstream}`}`;
  }

  /**
   * The WWW-Authenticate challenge (RFC 6750 §3, RFC 9728 §5.1): where to find the authorization
   * server and what scope to ask for, then the error, if there is one. Without a credential there
   * is no error code (RFC 6750 §3.1).
   */
  challenge(upstream: string | undefined, extra: { error?: string | undefined; description?: string; scope?: string } = {}): string {
    const config = this.settings.config();
    const params: string[] = [];
    // Point to the authorization server only where a client could use it.
    if (config.gateway.auth_mode !== 'headers' && oauthServerLive(config)) {
      params.push(`resource_metadata="${this.resourceMetadataUrl(upstream)}"`);
    } else {
      params.push('realm="gatehouse"');
    }
    params.push(`scope="${extra.scope ?? SUPPORTED_SCOPES.join(' ')}"`);
    if (extra.error) {
      params.push(`error="${extra.error}"`);
      if (extra.description) params.push(`error_description="${extra.description.replace(/["\\]/g, '')}"`);
    }
    return `Bearer ${params.join(', ')}`;
  }

  /** The caller behind a request to `/mcp` (upstream undefined) or `/mcp/<upstream>`. */
  async authenticate(request: FastifyRequest, upstream: string | undefined): Promise<Caller> {
    const fail = (status: 401 | 400, error: string | undefined, description: string) =>
      new AuthenticationError(status, error, description, this.challenge(upstream, { error, description }));
    const authorization = request.headers.authorization;
    const keyHeader = request.headers['x-gatehouse-key'];
    if (typeof keyHeader !== 'string' && keyHeader !== undefined) throw fail(400, 'invalid_request', 'send X-Gatehouse-Key once');
    if (authorization !== undefined && keyHeader !== undefined) {
      throw fail(400, 'invalid_request', 'send exactly one credential: Authorization or X-Gatehouse-Key, not both');
    }
    // RFC 6750 §2.3 allows access_token in the query; MCP forbids it (tokens end up in logs and history).
    if (request.url.includes('access_token=')) throw fail(400, 'invalid_request', 'credentials are not accepted in the query string');

    let credential: string | undefined;
    if (authorization !== undefined) {
      const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(authorization);
      if (!m) throw fail(401, 'invalid_request', 'the Authorization header must be "Bearer <token>"');
      credential = m[1]!;
    } else if (keyHeader !== undefined) {
      credential = keyHeader.trim();
      if (!credential.startsWith(VIRTUAL_KEY_PREFIX)) throw fail(401, 'invalid_token', 'X-Gatehouse-Key takes a virtual key (sk-gw-…)');
    }
    // No credential: the challenge alone (RFC 6750 §3.1: no error code).
    if (credential === undefined) throw fail(401, undefined, 'authentication required');

    const mode = this.settings.config().gateway.auth_mode;
    if (credential.startsWith(VIRTUAL_KEY_PREFIX)) {
      if (mode === 'oauth') throw fail(401, 'invalid_token', 'this gateway accepts only OAuth access tokens');
      const caller = await this.keyCaller(credential);
      if (!caller) throw fail(401, 'invalid_token', 'the key is not valid, or is no longer active');
      return caller;
    }
    if (mode === 'headers') throw fail(401, 'invalid_token', 'this gateway accepts only virtual keys');
    try {
      const resource = `${this.settings.issuer()}/mcp${upstream === undefined ? '' : `/${upstream}`}`;
      const { claims, reach } = await this.settings.accessTokens.verifyWithReach(credential, resource);
      return {
        subject: claims.sub,
        clientId: claims.client_id,
        via: 'oauth',
        scopes: claims.scope.split(' '),
        reach,
      };
    } catch (err) {
      if (err instanceof InvalidTokenError) throw fail(401, 'invalid_token', err.description);
      throw err;
    }
  }

  private async keyCaller(key: string): Promise<Caller | undefined> {
    const cacheKey = hashSecret(key);
    const now = this.settings.clock.now();
    const cached = this.keyCache.get(cacheKey);
    if (cached && cached.until > now) return cached.caller;
    const record = await this.settings.virtualKeys.verify(key);
    const caller: Caller | undefined = record && {
      subject: identityOf(record).subject,
      via: 'key',
      scopes: record.scopes.split(' '),
      reach: { upstreams: record.upstreams, tools: record.tools },
    };
    if (this.keyCache.size >= KEY_CACHE_ENTRIES) this.keyCache.delete(this.keyCache.keys().next().value!);
    this.keyCache.set(cacheKey, { caller, until: now + KEY_CACHE_MS });
    return caller;
  }
}
