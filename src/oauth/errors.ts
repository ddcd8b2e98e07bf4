/**
 * OAuth error responses. Each class carries its RFC error code and HTTP status; handlers throw
 * them and the one error handler (src/http/errors.ts) renders
 * `{"error": code, "error_description": text}`. Descriptions are written for the client's
 * developer and never include secrets or internal details.
 */
export class OAuthError extends Error {
  /** Extra response headers (Retry-After, WWW-Authenticate). */
  readonly headers: Record<string, string>;

  constructor(
    readonly error: string,
    readonly description: string,
    readonly status: number = 400,
    headers: Record<string, string> = {},
  ) {
    super(description);
    this.name = new.target.name;
    this.headers = headers;
  }

  /** Fastify reads `statusCode` from errors passed to it (e.g. by a body parser). */
  get statusCode(): number {
    return this.status;
  }

  toJSON(): { error: string; error_description: string } {
    return { error: this.error, error_description: this.description };
  }
}

/** RFC 6749 §5.2 / RFC 7591 §3.2.2: malformed request (not JSON, not an object, bad encoding). */
export class InvalidRequestError extends OAuthError {
  constructor(description: string, status = 400) {
    super('invalid_request', description, status);
  }
}

/** RFC 7591 §3.2.2: a redirect URI is missing, malformed or not allowed by policy. */
export class InvalidRedirectUriError extends OAuthError {
  constructor(description: string) {
    super('invalid_redirect_uri', description);
  }
}

/** RFC 7591 §3.2.2: some other client metadata field is invalid. */
export class InvalidClientMetadataError extends OAuthError {
  constructor(description: string) {
    super('invalid_client_metadata', description);
  }
}

/** The endpoint does not exist, or is closed (the OAuth surface's gate, product §2). */
export class NotFoundError extends OAuthError {
  constructor(description = 'no such endpoint') {
    super('not_found', description, 404);
  }
}

/** Rate limit exceeded; `Retry-After` says when to come back. */
export class TooManyRequestsError extends OAuthError {
  constructor(description: string) {
    super('too_many_requests', description, 429);
  }
}

/** Storage or another dependency is unavailable; the client may retry. */
export class TemporarilyUnavailableError extends OAuthError {
  constructor(description = 'the service is temporarily unavailable, try again shortly') {
    super('temporarily_unavailable', description, 503, { 'retry-after': '5' });
  }
}

/** Anything unexpected. The description is fixed: internal messages never reach a client. */
export class ServerError extends OAuthError {
  constructor() {
    super('server_error', 'internal error', 500);
  }
}
