import type { FastifyInstance } from 'fastify';
import { nowSeconds } from '../clock.js';
import { hashSecret } from '../crypto/hash.js';
import { answerPreflight } from '../http/cors.js';
import { formBody } from '../http/form.js';
import { REVOKE_PATH, type OAuthContext } from './context.js';
import { InvalidRequestError } from './errors.js';
import { rateLimited } from './rate-limits.js';
import { TOKEN_BODY_LIMIT } from './token.js';

/**
 * `POST /api/oauth/per-user/revoke` (RFC 7009). Revoking either token of a grant revokes the whole
 * grant: its refresh tokens stop at once, its access tokens within seconds (the verifier's status
 * cache). The answer is 200 whatever the token was (§2.2), so the endpoint tells nothing about
 * which tokens exist. A client may only revoke its own tokens; others are ignored.
 */
export function revocationEndpoint(scope: FastifyInstance, ctx: OAuthContext): void {
  const limits = () => ctx.config().oauth_server.rate_limits.token;
  answerPreflight(scope, REVOKE_PATH, ['POST']);
  scope.post(
    REVOKE_PATH,
    {
      bodyLimit: TOKEN_BODY_LIMIT,
      onRequest: (_request, reply, done) => {
        void reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
        done();
      },
      preHandler: rateLimited(scope, limits),
    },
    async (request, reply) => {
      const params = formBody(request.body);
      const token = params.get('token');
      if (!token) throw new InvalidRequestError('token is required');
      const clientId = params.get('client_id');
      const hint = params.get('token_type_hint');
      // The hint only orders the lookups (§2.1); both kinds are tried.
      const lookups =
        hint === 'access_token'
          ? [() => ctx.accessTokens.grantOf(token), () => ctx.grants.grantOfRefreshToken(hashSecret(token))]
          : [() => ctx.grants.grantOfRefreshToken(hashSecret(token)), () => ctx.accessTokens.grantOf(token)];
      for (const lookup of lookups) {
        const grant = await lookup();
        if (!grant) continue;
        if (clientId === undefined || grant.client_id === clientId) {
          await ctx.grants.revokeGrant(grant.id, nowSeconds(ctx.clock), 'revoked by the client');
          ctx.accessTokens.forget(grant.id);
        }
        break;
      }
      return reply.code(200).send();
    },
  );
}
