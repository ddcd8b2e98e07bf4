import {
  discoverAuthorizationServerMetadata,
  discoverOAuthProtectedResourceMetadata,
  extractWWWAuthenticateParams,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { checkResourceAllowed, resourceUrlFromServerUrl } from '@modelcontextprotocol/sdk/shared/auth-utils.js';
import type { AuthorizationServerMetadata, OAuthProtectedResourceMetadata } from '@modelcontextprotocol/sdk/shared/auth.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import type * as oauth from 'oauth4webapi';
import { GuardedFetchError, type Fetch } from '../net/guarded-fetch.js';

/**
 * How the gateway finds out how to authorize against an upstream MCP server (MCP 2025-11-25
 * "Authorization", product §3.3): the upstream's 401 challenge (`resource_metadata`, `scope`), its
 * RFC 9728 protected resource metadata (the challenge's URL, else the path-inserted well-known URL,
 * else the root one), then RFC 8414 or OpenID Connect metadata of its first authorization server.
 * The MCP-specific URL orders come from the MCP SDK; the checks that protect the user are ours:
 * the metadata must describe this upstream, the issuer must be the server it was fetched from, and
 * the server must offer PKCE with S256.
 */
export interface UpstreamAuthorization {
  /** The resource indicator (RFC 8707) to send: the metadata's `resource` verbatim, else the upstream's URL. */
  resource: string;
  /** The authorization server's metadata, as oauth4webapi takes it. */
  server: oauth.AuthorizationServer & { client_id_metadata_document_supported?: boolean };
  /** Scopes to ask for when the operator configured none: the challenge's, else the resource's `scopes_supported`. */
  scopes: string[] | undefined;
}

export class DiscoveryError extends Error {
  override name = 'DiscoveryError';
}

export interface Challenge {
  resourceMetadataUrl?: URL | undefined;
  scope?: string | undefined;
  error?: string | undefined;
}

/**
 * Asks the upstream without credentials and reads its challenge. The upstream's URL is the
 * operator's, so these requests go out unguarded (`probeFetch`); what it answers is not trusted.
 * Some servers let `initialize` through without a token and challenge only the requests after it,
 * so a `tools/list` is tried when `initialize` draws no challenge.
 */
export async function probe(upstreamUrl: string, transport: 'http' | 'sse', probeFetch: Fetch): Promise<Challenge> {
  const attempts: RequestInit[] =
    transport === 'http'
      ? [
          rpcProbe('initialize', { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'gatehouse', version: '0' } }),
          rpcProbe('tools/list', {}),
        ]
      : [{ method: 'GET', headers: { accept: 'text/event-stream' } }];
  for (const init of attempts) {
    const res = await probeFetch(upstreamUrl, { ...init, signal: AbortSignal.timeout(5_000) });
    await res.body?.cancel().catch(() => {});
    if (res.status === 401 || res.status === 403) return extractWWWAuthenticateParams(res);
  }
  return {};
}

function rpcProbe(method: string, params: Record<string, unknown>): RequestInit {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method, params }),
  };
}

/** Everything needed to send a user to the upstream's authorization server. */
export async function discover(upstreamUrl: string, challenge: Challenge, guardedFetch: Fetch): Promise<UpstreamAuthorization> {
  let metadata: OAuthProtectedResourceMetadata | undefined;
  try {
    metadata = await discoverOAuthProtectedResourceMetadata(upstreamUrl, { resourceMetadataUrl: challenge.resourceMetadataUrl }, guardedFetch);
  } catch (err) {
    // A resource without RFC 9728 metadata is treated as its own authorization server (the MCP
    // 2025-03-26 rule); a document that exists but is unusable, or a URL the guard refused, is an error.
    if (err instanceof GuardedFetchError) throw new DiscoveryError(`protected resource metadata: ${err.message}`);
    if (!(err instanceof Error && /does not implement/.test(err.message))) {
      throw new DiscoveryError(`the protected resource metadata is not usable (${firstLine(err)})`);
    }
  }

  let resource = resourceUrlFromServerUrl(upstreamUrl).href;
  if (metadata) {
    if (!checkResourceAllowed({ requestedResource: upstreamUrl, configuredResource: metadata.resource })) {
      throw new DiscoveryError(`the protected resource metadata describes ${metadata.resource.slice(0, 200)}, not ${upstreamUrl}`);
    }
    // Sent exactly as published: a parser would add "/" to a pathless identifier.
    resource = metadata.resource;
  }
  const issuer = metadata?.authorization_servers?.[0] ?? new URL('/', upstreamUrl).href.replace(/\/$/, '');

  let server: AuthorizationServerMetadata | undefined;
  try {
    server = await discoverAuthorizationServerMetadata(issuer, { fetchFn: guardedFetch });
  } catch (err) {
    throw new DiscoveryError(`authorization server metadata of ${issuer.slice(0, 200)}: ${firstLine(err)}`);
  }
  if (!server) throw new DiscoveryError(`${issuer.slice(0, 200)} publishes no OAuth or OpenID Connect metadata`);
  // RFC 8414 §3.3: the issuer is the URL the metadata was derived from (a mix-up attack otherwise).
  if (trimSlash(server.issuer) !== trimSlash(issuer)) {
    throw new DiscoveryError(`the authorization server metadata names issuer ${server.issuer.slice(0, 200)}, not ${issuer.slice(0, 200)}`);
  }
  // MCP: clients MUST use PKCE with S256 and MUST refuse a server that does not advertise it.
  if (!server.code_challenge_methods_supported?.includes('S256')) {
    throw new DiscoveryError(`the authorization server ${server.issuer.slice(0, 200)} does not support PKCE with S256`);
  }
  if (server.response_types_supported && !server.response_types_supported.includes('code')) {
    throw new DiscoveryError(`the authorization server ${server.issuer.slice(0, 200)} does not support the authorization code flow`);
  }

  const scopes = challenge.scope?.split(' ').filter(Boolean) ?? metadata?.scopes_supported;
  return { resource, server: server as UpstreamAuthorization['server'], scopes: scopes && scopes.length > 0 ? scopes : undefined };
}

function trimSlash(url: string): string {
  return url.endsWith('/') ? url.slice(0, -1) : url;
}

function firstLine(err: unknown): string {
  if (err instanceof GuardedFetchError) return err.message;
  if (err && typeof err === 'object' && 'issues' in err) return 'the document does not have the expected shape';
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!.slice(0, 200);
}
