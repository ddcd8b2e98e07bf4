import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import { routePath } from './errors.js';

/**
 * One structured line per request: method, path, status, duration. Never the query string (it
 * carries authorization codes and state), never headers (credentials), never a body.
 */
export class RequestLog extends LogController {
  override incomingRequest(): void {}

  override routeNotFound(): void {}

  override requestCompleted(_error: Error | null, request: FastifyRequest, reply: FastifyReply): void {
    request.log.info(
      {
        method: request.method,
        path: routePath(request.url),
        status: reply.statusCode,
        duration_ms: Math.round(reply.elapsedTime * 100) / 100,
        ip: request.ip,
      },
      'request',
    );
  }
}
