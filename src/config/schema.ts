import { z } from 'zod';

/**
 * The configuration file's schema. Objects are strict: a misspelt key is an error that names it,
 * not a setting silently ignored. Nested sections use `prefault` so that their own defaults apply
 * when the section is absent (zod 4's `default` would return the literal value unparsed).
 */

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const DURATION_EXPECTED = 'expected a duration: whole seconds, or a number followed by s, m, h or d ("15m", "30d")';

/** Seconds, written as a whole number of seconds or as `30s`, `15m`, `12h`, `30d`. */
export const duration = z
  .union([
    z.number().int().min(0),
    z.string().regex(/^\d+\s*[smhd]$/, DURATION_EXPECTED),
  ], { error: DURATION_EXPECTED })
  .transform((v) => {
    if (typeof v === 'number') return v;
    const unit = v.slice(-1);
    return Number.parseInt(v, 10) * (DURATION_UNITS[unit] ?? 1);
  });

const port = z.union([
  z.number().int().min(0).max(65535),
  z
    .string()
    .regex(/^\d{1,5}$/, 'expected a port number')
    .transform(Number)
    .pipe(z.number().int().min(0).max(65535)),
], { error: 'expected a port number from 0 to 65535' });

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}

const httpUrl = z.string().refine(isHttpUrl, 'expected an absolute http:// or https:// URL');

/**
 * The issuer. RFC 8414 §2: https (http tolerated for local use), no query, no fragment. A trailing
 * slash is dropped here, once, so that the issuer string is the same byte for byte everywhere
 * (metadata, `iss` parameters, JWTs); trailing-slash drift breaks clients that compare them.
 */
const publicUrl = httpUrl
  .refine((v) => !v.includes('?') && !v.includes('#'), 'must not contain a query or fragment')
  .transform((v) => v.replace(/\/+$/, ''));

const postgresUrl = z
  .string()
  .regex(/^postgres(ql)?:\/\//, 'expected a postgres:// or postgresql:// connection URL');

/** 32 bytes for AES-256-GCM, as 64 hex digits or base64/base64url. */
export const encryptionKey = z.string().refine((v) => {
  if (/^[0-9a-fA-F]{64}$/.test(v)) return true;
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(v)) return false;
  return Buffer.from(v, 'base64').length === 32;
}, 'expected 32 bytes written as 64 hex digits or as base64');

const rateLimit = z.strictObject({
  /** Requests allowed per window and address; 0 switches the limit off. */
  max: z.number().int().min(0),
  window: duration.pipe(z.number().int().min(1)),
});

/** A limit per address, and optionally a second one per client_id over the same window. */
const clientRateLimit = rateLimit.extend({
  per_client: z.number().int().min(0).optional(),
});

const privateScheme = z
  .string()
  .regex(/^[a-z][a-z0-9+.-]*$/, 'expected a URI scheme name in lower case, without "://"')
  .refine(
    (s) => !['http', 'https', 'javascript', 'data', 'file', 'blob', 'vbscript', 'about'].includes(s),
    'this scheme can never be a private-use redirect scheme',
  );

const serverSchema = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: port.default(8787),
  /** Defaults to http://<host>:<port> once listening; set it whenever clients reach us another way. */
  public_url: publicUrl.optional(),
  /** Fastify's trustProxy: false, true, or the proxy addresses/CIDRs whose X-Forwarded-For counts. */
  trust_proxy: z
    .union([z.boolean(), z.array(z.string().min(1))], { error: 'expected true, false or a list of proxy addresses' })
    .default(false),
});

const storageSchema = z.strictObject({
  /** Directory for the SQLite file and the generated key file. Default ./data. */
  data_dir: z.string().min(1).optional(),
  /** SQLite database file. Default <data_dir>/gatehouse.db. */
  sqlite: z.string().min(1).optional(),
  /** PostgreSQL connection URL; when set, SQLite is not used. */
  postgres: postgresUrl.optional(),
});

const oauthServerSchema = z.strictObject({
  enabled: z.union([z.literal('auto'), z.boolean()], { error: 'expected "auto", true or false' }).default('auto'),
  access_token_ttl: duration.pipe(z.number().int().min(60).max(86400)).default(900),
  allowed_private_schemes: z.array(privateScheme).default(['cursor', 'vscode']),
  /** When set, remote (non-loopback) https redirect URIs must be one of these, exactly. */
  redirect_uri_allowlist: z.array(httpUrl).optional(),
  /** Registrations never used in a successful authorization are removed after this long. */
  unused_client_ttl: duration.pipe(z.number().int().min(60)).default(30 * 86400),
  /** A refresh token expires this long after it was issued (each refresh issues a new one). */
  refresh_token_ttl: duration.pipe(z.number().int().min(300)).default(30 * 86400),
  client_metadata_documents: z
    .strictObject({
      /** Accept https client_id URLs (Client ID Metadata Documents). */
      enabled: z.boolean().default(true),
      /**
       * Also fetch documents over http and from loopback and private addresses. Off by default:
       * the SSRF guard admits only https on public addresses. For tests and closed networks.
       */
      allow_private_network: z.boolean().default(false),
    })
    .prefault({}),
  rate_limits: z
    .strictObject({
      register: rateLimit.default({ max: 60, window: 60 }),
      authorize: clientRateLimit.default({ max: 60, window: 60, per_client: 300 }),
      token: clientRateLimit.default({ max: 300, window: 60, per_client: 600 }),
    })
    .prefault({}),
});

const upstreamName = z
  .string()
  .min(1)
  .max(32, 'must be at most 32 characters')
  .regex(/^[a-z0-9_]+$/, 'must contain only a-z, 0-9 and _');

const upstreamOauth = z.strictObject({
  client_id: z.string().min(1).nullable().default(null),
  client_secret: z.string().min(1).nullable().default(null),
  scopes: z.array(z.string().min(1)).default([]),
});

const upstreamCommon = {
  name: upstreamName,
  auth_type: z.enum(['none', 'headers', 'oauth', 'per_user_oauth']),
  headers: z.record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'expected an HTTP header name'), z.string()).optional(),
  oauth: upstreamOauth.optional(),
  tools_to_execute: z.array(z.string().min(1)).default(['*']),
  /** How long one call may take before it is cancelled upstream and fails. */
  timeout: duration.pipe(z.number().int().min(1).max(3600)).default(60),
};

const remoteUpstream = <T extends 'http' | 'sse'>(transport: T) =>
  z.strictObject({ ...upstreamCommon, transport: z.literal(transport), url: httpUrl });

const stdioUpstream = z.strictObject({
  ...upstreamCommon,
  transport: z.literal('stdio'),
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  env: z.record(z.string(), z.string()).optional(),
  cwd: z.string().min(1).optional(),
});

const upstreamSchema = z
  .discriminatedUnion('transport', [remoteUpstream('http'), remoteUpstream('sse'), stdioUpstream], {
    error: (issue) =>
      issue.code === 'invalid_union' ? 'expected transport to be one of "http", "sse", "stdio"' : undefined,
  })
  .superRefine((u, ctx) => {
    if (u.auth_type === 'headers' && (!u.headers || Object.keys(u.headers).length === 0)) {
      ctx.addIssue({ code: 'custom', path: ['headers'], message: 'auth_type "headers" needs a non-empty headers map' });
    }
    if (u.transport === 'stdio') {
      if (u.auth_type !== 'none') {
        ctx.addIssue({
          code: 'custom',
          path: ['auth_type'],
          message: 'a stdio upstream runs locally and takes no HTTP authentication: use auth_type "none"',
        });
      }
      if (u.headers) {
        ctx.addIssue({ code: 'custom', path: ['headers'], message: 'headers apply to http and sse upstreams only' });
      }
    }
    if (u.oauth && u.auth_type !== 'oauth' && u.auth_type !== 'per_user_oauth') {
      ctx.addIssue({ code: 'custom', path: ['oauth'], message: 'oauth settings apply only with auth_type "oauth" or "per_user_oauth"' });
    }
    if (u.oauth?.client_secret && !u.oauth.client_id) {
      ctx.addIssue({ code: 'custom', path: ['oauth', 'client_secret'], message: 'client_secret needs client_id' });
    }
  });

export const configSchema = z.strictObject({
  server: serverSchema.prefault({}),
  storage: storageSchema.prefault({}),
  oauth_server: oauthServerSchema.prefault({}),
  gateway: z
    .strictObject({
      auth_mode: z.enum(['headers', 'oauth', 'both']).default('both'),
      /** How often each upstream connection is pinged; a failed ping reconnects it. */
      health_check_interval: duration.pipe(z.number().int().min(1)).default(30),
      /** Browser origins, besides the gateway's own, that may call /mcp (`https://app.example`). */
      allowed_origins: z.array(httpUrl.refine((v) => new URL(v).origin === v, 'expected an origin: scheme://host[:port], no path')).default([]),
    })
    .prefault({}),
  upstreams: z
    .array(upstreamSchema)
    .default([])
    .superRefine((list, ctx) => {
      const seen = new Map<string, number>();
      list.forEach((u, i) => {
        const first = seen.get(u.name);
        if (first !== undefined) {
          ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate upstream name "${u.name}" (also upstreams.${first})` });
        } else {
          seen.set(u.name, i);
        }
      });
    }),
  upstream_oauth: z
    .strictObject({
      /**
       * Hosts an upstream's OAuth metadata may send the gateway to besides public https ones and the
       * upstream's own host (product §3.3: the SSRF guard).
       */
      allowed_hosts: z.array(z.string().min(1)).default([]),
    })
    .prefault({}),
  log: z
    .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .prefault({}),
  admin: z.strictObject({ token: z.string().min(16, 'must be at least 16 characters').optional() }).prefault({}),
  security: z.strictObject({ encryption_key: encryptionKey.optional() }).prefault({}),
});

export type ConfigFile = z.output<typeof configSchema>;
export type UpstreamConfig = ConfigFile['upstreams'][number];
export type AuthType = UpstreamConfig['auth_type'];

/** The validated configuration, with storage paths resolved to absolute paths. */
export type Config = Omit<ConfigFile, 'storage'> & {
  storage: { data_dir: string; sqlite: string; postgres?: string | undefined };
  /** The file it came from, if any (for messages and reloads). */
  source?: string | undefined;
};
