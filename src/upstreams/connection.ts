import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ErrorCode,
  McpError,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
  type Prompt,
  type Resource,
  type ResourceTemplate,
  type ServerCapabilities,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { UpstreamConfig } from '../config/schema.js';
import { keepAliveFetch, type Fetch } from './http-client.js';

/**
 * One upstream MCP server, connected once and shared: the SDK client keeps one session and
 * multiplexes every call over it (JSON-RPC ids keep concurrent results apart), instead of
 * initializing a session per call. The connection is re-established with backoff when it breaks
 * (a stdio child that died is restarted), checked with a ping periodically, and its catalog
 * (tools, resources, templates, prompts) is kept current from `list_changed` notifications.
 */
export type UpstreamState = 'connecting' | 'ready' | 'down' | 'closed';

export interface Catalog {
  tools: Tool[];
  resources: Resource[];
  resourceTemplates: ResourceTemplate[];
  prompts: Prompt[];
}

const EMPTY_CATALOG: Catalog = { tools: [], resources: [], resourceTemplates: [], prompts: [] };

/** A notification an upstream sent about one of our requests. */
export interface UpstreamNotification {
  method: string;
  params: Record<string, unknown>;
}

/**
 * The way back to the client of one request: its notifications (progress, log messages), and the
 * upstream's requests to that client (sampling, elicitation) while the call runs.
 */
export interface RequestChannel {
  notify(notification: UpstreamNotification): void;
  /** Absent when the client cannot take requests (its answer is plain JSON). */
  request?: (method: string, params: Record<string, unknown>, signal: AbortSignal) => Promise<Record<string, unknown>>;
}

/** The upstream is not connected: calls fail with this at once rather than wait. */
export class UpstreamUnavailableError extends Error {
  override name = 'UpstreamUnavailableError';
}

/** Results are passed through as they are; the client validates them against its own schemas. */
const PassThrough = z.looseObject({});

const CONNECT_TIMEOUT_MS = 15_000;
const PING_TIMEOUT_MS = 5_000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const MAX_PAGES = 50;

export interface ConnectionOptions {
  logger: Logger;
  /** Seconds between health checks. */
  healthInterval: () => number;
  /** Called when the catalog changed (after a connect or a list_changed notification). */
  onCatalogChange: (upstream: string) => void;
  /** Called when the state changed. */
  onStateChange?: (upstream: string, state: UpstreamState) => void;
  /** Called on notifications/resources/updated. */
  onResourceUpdated?: (upstream: string, uri: string) => void;
  clientVersion: string;
  /** Wraps the HTTP client (a per-user connection adds its user's token and handles rejections). */
  wrapFetch?: (fetch: Fetch) => Fetch;
  /**
   * Re-establish a broken connection with backoff (the default, for shared connections). Without
   * it, a failed or lost connection stays down, with the failure in `lastFailure`: its owner
   * decides (a per-user connection is replaced on its user's next call).
   */
  reconnect?: boolean;
}

export class UpstreamConnection {
  state: UpstreamState = 'connecting';
  lastError: string | undefined;
  /** What made the last connection attempt fail, as thrown. */
  lastFailure: unknown;
  catalog: Catalog = EMPTY_CATALOG;
  /** Set once the catalog has been listed at least once since start. */
  listedAt: number | undefined;

  private client: Client | undefined;
  private readonly http = keepAliveFetch();
  private readonly fetch: Fetch;
  private readonly settledListeners = new Set<() => void>();
  /** Our progress tokens → the channel back to that request's client. */
  private readonly channels = new Map<string, RequestChannel>();
  private tokens = 0;
  /** Requests in flight on this connection, with or without a channel. */
  private inFlight = 0;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private generation = 0;

  constructor(
    readonly config: UpstreamConfig,
    private readonly options: ConnectionOptions,
  ) {
    this.fetch = options.wrapFetch ? options.wrapFetch(this.http.fetch) : this.http.fetch;
  }

  /** Resolves once the connection is ready, or has failed (then `state` is `down`) or closed. */
  settled(): Promise<void> {
    if (this.state !== 'connecting') return Promise.resolve();
    return new Promise((resolve) => this.settledListeners.add(resolve));
  }

  get name(): string {
    return this.config.name;
  }

  start(): void {
    void this.connect();
  }

  /**
   * Sends a request over the shared session. Throws UpstreamUnavailableError when not connected.
   * With a channel, the request carries a progress token of ours, so that the upstream's progress
   * for it comes back to its client; see `exclusiveChannel` for log messages and requests.
   */
  async request(
    method: string,
    params: Record<string, unknown> | undefined,
    options: { signal?: AbortSignal; channel?: RequestChannel } = {},
  ): Promise<Record<string, unknown>> {
    const client = this.client;
    if (!client || this.state !== 'ready') {
      throw new UpstreamUnavailableError(this.lastError ?? (this.state === 'connecting' ? 'still connecting' : this.state));
    }
    const timeout = this.config.timeout * 1000;
    this.inFlight++;
    const channel = options.channel;
    const token = channel ? `gatehouse-${++this.tokens}` : undefined;
    if (token) this.channels.set(token, channel!);
    try {
      const meta = token ? { ...((params?._meta as Record<string, unknown> | undefined) ?? {}), progressToken: token } : undefined;
      return await client.request({ method, params: meta ? { ...params, _meta: meta } : params }, PassThrough, { signal: options.signal, timeout });
    } finally {
      this.inFlight--;
      if (token) this.channels.delete(token);
    }
  }

  /**
   * The client a log message or a server-to-client request belongs to. MCP marks neither with the
   * request it concerns, and this connection is shared by every user: only while it carries a
   * single call can the message be attributed, to that call's client. Otherwise it is not passed
   * to anyone (a misattributed message would show one user another's activity).
   */
  private exclusiveChannel(): RequestChannel | undefined {
    if (this.inFlight !== 1 || this.channels.size !== 1) return undefined;
    return this.channels.values().next().value;
  }

  /** What the upstream said it offers, when connected. */
  capabilities(): ServerCapabilities {
    return this.client?.getServerCapabilities() ?? {};
  }

  async close(): Promise<void> {
    this.setState('closed');
    this.generation++;
    clearTimeout(this.retryTimer);
    clearInterval(this.healthTimer);
    const client = this.client;
    this.client = undefined;
    await client?.close().catch(() => {});
    this.http.close();
  }

  private setState(state: UpstreamState, error?: string): void {
    if (this.state === 'closed' && state !== 'closed') return;
    this.lastError = error;
    if (this.state !== state) {
      this.state = state;
      this.options.onStateChange?.(this.name, state);
    }
    if (state !== 'connecting') {
      for (const listener of this.settledListeners) listener();
      this.settledListeners.clear();
    }
  }

  private transport(): Transport {
    const u = this.config;
    if (u.transport === 'stdio') {
      const transport = new StdioClientTransport({
        command: u.command,
        args: u.args,
        env: { ...getDefaultEnvironment(), ...u.env },
        ...(u.cwd !== undefined && { cwd: u.cwd }),
        stderr: 'pipe',
      });
      // The child's stderr is its log: keep it, at debug level, under the upstream's name.
      transport.stderr?.on('data', (chunk: Buffer) =>
        this.options.logger.debug({ upstream: this.name, stderr: chunk.toString('utf8').slice(0, 2000) }, 'upstream stderr'),
      );
      return transport;
    }
    const headers = { ...(u.headers ?? {}) };
    if (u.transport === 'http') {
      return new StreamableHTTPClientTransport(new URL(u.url), { requestInit: { headers }, fetch: this.fetch });
    }
    // Legacy SSE: the POSTs take requestInit; the event stream is opened by its own fetch.
    const streamFetch: Fetch = this.options.wrapFetch ? this.options.wrapFetch(fetch) : fetch;
    return new SSEClientTransport(new URL(u.url), {
      requestInit: { headers },
      fetch: this.fetch,
      eventSourceInit: {
        fetch: (url, init) => {
          const merged = new Headers(init?.headers);
          for (const [k, v] of Object.entries(headers)) merged.set(k, v);
          return streamFetch(url, { ...init, headers: merged });
        },
      },
    });
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    this.setState(this.attempt === 0 ? 'connecting' : 'down', this.lastError);
    // Sampling and elicitation are declared so the upstream may ask; the gateway relays them to the
    // client of the call in progress (relayRequests), which answers or refuses.
    const client = new Client(
      { name: 'gatehouse', version: this.options.clientVersion },
      { capabilities: { sampling: {}, elicitation: { form: {}, url: {} } } },
    );
    client.onerror = (err) => this.options.logger.debug({ upstream: this.name, err: err.message }, 'upstream transport error');
    try {
      const transport = this.transport();
      await client.connect(transport, { timeout: CONNECT_TIMEOUT_MS });
      this.interceptNotifications(transport);
      if (generation !== this.generation) {
        await client.close().catch(() => {});
        return;
      }
      this.client = client;
      client.onclose = () => {
        if (generation === this.generation && this.state !== 'closed') this.lost('the connection closed');
      };
      this.registerListChanged(client);
      this.relayRequests(client);
      this.catalog = await this.listCatalog(client);
      this.listedAt = Date.now();
      this.attempt = 0;
      this.lastFailure = undefined;
      this.setState('ready');
      this.options.logger.info({ upstream: this.name, tools: this.catalog.tools.length }, 'upstream connected');
      this.options.onCatalogChange(this.name);
      this.startHealthChecks(generation);
    } catch (err) {
      // Kept before closing: the close marks the connection down, and its owner reads why.
      if (generation === this.generation) this.lastFailure = err;
      await client.close().catch(() => {});
      if (generation !== this.generation || this.state === 'closed') return;
      this.client = undefined;
      this.scheduleReconnect(describe(err));
    }
  }

  /** A working connection broke: mark it down and reconnect. */
  private lost(reason: string): void {
    clearInterval(this.healthTimer);
    const client = this.client;
    this.client = undefined;
    void client?.close().catch(() => {});
    this.scheduleReconnect(reason);
  }

  private scheduleReconnect(reason: string): void {
    this.setState('down', reason);
    if (this.options.reconnect === false) {
      this.options.logger.info({ upstream: this.name, reason }, 'upstream connection ended');
      return;
    }
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    this.attempt++;
    this.options.logger.warn({ upstream: this.name, reason, retry_in_ms: delay }, 'upstream unavailable');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.connect(), delay);
    this.retryTimer.unref();
  }

  private startHealthChecks(generation: number): void {
    clearInterval(this.healthTimer);
    this.healthTimer = setInterval(() => {
      const client = this.client;
      if (!client || generation !== this.generation) return;
      client.ping({ timeout: PING_TIMEOUT_MS }).catch((err: unknown) => {
        if (generation === this.generation && this.state === 'ready') this.lost(`health check failed: ${describe(err)}`);
      });
    }, this.options.healthInterval() * 1000);
    this.healthTimer.unref();
  }

  /**
   * Progress and log notifications are taken off the transport as they arrive, in order, before
   * the SDK sees them: the SDK dispatches responses at once but notifications a tick later, so a
   * notification that arrives together with its response would find its request already gone.
   */
  private interceptNotifications(transport: Transport): void {
    const deliver = transport.onmessage;
    transport.onmessage = (message, extra) => {
      const m = message as { method?: string; id?: unknown; params?: Record<string, unknown> };
      if (m.method === 'notifications/progress' && m.id === undefined && typeof m.params?.progressToken === 'string') {
        const channel = this.channels.get(m.params.progressToken);
        if (channel) {
          channel.notify(m as UpstreamNotification);
          return;
        }
      }
      if (m.method === 'notifications/message' && m.id === undefined) {
        const channel = this.exclusiveChannel();
        if (channel) channel.notify(m as UpstreamNotification);
        else this.options.logger.debug({ upstream: this.name, log: m.params }, 'upstream log message');
        return;
      }
      deliver?.(message, extra);
    };
  }

  /** The upstream's requests to its client during a call go to that call's client (see exclusiveChannel). */
  private relayRequests(client: Client): void {
    const relay = async (method: string, params: Record<string, unknown> | undefined, signal: AbortSignal) => {
      const channel = this.exclusiveChannel();
      if (!channel?.request) {
        throw new McpError(
          ErrorCode.InvalidRequest,
          `${method} cannot reach a user: the gateway relays it only during a single call whose client accepts an event stream`,
        );
      }
      return channel.request(method, params ?? {}, signal);
    };
    client.setRequestHandler(CreateMessageRequestSchema, (request, extra) => relay(request.method, request.params, extra.signal) as never);
    client.setRequestHandler(ElicitRequestSchema, (request, extra) => relay(request.method, request.params, extra.signal) as never);
  }

  private registerListChanged(client: Client): void {
    const refresh = (what: keyof Catalog) => () => {
      this.listCatalog(client, what)
        .then((catalog) => {
          this.catalog = catalog;
          this.options.onCatalogChange(this.name);
        })
        .catch((err: unknown) => this.options.logger.warn({ upstream: this.name, err: describe(err) }, 'refreshing the catalog failed'));
    };
    client.setNotificationHandler(ToolListChangedNotificationSchema, refresh('tools'));
    client.setNotificationHandler(ResourceListChangedNotificationSchema, () => {
      refresh('resources')();
      refresh('resourceTemplates')();
    });
    client.setNotificationHandler(PromptListChangedNotificationSchema, refresh('prompts'));
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => this.options.onResourceUpdated?.(this.name, n.params.uri));
  }

  /** Lists everything the server offers (or one kind of it), following pagination cursors. */
  private async listCatalog(client: Client, only?: keyof Catalog): Promise<Catalog> {
    const caps = client.getServerCapabilities() ?? {};
    const next: Catalog = { ...this.catalog };
    const all = async <T>(method: string, key: string): Promise<T[]> => {
      const items: T[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < MAX_PAGES; page++) {
        const result = await client.request({ method, params: cursor ? { cursor } : {} }, PassThrough, { timeout: this.config.timeout * 1000 });
        items.push(...((result[key] as T[] | undefined) ?? []));
        cursor = typeof result.nextCursor === 'string' ? result.nextCursor : undefined;
        if (!cursor) break;
      }
      return items;
    };
    if ((!only || only === 'tools') && caps.tools) next.tools = await all<Tool>('tools/list', 'tools');
    if ((!only || only === 'resources') && caps.resources) next.resources = await all<Resource>('resources/list', 'resources');
    if ((!only || only === 'resourceTemplates') && caps.resources) {
      next.resourceTemplates = await all<ResourceTemplate>('resources/templates/list', 'resourceTemplates');
    }
    if ((!only || only === 'prompts') && caps.prompts) next.prompts = await all<Prompt>('prompts/list', 'prompts');
    return next;
  }
}

function describe(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!.slice(0, 300);
}
