import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { nowSeconds } from '../clock.js';
import { constantTimeEqual, hashSecret, s256 } from '../crypto/hash.js';
import { randomToken } from '../crypto/random.js';
import { answerPreflight } from '../http/cors.js';
import { formBody, type Params } from '../http/form.js';
import type { GrantRow, KeyState, Refusal } from '../store/grants.js';
import { isDocumentClientId } from './clients.js';
import { TOKEN_PATH, type OAuthContext } from './context.js';
import { InvalidRequestError, OAuthError, TemporarilyUnavailableError } from './errors.js';
import { rateLimited } from './rate-limits.js';

/** Token requests are a handful of short parameters. */
export const TOKEN_BODY_LIMIT = 16 * 1024;
/** RFC 7636 §4.1: code_verifier = 43*128unreserved. */
const CODE_VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;

class InvalidClientError extends OAuthError {
  constructor(description: string) {
    // RFC 6749 §5.2: 401, with a challenge for the scheme the client may authenticate with.
    super('invalid_client', description, 401, { 'www-authenticate': 'Basic realm="gatehouse"' });
  }
}

class TokenError extends OAuthError {
  constructor(refusal: Refusal | { error: string; description: string }) {
    super(refusal.error, refusal.description, refusal.error === 'invalid_client' ? 401 : 400);
  }
}

interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token?: string;
  scope: string;
}

/**
 * `POST /api/oauth/per-user/token` (product §2.5): the authorization_code grant (PKCE S256) and
 * the refresh_token grant (rotation, scope narrowing). Public clients only: the client identifies
 * itself with client_id and proves possession with the code verifier or the refresh token.
 */
export function tokenEndpoint(scope: FastifyInstance, ctx: OAuthContext): void {
  const limits = () => ctx.config().oauth_server.rate_limits.token;
  answerPreflight(scope, TOKEN_PATH, ['POST']);
  scope.post(
    TOKEN_PATH,
    {
      bodyLimit: TOKEN_BODY_LIMIT,
      // RFC 6749 §5.1: token responses, errors included, are never cached.
      onRequest: (_request, reply, done) => {
        void reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
        done();
      },
      preHandler: rateLimited(scope, limits, (request) => clientIdOf(request)),
    },
    async (request, reply) => {
      const params = formBody(request.body);
      const clientId = authenticateClient(request, params);
      switch (params.get('grant_type')) {
        case 'authorization_code':
          return send(reply, await exchangeCode(ctx, params, clientId));
        case 'refresh_token':
          return send(reply, await refresh(ctx, params, clientId));
        case undefined:
          throw new InvalidRequestError('grant_type is required');
        default:
          throw new OAuthError('unsupported_grant_type', 'grant_type must be authorization_code or refresh_token');
      }
    },
  );
}

function send(reply: FastifyReply, body: TokenResponse) {
  return reply.code(200).send(body);
}

function clientIdOf(request: FastifyRequest): string | undefined {
  return request.body instanceof Map ? (request.body as Params).get('client_id') : undefined;
}

/**
 * The client_id of a public client: from the body, or from HTTP Basic with an empty password
 * (some clients send it that way). A Basic password is a client secret, which no client of this
 * gateway has: invalid_client.
 */
function authenticateClient(request: FastifyRequest, params: Params): string {
  const bodyClientId = params.get('client_id');
  const header = request.headers.authorization;
  let basicClientId: string | undefined;
  if (header !== undefined) {
    const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header);
    if (!m) throw new InvalidClientError('only public clients are registered here: send client_id in the body, without credentials');
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const password = colon === -1 ? '' : decoded.slice(colon + 1);
    if (password !== '') throw new InvalidClientError('this client has no secret: it is a public client (token_endpoint_auth_method "none")');
    try {
      basicClientId = decodeURIComponent((colon === -1 ? decoded : decoded.slice(0, colon)).replace(/\+/g, ' '));
    } catch {
      throw new InvalidClientError('the Authorization header is malformed');
    }
  }
  if (basicClientId !== undefined && bodyClientId !== undefined && basicClientId !== bodyClientId) {
    throw new InvalidRequestError('client_id differs between the Authorization header and the body');
  }
  const clientId = basicClientId ?? bodyClientId;
  if (!clientId) throw new InvalidRequestError('client_id is required');
  return clientId;
}

/** Refresh tokens go to clients that registered the refresh_token grant (RFC 7591 §2). */
async function clientGrantTypes(ctx: OAuthContext, clientId: string): Promise<string[]> {
  if (isDocumentClientId(clientId)) {
    const lookup = await ctx.clientResolver.resolve(clientId);
    if ('problem' in lookup) throw new InvalidClientError(lookup.problem);
    return lookup.client.grant_types;
  }
  const client = await ctx.clients.find(clientId);
  if (!client) throw new InvalidClientError('this client is not registered here');
  return client.grant_types;
}

function keyRefusal(key: KeyState | null, now: number): Refusal | undefined {
  if (key === null) return undefined;
  if (!key.active || (key.expires_at !== null && key.expires_at <= now)) {
    return { error: 'invalid_grant', description: 'the key this authorization was made with is no longer active' };
  }
  return undefined;
}

function resourceRefusal(params: Params, grant: GrantRow): Refusal | undefined {
  const resource = params.get('resource');
  if (resource !== undefined && resource !== grant.resource) {
    return { error: 'invalid_target', description: `this authorization is for ${grant.resource}` };
  }
  return undefined;
}

async function exchangeCode(ctx: OAuthContext, params: Params, clientId: string): Promise<TokenResponse> {
  const code = params.get('code');
  const verifier = params.get('code_verifier');
  const redirectUri = params.get('redirect_uri');
  if (!code) throw new InvalidRequestError('code is required');
  if (verifier === undefined) throw new InvalidRequestError('code_verifier is required (PKCE)');
  if (!CODE_VERIFIER.test(verifier)) throw new InvalidRequestError('code_verifier must be 43 to 128 unreserved characters (RFC 7636)');
  const grantTypes = await clientGrantTypes(ctx, clientId);
  const now = nowSeconds(ctx.clock);
  const refreshToken = grantTypes.includes('refresh_token') ? randomToken(32) : undefined;

  const result = await ctx.grants.redeemCode(
    hashSecret(code),
    now,
    (stored, grant, key): Refusal | undefined => {
      if (stored.client_id !== clientId) return { error: 'invalid_grant', description: 'the code was issued to another client' };
      if (redirectUri !== undefined && redirectUri !== stored.redirect_uri) {
        return { error: 'invalid_grant', description: 'redirect_uri differs from the one in the authorization request' };
      }
      if (!constantTimeEqual(s256(verifier), stored.code_challenge)) {
        return { error: 'invalid_grant', description: 'code_verifier does not match the code_challenge' };
      }
      return resourceRefusal(params, grant) ?? keyRefusal(key, now);
    },
    refreshToken ? { token_hash: hashSecret(refreshToken), expires_at: now + ctx.config().oauth_server.refresh_token_ttl } : undefined,
  );
  if (result.outcome === 'replayed') {
    throw new TokenError({ error: 'invalid_grant', description: 'the code was already used; the tokens issued with it are revoked' });
  }
  if (result.outcome === 'invalid') throw new TokenError(result.refusal);
  const access = await ctx.accessTokens.issue(result.grant, result.grant.scope);
  return {
    access_token: access.token,
    token_type: 'Bearer',
    expires_in: access.expiresIn,
    ...(refreshToken !== undefined && { refresh_token: refreshToken }),
    scope: result.grant.scope,
  };
}

async function refresh(ctx: OAuthContext, params: Params, clientId: string): Promise<TokenResponse> {
  const presented = params.get('refresh_token');
  if (!presented) throw new InvalidRequestError('refresh_token is required');
  const requestedScope = params.get('scope');
  const now = nowSeconds(ctx.clock);
  // A deleted registration's grants were revoked with it (ClientRepository.delete).
  const next = randomToken(32);
  let scope = '';
  const result = await ctx.grants.rotateRefreshToken(
    hashSecret(presented),
    now,
    (grant, key): Refusal | undefined => {
      if (grant.client_id !== clientId) return { error: 'invalid_grant', description: 'the refresh token was issued to another client' };
      const refusal = resourceRefusal(params, grant) ?? keyRefusal(key, now);
      if (refusal) return refusal;
      // RFC 6749 §6: a narrower scope may be asked for, never a wider one.
      const granted = grant.scope.split(' ');
      if (requestedScope !== undefined) {
        const wanted = [...new Set(requestedScope.split(' ').filter(Boolean))];
        const extra = wanted.find((s) => !granted.includes(s));
        if (wanted.length === 0 || extra !== undefined) {
          return {
            error: 'invalid_scope',
            description: extra ? `scope ${JSON.stringify(extra.slice(0, 64))} was not granted` : 'scope is empty',
          };
        }
        scope = wanted.join(' ');
      } else {
        scope = grant.scope;
      }
      return undefined;
    },
    { token_hash: hashSecret(next), expires_at: now + ctx.config().oauth_server.refresh_token_ttl },
  );
  switch (result.outcome) {
    case 'invalid':
      // Only on this error path: an unknown client is invalid_client, not a bad token.
      if (!isDocumentClientId(clientId) && !(await ctx.clients.find(clientId))) {
        throw new InvalidClientError('this client is not registered here');
      }
      throw new TokenError(result.refusal);
    case 'replayed':
      throw new TokenError({ error: 'invalid_grant', description: 'an old refresh token was reused; this authorization is revoked' });
    case 'concurrent': {
      // Not invalid_grant: clients discard their tokens on that, and the other request's pair is good.
      const err = new TemporarilyUnavailableError('this refresh token is being exchanged by a concurrent request; retry shortly');
      err.headers['retry-after'] = '2';
      throw err;
    }
    case 'rotated': {
      const access = await ctx.accessTokens.issue(result.grant, scope);
      return { access_token: access.token, token_type: 'Bearer', expires_in: access.expiresIn, refresh_token: next, scope };
    }
  }
}
