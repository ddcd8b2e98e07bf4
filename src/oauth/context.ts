import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { VirtualKeys } from '../identity/virtual-keys.js';
import type { AuthorizationRequestRepository } from '../store/authorization-requests.js';
import type { ClientRepository } from '../store/clients.js';
import type { GrantRepository } from '../store/grants.js';
import type { AccessTokens } from './access-tokens.js';
import type { ClientResolver } from './clients.js';
import type { SigningKeys } from './signing-keys.js';

/** What the authorization server's endpoints share. Built once, in app.ts. */
export interface OAuthContext {
  config: () => Config;
  issuer: () => string;
  clock: Clock;
  logger: Logger;
  clients: ClientRepository;
  clientResolver: ClientResolver;
  requests: AuthorizationRequestRepository;
  grants: GrantRepository;
  virtualKeys: VirtualKeys;
  accessTokens: AccessTokens;
  signingKeys: SigningKeys;
}

export const AUTHORIZE_PATH = '/api/oauth/per-user/authorize';
export const TOKEN_PATH = '/api/oauth/per-user/token';
export const REVOKE_PATH = '/api/oauth/per-user/revoke';
export const CONSENT_PATH = '/oauth/consent';
export const JWKS_PATH = '/.well-known/jwks.json';

/** Pending authorization requests live this long (product §2.3). */
export const AUTHORIZATION_REQUEST_TTL = 600;
/** Authorization codes live this long (product §2.4: at most 5 minutes). */
export const AUTHORIZATION_CODE_TTL = 120;

/** RFC 9207 / RFC 6749 §4.1.2: the redirect back to the client, with `iss` on every response. */
export function authorizationRedirect(redirectUri: string, issuer: string, params: Record<string, string | null | undefined>): string {
  const url = new URL(redirectUri);
  for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== null) url.searchParams.set(name, value);
  url.searchParams.set('iss', issuer);
  return url.toString();
}
