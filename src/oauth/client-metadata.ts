import { z } from 'zod';
import { InvalidClientMetadataError, InvalidRedirectUriError, InvalidRequestError, type OAuthError } from './errors.js';
import { checkRedirectUri, MAX_REDIRECT_URI_LENGTH, type RedirectUriPolicy } from './redirect-uri-policy.js';

/**
 * RFC 7591 client metadata: what a registration request may say, the defaults the gateway fills
 * in, and the normalized record it stores and echoes (product §2.1).
 */

export const SUPPORTED_SCOPES = ['mcp:read', 'mcp:write'] as const;
export const SUPPORTED_GRANT_TYPES = ['authorization_code', 'refresh_token'] as const;
export const MAX_REDIRECT_URIS = 32;
const MAX_TEXT = 256;
const MAX_CONTACTS = 10;

export type GrantType = (typeof SUPPORTED_GRANT_TYPES)[number];

/** The registered metadata of a client, normalized (defaults applied, duplicates removed). */
export interface ClientMetadata {
  redirect_uris: string[];
  client_name?: string;
  grant_types: GrantType[];
  response_types: ['code'];
  token_endpoint_auth_method: 'none';
  scope: string;
  client_uri?: string;
  logo_uri?: string;
  contacts?: string[];
  software_id?: string;
  software_version?: string;
  application_type?: 'web' | 'native';
}

/** The RFC 7591 §3.2.1 response body. */
export interface ClientInformation extends ClientMetadata {
  client_id: string;
  client_id_issued_at: number;
}

/**
 * Text shown to a person on the consent page: no control characters, and no bidirectional
 * overrides that could make "Evil" render as a trusted name.
 */
const DISPLAY_UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

const displayText = (field: string) =>
  z
    .string({ error: `${field} must be a string` })
    .min(1, `${field} must not be empty`)
    .max(MAX_TEXT, `${field} must be at most ${MAX_TEXT} characters`)
    .refine((s) => !DISPLAY_UNSAFE.test(s), `${field} must not contain control or bidirectional-override characters`);

const webUrl = (field: string) =>
  z
    .string({ error: `${field} must be a string` })
    .max(MAX_REDIRECT_URI_LENGTH, `${field} must be at most ${MAX_REDIRECT_URI_LENGTH} characters`)
    .refine((s) => {
      if (/[^\x21-\x7e]|\\|#/.test(s)) return false;
      try {
        const u = new URL(s);
        return (u.protocol === 'https:' || u.protocol === 'http:') && u.username === '' && u.password === '';
      } catch {
        return false;
      }
    }, `${field} must be an absolute http or https URL without credentials or fragment`);

/**
 * The request's shape. Unknown members are ignored, as RFC 7591 §2 requires ("The authorization
 * server MUST ignore any client metadata sent by the client that it does not understand").
 */
const registrationRequest = z.object({
  redirect_uris: z
    .array(z.string({ error: 'redirect_uris must contain only strings' }), {
      error: (iss) => (iss.input === undefined ? 'redirect_uris is required' : 'redirect_uris must be an array of URIs'),
    })
    .min(1, 'redirect_uris must contain at least one URI')
    .max(MAX_REDIRECT_URIS, `redirect_uris may contain at most ${MAX_REDIRECT_URIS} URIs`),
  client_name: displayText('client_name').optional(),
  grant_types: z
    .array(
      z.enum(SUPPORTED_GRANT_TYPES, {
        error: `grant_types may contain only ${SUPPORTED_GRANT_TYPES.join(', ')}`,
      }),
      { error: 'grant_types must be an array of strings' },
    )
    .min(1, 'grant_types must not be empty')
    .max(8, 'grant_types has too many entries')
    .optional(),
  response_types: z
    .array(z.literal('code', { error: 'response_types may contain only "code"' }), {
      error: 'response_types must be an array of strings',
    })
    .min(1, 'response_types must not be empty')
    .max(8, 'response_types has too many entries')
    .optional(),
  token_endpoint_auth_method: z
    .literal('none', {
      error: 'token_endpoint_auth_method must be "none": this gateway registers public clients only (PKCE, no secret)',
    })
    .optional(),
  scope: z.string({ error: 'scope must be a space-separated string' }).max(MAX_TEXT, 'scope is too long').optional(),
  client_uri: webUrl('client_uri').optional(),
  logo_uri: webUrl('logo_uri').optional(),
  contacts: z
    .array(z.string({ error: 'contacts must contain only strings' }).min(1, 'contacts must not contain empty strings').max(MAX_TEXT, `contacts entries must be at most ${MAX_TEXT} characters`), {
      error: 'contacts must be an array of strings',
    })
    .max(MAX_CONTACTS, `contacts may contain at most ${MAX_CONTACTS} entries`)
    .optional(),
  software_id: displayText('software_id').optional(),
  software_version: displayText('software_version').optional(),
  application_type: z.enum(['web', 'native'], { error: 'application_type must be "web" or "native"' }).optional(),
});

function unique<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

/**
 * Validates a parsed JSON registration request and returns the metadata to register, or throws
 * the RFC 7591 §3.2.2 error naming the first field at fault.
 */
export function parseClientRegistration(body: unknown, policy: RedirectUriPolicy): ClientMetadata {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new InvalidRequestError('the request body must be a JSON object of client metadata');
  }
  // A member sent as null is treated as absent (some clients serialize unset fields that way).
  const input: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) if (value !== null) input[key] = value;

  const parsed = registrationRequest.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw errorFor(String(issue.path[0] ?? ''), issue.message);
  }
  const req = parsed.data;

  const redirectUris = unique(req.redirect_uris);
  redirectUris.forEach((uri, i) => {
    const verdict = checkRedirectUri(uri, policy);
    if (!verdict.allowed) throw new InvalidRedirectUriError(`redirect_uris[${i}] ${verdict.reason}`);
  });

  const grantTypes: GrantType[] = unique(req.grant_types ?? ['authorization_code']);
  // The only way to obtain a first token is the authorization code grant; refresh_token alone
  // would register a client that can never get one.
  if (!grantTypes.includes('authorization_code')) {
    throw new InvalidClientMetadataError('grant_types must include "authorization_code"');
  }

  // Built in the order of the seed's example response, which is what clients' logs show.
  const metadata: ClientMetadata = {
    ...(req.client_name !== undefined && { client_name: req.client_name }),
    redirect_uris: redirectUris,
    grant_types: grantTypes,
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    scope: parseScope(req.scope),
  };
  if (req.client_uri !== undefined) metadata.client_uri = req.client_uri;
  if (req.logo_uri !== undefined) metadata.logo_uri = req.logo_uri;
  if (req.contacts !== undefined) metadata.contacts = unique(req.contacts);
  if (req.software_id !== undefined) metadata.software_id = req.software_id;
  if (req.software_version !== undefined) metadata.software_version = req.software_version;
  if (req.application_type !== undefined) metadata.application_type = req.application_type;
  return metadata;
}

/** RFC 6749 §3.3 scope: space-delimited tokens; here a subset of SUPPORTED_SCOPES, default all. */
function parseScope(scope: string | undefined): string {
  if (scope === undefined) return SUPPORTED_SCOPES.join(' ');
  const tokens = scope.split(' ').filter((t) => t !== '');
  if (tokens.length === 0) {
    throw new InvalidClientMetadataError(`scope must name at least one of: ${SUPPORTED_SCOPES.join(' ')}`);
  }
  for (const token of tokens) {
    if (!(SUPPORTED_SCOPES as readonly string[]).includes(token)) {
      throw new InvalidClientMetadataError(
        `scope "${token.slice(0, 64)}" is not offered by this gateway; available: ${SUPPORTED_SCOPES.join(' ')}`,
      );
    }
  }
  return unique(tokens).join(' ');
}

function errorFor(field: string, message: string): OAuthError {
  return field === 'redirect_uris' ? new InvalidRedirectUriError(message) : new InvalidClientMetadataError(message);
}
