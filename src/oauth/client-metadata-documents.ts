import type { Clock } from '../clock.js';
import { guardedGet, GuardedFetchError } from '../net/guarded-fetch.js';
import { parseClientRegistration, type ClientMetadata } from './client-metadata.js';
import type { OAuthError } from './errors.js';
import type { RedirectUriPolicy } from './redirect-uri-policy.js';

/**
 * Client ID Metadata Documents (product §2.7; draft-ietf-oauth-client-id-metadata-document, MCP
 * 2025-11-25): a client_id that is an https URL with a path names a JSON document describing the
 * client. It is fetched through the SSRF guard (≤ 5 KiB, ≤ 5 s, no redirects), must name itself
 * as client_id, and is cached as its HTTP cache headers allow, at most 24 hours.
 */
export const MAX_DOCUMENT_BYTES = 5 * 1024;
const FETCH_TIMEOUT_MS = 5000;
const MAX_CACHE_SECONDS = 24 * 3600;
/** Freshness when the response says nothing about caching. */
const DEFAULT_CACHE_SECONDS = 300;
const CACHE_ENTRIES = 1000;

export class ClientMetadataDocumentError extends Error {
  override name = 'ClientMetadataDocumentError';
}

/** Whether `clientId` is in the form of a metadata document URL: https, with a path. */
export function isMetadataDocumentUrl(clientId: string): boolean {
  if (!clientId.startsWith('https://')) return false;
  try {
    const url = new URL(clientId);
    return url.pathname !== '/' && url.hash === '' && url.username === '' && url.password === '';
  } catch {
    return false;
  }
}

export interface DocumentSettings {
  allowPrivateNetwork: boolean;
  policy: RedirectUriPolicy;
}

export class ClientMetadataDocuments {
  private readonly cache = new Map<string, { metadata: ClientMetadata; freshUntil: number }>();

  constructor(private readonly clock: Clock) {}

  /** The client described at `url`, validated; throws ClientMetadataDocumentError with the reason. */
  async resolve(url: string, settings: DocumentSettings): Promise<ClientMetadata> {
    const cached = this.cache.get(url);
    if (cached && cached.freshUntil > this.clock.now()) return cached.metadata;

    let response;
    try {
      response = await guardedGet(url, {
        allowPrivateNetwork: settings.allowPrivateNetwork,
        maxBytes: MAX_DOCUMENT_BYTES,
        timeoutMs: FETCH_TIMEOUT_MS,
      });
    } catch (err) {
      throw new ClientMetadataDocumentError(err instanceof GuardedFetchError ? err.message : 'could not be fetched');
    }
    if (response.status !== 200) throw new ClientMetadataDocumentError(`answered with HTTP ${response.status}`);
    let doc: unknown;
    try {
      doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(response.body));
    } catch {
      throw new ClientMetadataDocumentError('is not a JSON document');
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new ClientMetadataDocumentError('is not a JSON object');
    const fields = doc as Record<string, unknown>;
    if (fields.client_id !== url) throw new ClientMetadataDocumentError('does not name its own URL as client_id');
    // A document is public: a shared secret in it would be no secret, and we register public clients only.
    if ('client_secret' in fields || 'client_secret_expires_at' in fields) {
      throw new ClientMetadataDocumentError('must not contain a client secret');
    }
    let metadata: ClientMetadata;
    try {
      metadata = parseClientRegistration(doc, settings.policy);
    } catch (err) {
      throw new ClientMetadataDocumentError((err as OAuthError).description ?? 'has invalid metadata');
    }

    const seconds = freshness(response.headers['cache-control'], response.headers.expires, this.clock.now());
    if (seconds > 0) {
      if (this.cache.size >= CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(url, { metadata, freshUntil: this.clock.now() + seconds * 1000 });
    } else {
      this.cache.delete(url);
    }
    return metadata;
  }
}

/** Seconds a response may be reused (RFC 9111 max-age / no-store / no-cache / Expires), capped at 24 h. */
export function freshness(cacheControl: string | undefined, expires: string | undefined, nowMs: number): number {
  const directives = (cacheControl ?? '').toLowerCase().split(',').map((d) => d.trim());
  if (directives.some((d) => d === 'no-store' || d === 'no-cache')) return 0;
  const maxAge = directives.map((d) => /^max-age=(\d+)$/.exec(d)?.[1]).find((v) => v !== undefined);
  if (maxAge !== undefined) return Math.min(Number(maxAge), MAX_CACHE_SECONDS);
  if (expires) {
    const at = Date.parse(expires);
    return Number.isNaN(at) ? 0 : Math.max(0, Math.min(Math.floor((at - nowMs) / 1000), MAX_CACHE_SECONDS));
  }
  return DEFAULT_CACHE_SECONDS;
}
