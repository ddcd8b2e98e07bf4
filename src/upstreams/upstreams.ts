import type { ServerCapabilities } from '@modelcontextprotocol/sdk/types.js';
import type { UpstreamConfig } from '../config/schema.js';
import { oauthUpstream, type UserConnections } from '../upstream-oauth/connections.js';
import { UpstreamUnavailableError, type Catalog, type UpstreamConnection } from './connection.js';
import type { UpstreamPool } from './pool.js';

/**
 * Every upstream, as a caller reaches it: shared connections (auth `none`, `headers`) from the
 * pool, OAuth upstreams through the caller's own connection (or the operator's, for `oauth`).
 */
export class Upstreams {
  constructor(
    readonly pool: UpstreamPool,
    readonly personal: UserConnections,
  ) {}

  /** The catalog `subject` sees of this upstream, if the gateway has one. */
  catalog(upstream: UpstreamConfig, subject: string): Catalog | undefined {
    if (oauthUpstream(upstream)) return this.personal.catalog(upstream, subject);
    return this.pool.get(upstream.name)?.catalog;
  }

  /** What the upstream offers, as far as known without connecting. */
  capabilities(upstream: UpstreamConfig): ServerCapabilities {
    return oauthUpstream(upstream) ? {} : (this.pool.get(upstream.name)?.capabilities() ?? {});
  }

  /** The connection to send `subject`'s request over (opening the user's own if needed). */
  async connection(upstream: UpstreamConfig, subject: string): Promise<UpstreamConnection> {
    if (oauthUpstream(upstream)) return this.personal.connection(upstream, subject);
    const connection = this.pool.get(upstream.name);
    if (!connection) throw new UpstreamUnavailableError(`the MCP server "${upstream.name}" is not connected`);
    return connection;
  }

  onCatalogChange(listener: (upstream: string) => void): () => void {
    const a = this.pool.onCatalogChange(listener);
    const b = this.personal.onCatalogChange(listener);
    return () => {
      a();
      b();
    };
  }

  sync(): void {
    this.pool.sync();
    this.personal.sync();
  }

  async close(): Promise<void> {
    await Promise.all([this.pool.close(), this.personal.closeAll()]);
  }
}
