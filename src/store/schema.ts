/**
 * The database schema as Kysely sees it. Timestamps are whole seconds since the epoch in BIGINT
 * columns (PostgreSQL's int8 is parsed back to a JS number, see database.ts); structured values
 * are JSON in TEXT columns, so one set of queries serves SQLite and PostgreSQL alike.
 */
export interface OAuthClientTable {
  client_id: string;
  /** The registered metadata (RFC 7591 §2) as JSON, without client_id and client_id_issued_at. */
  metadata: string;
  issued_at: number;
  /** Last successful authorization; NULL until the client completes one. */
  last_used_at: number | null;
}

export interface SigningKeyTable {
  kid: string;
  public_jwk: string;
  /** The private JWK, sealed with the encryption key. */
  private_jwk: string;
  created_at: number;
  /** When it stopped signing; it stays in the JWKS while tokens it signed may be alive. */
  retired_at: number | null;
}

export interface VirtualKeyTable {
  id: string;
  key_hash: string;
  /** The first characters of the key, to recognise it in lists. */
  prefix: string;
  name: string;
  owner: string | null;
  upstreams: string | null;
  tools: string | null;
  scopes: string;
  expires_at: number | null;
  /** 1 or 0 (an integer on both databases). */
  active: number;
  created_at: number;
  revoked_at: number | null;
}

/** An authorization request waiting for the user's consent (product §2.3). */
export interface AuthorizationRequestTable {
  id: string;
  /** Hash of the browser-binding cookie's value. */
  binding_hash: string;
  client_id: string;
  redirect_uri: string;
  state: string | null;
  code_challenge: string;
  scope: string;
  resource: string;
  /** The identity, once the user has entered a virtual key. */
  key_id: string | null;
  created_at: number;
  expires_at: number;
}

/** What a user allowed a client: the scope and resource its tokens carry, until revoked. */
export interface GrantTable {
  id: string;
  client_id: string;
  subject: string;
  key_id: string | null;
  scope: string;
  resource: string;
  created_at: number;
  revoked_at: number | null;
  revoked_reason: string | null;
}

export interface AuthorizationCodeTable {
  code_hash: string;
  grant_id: string;
  client_id: string;
  redirect_uri: string;
  code_challenge: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

export interface RefreshTokenTable {
  token_hash: string;
  grant_id: string;
  parent_hash: string | null;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  superseded_at: number | null;
}

export interface Schema {
  oauth_clients: OAuthClientTable;
  signing_keys: SigningKeyTable;
  virtual_keys: VirtualKeyTable;
  authorization_requests: AuthorizationRequestTable;
  grants: GrantTable;
  authorization_codes: AuthorizationCodeTable;
  refresh_tokens: RefreshTokenTable;
}
