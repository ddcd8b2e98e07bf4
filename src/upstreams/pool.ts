import type { Logger } from 'pino';
import type { Config, UpstreamConfig } from '../config/schema.js';
import { UpstreamConnection, type UpstreamState } from './connection.js';

/**
 * The upstream connections, one per configured upstream that the gateway can reach on its own
 * (auth types `none` and `headers`), kept in step with the live configuration: a reload that adds,
 * changes or removes an upstream opens, replaces or closes its connection.
 */
export class UpstreamPool {
  private readonly connections = new Map<string, { config: string; connection: UpstreamConnection }>();
  private readonly catalogListeners = new Set<(upstream: string) => void>();
  private readonly updateListeners = new Set<(upstream: string, uri: string) => void>();

  constructor(
    private readonly config: () => Config,
    private readonly logger: Logger,
    private readonly clientVersion: string,
    private readonly onStateChange?: (upstream: string, state: UpstreamState) => void,
  ) {}

  /** Whether the gateway holds a shared connection for this upstream. */
  static shared(upstream: UpstreamConfig): boolean {
    return upstream.auth_type === 'none' || upstream.auth_type === 'headers';
  }

  /** Opens, replaces and closes connections to match the configuration. */
  sync(): void {
    const wanted = new Map(this.config().upstreams.filter(UpstreamPool.shared).map((u) => [u.name, u]));
    for (const [name, entry] of this.connections) {
      const next = wanted.get(name);
      if (!next || JSON.stringify(next) !== entry.config) {
        this.connections.delete(name);
        void entry.connection.close();
        this.notify(name);
      }
    }
    for (const [name, upstream] of wanted) {
      if (this.connections.has(name)) continue;
      const connection = new UpstreamConnection(upstream, {
        logger: this.logger,
        healthInterval: () => this.config().gateway.health_check_interval,
        onCatalogChange: (n) => this.notify(n),
        onResourceUpdated: (n, uri) => {
          for (const listener of this.updateListeners) listener(n, uri);
        },
        onStateChange: this.onStateChange,
        clientVersion: this.clientVersion,
      });
      this.connections.set(name, { config: JSON.stringify(upstream), connection });
      connection.start();
    }
  }

  get(name: string): UpstreamConnection | undefined {
    return this.connections.get(name)?.connection;
  }

  all(): UpstreamConnection[] {
    return [...this.connections.values()].map((e) => e.connection);
  }

  /** Registers a listener for catalog changes; returns how to unregister it. */
  onCatalogChange(listener: (upstream: string) => void): () => void {
    this.catalogListeners.add(listener);
    return () => this.catalogListeners.delete(listener);
  }

  /** Registers a listener for notifications/resources/updated from any upstream. */
  onResourceUpdated(listener: (upstream: string, uri: string) => void): () => void {
    this.updateListeners.add(listener);
    return () => this.updateListeners.delete(listener);
  }

  async close(): Promise<void> {
    const all = this.all();
    this.connections.clear();
    await Promise.all(all.map((c) => c.close()));
  }

  private notify(upstream: string): void {
    for (const listener of this.catalogListeners) {
      try {
        listener(upstream);
      } catch (err) {
        this.logger.warn({ err }, 'a catalog listener failed');
      }
    }
  }
}
