/**
 * Which redirect URIs a client may register and be sent to (product §2.6).
 *
 * OAuth 2.1 §2.3.1 / RFC 8252 and the MCP authorization spec: redirect URIs are loopback or https;
 * native apps may use private-use schemes (Cursor registers `cursor://anysphere.cursor-mcp/...`).
 * Everything not explicitly allowed is refused.
 */

export const MAX_REDIRECT_URI_LENGTH = 2048;

export interface RedirectUriPolicy {
  /** Private-use schemes allowed for native clients, lower case, without "://". */
  privateSchemes: readonly string[];
  /** When set, remote (non-loopback) https URIs must be one of these, exactly. */
  remoteHttpsAllowlist?: readonly string[] | undefined;
}

export type RedirectUriKind = 'loopback' | 'https' | 'private-use';

export type RedirectUriVerdict =
  | { allowed: true; kind: RedirectUriKind; url: URL }
  | { allowed: false; reason: string };

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Schemes that execute or read locally: never a redirect target, whatever the configuration. */
const FORBIDDEN_SCHEMES = new Set(['javascript:', 'data:', 'file:', 'blob:', 'vbscript:', 'about:', 'filesystem:']);

/**
 * A URI must be printable ASCII without spaces or backslashes. The WHATWG URL parser silently
 * strips tabs, newlines and surrounding spaces and reads `\` as `/`, so a URI that passed a check
 * on the parsed form could differ from the string stored and compared later.
 */
const UNSAFE_CHARACTER = /[^\x21-\x7e]|\\/;

/** `scheme://userinfo@host`: RFC 3986 userinfo in the authority (even empty). */
const HAS_USERINFO = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i;

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname);
}

/** Decides whether `uri` may be registered (and, at authorization time, used). */
export function checkRedirectUri(uri: string, policy: RedirectUriPolicy): RedirectUriVerdict {
  if (uri.length === 0) return refuse('must not be empty');
  if (uri.length > MAX_REDIRECT_URI_LENGTH) return refuse(`must be at most ${MAX_REDIRECT_URI_LENGTH} characters`);
  if (UNSAFE_CHARACTER.test(uri)) {
    return refuse('contains a character not allowed here (whitespace, control, non-ASCII or backslash)');
  }
  // RFC 6749 §3.1.2: the redirection endpoint URI MUST NOT include a fragment component.
  if (uri.includes('#')) return refuse('must not contain a fragment (#)');

  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return refuse('is not an absolute URI');
  }
  if (FORBIDDEN_SCHEMES.has(url.protocol)) return refuse(`the ${url.protocol} scheme is never allowed`);
  if (HAS_USERINFO.test(uri) || url.username !== '' || url.password !== '') {
    return refuse('must not contain user information (user@host)');
  }

  if (url.protocol === 'http:' || url.protocol === 'https:') {
    const loopback = isLoopbackHost(url.hostname);
    if (loopback) return { allowed: true, kind: 'loopback', url };
    if (url.protocol === 'http:') {
      return refuse('plain http is allowed only on localhost, 127.0.0.1 or [::1]; use https');
    }
    const allowlist = policy.remoteHttpsAllowlist;
    if (allowlist && !allowlist.includes(uri)) {
      return refuse("is not on this gateway's list of allowed redirect URIs");
    }
    return { allowed: true, kind: 'https', url };
  }

  const scheme = url.protocol.slice(0, -1);
  if (!policy.privateSchemes.includes(scheme)) {
    const allowed = policy.privateSchemes.length > 0 ? ` (allowed: ${policy.privateSchemes.join(', ')})` : '';
    return refuse(`the scheme "${scheme}" is not an allowed private-use scheme${allowed}`);
  }
  // Product §2.6: private-use redirect URIs carry an authority (cursor://anysphere.cursor-mcp/...),
  // which is what the consent page shows the user as the destination.
  if (!uri.toLowerCase().startsWith(`${scheme}://`) || url.host === '') {
    return refuse(`a ${scheme}: redirect URI needs an authority, as in ${scheme}://app.example/callback`);
  }
  return { allowed: true, kind: 'private-use', url };
}

function refuse(reason: string): RedirectUriVerdict {
  return { allowed: false, reason };
}

/**
 * Finds the registered redirect URI that `requested` matches (product §2.6): the same string, or
 * for loopback URIs the same scheme, host, path and query on any port (RFC 8252 §7.3: native apps
 * listen on whatever port is free when the request is made). Returns the requested URI when it
 * matches, undefined otherwise.
 */
export function matchRedirectUri(registered: readonly string[], requested: string): string | undefined {
  if (registered.includes(requested)) return requested;
  let want: URL;
  try {
    want = new URL(requested);
  } catch {
    return undefined;
  }
  if ((want.protocol !== 'http:' && want.protocol !== 'https:') || !isLoopbackHost(want.hostname)) return undefined;
  if (requested.includes('#') || UNSAFE_CHARACTER.test(requested) || HAS_USERINFO.test(requested)) return undefined;
  for (const candidate of registered) {
    let have: URL;
    try {
      have = new URL(candidate);
    } catch {
      continue;
    }
    if (
      have.protocol === want.protocol &&
      have.hostname === want.hostname &&
      have.pathname === want.pathname &&
      have.search === want.search
    ) {
      return requested;
    }
  }
  return undefined;
}
