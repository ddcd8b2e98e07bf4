import type { FastifyInstance, FastifyReply } from 'fastify';
import { nowSeconds } from '../clock.js';
import { bindBrowser, bindingHash } from '../consent/browser-binding.js';
import { sendPage } from '../consent/html.js';
import { errorPage } from '../consent/pages.js';
import { randomToken } from '../crypto/random.js';
import { queryParams, type Params, type ParamsError } from '../http/form.js';
import type { KnownClient } from './clients.js';
import { AUTHORIZATION_REQUEST_TTL, AUTHORIZE_PATH, authorizationRedirect, CONSENT_PATH, type OAuthContext } from './context.js';
import { checkRedirectUri, matchRedirectUri } from './redirect-uri-policy.js';
import { redirectUriPolicy } from './register.js';
import { mcpResource, resourceUpstream } from './resources.js';
import { rateLimited } from './rate-limits.js';

/** RFC 7636 §4.2: an S256 challenge is the base64url of a SHA-256, 43 characters. */
const S256_CHALLENGE = /^[A-Za-z0-9_-]{43}$/;
const MAX_STATE = 1024;

/** An error that goes back to the client (the redirect URI is trusted by now). */
class RedirectableError extends Error {
  constructor(
    readonly error: string,
    readonly description: string,
  ) {
    super(description);
  }
}

/**
 * `GET /api/oauth/per-user/authorize` (product §2.3): validates the request, stores it, binds it
 * to this browser, and sends the browser to the consent page. Until the client and its redirect
 * URI are known to be genuine, every error is an HTML page: redirecting to an unverified URI would
 * make the gateway an open redirector (RFC 6749 §4.1.2.1).
 */
export function authorizationEndpoint(scope: FastifyInstance, ctx: OAuthContext): void {
  const limits = () => ctx.config().oauth_server.rate_limits.authorize;
  scope.get(
    AUTHORIZE_PATH,
    { onRequest: rateLimited(scope, limits, (request) => clientIdOf(request.url)) },
    async (request, reply) => {
      let params: Params;
      try {
        params = queryParams(request.url);
      } catch (err) {
        return refuse(reply, 'This sign-in link is malformed', (err as ParamsError).description);
      }
      const clientId = params.get('client_id');
      if (!clientId) return refuse(reply, 'This sign-in link is incomplete', 'It does not say which application is asking (client_id).');
      const lookup = await ctx.clientResolver.resolve(clientId);
      if ('problem' in lookup) {
        return refuse(reply, 'Unknown application', `The application that sent you here is not known to this gateway: ${lookup.problem}.`);
      }
      const client = lookup.client;
      const redirectUri = chooseRedirectUri(client, params.get('redirect_uri'));
      if (redirectUri === undefined) {
        return refuse(
          reply,
          'Unregistered return address',
          'The application asked to send you back to an address it did not register, so this gateway will not go there.',
        );
      }
      const verdict = checkRedirectUri(redirectUri, redirectUriPolicy(ctx.config()));
      if (!verdict.allowed) {
        return refuse(reply, 'Return address not allowed', `The application's return address ${verdict.reason}.`);
      }

      const state = params.get('state');
      const issuer = ctx.issuer();
      try {
        const validated = validate(params, client, issuer, ctx);
        const binding = bindBrowser(request, reply, issuer);
        const id = randomToken(24);
        const now = nowSeconds(ctx.clock);
        await ctx.requests.insert({
          id,
          binding_hash: bindingHash(binding),
          client_id: client.client_id,
          redirect_uri: redirectUri,
          state: state ?? null,
          code_challenge: validated.codeChallenge,
          scope: validated.scope,
          resource: validated.resource,
          key_id: null,
          created_at: now,
          expires_at: now + AUTHORIZATION_REQUEST_TTL,
        });
        return reply.redirect(`${issuer}${CONSENT_PATH}?request=${id}`, 302);
      } catch (err) {
        if (!(err instanceof RedirectableError)) throw err;
        const safeState = state !== undefined && state.length <= MAX_STATE ? state : undefined;
        return reply.redirect(
          authorizationRedirect(redirectUri, issuer, { error: err.error, error_description: err.description, state: safeState }),
          302,
        );
      }
    },
  );
}

/** The client_id a request names, for per-client limits; a malformed query is refused later, with a page. */
function clientIdOf(url: string): string | undefined {
  try {
    return queryParams(url).get('client_id');
  } catch {
    return undefined;
  }
}

function refuse(reply: FastifyReply, title: string, message: string) {
  return sendPage(reply, 400, title, errorPage(title, message, 'Go back to the application and try connecting again.'));
}

/** The registered redirect URI the request names; the only one registered if it names none. */
function chooseRedirectUri(client: KnownClient, requested: string | undefined): string | undefined {
  if (requested === undefined) return client.redirect_uris.length === 1 ? client.redirect_uris[0] : undefined;
  return matchRedirectUri(client.redirect_uris, requested);
}

function validate(params: Params, client: KnownClient, issuer: string, ctx: OAuthContext) {
  const state = params.get('state');
  if (state !== undefined && state.length > MAX_STATE) throw new RedirectableError('invalid_request', `state must be at most ${MAX_STATE} characters`);
  const responseType = params.get('response_type');
  if (responseType !== 'code') {
    throw new RedirectableError(
      responseType === undefined ? 'invalid_request' : 'unsupported_response_type',
      'response_type must be "code"',
    );
  }
  const codeChallenge = params.get('code_challenge');
  const method = params.get('code_challenge_method');
  // OAuth 2.1 §4.1.1: PKCE is required; RFC 7636's default method "plain" is refused.
  if (!codeChallenge) throw new RedirectableError('invalid_request', 'code_challenge is required (PKCE with S256)');
  if (method !== 'S256') throw new RedirectableError('invalid_request', 'code_challenge_method must be S256 ("plain" is not accepted)');
  if (!S256_CHALLENGE.test(codeChallenge)) {
    throw new RedirectableError('invalid_request', 'code_challenge must be 43 base64url characters (an S256 challenge)');
  }

  const registered = client.scope.split(' ');
  const requestedScope = params.get('scope');
  let scope = client.scope;
  if (requestedScope !== undefined) {
    const tokens = [...new Set(requestedScope.split(' ').filter(Boolean))];
    const unknown = tokens.filter((t) => !registered.includes(t));
    if (tokens.length === 0 || unknown.length > 0) {
      throw new RedirectableError(
        'invalid_scope',
        unknown.length > 0 ? `scope ${JSON.stringify(unknown[0]!.slice(0, 64))} is not available to this client` : 'scope is empty',
      );
    }
    scope = tokens.join(' ');
  }

  const resource = params.get('resource') ?? mcpResource(issuer);
  if (resourceUpstream(resource, issuer, ctx.config()) === null) {
    throw new RedirectableError('invalid_target', `resource must be ${mcpResource(issuer)} or ${mcpResource(issuer)}/<upstream>`);
  }
  return { codeChallenge, scope, resource };
}

