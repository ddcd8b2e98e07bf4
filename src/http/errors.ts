import type { FastifyError, FastifyInstance } from 'fastify';
import { InvalidRequestError, NotFoundError, OAuthError, ServerError, TemporarilyUnavailableError } from '../oauth/errors.js';
import { isStorageUnavailable } from '../store/database.js';

/**
 * The one error path. Every failure leaves as `{"error", "error_description"}` JSON with a fitting
 * status; a client never sees a stack trace or an internal message, only the server log does.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setNotFoundHandler((_request, reply) => {
    const err = new NotFoundError();
    void reply.code(err.status).send(err.toJSON());
  });

  app.setErrorHandler((error: FastifyError | OAuthError | Error, request, reply) => {
    const oauthError = toOAuthError(error);
    if (oauthError.status >= 500) {
      request.log.error({ err: error, reqId: request.id, path: routePath(request.url) }, 'request failed');
    }
    void reply.code(oauthError.status).headers(oauthError.headers).send(oauthError.toJSON());
  });
}

/** Fastify's own 4xx errors (body parsing, limits) in OAuth terms; anything else is a 500. */
function toOAuthError(error: FastifyError | OAuthError | Error): OAuthError {
  if (error instanceof OAuthError) return error;
  const status = (error as FastifyError).statusCode;
  switch ((error as FastifyError).code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new InvalidRequestError('the request body is too large', 413);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new InvalidRequestError('unsupported Content-Type for this endpoint');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new InvalidRequestError('the request body is empty');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new InvalidRequestError('Content-Length does not match the body');
  }
  if (isStorageUnavailable(error)) return new TemporarilyUnavailableError();
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // Other client errors Fastify detects (bad URL encoding, too-long parameters, aborted bodies).
    return new InvalidRequestError('the request is malformed', status);
  }
  return new ServerError();
}

/** The path of a URL without its query string, which may carry codes or state. */
export function routePath(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
