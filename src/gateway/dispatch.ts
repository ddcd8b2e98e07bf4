import { ErrorCode as McpErrorCode, McpError, SUPPORTED_PROTOCOL_VERSIONS, LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import type { Config, UpstreamConfig } from '../config/schema.js';
import { randomToken } from '../crypto/random.js';
import { ConnectionRequiredError, TICKET_TTL, UpstreamAuthError } from '../upstream-oauth/client.js';
import { oauthUpstream } from '../upstream-oauth/connections.js';
import { UpstreamUnavailableError, type RequestChannel, type UpstreamConnection, type UpstreamNotification } from '../upstreams/connection.js';
import type { Upstreams } from '../upstreams/upstreams.js';
import {
  exposedUri,
  listPrompts,
  listResources,
  listResourceTemplates,
  listTools,
  namesFor,
  parseExposedUri,
  reachableUpstreams,
  toolVisible,
  upstreamOfName,
  upstreamReachable,
  type UpstreamView,
} from './catalog.js';
import type { Caller } from './credentials.js';
import type { Subscriptions } from './subscriptions.js';
import { ErrorCode, errorResponse, JsonRpcError, type JsonRpcNotification, type JsonRpcRequest, type JsonRpcResponse } from './jsonrpc.js';

/** What a request needs: product §3.1 — calling tools needs mcp:write; listing and reading, mcp:read. */
export function requiredScope(method: string): string | undefined {
  if (method === 'tools/call') return 'mcp:write';
  if (
    method === 'tools/list' ||
    method === 'resources/list' ||
    method === 'resources/templates/list' ||
    method === 'resources/read' ||
    method === 'prompts/list' ||
    method === 'prompts/get' ||
    method === 'completion/complete' ||
    method === 'resources/subscribe' ||
    method === 'resources/unsubscribe'
  ) {
    return 'mcp:read';
  }
  return undefined;
}

export interface CallContext {
  caller: Caller;
  /** The upstream of `/mcp/<upstream>`; undefined on `/mcp`. */
  upstream: string | undefined;
  /** Aborted when the client goes away or cancels. */
  signal: AbortSignal;
  /** Sends a notification on this request's event stream (which it starts), when the client takes one. */
  notify?: ((notification: JsonRpcNotification) => void) | undefined;
  /** Sends a request to the client on that stream and waits for its answer (sampling, elicitation). */
  request?: ((method: string, params: Record<string, unknown>, signal: AbortSignal) => Promise<Record<string, unknown>>) | undefined;
  /** The client declared URL-mode elicitation when it initialized (MCP 2025-11-25). */
  urlElicitation?: boolean | undefined;
}

/** Connect links for users who must connect an upstream account first. */
export interface ConnectLinks {
  connectUrl(subject: string, upstream: string, clientId: string | undefined, scope: string | null): Promise<string>;
}

export interface CallObserver {
  toolCall(upstream: string, outcome: 'ok' | 'tool_error' | 'error' | 'unavailable' | 'timeout', seconds: number): void;
}

/**
 * Answers the MCP requests of one caller, statelessly: everything a request needs comes with it
 * (credential → caller) or lives in the shared upstream connections, so any replica can answer.
 */
export class Dispatcher {
  constructor(
    private readonly config: () => Config,
    private readonly upstreams: Upstreams,
    private readonly links: ConnectLinks,
    private readonly logger: Logger,
    private readonly version: string,
    private readonly subscriptions: Subscriptions,
    private readonly observer?: CallObserver,
  ) {}

  async handle(request: JsonRpcRequest, ctx: CallContext): Promise<JsonRpcResponse> {
    try {
      return { jsonrpc: '2.0', id: request.id, result: await this.result(request, ctx) };
    } catch (err) {
      if (err instanceof JsonRpcError) return errorResponse(request.id, err.code, err.message, err.data);
      if (err instanceof McpError) return errorResponse(request.id, err.code, err.message.replace(/^MCP error -?\d+: /, ''), err.data);
      if (err instanceof UpstreamUnavailableError) return errorResponse(request.id, ErrorCode.InternalError, err.message);
      if (err instanceof UpstreamAuthError) return errorResponse(request.id, ErrorCode.InternalError, err.message);
      if (err instanceof ConnectionRequiredError) {
        const { message, data } = await this.connectionRequired(err, ctx);
        return errorResponse(request.id, ctx.urlElicitation && data ? McpErrorCode.UrlElicitationRequired : ErrorCode.InternalError, message, data);
      }
      if (ctx.signal.aborted) return errorResponse(request.id, ErrorCode.InternalError, 'the request was cancelled');
      this.logger.error({ err, method: request.method }, 'request failed');
      return errorResponse(request.id, ErrorCode.InternalError, 'internal error');
    }
  }

  private views(ctx: CallContext): UpstreamView[] {
    return reachableUpstreams(this.config(), (u) => this.upstreams.catalog(u, ctx.caller.subject), ctx.caller.reach, ctx.upstream);
  }

  private async result(request: JsonRpcRequest, ctx: CallContext): Promise<Record<string, unknown>> {
    const params = request.params ?? {};
    const prefixed = ctx.upstream === undefined;
    switch (request.method) {
      case 'initialize':
        return this.initialize(params, ctx);
      case 'ping':
        return {};
      case 'logging/setLevel':
        // Upstream connections are shared between users, so a level is not theirs to set; accepted.
        return {};
      case 'tools/list':
        return { tools: listTools(this.views(ctx), ctx.caller.reach, prefixed) };
      case 'prompts/list':
        return { prompts: listPrompts(this.views(ctx), prefixed) };
      case 'resources/list':
        return { resources: listResources(this.views(ctx), prefixed) };
      case 'resources/templates/list':
        return { resourceTemplates: listResourceTemplates(this.views(ctx), prefixed) };
      case 'tools/call':
        return this.callTool(params, ctx);
      case 'prompts/get': {
        const { connection, name } = await this.resolveName(params.name, 'prompts', ctx);
        return connection.request('prompts/get', { ...forwardable(params), name }, this.forwarding(params, ctx));
      }
      case 'resources/read': {
        const { connection, uri, config } = await this.resolveUri(params.uri, ctx);
        const upstream = config.name;
        const result = await connection.request('resources/read', { ...forwardable(params), uri }, this.forwarding(params, ctx));
        if (!prefixed || !Array.isArray(result.contents)) return result;
        return {
          ...result,
          contents: (result.contents as Array<Record<string, unknown>>).map((c) =>
            typeof c.uri === 'string' ? { ...c, uri: exposedUri(upstream, c.uri) } : c,
          ),
        };
      }
      case 'completion/complete':
        return this.complete(params, ctx);
      case 'resources/subscribe':
      case 'resources/unsubscribe': {
        const { connection, uri, config } = await this.resolveUri(params.uri, ctx);
        if (!connection.capabilities().resources?.subscribe) {
          throw new JsonRpcError(ErrorCode.MethodNotFound, `the MCP server "${config.name}" does not offer resource subscriptions`);
        }
        const subscriptions = this.subscriptions;
        if (request.method === 'resources/subscribe') await subscriptions.subscribe(ctx.caller.subject, config, connection, uri, ctx.signal);
        else await subscriptions.unsubscribe(ctx.caller.subject, config, connection, uri, ctx.signal);
        return {};
      }
      default:
        throw new JsonRpcError(ErrorCode.MethodNotFound, `method not found: ${request.method.slice(0, 100)}`);
    }
  }

  private initialize(params: Record<string, unknown>, ctx: CallContext): Record<string, unknown> {
    const requested = typeof params.protocolVersion === 'string' ? params.protocolVersion : undefined;
    const protocolVersion = requested && SUPPORTED_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_PROTOCOL_VERSION;
    const names = this.views(ctx).map((v) => v.config.name);
    return {
      protocolVersion,
      capabilities: {
        tools: { listChanged: true },
        resources: { listChanged: true, subscribe: true },
        prompts: { listChanged: true },
        completions: {},
        logging: {},
      },
      serverInfo: { name: 'gatehouse', title: 'Gatehouse MCP gateway', version: this.version },
      instructions:
        ctx.upstream === undefined
          ? `Tools, prompts and resources of ${names.length} MCP servers (${names.join(', ')}). ` +
            'Tool and prompt names start with the server name and "-"; resource URIs with gatehouse://<server>/.'
          : `The MCP server "${ctx.upstream}", through the Gatehouse gateway.`,
    };
  }

  /** A reachable upstream by name; unknown names are "not found", as if they did not exist. */
  private target(upstream: string | undefined, ctx: CallContext, what: string): UpstreamConfig {
    const config = this.config().upstreams.find((u) => u.name === upstream);
    if (!upstream || !config || !upstreamReachable(upstream, ctx.caller.reach) || (ctx.upstream !== undefined && ctx.upstream !== upstream)) {
      throw new JsonRpcError(ErrorCode.InvalidParams, `unknown ${what}`);
    }
    return config;
  }

  /**
   * A tool or prompt name as the client sees it → its upstream and original name, checked against
   * the catalog the caller sees. For an OAuth upstream whose catalog was never listed, the name can
   * only be checked once the caller is connected (`original` does it then).
   */
  private locate(exposed: unknown, kind: 'tools' | 'prompts', ctx: CallContext) {
    const what = kind === 'tools' ? 'tool' : 'prompt';
    if (typeof exposed !== 'string' || exposed === '') throw new JsonRpcError(ErrorCode.InvalidParams, `name must be the ${what}'s name`);
    const unknown = () => new JsonRpcError(ErrorCode.InvalidParams, `unknown ${what}: ${exposed.slice(0, 200)}`);
    const config = this.target(ctx.upstream ?? upstreamOfName(exposed), ctx, `${what}: ${exposed.slice(0, 200)}`);
    const original = (items: readonly { name: string }[] | undefined): string => {
      const name = !items ? undefined : ctx.upstream !== undefined ? exposed : namesFor(config.name, items).toOriginal.get(exposed);
      if (name === undefined || !items!.some((i) => i.name === name)) throw unknown();
      return name;
    };
    const catalog = this.upstreams.catalog(config, ctx.caller.subject);
    let listed: string | undefined;
    try {
      listed = original(catalog?.[kind]);
    } catch (err) {
      // Unknown in the catalog the caller sees; only when there is none yet is it up to the connection.
      if (!oauthUpstream(config) || catalog !== undefined) throw err;
    }
    return { config, listed, original: (items: readonly { name: string }[]) => listed ?? original(items) };
  }

  private async resolveName(
    exposed: unknown,
    kind: 'tools' | 'prompts',
    ctx: CallContext,
  ): Promise<{ connection: UpstreamConnection; name: string; config: UpstreamConfig }> {
    const { config, original } = this.locate(exposed, kind, ctx);
    const connection = await this.upstreams.connection(config, ctx.caller.subject);
    return { connection, name: original(connection.catalog[kind]), config };
  }

  private async resolveUri(exposed: unknown, ctx: CallContext): Promise<{ connection: UpstreamConnection; uri: string; config: UpstreamConfig }> {
    if (typeof exposed !== 'string' || exposed === '') throw new JsonRpcError(ErrorCode.InvalidParams, 'uri is required');
    let upstream = ctx.upstream;
    let uri = exposed;
    if (upstream === undefined) {
      const parsed = parseExposedUri(exposed);
      if (!parsed) throw new JsonRpcError(ErrorCode.InvalidParams, `unknown resource: ${exposed.slice(0, 200)}`);
      ({ upstream, uri } = parsed);
    }
    const config = this.target(upstream, ctx, ctx.upstream !== undefined ? 'resource' : `resource: ${exposed.slice(0, 200)}`);
    return { connection: await this.upstreams.connection(config, ctx.caller.subject), uri, config };
  }

  /**
   * What the caller is told when it must connect an upstream account first: a sentence with a
   * connect link, and — for clients that take URL-mode elicitation — the elicitation to send.
   */
  private async connectionRequired(err: ConnectionRequiredError, ctx: CallContext): Promise<{ message: string; data?: Record<string, unknown> }> {
    const upstream = err.upstream;
    const config = this.config().upstreams.find((u) => u.name === upstream);
    if (config?.auth_type === 'oauth') {
      return {
        message:
          `The MCP server "${upstream}" is not authorized yet: the gateway's operator must run ` +
          `"gatehouse upstreams authorize ${upstream}" once.`,
      };
    }
    const url = await this.links.connectUrl(ctx.caller.subject, upstream, ctx.caller.clientId, err.scope);
    const minutes = Math.round(TICKET_TTL / 60);
    const action =
      err.reason === 'missing'
        ? `To use "${upstream}", connect your ${upstream} account`
        : err.reason === 'needs_reauth'
          ? `Your connection to "${upstream}" has expired or was revoked; connect your ${upstream} account again`
          : `"${upstream}" needs more permissions (${err.scope ?? ''}); authorize them`;
    const message = `${action}: open ${url} in your browser (the link works for ${minutes} minutes), then try again.`;
    return { message, data: { elicitations: [{ mode: 'url', elicitationId: randomToken(16), url, message }] } };
  }

  private async callTool(params: Record<string, unknown>, ctx: CallContext): Promise<Record<string, unknown>> {
    const { config, listed, original } = this.locate(params.name, 'tools', ctx);
    const upstream = config.name;
    // The same rule as listing: a tool the caller cannot see cannot be called, even by its exact name.
    const visible = (name: string) => {
      if (!toolVisible(config, name, ctx.caller.reach)) throw new JsonRpcError(ErrorCode.InvalidParams, `unknown tool: ${String(params.name).slice(0, 200)}`);
      return name;
    };
    if (listed !== undefined) visible(listed);
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    try {
      const connection = await this.upstreams.connection(config, ctx.caller.subject);
      const name = visible(original(connection.catalog.tools));
      const result = await connection.request('tools/call', { ...forwardable(params), name }, this.forwarding(params, ctx));
      this.observer?.toolCall(upstream, result.isError === true ? 'tool_error' : 'ok', seconds());
      return result;
    } catch (err) {
      if (err instanceof JsonRpcError) throw err;
      // Cancelled by the client: nobody is waiting for a tool result.
      if (ctx.signal.aborted) {
        this.observer?.toolCall(upstream, 'error', seconds());
        throw new JsonRpcError(ErrorCode.InternalError, 'the request was cancelled');
      }
      // A user's token that stopped working during the call (refused, or lacking a scope).
      if (err instanceof ConnectionRequiredError) {
        this.observer?.toolCall(upstream, 'unavailable', seconds());
        const { message, data } = await this.connectionRequired(err, ctx);
        if (ctx.urlElicitation && data) throw new McpError(McpErrorCode.UrlElicitationRequired, message, data);
        return toolError(message);
      }
      if (err instanceof UpstreamAuthError) {
        this.observer?.toolCall(upstream, 'unavailable', seconds());
        return toolError(`The MCP server "${upstream}" cannot be used right now: ${withoutName(err.message, upstream)}`);
      }
      // The upstream's failure is a tool error naming it, so the model sees what happened and the
      // other upstreams are unaffected (product §3.2).
      if (err instanceof UpstreamUnavailableError) {
        this.observer?.toolCall(upstream, 'unavailable', seconds());
        return toolError(`The MCP server "${upstream}" is not available right now (${err.message}). Try again later.`);
      }
      if (err instanceof McpError && err.code === ErrorCode.RequestTimeout) {
        this.observer?.toolCall(upstream, 'timeout', seconds());
        return toolError(`The MCP server "${upstream}" did not answer within ${config.timeout} seconds; the call was cancelled.`);
      }
      if (err instanceof McpError && err.code === ErrorCode.ConnectionClosed) {
        this.observer?.toolCall(upstream, 'unavailable', seconds());
        return toolError(`The MCP server "${upstream}" closed the connection during the call; it is being reconnected. Try again.`);
      }
      this.observer?.toolCall(upstream, 'error', seconds());
      if (err instanceof McpError) throw err;
      return toolError(`The MCP server "${upstream}" failed: ${err instanceof Error ? err.message.slice(0, 300) : 'unknown error'}`);
    }
  }

  /**
   * How a forwarded request reaches back to its client: progress under the client's own token
   * (only if it asked for progress), log messages, and the upstream's requests, all on the
   * request's event stream — when the client accepts one.
   */
  private forwarding(params: Record<string, unknown>, ctx: CallContext): { signal: AbortSignal; channel?: RequestChannel } {
    const notify = ctx.notify;
    if (!notify) return { signal: ctx.signal };
    const progressToken = (params._meta as Record<string, unknown> | undefined)?.progressToken;
    return {
      signal: ctx.signal,
      channel: {
        notify: (n: UpstreamNotification) => {
          if (n.method !== 'notifications/progress') notify({ jsonrpc: '2.0', method: n.method, params: n.params });
          else if (progressToken !== undefined) notify({ jsonrpc: '2.0', method: n.method, params: { ...n.params, progressToken } });
        },
        ...(ctx.request && { request: ctx.request }),
      },
    };
  }

  private async complete(params: Record<string, unknown>, ctx: CallContext): Promise<Record<string, unknown>> {
    const ref = params.ref as Record<string, unknown> | undefined;
    if (ref?.type === 'ref/prompt') {
      const { connection, name } = await this.resolveName(ref.name, 'prompts', ctx);
      return connection.request('completion/complete', { ...forwardable(params), ref: { ...ref, name } }, this.forwarding(params, ctx));
    }
    if (ref?.type === 'ref/resource') {
      const { connection, uri } = await this.resolveUri(ref.uri, ctx);
      return connection.request('completion/complete', { ...forwardable(params), ref: { ...ref, uri } }, this.forwarding(params, ctx));
    }
    throw new JsonRpcError(ErrorCode.InvalidParams, 'ref must be a ref/prompt or a ref/resource');
  }
}

/** Parameters to send upstream: the client's progress token stays here (the upstream gets ours, if any). */
function forwardable(params: Record<string, unknown>): Record<string, unknown> {
  const meta = params._meta as Record<string, unknown> | undefined;
  if (!meta || !('progressToken' in meta)) return params;
  const { progressToken: _token, ...rest } = meta;
  return { ...params, _meta: rest };
}

function toolError(text: string): Record<string, unknown> {
  return { content: [{ type: 'text', text }], isError: true };
}

/** An upstream error's message without the upstream's name in front (the sentence names it already). */
function withoutName(message: string, upstream: string): string {
  return message.startsWith(`${upstream}: `) ? message.slice(upstream.length + 2) : message;
}
