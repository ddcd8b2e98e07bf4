import { extractWWWAuthenticateParams } from '@modelcontextprotocol/sdk/client/auth.js';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Config, UpstreamConfig } from '../config/schema.js';
import type { UpstreamOAuthRepository } from '../store/upstream-oauth.js';
import { UpstreamConnection, UpstreamUnavailableError, type Catalog } from '../upstreams/connection.js';
import type { Fetch } from '../upstreams/http-client.js';
import { ConnectionRequiredError, SHARED_SUBJECT, UpstreamAuthError, type UpstreamOAuth } from './client.js';

/** A per-user connection nobody used for this long is closed. */
const IDLE_MS = 10 * 60 * 1000;
const SWEEP_MS = 60 * 1000;

interface Entry {
  connection: UpstreamConnection;
  /** The access token the connection currently sends. */
  token: { value: string | undefined };
  config: string;
  usedAt: number;
}

/** Whether the upstream is reached under an OAuth token: each user's own, or the operator's for everybody. */
export function oauthUpstream(upstream: UpstreamConfig): boolean {
  return upstream.auth_type === 'per_user_oauth' || upstream.auth_type === 'oauth';
}

/** Whose token a caller's requests to this upstream carry. */
export function tokenSubject(upstream: UpstreamConfig, subject: string): string {
  return upstream.auth_type === 'oauth' ? SHARED_SUBJECT : subject;
}

/**
 * The connections to OAuth upstreams (product §3.2, §3.3): one per (identity, upstream) for
 * `per_user_oauth` — every request carries that identity's own token, so upstream sessions are
 * never shared between users — and one for everybody for `auth_type: oauth`. Opened on a user's
 * first call, closed after ten idle minutes. Each upstream's catalog is also kept as last listed
 * (in the database too), so users who have not connected yet see its tools.
 */
export class UserConnections {
  private readonly entries = new Map<string, Entry>();
  private readonly opening = new Map<string, Promise<Entry>>();
  private readonly catalogs = new Map<string, { json: string; catalog: Catalog }>();
  private readonly catalogListeners = new Set<(upstream: string) => void>();
  private readonly updateListeners = new Set<(upstream: string, uri: string, subject: string) => void>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly saving = new Set<Promise<void>>();

  constructor(
    private readonly deps: {
      config: () => Config;
      oauth: UpstreamOAuth;
      repo: UpstreamOAuthRepository;
      clock: Clock;
      logger: Logger;
      clientVersion: string;
    },
  ) {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  /** Loads the catalogs listed before (by this process or another, before a restart). */
  async load(): Promise<void> {
    for (const { upstream, catalog } of await this.deps.repo.catalogs()) {
      if (!this.catalogs.has(upstream)) this.catalogs.set(upstream, { json: JSON.stringify(catalog), catalog: catalog as Catalog });
    }
  }

  /** What `subject` sees of the upstream: its own live connection's catalog, else the last one listed. */
  catalog(upstream: UpstreamConfig, subject: string): Catalog | undefined {
    const entry = this.entries.get(key(tokenSubject(upstream, subject), upstream.name));
    if (entry?.connection.state === 'ready' && entry.config === JSON.stringify(upstream)) return entry.connection.catalog;
    return this.catalogs.get(upstream.name)?.catalog;
  }

  /**
   * A ready connection of `subject` to `upstream` with a current token. Throws
   * ConnectionRequiredError when the identity must connect first, UpstreamAuthError or
   * UpstreamUnavailableError when the upstream cannot be used now.
   */
  async connection(upstream: UpstreamConfig, subject: string): Promise<UpstreamConnection> {
    const who = tokenSubject(upstream, subject);
    // Every call checks the stored connection (disconnected elsewhere? renewed?) and refreshes a token about to expire.
    const token = await this.deps.oauth.accessToken(who, upstream);
    const k = key(who, upstream.name);
    const configJson = JSON.stringify(upstream);
    let entry = this.entries.get(k);
    if (entry && (entry.config !== configJson || entry.connection.state === 'down' || entry.connection.state === 'closed')) {
      this.drop(k, entry);
      entry = undefined;
    }
    if (!entry) entry = await this.open(k, who, upstream, configJson, token);
    entry.token.value = token;
    entry.usedAt = this.deps.clock.now();
    return entry.connection;
  }

  private open(k: string, who: string, upstream: UpstreamConfig, configJson: string, token: string): Promise<Entry> {
    const pending = this.opening.get(k);
    if (pending) return pending;
    const work = (async () => {
      const holder = { value: token as string | undefined };
      const connection = new UpstreamConnection(upstream, {
        logger: this.deps.logger,
        healthInterval: () => this.deps.config().gateway.health_check_interval,
        onCatalogChange: () => this.listed(upstream.name, connection),
        onResourceUpdated: (name, uri) => {
          for (const listener of this.updateListeners) listener(name, uri, who);
        },
        clientVersion: this.deps.clientVersion,
        wrapFetch: (base) => this.authorized(base, who, upstream, holder),
        reconnect: false,
      });
      connection.start();
      await connection.settled();
      if (connection.state !== 'ready') {
        const { lastFailure: failure, lastError } = connection;
        void connection.close();
        if (failure instanceof ConnectionRequiredError || failure instanceof UpstreamAuthError) throw failure;
        throw new UpstreamUnavailableError(lastError ?? 'could not connect');
      }
      const entry: Entry = { connection, token: holder, config: configJson, usedAt: this.deps.clock.now() };
      this.entries.set(k, entry);
      return entry;
    })().finally(() => this.opening.delete(k));
    this.opening.set(k, work);
    return work;
  }

  /**
   * The HTTP client of one user's connection: sends the user's token; on a 401, refreshes (once,
   * whoever else is refreshing) and retries; a fresh token refused, or a 403 insufficient_scope,
   * ends in the user having to connect again.
   */
  private authorized(base: Fetch, who: string, upstream: UpstreamConfig, holder: { value: string | undefined }): Fetch {
    const oauth = this.deps.oauth;
    return async (input, init) => {
      const send = (token: string) => {
        const headers = new Headers(init?.headers);
        headers.set('authorization', `Bearer ${token}`);
        return base(input, { ...init, headers });
      };
      let token = holder.value ?? (await oauth.accessToken(who, upstream));
      let res = await send(token);
      if (res.status === 401) {
        await res.body?.cancel().catch(() => {});
        token = await oauth.afterRejection(who, upstream, token);
        holder.value = token;
        res = await send(token);
        if (res.status === 401) {
          await res.body?.cancel().catch(() => {});
          return oauth.rejected(who, upstream);
        }
      }
      if (res.status === 403) {
        const challenge = extractWWWAuthenticateParams(res);
        if (challenge.error === 'insufficient_scope') {
          await res.body?.cancel().catch(() => {});
          return oauth.stepUp(who, upstream, challenge.scope);
        }
      }
      return res;
    };
  }

  /** A connection listed its catalog: keep it as the upstream's (in the database too), for users not connected. */
  private listed(upstream: string, connection: UpstreamConnection): void {
    const json = JSON.stringify(connection.catalog);
    const notify = () => {
      for (const listener of this.catalogListeners) listener(upstream);
    };
    if (this.catalogs.get(upstream)?.json === json) return notify();
    this.catalogs.set(upstream, { json, catalog: connection.catalog });
    const saving = this.deps.repo
      .saveCatalog(upstream, connection.catalog, Math.floor(this.deps.clock.now() / 1000))
      .catch((err: unknown) => this.deps.logger.warn({ upstream, err }, 'saving the catalog failed'))
      .finally(() => {
        this.saving.delete(saving);
        notify();
      });
    this.saving.add(saving);
  }

  /** Opens the connection in the background (after the user connected); failures are only logged. */
  warm(name: string, subject: string): void {
    const upstream = this.deps.config().upstreams.find((u) => u.name === name);
    if (!upstream || !oauthUpstream(upstream)) return;
    this.connection(upstream, subject).catch((err: unknown) =>
      this.deps.logger.info({ upstream: name, err: err instanceof Error ? err.message : String(err) }, 'opening a new upstream connection failed'),
    );
  }

  /** Closes the connection of `subject` to `upstream` (after a disconnect). */
  async close(subject: string, upstream: string): Promise<void> {
    const k = key(subject, upstream);
    const entry = this.entries.get(k);
    if (entry) this.drop(k, entry);
  }

  /** Closes connections whose upstream left the configuration or changed. */
  sync(): void {
    const current = new Map(this.deps.config().upstreams.filter(oauthUpstream).map((u) => [u.name, JSON.stringify(u)]));
    for (const [k, entry] of this.entries) {
      if (current.get(entry.connection.name) !== entry.config) this.drop(k, entry);
    }
  }

  onCatalogChange(listener: (upstream: string) => void): () => void {
    this.catalogListeners.add(listener);
    return () => this.catalogListeners.delete(listener);
  }

  /** notifications/resources/updated from one user's connection, with that user. */
  onResourceUpdated(listener: (upstream: string, uri: string, subject: string) => void): () => void {
    this.updateListeners.add(listener);
    return () => this.updateListeners.delete(listener);
  }

  /** Open connections (one per identity that used the upstream lately). */
  size(): number {
    return this.entries.size;
  }

  /** Ready connections by upstream, for metrics. */
  readyByUpstream(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const { connection } of this.entries.values()) {
      if (connection.state === 'ready') counts.set(connection.config.name, (counts.get(connection.config.name) ?? 0) + 1);
    }
    return counts;
  }

  async closeAll(): Promise<void> {
    clearInterval(this.sweeper);
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((e) => e.connection.close()));
    await Promise.all(this.saving);
  }

  /** Closes connections idle for longer than IDLE_MS (run every minute). */
  sweep(): void {
    const now = this.deps.clock.now();
    for (const [k, entry] of this.entries) {
      if (now - entry.usedAt > IDLE_MS) this.drop(k, entry);
    }
  }

  private drop(k: string, entry: Entry): void {
    if (this.entries.get(k) === entry) this.entries.delete(k);
    void entry.connection.close();
  }
}

function key(subject: string, upstream: string): string {
  return `${subject}\u0000${upstream}`;
}
