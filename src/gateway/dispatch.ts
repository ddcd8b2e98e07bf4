import { McpError, SUPPORTED_PROTOCOL_VERSIONS, LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { UpstreamUnavailableError, type RequestChannel, type UpstreamConnection, type UpstreamNotification } from '../upstreams/connection.js';
import type { UpstreamPool } from '../upstreams/pool.js';
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
    private readonly pool: UpstreamPool,
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
      if (ctx.signal.aborted) return errorResponse(request.id, ErrorCode.InternalError, 'the request was cancelled');
      this.logger.error({ err, method: request.method }, 'request failed');
      return errorResponse(request.id, ErrorCode.InternalError, 'internal error');
    }
  }

  private views(ctx: CallContext): UpstreamView[] {
    return reachableUpstreams(this.config(), (n) => this.pool.get(n), ctx.caller.reach, ctx.upstream);
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
        const { connection, name } = this.resolveName(params.name, 'prompts', ctx);
        return connection.request('prompts/get', { ...forwardable(params), name }, this.forwarding(params, ctx));
      }
      case 'resources/read': {
        const { connection, uri, upstream } = this.resolveUri(params.uri, ctx);
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
        const { connection, uri, upstream } = this.resolveUri(params.uri, ctx);
        if (!connection.capabilities().resources?.subscribe) {
          throw new JsonRpcError(ErrorCode.MethodNotFound, `the MCP server "${upstream}" does not offer resource subscriptions`);
        }
        const subscriptions = this.subscriptions;
        if (request.method === 'resources/subscribe') await subscriptions.subscribe(ctx.caller.subject, upstream, uri, ctx.signal);
        else await subscriptions.unsubscribe(ctx.caller.subject, upstream, uri, ctx.signal);
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

  /** The shared connection of a reachable upstream; unknown names are "not found", as if they did not exist. */
  private connection(upstream: string | undefined, ctx: CallContext, what: string): UpstreamConnection {
    const config = this.config().upstreams.find((u) => u.name === upstream);
    if (!upstream || !config || !upstreamReachable(upstream, ctx.caller.reach) || (ctx.upstream !== undefined && ctx.upstream !== upstream)) {
      throw new JsonRpcError(ErrorCode.InvalidParams, `unknown ${what}`);
    }
    const connection = this.pool.get(upstream);
    if (!connection) throw new UpstreamUnavailableError(`the MCP server "${upstream}" is not available through a shared connection`);
    return connection;
  }

  /** A tool or prompt name as the client sees it → its upstream connection and original name. */
  private resolveName(exposed: unknown, kind: 'tools' | 'prompts', ctx: CallContext): { connection: UpstreamConnection; name: string; upstream: string } {
    const what = kind === 'tools' ? 'tool' : 'prompt';
    if (typeof exposed !== 'string' || exposed === '') throw new JsonRpcError(ErrorCode.InvalidParams, `name must be the ${what}'s name`);
    const upstream = ctx.upstream ?? upstreamOfName(exposed);
    const connection = this.connection(upstream, ctx, `${what}: ${exposed.slice(0, 200)}`);
    const items = connection.catalog[kind];
    const name = ctx.upstream !== undefined ? exposed : namesFor(connection.name, items).toOriginal.get(exposed);
    if (name === undefined || !items.some((i) => i.name === name)) {
      throw new JsonRpcError(ErrorCode.InvalidParams, `unknown ${what}: ${exposed.slice(0, 200)}`);
    }
    return { connection, name, upstream: connection.name };
  }

  private resolveUri(exposed: unknown, ctx: CallContext): { connection: UpstreamConnection; uri: string; upstream: string } {
    if (typeof exposed !== 'string' || exposed === '') throw new JsonRpcError(ErrorCode.InvalidParams, 'uri is required');
    if (ctx.upstream !== undefined) {
      return { connection: this.connection(ctx.upstream, ctx, 'resource'), uri: exposed, upstream: ctx.upstream };
    }
    const parsed = parseExposedUri(exposed);
    if (!parsed) throw new JsonRpcError(ErrorCode.InvalidParams, `unknown resource: ${exposed.slice(0, 200)}`);
    return { connection: this.connection(parsed.upstream, ctx, `resource: ${exposed.slice(0, 200)}`), uri: parsed.uri, upstream: parsed.upstream };
  }

  private async callTool(params: Record<string, unknown>, ctx: CallContext): Promise<Record<string, unknown>> {
    const { connection, name, upstream } = this.resolveName(params.name, 'tools', ctx);
    const config = connection.config;
    // The same rule as listing: a tool the caller cannot see cannot be called, even by its exact name.
    if (!toolVisible(config, name, ctx.caller.reach)) {
      throw new JsonRpcError(ErrorCode.InvalidParams, `unknown tool: ${String(params.name).slice(0, 200)}`);
    }
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    try {
      const result = await connection.request('tools/call', { ...forwardable(params), name }, this.forwarding(params, ctx));
      this.observer?.toolCall(upstream, result.isError === true ? 'tool_error' : 'ok', seconds());
      return result;
    } catch (err) {
      // Cancelled by the client: nobody is waiting for a tool result.
      if (ctx.signal.aborted) {
        this.observer?.toolCall(upstream, 'error', seconds());
        throw new JsonRpcError(ErrorCode.InternalError, 'the request was cancelled');
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
      const { connection, name } = this.resolveName(ref.name, 'prompts', ctx);
      return connection.request('completion/complete', { ...forwardable(params), ref: { ...ref, name } }, this.forwarding(params, ctx));
    }
    if (ref?.type === 'ref/resource') {
      const { connection, uri } = this.resolveUri(ref.uri, ctx);
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
