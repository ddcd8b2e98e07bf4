import type { UpstreamConfig } from '../config/schema.js';
import { oauthUpstream, tokenSubject } from '../upstream-oauth/connections.js';
import type { UpstreamConnection } from '../upstreams/connection.js';
import type { Upstreams } from '../upstreams/upstreams.js';

/**
 * Resource subscriptions (resources/subscribe). A shared upstream connection is subscribed once per
 * resource, whoever asked; a user's own connection to an OAuth upstream, once per resource for that
 * user. Each notifications/resources/updated goes to the event streams (GET /mcp) of the subjects
 * subscribed through that connection. Subscriptions are held by the replica that took them: a
 * client's GET stream must reach the same replica as its subscribe (which it does with a sticky
 * load balancer, or a single replica).
 */
export class Subscriptions {
  /** `connection owner \0 upstream \0 uri` → subjects subscribed. */
  private readonly subscribers = new Map<string, Set<string>>();
  private readonly listeners = new Set<(subject: string, upstream: string, uri: string) => void>();

  constructor(upstreams: Upstreams) {
    upstreams.pool.onResourceUpdated((upstream, uri) => this.updated(key('', upstream, uri), upstream, uri));
    upstreams.personal.onResourceUpdated((upstream, uri, who) => this.updated(key(who, upstream, uri), upstream, uri));
  }

  async subscribe(subject: string, upstream: UpstreamConfig, connection: UpstreamConnection, uri: string, signal: AbortSignal): Promise<void> {
    const k = key(owner(upstream, subject), upstream.name, uri);
    let subjects = this.subscribers.get(k);
    if (!subjects) {
      await connection.request('resources/subscribe', { uri }, { signal });
      subjects = this.subscribers.get(k) ?? new Set();
      this.subscribers.set(k, subjects);
    }
    subjects.add(subject);
  }

  async unsubscribe(subject: string, upstream: UpstreamConfig, connection: UpstreamConnection, uri: string, signal: AbortSignal): Promise<void> {
    const k = key(owner(upstream, subject), upstream.name, uri);
    const subjects = this.subscribers.get(k);
    if (!subjects?.delete(subject) || subjects.size > 0) return;
    this.subscribers.delete(k);
    await connection.request('resources/unsubscribe', { uri }, { signal });
  }

  /** Registers a listener for updates a subject subscribed to; returns how to unregister it. */
  onUpdate(listener: (subject: string, upstream: string, uri: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private updated(k: string, upstream: string, uri: string): void {
    for (const subject of this.subscribers.get(k) ?? []) {
      for (const listener of this.listeners) listener(subject, upstream, uri);
    }
  }
}

/** Whose connection carries the subscription: '' for a shared one. */
function owner(upstream: UpstreamConfig, subject: string): string {
  return oauthUpstream(upstream) ? tokenSubject(upstream, subject) : '';
}

function key(owner: string, upstream: string, uri: string): string {
  return `${owner}\u0000${upstream}\u0000${uri}`;
}
