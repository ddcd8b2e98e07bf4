import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ToolListChangedNotificationSchema,
  type Prompt,
  type Resource,
  type ResourceTemplate,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { UpstreamConfig } from '../config/schema.js';
import { keepAliveFetch } from './http-client.js';

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
  clientVersion: string;
}

export class UpstreamConnection {
  state: UpstreamState = 'connecting';
  lastError: string | undefined;
  catalog: Catalog = EMPTY_CATALOG;
  /** Set once the catalog has been listed at least once since start. */
  listedAt: number | undefined;

  private client: Client | undefined;
  private readonly http = keepAliveFetch();
  /** Our progress tokens → who wants that request's notifications. */
  private readonly listeners = new Map<string, (notification: UpstreamNotification) => void>();
  private tokens = 0;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private generation = 0;

  constructor(
    readonly config: UpstreamConfig,
    private readonly options: ConnectionOptions,
  ) {}

  get name(): string {
    return this.config.name;
  }

  start(): void {
    void this.connect();
  }

  /**
   * Sends a request over the shared session. Throws UpstreamUnavailableError when not connected.
   * With `onNotification`, the request carries a progress token of ours, and the upstream's
   * notifications for it (progress) are handed over as they arrive.
   */
  async request(
    method: string,
    params: Record<string, unknown> | undefined,
    options: { signal?: AbortSignal; onNotification?: (notification: UpstreamNotification) => void } = {},
  ): Promise<Record<string, unknown>> {
    const client = this.client;
    if (!client || this.state !== 'ready') {
      throw new UpstreamUnavailableError(this.lastError ?? (this.state === 'connecting' ? 'still connecting' : this.state));
    }
    const listener = options.onNotification;
    if (!listener) {
      return client.request({ method, params }, PassThrough, { signal: options.signal, timeout: this.config.timeout * 1000 });
    }
    const token = `gatehouse-${++this.tokens}`;
    this.listeners.set(token, listener);
    try {
      const meta = { ...((params?._meta as Record<string, unknown> | undefined) ?? {}), progressToken: token };
      return await client.request({ method, params: { ...params, _meta: meta } }, PassThrough, {
        signal: options.signal,
        timeout: this.config.timeout * 1000,
      });
    } finally {
      this.listeners.delete(token);
    }
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
      return new StreamableHTTPClientTransport(new URL(u.url), { requestInit: { headers }, fetch: this.http.fetch });
    }
    // Legacy SSE: the POSTs take requestInit; the event stream is opened by its own fetch.
    return new SSEClientTransport(new URL(u.url), {
      requestInit: { headers },
      fetch: this.http.fetch,
      eventSourceInit: {
        fetch: (url, init) => {
          const merged = new Headers(init?.headers);
          for (const [k, v] of Object.entries(headers)) merged.set(k, v);
          return fetch(url, { ...init, headers: merged });
        },
      },
    });
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    this.setState(this.attempt === 0 ? 'connecting' : 'down', this.lastError);
    const client = new Client({ name: 'gatehouse', version: this.options.clientVersion }, { capabilities: {} });
    client.onerror = (err) => this.options.logger.debug({ upstream: this.name, err: err.message }, 'upstream transport error');
    try {
      const transport = this.transport();
      await client.connect(transport, { timeout: CONNECT_TIMEOUT_MS });
      this.interceptProgress(transport);
      if (generation !== this.generation) {
        await client.close().catch(() => {});
        return;
      }
      this.client = client;
      client.onclose = () => {
        if (generation === this.generation && this.state !== 'closed') this.lost('the connection closed');
      };
      this.registerListChanged(client);
      this.catalog = await this.listCatalog(client);
      this.listedAt = Date.now();
      this.attempt = 0;
      this.setState('ready');
      this.options.logger.info({ upstream: this.name, tools: this.catalog.tools.length }, 'upstream connected');
      this.options.onCatalogChange(this.name);
      this.startHealthChecks(generation);
    } catch (err) {
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
   * Progress notifications are taken off the transport as they arrive, in order, before the SDK
   * sees them: the SDK dispatches responses at once but notifications a tick later, so a progress
   * notification that arrives together with its response would find its request already gone
   * (and be dropped with an "unknown token" error).
   */
  private interceptProgress(transport: Transport): void {
    const deliver = transport.onmessage;
    transport.onmessage = (message, extra) => {
      const m = message as { method?: string; params?: { progressToken?: unknown } };
      if (m.method === 'notifications/progress' && typeof m.params?.progressToken === 'string') {
        const listener = this.listeners.get(m.params.progressToken);
        if (listener) {
          listener(m as UpstreamNotification);
          return;
        }
      }
      deliver?.(message, extra);
    };
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
