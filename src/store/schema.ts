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

/** The gateway's own registration at an upstream authorization server (per issuer). */
export interface UpstreamRegistrationTable {
  issuer: string;
  client_id: string;
  /** Sealed; null for a public client. */
  client_secret: string | null;
  /** none, client_secret_basic or client_secret_post, as the server registered it. */
  token_endpoint_auth_method: string;
  redirect_uri: string;
  registered_at: number;
  /** When the client secret expires (seconds since the epoch); null when it does not. */
  client_secret_expires_at: number | null;
}

/** One identity's tokens for one upstream (subject "*" for auth_type oauth: everybody's). */
export interface UpstreamTokenTable {
  subject: string;
  upstream: string;
  issuer: string;
  client_id: string;
  /** The resource indicator the tokens were issued for (sent again on refresh). */
  resource: string;
  /** Sealed. */
  access_token: string;
  /** Sealed. */
  refresh_token: string | null;
  scope: string | null;
  expires_at: number | null;
  status: 'active' | 'needs_reauth';
  updated_at: number;
  /** A refresh in progress holds this lease (one refresh per key across every process). */
  lock_owner: string | null;
  lock_until: number | null;
}

/** An upstream authorization in progress, between the redirect and the callback. */
export interface UpstreamFlowTable {
  state_hash: string;
  subject: string;
  upstream: string;
  binding_hash: string;
  /** Sealed PKCE verifier. */
  code_verifier: string;
  issuer: string;
  client_id: string;
  redirect_uri: string;
  resource: string;
  scope: string | null;
  /** Where to send the browser afterwards (a consent request id), if anywhere. */
  return_to: string | null;
  created_at: number;
  expires_at: number;
}

/** A short-lived link that lets one identity start connecting one upstream. */
export interface ConnectTicketTable {
  ticket_hash: string;
  subject: string;
  upstream: string;
  /** The MCP client whose call needed the connection, if known. */
  client_id: string | null;
  /** The scopes to ask for (a step-up), if not the default ones. */
  scope: string | null;
  expires_at: number;
}

/**
 * A user's explicit consent, given on the gateway's own page, to connect an upstream for an MCP
 * client: recorded before the browser is sent to an upstream that knows the gateway by one static
 * client_id (the confused-deputy protection of the MCP security guidance).
 */
export interface UpstreamConsentTable {
  subject: string;
  upstream: string;
  client_id: string;
  scope: string | null;
  consented_at: number;
}

/** An upstream's catalog as last listed, shown to identities that have not connected yet. */
export interface UpstreamCatalogTable {
  upstream: string;
  catalog: string;
  listed_at: number;
}

export interface Schema {
  oauth_clients: OAuthClientTable;
  signing_keys: SigningKeyTable;
  virtual_keys: VirtualKeyTable;
  authorization_requests: AuthorizationRequestTable;
  grants: GrantTable;
  authorization_codes: AuthorizationCodeTable;
  refresh_tokens: RefreshTokenTable;
  upstream_registrations: UpstreamRegistrationTable;
  upstream_tokens: UpstreamTokenTable;
  upstream_flows: UpstreamFlowTable;
  connect_tickets: ConnectTicketTable;
  upstream_consents: UpstreamConsentTable;
  upstream_catalogs: UpstreamCatalogTable;
}
