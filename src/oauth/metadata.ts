import type { FastifyInstance, FastifyReply } from 'fastify';
import { answerPreflight } from '../http/cors.js';
import { SUPPORTED_GRANT_TYPES, SUPPORTED_SCOPES } from './client-metadata.js';
import { AUTHORIZE_PATH, JWKS_PATH, REVOKE_PATH, TOKEN_PATH, type OAuthContext } from './context.js';
import { NotFoundError } from './errors.js';
import { REGISTRATION_PATH } from './register.js';
import { mcpResource } from './resources.js';

/**
 * Discovery (product §2.2): RFC 8414 authorization server metadata, RFC 9728 protected resource
 * metadata for /mcp and each /mcp/<upstream>, and the JWKS. Every URL derives from the issuer
 * (`server.public_url`), never from the request's Host header.
 */
export function discoveryEndpoints(scope: FastifyInstance, ctx: OAuthContext, issuerPath: string): void {
  const asMetadata = () => {
    const issuer = ctx.issuer();
    return {
      issuer,
      authorization_endpoint: issuer + AUTHORIZE_PATH,
      token_endpoint: issuer + TOKEN_PATH,
      registration_endpoint: issuer + REGISTRATION_PATH,
      revocation_endpoint: issuer + REVOKE_PATH,
      jwks_uri: issuer + JWKS_PATH,
      response_types_supported: ['code'],
      response_modes_supported: ['query'],
      grant_types_supported: [...SUPPORTED_GRANT_TYPES],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['none'],
      revocation_endpoint_auth_methods_supported: ['none'],
      scopes_supported: [...SUPPORTED_SCOPES],
      authorization_response_iss_parameter_supported: true,
      client_id_metadata_document_supported: ctx.config().oauth_server.client_metadata_documents.enabled,
    };
  };

  const protectedResource = (upstream?: string) => ({
    resource: mcpResource(ctx.issuer(), upstream),
    authorization_servers: [ctx.issuer()],
    scopes_supported: [...SUPPORTED_SCOPES],
    bearer_methods_supported: ['header'],
    resource_name: upstream === undefined ? 'Gatehouse MCP gateway' : `Gatehouse: ${upstream}`,
  });

  const json = (reply: FastifyReply, body: unknown) => reply.header('cache-control', 'public, max-age=60').send(body);

  // RFC 8414 §3.1: for an issuer with a path, the path goes after the well-known segment.
  const asPaths = new Set(['/.well-known/oauth-authorization-server', `/.well-known/oauth-authorization-server${issuerPath}`]);
  for (const path of asPaths) {
    answerPreflight(scope, path, ['GET']);
    scope.get(path, async (_request, reply) => json(reply, asMetadata()));
  }

  // RFC 9728 §3.1: the resource's path goes after the well-known segment; the bare form serves
  // clients that look there first, and names the aggregate endpoint.
  const prm = `/.well-known/oauth-protected-resource`;
  for (const path of new Set([prm, `${prm}${issuerPath}/mcp`])) {
    answerPreflight(scope, path, ['GET']);
    scope.get(path, async (_request, reply) => json(reply, protectedResource()));
  }
  const perUpstream = `${prm}${issuerPath}/mcp/:upstream`;
  answerPreflight(scope, perUpstream, ['GET']);
  scope.get<{ Params: { upstream: string } }>(perUpstream, async (request, reply) => {
    const name = request.params.upstream;
    if (!ctx.config().upstreams.some((u) => u.name === name)) throw new NotFoundError();
    return json(reply, protectedResource(name));
  });

  answerPreflight(scope, JWKS_PATH, ['GET']);
  scope.get(JWKS_PATH, async (_request, reply) => json(reply, ctx.signingKeys.jwks()));
}
