import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode as McpErrorCode, McpError, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { randomToken } from '../crypto/random.js';
import type { Drain } from '../http/drain.js';
import { OAuthError } from '../oauth/errors.js';
import type { Upstreams } from '../upstreams/upstreams.js';
import { exposedUri, upstreamReachable } from './catalog.js';
import { originRefusal } from './origin.js';
import { AuthenticationError, type Caller, type CredentialResolver } from './credentials.js';
import { requiredScope, type Dispatcher } from './dispatch.js';
import type { SessionClaims, SessionIds } from './sessions.js';
import type { Subscriptions } from './subscriptions.js';
import { classify, ErrorCode, errorResponse, JsonRpcError, type JsonRpcNotification, type JsonRpcRequest, type JsonRpcResponse } from './jsonrpc.js';

/**
 * `/mcp` and `/mcp/<upstream>` (product §3.1): MCP's Streamable HTTP transport, without server-side
 * state. A POST carries JSON-RPC messages and gets JSON back — or an event stream, when a tool call
 * asked for progress; a GET opens a stream of list_changed notifications; DELETE is refused (there
 * is nothing to end). `initialize` issues a self-contained session id (src/gateway/sessions.ts)
 * that carries the client's declared capabilities; every request is authenticated on its own and
 * may reach any replica.
 */
export const MCP_BODY_LIMIT = 4 * 1024 * 1024;
const HEARTBEAT_MS = 25_000;

export interface McpDeps {
  config: () => Config;
  issuer: () => string;
  credentials: CredentialResolver;
  dispatcher: Dispatcher;
  upstreams: Upstreams;
  logger: Logger;
  drain: Drain;
  subscriptions: Subscriptions;
  sessions: SessionIds;
}

/** JSON-RPC error code the MCP SDK uses for an unknown session. */
const SESSION_NOT_FOUND = -32001;

type Params = { upstream?: string };

export function mcpEndpoints(app: FastifyInstance, deps: McpDeps): void {
  // In-flight requests of this process, so notifications/cancelled can stop them.
  const inFlight = new Map<string, AbortController>();
  // Requests relayed to clients (sampling, elicitation), waiting for the answer the client POSTs.
  // Held by this process: the answer must reach the replica that asked (as with any relay).
  const awaiting = new Map<string, { subject: string; settle: (response: JsonRpcResponse) => void }>();

  const errorHandler = (error: FastifyError | OAuthError | Error, _request: FastifyRequest, reply: FastifyReply) => {
    // The body could not be read as JSON: JSON-RPC's parse error, with the HTTP status the problem deserves.
    const status = error instanceof OAuthError ? error.status : ((error as FastifyError).statusCode ?? 500);
    if (status >= 500) {
      deps.logger.error({ err: error }, 'MCP request failed');
      return reply.code(500).send(errorResponse(null, ErrorCode.InternalError, 'internal error'));
    }
    const message = error instanceof OAuthError ? error.description : status === 413 ? 'the request body is too large' : 'the request is malformed';
    return reply.code(status).send(errorResponse(null, ErrorCode.ParseError, message));
  };

  const endpoint = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply, verb: 'post' | 'get' | 'delete') => {
    const refusal = originRefusal(request, deps.issuer(), deps.config().gateway.allowed_origins);
    if (refusal) return reply.code(403).send({ error: 'forbidden', error_description: refusal });
    const upstream = request.params.upstream;
    if (upstream !== undefined && !deps.config().upstreams.some((u) => u.name === upstream)) {
      return reply.code(404).send({ error: 'not_found', error_description: `no MCP server named "${upstream.slice(0, 64)}" here` });
    }
    let caller: Caller;
    try {
      caller = await deps.credentials.authenticate(request, upstream);
    } catch (err) {
      if (!(err instanceof AuthenticationError)) throw err;
      return reply
        .code(err.status)
        .header('www-authenticate', err.challenge)
        .send({ error: err.error ?? 'unauthorized', error_description: err.description });
    }
    if (upstream !== undefined && !upstreamReachable(upstream, caller.reach)) {
      return reply.code(403).send({ error: 'forbidden', error_description: `this credential does not give access to "${upstream}"` });
    }
    const version = request.headers['mcp-protocol-version'];
    if (typeof version === 'string' && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
      return reply.code(400).send(errorResponse(null, ErrorCode.InvalidRequest, `unsupported MCP-Protocol-Version: ${version.slice(0, 32)}`));
    }
    let session: SessionClaims | undefined;
    const sessionId = request.headers['mcp-session-id'];
    if (typeof sessionId === 'string') {
      session = deps.sessions.read(sessionId, caller.subject);
      if (!session) return reply.code(404).send(errorResponse(null, SESSION_NOT_FOUND, 'session not found: initialize again'));
    }
    if (verb === 'delete') {
      // Nothing is kept per session, so there is nothing to terminate (Streamable HTTP allows 405 here).
      return reply.code(405).header('allow', 'GET, POST').send(errorResponse(null, ErrorCode.InvalidRequest, 'sessions cannot be terminated'));
    }
    if (verb === 'get') return openNotificationStream(request, reply, caller, upstream);
    return post(request, reply, caller, upstream, session);
  };

  const post = async (
    request: FastifyRequest<{ Params: Params }>,
    reply: FastifyReply,
    caller: Caller,
    upstream: string | undefined,
    session: SessionClaims | undefined,
  ) => {
    const body = request.body;
    const batch = Array.isArray(body);
    const items: unknown[] = batch ? body : [body];
    if (items.length === 0) return reply.code(400).send(errorResponse(null, ErrorCode.InvalidRequest, 'an empty batch'));
    const requests: JsonRpcRequest[] = [];
    for (const item of items) {
      let incoming;
      try {
        incoming = classify(item);
      } catch (err) {
        return reply.code(400).send(errorResponse(null, ErrorCode.InvalidRequest, (err as JsonRpcError).message));
      }
      if (incoming.kind === 'request') requests.push(incoming.message);
      else if (incoming.kind === 'notification') notification(incoming.message, caller);
      else answer(incoming.message, caller);
    }
    // Notifications and responses only: accepted, nothing to answer (Streamable HTTP: 202).
    if (requests.length === 0) return reply.code(202).send();

    const missing = requests.map((r) => requiredScope(r.method)).find((s) => s !== undefined && !caller.scopes.includes(s));
    if (missing) {
      const description = `this request needs the ${missing} scope`;
      return reply
        .code(403)
        .header('www-authenticate', deps.credentials.challenge(upstream, { error: 'insufficient_scope', description, scope: missing }))
        .send({ error: 'insufficient_scope', error_description: description, scope: missing });
    }

    const initialize = requests.find((r) => r.method === 'initialize');
    if (initialize) void reply.header('mcp-session-id', deps.sessions.issue(caller.subject, initialize.params?.capabilities));
    const urlElicitation = session?.urlElicitation ?? false;

    const controller = new AbortController();
    const keys = requests.map((r) => `${caller.subject}\u0000${String(r.id)}`);
    for (const key of keys) inFlight.set(key, controller);
    // A client that goes away takes its requests with it: they are cancelled upstream too.
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) controller.abort();
    });
    try {
      // A single request may be answered with an event stream, but only if something needs one: it
      // starts with the first notification (progress) and stays plain JSON otherwise.
      const streamable = !batch && (request.headers.accept ?? '').includes('text/event-stream');
      if (streamable) return await respond(reply, requests[0]!, caller, upstream, controller.signal, urlElicitation);
      const responses = await Promise.all(
        requests.map((r) => deps.dispatcher.handle(r, { caller, upstream, signal: controller.signal, urlElicitation })),
      );
      return reply.code(200).send(batch ? responses : responses[0]);
    } finally {
      for (const key of keys) if (inFlight.get(key) === controller) inFlight.delete(key);
    }
  };

  /** A client's answer to a request we relayed: to the call waiting for it, if it is this caller's. */
  const answer = (message: JsonRpcResponse, caller: Caller) => {
    const waiting = awaiting.get(String(message.id));
    if (!waiting || waiting.subject !== caller.subject) return;
    awaiting.delete(String(message.id));
    waiting.settle(message);
  };

  const notification = (message: JsonRpcNotification, caller: Caller) => {
    if (message.method === 'notifications/cancelled') {
      const id = message.params?.requestId;
      if (typeof id === 'string' || typeof id === 'number') inFlight.get(`${caller.subject}\u0000${String(id)}`)?.abort();
    }
    // notifications/initialized, roots/list_changed and the like need nothing from a stateless gateway.
  };

  /** One request's answer: JSON, or server-sent events once it has something to pass on first. */
  const respond = async (
    reply: FastifyReply,
    request: JsonRpcRequest,
    caller: Caller,
    upstream: string | undefined,
    signal: AbortSignal,
    urlElicitation: boolean,
  ) => {
    let streaming = false;
    const res = reply.raw;
    const send = (message: JsonRpcNotification | JsonRpcRequest | JsonRpcResponse) => {
      if (!streaming) {
        streaming = true;
        reply.hijack();
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      }
      if (!res.writableEnded && !res.destroyed) res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
    };
    const relayed = new Set<string>();
    const ask = (method: string, params: Record<string, unknown>, upstreamSignal: AbortSignal) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const id = `gatehouse-${randomToken(12)}`;
        const stop = () => {
          awaiting.delete(id);
          relayed.delete(id);
          reject(new McpError(McpErrorCode.InternalError, 'the request to the client was cancelled'));
        };
        awaiting.set(id, {
          subject: caller.subject,
          settle: (response) => {
            relayed.delete(id);
            upstreamSignal.removeEventListener('abort', stop);
            if (response.error) reject(new McpError(response.error.code, response.error.message, response.error.data));
            else resolve(response.result ?? {});
          },
        });
        relayed.add(id);
        upstreamSignal.addEventListener('abort', stop, { once: true });
        send({ jsonrpc: '2.0', id, method, params });
      });
    try {
      const response = await deps.dispatcher.handle(request, { caller, upstream, signal, notify: send, request: ask, urlElicitation });
      if (!streaming) return reply.code(200).send(response);
      send(response);
      res.end();
      return reply;
    } finally {
      for (const id of relayed) awaiting.delete(id);
    }
  };

  const openNotificationStream = (request: FastifyRequest, reply: FastifyReply, caller: Caller, upstream: string | undefined) => {
    if (!(request.headers.accept ?? '').includes('text/event-stream')) {
      return reply.code(406).send(errorResponse(null, ErrorCode.InvalidRequest, 'a GET opens an event stream: Accept text/event-stream'));
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write(': gatehouse notification stream\n\n');
    const unsubscribe = deps.upstreams.onCatalogChange((changed) => {
      if ((upstream !== undefined && changed !== upstream) || !upstreamReachable(changed, caller.reach)) return;
      for (const method of ['notifications/tools/list_changed', 'notifications/resources/list_changed', 'notifications/prompts/list_changed']) {
        res.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method })}\n\n`);
      }
    });
    // Updates of resources this caller subscribed to, named as this endpoint names them.
    const unsubscribeUpdates = deps.subscriptions.onUpdate((subject, changed, uri) => {
      if (subject !== caller.subject || (upstream !== undefined && changed !== upstream)) return;
      const name = upstream === undefined ? exposedUri(changed, uri) : uri;
      res.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri: name } })}\n\n`);
    });
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
    heartbeat.unref();
    // A shutdown ends the stream at once; the client reconnects to another replica.
    const unregister = deps.drain.onShutdown(() => res.end());
    res.on('close', () => {
      clearInterval(heartbeat);
      unsubscribe();
      unsubscribeUpdates();
      unregister();
    });
  };

  for (const url of ['/mcp', '/mcp/:upstream']) {
    app.post<{ Params: Params }>(url, { bodyLimit: MCP_BODY_LIMIT, errorHandler }, (request, reply) => endpoint(request, reply, 'post'));
    app.get<{ Params: Params }>(url, { errorHandler }, (request, reply) => endpoint(request, reply, 'get'));
    app.delete<{ Params: Params }>(url, { errorHandler }, (request, reply) => endpoint(request, reply, 'delete'));
  }
}
