import type { FastifyInstance } from 'fastify';
import { nowSeconds, type Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import { newClientId } from '../crypto/random.js';
import { answerPreflight } from '../http/cors.js';
import { requireJsonBody } from '../http/json-body.js';
import type { ClientRepository } from '../store/clients.js';
import { parseClientRegistration, type ClientInformation } from './client-metadata.js';
import { rateLimited } from './rate-limits.js';
import type { RedirectUriPolicy } from './redirect-uri-policy.js';

export const REGISTRATION_PATH = '/api/oauth/per-user/register';

/** Product §2.1: registration bodies are small; anything larger is refused before parsing. */
export const REGISTRATION_BODY_LIMIT = 16 * 1024;

export interface RegistrationDeps {
  clients: ClientRepository;
  clock: Clock;
  config: () => Config;
}

export function redirectUriPolicy(config: Config): RedirectUriPolicy {
  return {
    privateSchemes: config.oauth_server.allowed_private_schemes,
    remoteHttpsAllowlist: config.oauth_server.redirect_uri_allowlist,
  };
}

/**
 * `POST /api/oauth/per-user/register`: RFC 7591 Dynamic Client Registration for public clients.
 * No authentication (it is how an MCP client bootstraps); guarded by a per-address rate limit.
 */
export function registrationEndpoint(scope: FastifyInstance, deps: RegistrationDeps): void {
  const limits = () => deps.config().oauth_server.rate_limits.register;
  answerPreflight(scope, REGISTRATION_PATH, ['POST']);
  scope.post(
    REGISTRATION_PATH,
    {
      bodyLimit: REGISTRATION_BODY_LIMIT,
      onRequest: rateLimited(scope, limits),
      preValidation: requireJsonBody,
    },
    async (request, reply) => {
      const metadata = parseClientRegistration(request.body, redirectUriPolicy(deps.config()));
      const client: ClientInformation = {
        client_id: newClientId(),
        client_id_issued_at: nowSeconds(deps.clock),
        ...metadata,
      };
      await deps.clients.insert(client);
      // RFC 7591 §3.2.1: 201 Created with the registered metadata; never cached.
      return reply.code(201).header('cache-control', 'no-store').header('pragma', 'no-cache').send(client);
    },
  );
}
