import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import { routePath } from './errors.js';

/**
 * One structured line per request: method, path, status, duration. Never the query string (it
 * carries authorization codes and state), never headers (credentials), never a body. It is also
 * where each request is counted for /metrics, so that completing a request runs one hook.
 */
export class RequestLog extends LogController {
  constructor(private readonly observe: (method: string, route: string, status: number, seconds: number) => void) {
    super();
  }

  override incomingRequest(): void {}

  override routeNotFound(): void {}

  override requestCompleted(_error: Error | null, request: FastifyRequest, reply: FastifyReply): void {
    this.observe(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
    request.log.info(
      {
        reqId: request.id,
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
