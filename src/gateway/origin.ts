import type { FastifyRequest } from 'fastify';
import { isLoopbackHost } from '../oauth/redirect-uri-policy.js';

/**
 * DNS-rebinding and cross-site protection (MCP transports, 2025-11-25: servers MUST validate the
 * Origin header and answer 403 to an invalid one). A page on evil.example whose name is made to
 * resolve to 127.0.0.1 reaches a gateway on this machine with `Host: evil.example` and
 * `Origin: http://evil.example`:
 * - an Origin is allowed when it is the gateway's own, one listed in `gateway.allowed_origins`, or
 *   a loopback origin while the gateway itself is on loopback (a local browser-based client);
 * - a gateway whose issuer is on loopback answers only requests addressed to a loopback Host.
 * Requests without Origin (every non-browser client) pass the first rule.
 */
let parsed: { issuer: string; url: URL } | undefined;

export function originRefusal(request: FastifyRequest, issuer: string, allowedOrigins: readonly string[]): string | undefined {
  if (parsed?.issuer !== issuer) parsed = { issuer, url: new URL(issuer) };
  const own = parsed.url;
  const local = isLoopbackHost(own.hostname);
  if (local) {
    if (!loopbackHostHeader(request.headers.host)) return 'the Host header must name this gateway';
  }
  const origin = request.headers.origin;
  if (origin === undefined) return undefined;
  if (origin === own.origin || allowedOrigins.includes(origin)) return undefined;
  try {
    if (local && isLoopbackHost(new URL(origin).hostname)) return undefined;
  } catch {
    // fall through: a malformed Origin is refused
  }
  return 'requests from this origin are not allowed';
}

/** Whether a Host header names a loopback host (any port). */
function loopbackHostHeader(host: string | undefined): boolean {
  if (!host) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':', 1)[0]!;
  return isLoopbackHost(name.toLowerCase());
}
