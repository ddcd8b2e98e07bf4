import type { Config } from '../config/schema.js';

/**
 * The resources tokens can be issued for (RFC 8707): the gateway's aggregate MCP endpoint and one
 * per configured upstream. A token's audience is exactly one of these URLs.
 */
export function mcpResource(issuer: string, upstream?: string): string {
  return upstream === undefined ? `${issuer}/mcp` : `${issuer}/mcp/${upstream}`;
}

/** The upstream a resource is for (undefined for the aggregate endpoint), or null if it is none of ours. */
export function resourceUpstream(resource: string, issuer: string, config: Config): string | undefined | null {
  if (resource === mcpResource(issuer)) return undefined;
  const prefix = `${mcpResource(issuer)}/`;
  if (!resource.startsWith(prefix)) return null;
  const name = resource.slice(prefix.length);
  return config.upstreams.some((u) => u.name === name) ? name : null;
}
