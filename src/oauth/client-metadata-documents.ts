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

/**
 * A character the URL parser would drop or rewrite (whitespace, controls, non-ASCII, `\` read as
 * `/`), or a fragment: the URL fetched would not be the client_id the document must name.
 */
const UNSAFE_CHARACTER = /[^\x21-\x7e]|[\\#]/;
/** A `.` or `..` path segment, also percent-encoded, which the URL parser resolves away. */
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

/**
 * Whether `clientId` is in the form of a metadata document URL (draft §3): https, with a path,
 * without a fragment, user information, or single-dot or double-dot path segments.
 */
export function isMetadataDocumentUrl(clientId: string): boolean {
  if (!clientId.startsWith('https://') || UNSAFE_CHARACTER.test(clientId)) return false;
  let url: URL;
  try {
    url = new URL(clientId);
  } catch {
    return false;
  }
  if (url.pathname === '/' || url.username !== '' || url.password !== '') return false;
  // The path as written, before the parser resolves dot segments (https://host/a/../client.json
  // would otherwise fetch /client.json).
  const rest = clientId.slice('https://'.length);
  const path = rest.slice(rest.indexOf('/')).split('?')[0]!;
  return !path.split('/').some((segment) => DOT_SEGMENT.test(segment));
}

export interface DocumentSettings {
  allowPrivateNetwork: boolean;
  policy: RedirectUriPolicy;
}

interface CachedDocument {
  metadata: ClientMetadata;
  /** Whether the guard allowed private networks when this copy was fetched. */
  privateNetwork: boolean;
  freshUntil: number;
}

export class ClientMetadataDocuments {
  private readonly cache = new Map<string, CachedDocument>();

  constructor(private readonly clock: Clock) {}

  /** The client described at `url`, validated; throws ClientMetadataDocumentError with the reason. */
  async resolve(url: string, settings: DocumentSettings): Promise<ClientMetadata> {
    const cached = this.cache.get(url);
    // A copy the guard let through only because private networks were allowed is not reused once
    // the operator no longer allows them (a reload): fetched again, it meets the guard as it is now.
    if (cached && cached.freshUntil > this.clock.now() && (settings.allowPrivateNetwork || !cached.privateNetwork)) {
      return cached.metadata;
    }

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

    const { 'cache-control': cacheControl, expires, date, age } = response.headers;
    const seconds = freshness(cacheControl, expires, this.clock.now(), { date, age });
    // Re-inserted, not updated in place, so that the oldest entry is the first one evicted.
    this.cache.delete(url);
    if (seconds > 0) {
      if (this.cache.size >= CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(url, { metadata, privateNetwork: settings.allowPrivateNetwork, freshUntil: this.clock.now() + seconds * 1000 });
    }
    return metadata;
  }
}

/**
 * Seconds a response may be reused (RFC 9111 max-age / no-store / no-cache / Expires), less the
 * time it already spent in caches on the way (the Age header, §4.2.3), capped at 24 h. `date` and
 * `age` are the response's Date and Age headers.
 */
export function freshness(
  cacheControl: string | undefined,
  expires: string | undefined,
  nowMs: number,
  received: { date?: string | undefined; age?: string | undefined } = {},
): number {
  const directives = (cacheControl ?? '').toLowerCase().split(',').map((d) => d.trim());
  if (directives.some((d) => d === 'no-store' || d === 'no-cache')) return 0;
  const maxAge = directives.find((d) => /^max-age\s*=/.test(d));
  let lifetime: number;
  if (maxAge !== undefined) {
    // §5.2: the argument may be quoted; §4.2.1: an invalid one makes the response stale.
    const value = /^max-age\s*=\s*"?(\d+)"?$/.exec(maxAge)?.[1];
    if (value === undefined) return 0;
    lifetime = Number(value);
  } else if (expires !== undefined) {
    // §4.2.1: Expires minus Date, so that a skew between the two clocks does not matter; an
    // invalid date (such as "0") is in the past (§5.3).
    const at = Date.parse(expires);
    const sent = received.date === undefined ? Number.NaN : Date.parse(received.date);
    if (Number.isNaN(at)) return 0;
    lifetime = Math.floor((at - (Number.isNaN(sent) ? nowMs : sent)) / 1000);
  } else {
    return DEFAULT_CACHE_SECONDS;
  }
  // §5.1: Age is a non-negative integer; anything else is ignored.
  const age = received.age !== undefined && /^\d+$/.test(received.age.trim()) ? Number(received.age.trim()) : 0;
  return Math.max(0, Math.min(lifetime - age, MAX_CACHE_SECONDS));
}
