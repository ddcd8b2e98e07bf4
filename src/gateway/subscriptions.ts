import type { UpstreamPool } from '../upstreams/pool.js';

/**
 * Resource subscriptions (resources/subscribe). The upstream connection is shared, so the gateway
 * subscribes upstream once per resource, counts who asked, and hands each
 * notifications/resources/updated to the subscribers' event streams (GET /mcp). Subscriptions are
 * held by the replica that took them: a client's GET stream must reach the same replica as its
 * subscribe (which it does with a sticky load balancer, or a single replica).
 */
export class Subscriptions {
  /** `upstream \0 uri` → subjects subscribed. */
  private readonly subscribers = new Map<string, Set<string>>();
  private readonly listeners = new Set<(subject: string, upstream: string, uri: string) => void>();

  constructor(private readonly pool: UpstreamPool) {
    pool.onResourceUpdated((upstream, uri) => {
      for (const subject of this.subscribers.get(key(upstream, uri)) ?? []) {
        for (const listener of this.listeners) listener(subject, upstream, uri);
      }
    });
  }

  async subscribe(subject: string, upstream: string, uri: string, signal: AbortSignal): Promise<void> {
    const k = key(upstream, uri);
    let subjects = this.subscribers.get(k);
    if (!subjects) {
      await this.connection(upstream).request('resources/subscribe', { uri }, { signal });
      subjects = this.subscribers.get(k) ?? new Set();
      this.subscribers.set(k, subjects);
    }
    subjects.add(subject);
  }

  async unsubscribe(subject: string, upstream: string, uri: string, signal: AbortSignal): Promise<void> {
    const k = key(upstream, uri);
    const subjects = this.subscribers.get(k);
    if (!subjects?.delete(subject) || subjects.size > 0) return;
    this.subscribers.delete(k);
    await this.connection(upstream).request('resources/unsubscribe', { uri }, { signal });
  }

  /** Registers a listener for updates a subject subscribed to; returns how to unregister it. */
  onUpdate(listener: (subject: string, upstream: string, uri: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private connection(upstream: string) {
    const connection = this.pool.get(upstream);
    if (!connection) throw new Error(`no connection to ${upstream}`);
    return connection;
  }
}

function key(upstream: string, uri: string): string {
  return `${upstream}\u0000${uri}`;
}
