import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * Outbound GETs to URLs the gateway learned from someone else (a client's metadata document, an
 * upstream's OAuth metadata): the SSRF guard. By default only https to public addresses; the
 * address is checked after DNS resolution, on the address actually connected to (so a name that
 * resolves to 127.0.0.1, or re-resolves differently, is caught); redirects are not followed; the
 * body and the time are bounded.
 */
export interface GuardOptions {
  /** Also allow http, and loopback/private/link-local addresses (tests, closed networks). */
  allowPrivateNetwork?: boolean;
  /** Hosts allowed whatever their address (operator-configured). */
  allowedHosts?: readonly string[];
  maxBytes: number;
  timeoutMs: number;
}

export class GuardedFetchError extends Error {
  override name = 'GuardedFetchError';
}

export interface GuardedResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Addresses that are not on the public Internet (IANA special-purpose registries). */
const NON_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  NON_PUBLIC.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  // IPv4-compatible addresses (::a.b.c.d), deprecated by RFC 4291 §2.5.5.1: never a public destination.
  ['::', 96],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001::', 23],
  ['2001:db8::', 32],
  // Documentation, like 2001:db8::/32 (RFC 9637).
  ['3fff::', 20],
  ['fc00::', 7],
  ['fe80::', 10],
  // Site-local, deprecated by RFC 3879 but still routed inside some networks.
  ['fec0::', 10],
  ['ff00::', 8],
] as const) {
  NON_PUBLIC.addSubnet(net, prefix, 'ipv6');
}

/**
 * The RFC 5952 text of an IPv6 address, as the WHATWG URL parser writes it (lower case, zeros
 * compressed, embedded IPv4 in hex). The patterns below are textual, so an address spelt out in
 * full (64:ff9b:0:0:0:0:a00:1 is 10.0.0.1 through NAT64) must be brought to this form first.
 * Undefined for what the parser refuses, such as an address with a zone (fe80::1%eth0).
 */
function canonicalIpv6(address: string): string | undefined {
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

/** IPv4 embedded in IPv4-mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::/96) or 6to4 (2002::/16) forms. */
function embeddedIpv4(address: string): string | undefined {
  const lower = address.toLowerCase();
  const mapped = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (mapped) return mapped[1];
  const hex = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hex) {
    const hi = Number.parseInt(hex[1]!, 16);
    const lo = Number.parseInt(hex[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  const sixToFour = /^2002:([0-9a-f]{1,4}):([0-9a-f]{1,4}):/.exec(lower);
  if (sixToFour) {
    const hi = Number.parseInt(sixToFour[1]!, 16);
    const lo = Number.parseInt(sixToFour[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return undefined;
}

export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  if (family === 4) return !NON_PUBLIC.check(address, 'ipv4');
  const canonical = canonicalIpv6(address);
  if (canonical === undefined) return false;
  const v4 = embeddedIpv4(canonical);
  if (v4 !== undefined) return !NON_PUBLIC.check(v4, 'ipv4');
  return !NON_PUBLIC.check(canonical, 'ipv6') && !/^(::ffff:|64:ff9b::|2002:)/i.test(canonical);
}

/** Fetches `url` (GET) within the guard's limits; throws GuardedFetchError with a reason otherwise. */
export function guardedGet(url: string, options: GuardOptions, accept = 'application/json'): Promise<GuardedResponse> {
  return guardedRequest(url, { method: 'GET', headers: { accept } }, options);
}

/**
 * A `fetch` for libraries (oauth4webapi's customFetch) that keeps every request inside the guard:
 * string bodies only, no redirects followed (a 3xx is an error), bounded size and time.
 */
export type Fetch = (url: string | URL, init?: RequestInit) => Promise<Response>;

export function guardedFetch(options: GuardOptions): Fetch {
  return async (url, init) => {
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((value, name) => {
      headers[name] = value;
    });
    const body = init?.body;
    if (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof URLSearchParams)) {
      throw new GuardedFetchError('only string and form bodies are sent');
    }
    if (body instanceof URLSearchParams) headers['content-type'] ??= 'application/x-www-form-urlencoded;charset=UTF-8';
    const res = await guardedRequest(String(url), { method: init?.method ?? 'GET', headers, body: body?.toString() }, options);
    const out = new Headers();
    for (const [name, value] of Object.entries(res.headers)) if (value !== undefined) out.set(name, Array.isArray(value) ? value.join(', ') : value);
    return new Response(res.status === 204 || res.status === 304 ? null : res.body, { status: res.status, headers: out });
  };
}

/** One request within the guard's limits. */
export async function guardedRequest(
  url: string,
  request: { method: string; headers: Record<string, string>; body?: string | undefined },
  options: GuardOptions,
): Promise<GuardedResponse> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new GuardedFetchError('not a valid URL');
  }
  const privateOk = options.allowPrivateNetwork === true;
  const hostAllowed = options.allowedHosts?.includes(target.hostname) === true;
  if (target.protocol !== 'https:' && !(target.protocol === 'http:' && (privateOk || hostAllowed))) {
    throw new GuardedFetchError('only https URLs are fetched');
  }
  if (target.username || target.password) throw new GuardedFetchError('URLs with credentials are not fetched');
  const literal = target.hostname.replace(/^\[|\]$/g, '');
  if (isIP(literal) && !privateOk && !hostAllowed && !isPublicAddress(literal)) {
    throw new GuardedFetchError('the address is not public');
  }

  // Checks every address a name resolves to, and connects only to a checked one.
  const lookup: LookupFunction = (hostname, lookupOptions, callback) => {
    dnsLookup(hostname, { ...lookupOptions, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      const usable = privateOk || hostAllowed ? addresses : addresses.filter((a) => isPublicAddress(a.address));
      if (usable.length === 0) {
        return callback(new GuardedFetchError(`${hostname} does not resolve to a public address`), '', 0);
      }
      if (lookupOptions.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, usable);
      callback(null, usable[0]!.address, usable[0]!.family);
    });
  };

  const client = target.protocol === 'https:' ? https : http;
  return new Promise<GuardedResponse>((resolve, reject) => {
    const req = client.request(
      target,
      {
        method: request.method,
        headers: { 'user-agent': 'Gatehouse', ...request.headers },
        lookup,
        agent: false,
        signal: AbortSignal.timeout(options.timeoutMs),
      },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400) {
          res.destroy();
          reject(new GuardedFetchError(`answered with a redirect (${status}); redirects are not followed`));
          return;
        }
        const declared = Number(res.headers['content-length'] ?? 0);
        if (declared > options.maxBytes) {
          res.destroy();
          reject(new GuardedFetchError(`the document is larger than ${options.maxBytes} bytes`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.maxBytes) {
            res.destroy();
            reject(new GuardedFetchError(`the document is larger than ${options.maxBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve({ status, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', (err) => reject(new GuardedFetchError(describe(err))));
      },
    );
    req.on('error', (err) => reject(err instanceof GuardedFetchError ? err : new GuardedFetchError(describe(err))));
    req.end(request.body);
  });
}

function describe(err: Error): string {
  if (err.name === 'AbortError' || err.name === 'TimeoutError') return 'timed out';
  const code = (err as NodeJS.ErrnoException).code;
  return code ? `could not be fetched (${code})` : 'could not be fetched';
}
