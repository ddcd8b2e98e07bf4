import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { nowSeconds } from '../clock.js';
import { hashSecret } from '../crypto/hash.js';
import { randomToken } from '../crypto/random.js';
import { formBody, queryParams, type Params, ParamsError } from '../http/form.js';
import { identityOf, keyUsable, type Identity } from '../identity/virtual-keys.js';
import {
  AUTHORIZATION_CODE_TTL,
  authorizationRedirect,
  CONSENT_PATH,
  type OAuthContext,
} from '../oauth/context.js';
import { resourceUpstream } from '../oauth/resources.js';
import type { AuthorizationRequestRow } from '../store/authorization-requests.js';
import { browserBinding, csrfToken, csrfValid, matchesBinding } from './browser-binding.js';
import { UpstreamAuthError } from '../upstream-oauth/client.js';
import type { ConsentConnections } from '../upstream-oauth/consent.js';
import { formTargetFor, html, sendPage } from './html.js';
import { consentPage, errorPage } from './pages.js';

/** Body limit of the consent form: a request id, a CSRF token, an action and a key. */
const FORM_BODY_LIMIT = 4096;

/**
 * The consent page (product §2.4): `GET /oauth/consent?request=…` shows the pending request;
 * `POST /oauth/consent` takes the user's steps: `identify` (a virtual key), then `allow` or
 * `deny`. Plain HTML forms, no JavaScript; every step checks the browser binding and the CSRF
 * token, and the decision consumes the pending request, so it takes effect once.
 */
export function consentEndpoints(scope: FastifyInstance, ctx: OAuthContext, connections?: ConsentConnections): void {
  scope.get(CONSENT_PATH, async (request, reply) => {
    let params: Params;
    try {
      params = queryParams(request.url);
    } catch (err) {
      return stale(reply, (err as ParamsError).description);
    }
    const found = await pendingRequest(ctx, request, params.get('request'));
    if ('problem' in found) return stale(reply, found.problem);
    return render(ctx, connections, reply, found.pending, found.binding, 200);
  });

  scope.post(CONSENT_PATH, { bodyLimit: FORM_BODY_LIMIT }, async (request, reply) => {
    let params: Params;
    try {
      params = formBody(request.body);
    } catch (err) {
      return stale(reply, (err as ParamsError).description);
    }
    const found = await pendingRequest(ctx, request, params.get('request'));
    if ('problem' in found) return stale(reply, found.problem);
    const { pending, binding } = found;
    if (!csrfValid(binding, pending.id, params.get('csrf_token'))) {
      return stale(reply, 'The form was not submitted from this page.');
    }

    const issuer = ctx.issuer();
    switch (params.get('action')) {
      case 'deny': {
        if (!(await ctx.requests.consume(pending.id))) return stale(reply, 'This request was already decided.');
        return reply.redirect(
          authorizationRedirect(pending.redirect_uri, issuer, {
            error: 'access_denied',
            error_description: 'the user denied the request',
            state: pending.state,
          }),
          303,
        );
      }
      case 'identify': {
        const key = await ctx.virtualKeys.verify(params.get('virtual_key')?.trim() ?? '');
        if (!key) return render(ctx, connections, reply, pending, binding, 400, 'That key is not valid, or is no longer active.');
        const problem = keyCannotServe(identityOf(key), pending, ctx);
        if (problem) return render(ctx, connections, reply, pending, binding, 403, problem);
        await ctx.requests.setKey(pending.id, key.id);
        return reply.redirect(`${issuer}${CONSENT_PATH}?request=${pending.id}`, 303);
      }
      case 'allow': {
        const identity = await currentIdentity(ctx, pending);
        if (!identity) return render(ctx, connections, reply, { ...pending, key_id: null }, binding, 400, 'Enter your Gatehouse key first.');
        const problem = keyCannotServe(identity, pending, ctx);
        if (problem) return render(ctx, connections, reply, pending, binding, 403, problem);
        if (!(await ctx.requests.consume(pending.id))) return stale(reply, 'This request was already decided.');
        const code = await issueCode(ctx, pending, identity);
        return reply.redirect(authorizationRedirect(pending.redirect_uri, issuer, { code, state: pending.state }), 303);
      }
      case 'connect': {
        const identity = await currentIdentity(ctx, pending);
        if (!identity || !connections) return render(ctx, connections, reply, { ...pending, key_id: null }, binding, 400, 'Enter your Gatehouse key first.');
        try {
          const url = await connections.start({
            identity,
            clientId: pending.client_id,
            only: resourceUpstream(pending.resource, issuer, ctx.config()) ?? undefined,
            upstream: params.get('upstream'),
            binding,
            requestId: pending.id,
          });
          return reply.redirect(url, 303);
        } catch (err) {
          if (err instanceof UpstreamAuthError) return render(ctx, connections, reply, pending, binding, 400, err.message);
          throw err;
        }
      }
      default:
        return render(ctx, connections, reply, pending, binding, 400, 'Choose Allow or Deny.');
    }
  });
}

type Found = { pending: AuthorizationRequestRow; binding: string } | { problem: string };

async function pendingRequest(ctx: OAuthContext, request: FastifyRequest, id: string | undefined): Promise<Found> {
  if (!id || !/^[A-Za-z0-9_-]{16,64}$/.test(id)) return { problem: 'This page needs a sign-in request.' };
  const pending = await ctx.requests.findLive(id, nowSeconds(ctx.clock));
  if (!pending) return { problem: 'This sign-in request has expired or was already used.' };
  const binding = browserBinding(request, ctx.issuer());
  // Only the browser that started the request may answer it (a link sent to someone else fails here).
  if (binding === undefined || !matchesBinding(binding, pending.binding_hash)) {
    return { problem: 'This sign-in request was started in another browser.' };
  }
  return { pending, binding };
}

function stale(reply: FastifyReply, message: string) {
  return sendPage(
    reply,
    400,
    'This sign-in cannot continue',
    errorPage('This sign-in cannot continue', message, 'Go back to the application and connect again.'),
  );
}

async function currentIdentity(ctx: OAuthContext, pending: AuthorizationRequestRow): Promise<Identity | undefined> {
  if (pending.key_id === null) return undefined;
  const key = await ctx.virtualKeys.find(pending.key_id);
  return key && keyUsable(key, nowSeconds(ctx.clock)) ? identityOf(key) : undefined;
}

/** Why this identity cannot grant what the request asks, if it cannot. */
function keyCannotServe(identity: Identity, pending: AuthorizationRequestRow, ctx: OAuthContext): string | undefined {
  const granted = grantedScope(pending.scope, identity);
  if (granted === '') return `Your key does not allow the access requested (${pending.scope}).`;
  const upstream = resourceUpstream(pending.resource, ctx.issuer(), ctx.config());
  if (upstream && identity.upstreams !== null && !identity.upstreams.includes(upstream)) {
    return `Your key does not give access to ${upstream}.`;
  }
  return undefined;
}

/** The requested scope, narrowed to the key's ceiling. */
export function grantedScope(requested: string, identity: Identity): string {
  return requested
    .split(' ')
    .filter((s) => identity.scopes.includes(s))
    .join(' ');
}

async function issueCode(ctx: OAuthContext, pending: AuthorizationRequestRow, identity: Identity): Promise<string> {
  const now = nowSeconds(ctx.clock);
  const code = randomToken(32);
  await ctx.grants.createWithCode(
    {
      id: randomToken(16),
      client_id: pending.client_id,
      subject: identity.subject,
      key_id: identity.keyId,
      scope: grantedScope(pending.scope, identity),
      resource: pending.resource,
      created_at: now,
      revoked_at: null,
      revoked_reason: null,
    },
    {
      code_hash: hashSecret(code),
      redirect_uri: pending.redirect_uri,
      code_challenge: pending.code_challenge,
      expires_at: now + AUTHORIZATION_CODE_TTL,
    },
  );
  // A successful authorization: this registration is in use and is no longer swept as unused.
  await ctx.clients.markUsed(pending.client_id, now);
  return code;
}

async function render(
  ctx: OAuthContext,
  connections: ConsentConnections | undefined,
  reply: FastifyReply,
  pending: AuthorizationRequestRow,
  binding: string,
  status: number,
  error?: string,
) {
  const lookup = await ctx.clientResolver.resolve(pending.client_id);
  if ('problem' in lookup) return stale(reply, `The application is no longer known: ${lookup.problem}.`);
  const identity = await currentIdentity(ctx, pending);
  const csrf = csrfToken(binding, pending.id);
  const action = `${ctx.issuer()}${CONSENT_PATH}`;
  const step2 =
    identity && connections
      ? await connections.section({
          identity,
          only: resourceUpstream(pending.resource, ctx.issuer(), ctx.config()) ?? undefined,
          hidden: html`<input type="hidden" name="request" value="${pending.id}"><input type="hidden" name="csrf_token" value="${csrf}">`,
          action,
        })
      : undefined;
  const view = consentPage({
    client: lookup.client,
    redirectUri: pending.redirect_uri,
    scope: identity ? grantedScope(pending.scope, identity) || pending.scope : pending.scope,
    resource: pending.resource,
    requestId: pending.id,
    csrfToken: csrf,
    action,
    identity: identity?.label,
    error,
    connections: step2?.html,
  });
  return sendPage(reply, status, 'Allow access', view, {
    formTargets: [formTargetFor(pending.redirect_uri), ...(step2?.formTargets ?? [])],
  });
}
