import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { nowSeconds, type Clock } from '../clock.js';
import type { Config, UpstreamConfig } from '../config/schema.js';
import { bindBrowser, browserBinding } from '../consent/browser-binding.js';
import { formTargetFor, html, sendPage } from '../consent/html.js';
import { errorPage } from '../consent/pages.js';
import { constantTimeEqual, hashSecret, hmac } from '../crypto/hash.js';
import { AuthenticationError, type Caller, type CredentialResolver } from '../gateway/credentials.js';
import { formBody, ParamsError, queryParams, type Params } from '../http/form.js';
import type { VirtualKeys } from '../identity/virtual-keys.js';
import { CONSENT_PATH } from '../oauth/context.js';
import type { ConnectTicket, UpstreamOAuthRepository } from '../store/upstream-oauth.js';
import {
  CALLBACK_PATH,
  CallbackError,
  CLIENT_DOCUMENT_PATH,
  CONNECT_PATH,
  SHARED_SUBJECT,
  UpstreamAuthError,
  type UpstreamOAuth,
} from './client.js';
import { oauthUpstream, type UserConnections } from './connections.js';

/** What the connect pages and the connections API share. Built once, in app.ts. */
export interface ConnectContext {
  config: () => Config;
  issuer: () => string;
  clock: Clock;
  logger: Logger;
  oauth: UpstreamOAuth;
  repo: UpstreamOAuthRepository;
  personal: UserConnections;
  virtualKeys: VirtualKeys;
  credentials: CredentialResolver;
}

const FORM_BODY_LIMIT = 4096;

/** How a person is named on a page: a key by its name, a user by their id. */
export async function subjectLabel(ctx: Pick<ConnectContext, 'virtualKeys'>, subject: string): Promise<string> {
  if (subject === SHARED_SUBJECT) return 'everyone using this gateway';
  if (subject.startsWith('key:')) return (await ctx.virtualKeys.find(subject.slice(4)))?.name ?? subject;
  return subject;
}

/** The host the user signs in at, and the origin the browser is sent to (for the form-action policy). */
export async function signInTarget(ctx: Pick<ConnectContext, 'oauth'>, upstream: UpstreamConfig) {
  const auth = await ctx.oauth.authorization(upstream);
  const endpoint = new URL(auth.server.authorization_endpoint ?? auth.server.issuer);
  const scopes = upstream.oauth?.scopes.length ? upstream.oauth.scopes : (auth.scopes ?? []);
  return { host: endpoint.host, formTarget: formTargetFor(endpoint.href), scopes };
}

/**
 * The browser side of connecting an upstream account (product §3.3): the connect link from a tool
 * error (`GET /connect/<ticket>`, a page that names the account and asks to continue; its form
 * starts the upstream authorization), and the upstream's redirect back (`/api/oauth/callback`).
 * A GET never starts a flow: someone who sends a victim a connect link gets a page naming the
 * link's identity, not a silent account link.
 */
export function upstreamConnectEndpoints(scope: FastifyInstance, ctx: ConnectContext): void {
  scope.get<{ Params: { ticket: string } }>(`${CONNECT_PATH}/:ticket`, async (request, reply) => {
    const found = await liveTicket(ctx, request.params.ticket);
    if ('problem' in found) return problem(reply, 400, found.problem);
    const binding = bindBrowser(request, reply, ctx.issuer());
    return connectPage(ctx, reply, found, binding, request.params.ticket);
  });

  scope.post<{ Params: { ticket: string } }>(`${CONNECT_PATH}/:ticket`, { bodyLimit: FORM_BODY_LIMIT }, async (request, reply) => {
    const found = await liveTicket(ctx, request.params.ticket);
    if ('problem' in found) return problem(reply, 400, found.problem);
    let params: Params;
    try {
      params = formBody(request.body);
    } catch (err) {
      return problem(reply, 400, (err as ParamsError).description);
    }
    const binding = browserBinding(request, ctx.issuer());
    if (binding === undefined || !csrfMatches(binding, request.params.ticket, params.get('csrf_token'))) {
      return problem(reply, 400, 'The form was not submitted from this page. Open the link again.');
    }
    const { ticket, upstream } = found;
    try {
      if (ticket.client_id !== null && upstream.oauth?.client_id) {
        await ctx.repo.recordConsent({
          subject: ticket.subject,
          upstream: upstream.name,
          client_id: ticket.client_id,
          scope: ticket.scope,
          consented_at: nowSeconds(ctx.clock),
        });
      }
      const url = await ctx.oauth.startFlow(
        { subject: ticket.subject, upstream, binding, returnTo: null },
        ticket.scope ? ticket.scope.split(' ') : undefined,
      );
      return reply.redirect(url, 303);
    } catch (err) {
      if (err instanceof UpstreamAuthError) return problem(reply, 502, err.message);
      throw err;
    }
  });

  scope.get(CALLBACK_PATH, async (request, reply) => {
    let query: URLSearchParams;
    try {
      query = new URLSearchParams([...queryParams(request.url)]);
    } catch (err) {
      return problem(reply, 400, (err as ParamsError).description);
    }
    try {
      const result = await ctx.oauth.completeFlow(query, browserBinding(request, ctx.issuer()));
      // Open the new connection now: its catalog is listed (and kept), and the user's next call is quick.
      await ctx.personal.close(result.subject, result.upstream);
      ctx.personal.warm(result.upstream, result.subject);
      if (result.returnTo) return reply.redirect(`${ctx.issuer()}${CONSENT_PATH}?request=${encodeURIComponent(result.returnTo)}`, 303);
      const who = await subjectLabel(ctx, result.subject);
      return sendPage(
        reply,
        200,
        'Connected',
        html`<h1>${result.upstream} is connected</h1>
        <p>Gatehouse now uses your ${result.upstream} account for <strong>${who}</strong>.</p>
        <p class="muted">Return to your application and try again; you can close this window.</p>`,
      );
    } catch (err) {
      if (err instanceof CallbackError || err instanceof UpstreamAuthError) return problem(reply, 400, err.message);
      throw err;
    }
  });
}

type FoundTicket = { ticket: ConnectTicket; upstream: UpstreamConfig } | { problem: string };

async function liveTicket(ctx: ConnectContext, raw: string): Promise<FoundTicket> {
  const ticket = await ctx.oauth.ticket(raw);
  if (!ticket) return { problem: 'This connect link has expired or is not valid. Call the tool again to get a new one.' };
  const upstream = ctx.config().upstreams.find((u) => u.name === ticket.upstream);
  // A user's link is for a per-user upstream; the operator's (`gatehouse upstreams authorize`), for an `oauth` one.
  const expected = ticket.subject === SHARED_SUBJECT ? 'oauth' : 'per_user_oauth';
  if (!upstream || upstream.auth_type !== expected) return { problem: `The MCP server "${ticket.upstream}" is no longer offered.` };
  return { ticket, upstream };
}

function csrfFor(binding: string, ticket: string): string {
  return hmac(binding, `connect:${hashSecret(ticket)}`);
}

function csrfMatches(binding: string, ticket: string, token: string | undefined): boolean {
  return token !== undefined && constantTimeEqual(csrfFor(binding, ticket), token);
}

async function connectPage(ctx: ConnectContext, reply: FastifyReply, found: { ticket: ConnectTicket; upstream: UpstreamConfig }, binding: string, raw: string) {
  const { ticket, upstream } = found;
  let target;
  try {
    target = await signInTarget(ctx, upstream);
  } catch (err) {
    if (err instanceof UpstreamAuthError) return problem(reply, 502, err.message);
    throw err;
  }
  const who = await subjectLabel(ctx, ticket.subject);
  const scopes = ticket.scope ? ticket.scope.split(' ') : target.scopes;
  const action = `${ctx.issuer()}${CONNECT_PATH}/${raw}`;
  return sendPage(
    reply,
    200,
    `Connect ${upstream.name}`,
    html`<h1>Connect your ${upstream.name} account</h1>
    ${
      ticket.subject === SHARED_SUBJECT
        ? html`<p>Gatehouse will use the ${upstream.name} account you sign in with for <strong>everyone</strong> using this gateway.</p>`
        : html`<p>Gatehouse will use your ${upstream.name} account for the Gatehouse identity <strong>${who}</strong>${ticket.client_id ? html` and the applications it signs in, such as the one that sent you here` : ''}.</p>`
    }
    <dl>
      <dt>Sign in at</dt><dd><strong>${target.host}</strong></dd>
      ${scopes.length > 0 ? html`<dt>Permissions</dt><dd>${scopes.join(' ')}</dd>` : ''}
      <dt>Returns to</dt><dd>${new URL(ctx.issuer()).host}</dd>
    </dl>
    <p class="warn">Continue only if you asked for this: anyone who has this link could use it to attach an account to <strong>${who}</strong>.</p>
    <form method="post" action="${action}"><input type="hidden" name="csrf_token" value="${csrfFor(binding, raw)}">
      <div class="actions"><button class="primary" type="submit">Continue to ${target.host}</button></div></form>`,
    { formTargets: [target.formTarget] },
  );
}

function problem(reply: FastifyReply, status: number, message: string) {
  return sendPage(reply, status, 'Cannot connect', errorPage('The account could not be connected', message));
}

/**
 * `GET /api/me/connections`, `DELETE /api/me/connections/<upstream>` (product §3.3): the caller's
 * own connections, by virtual key or access token; `/api/admin/connections` (admin token): every
 * identity's. Deleting revokes at the upstream where it can, then forgets the tokens. Also the
 * Client ID Metadata Document the gateway presents to upstreams that accept one.
 */
export function connectionEndpoints(scope: FastifyInstance, ctx: ConnectContext): void {
  scope.get(CLIENT_DOCUMENT_PATH, async (_request, reply) => reply.header('cache-control', 'public, max-age=3600').send(ctx.oauth.clientDocument()));

  scope.get('/api/me/connections', async (request, reply) => {
    const caller = await authenticate(ctx, request, reply);
    if (!caller) return reply;
    return { connections: await connectionsOf(ctx, caller.subject, caller) };
  });

  scope.delete<{ Params: { upstream: string } }>('/api/me/connections/:upstream', async (request, reply) => {
    const caller = await authenticate(ctx, request, reply);
    if (!caller) return reply;
    return disconnect(ctx, reply, caller.subject, request.params.upstream);
  });

  scope.get('/api/admin/connections', async (request, reply) => {
    if (!admin(ctx, request, reply)) return reply;
    let subject: string | undefined;
    try {
      subject = queryParams(request.url).get('subject');
    } catch (err) {
      return reply.code(400).send({ error: 'invalid_request', error_description: (err as ParamsError).description });
    }
    const rows = await ctx.repo.connections(subject);
    return { connections: rows.map((r) => view(r, ctx.clock)) };
  });

  scope.delete<{ Params: { subject: string; upstream: string } }>('/api/admin/connections/:subject/:upstream', async (request, reply) => {
    if (!admin(ctx, request, reply)) return reply;
    return disconnect(ctx, reply, request.params.subject, request.params.upstream);
  });
}

type Row = Awaited<ReturnType<UpstreamOAuthRepository['connections']>>[number];

function view(r: Row, clock: Clock) {
  const now = nowSeconds(clock);
  return {
    subject: r.subject,
    upstream: r.upstream,
    status: r.status === 'active' && r.expires_at !== null && r.expires_at <= now ? 'expired' : r.status,
    scope: r.scope,
    expires_at: r.expires_at,
    connected_at: r.updated_at,
  };
}

/** Every per-user upstream the caller may reach, with its connection state. */
async function connectionsOf(ctx: ConnectContext, subject: string, caller: Caller) {
  const rows = new Map((await ctx.repo.connections(subject)).map((r) => [r.upstream, r]));
  const out = [];
  for (const upstream of ctx.config().upstreams) {
    if (upstream.auth_type !== 'per_user_oauth') continue;
    if (caller.reach.upstreams !== null && !caller.reach.upstreams.includes(upstream.name)) continue;
    const row = rows.get(upstream.name);
    if (!row) {
      out.push({ upstream: upstream.name, status: 'not_connected' as const });
      continue;
    }
    const { subject: _subject, ...rest } = view(row, ctx.clock);
    out.push(rest);
  }
  return out;
}

async function disconnect(ctx: ConnectContext, reply: FastifyReply, subject: string, name: string) {
  const upstream = ctx.config().upstreams.find((u) => u.name === name);
  const removed = await ctx.oauth.disconnect(subject, upstream && oauthUpstream(upstream) ? upstream : undefined, name);
  await ctx.personal.close(subject, name);
  if (!removed) return reply.code(404).send({ error: 'not_found', error_description: `no connection to "${name.slice(0, 64)}"` });
  return reply.code(204).send();
}

async function authenticate(ctx: ConnectContext, request: FastifyRequest, reply: FastifyReply): Promise<Caller | undefined> {
  try {
    return await ctx.credentials.authenticate(request, undefined);
  } catch (err) {
    if (!(err instanceof AuthenticationError)) throw err;
    void reply.code(err.status).header('www-authenticate', err.challenge).send({ error: err.error ?? 'unauthorized', error_description: err.description });
    return undefined;
  }
}

/** The admin API answers only to the configured admin token (and does not exist without one). */
function admin(ctx: ConnectContext, request: FastifyRequest, reply: FastifyReply): boolean {
  const token = ctx.config().admin.token;
  if (!token) {
    void reply.code(404).send({ error: 'not_found', error_description: 'the admin API is off: set GATEHOUSE_ADMIN_TOKEN' });
    return false;
  }
  const header = request.headers.authorization ?? '';
  const presented = /^Bearer (.+)$/i.exec(header)?.[1];
  if (!presented || !constantTimeEqual(hashSecret(presented), hashSecret(token))) {
    void reply
      .code(401)
      .header('www-authenticate', 'Bearer realm="gatehouse-admin"')
      .send({ error: 'unauthorized', error_description: 'this endpoint needs the admin token' });
    return false;
  }
  return true;
}
