import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { TooManyRequestsError } from './errors.js';

export interface RateLimitSettings {
  /** Requests per window and address; 0 = no limit. */
  max: number;
  /** Seconds. */
  window: number;
  /** Requests per window and client_id; 0 or absent = no limit. */
  per_client?: number | undefined;
}

/**
 * A hook enforcing per-address and per-client limits (product §2.1, §2.5), read from the live
 * configuration on each request. Per-client limits stop one client_id from being used to flood
 * the endpoint from many addresses; per-address ones stop one address from cycling client_ids.
 * Both use @fastify/rate-limit's counters (in process memory: limits are per replica).
 */
export function rateLimited(
  app: FastifyInstance,
  settings: () => RateLimitSettings,
  clientOf?: (request: FastifyRequest) => string | undefined,
): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const byAddress = app.createRateLimit({
    keyGenerator: (request) => `address:${request.ip}`,
    max: () => Math.max(settings().max, 1),
    timeWindow: () => settings().window * 1000,
  });
  const byClient = app.createRateLimit({
    keyGenerator: (request) => `client:${clientOf?.(request) ?? ''}`,
    max: () => Math.max(settings().per_client ?? 0, 1),
    timeWindow: () => settings().window * 1000,
  });
  return async (request, reply) => {
    const limits = settings();
    if (limits.max > 0) refuseIfExceeded(await byAddress(request), reply, 'this address');
    if (clientOf && limits.per_client) {
      const clientId = clientOf(request);
      if (clientId) refuseIfExceeded(await byClient(request), reply, 'this client');
    }
  };
}

function refuseIfExceeded(result: { isAllowed: boolean; isExceeded?: boolean; ttlInSeconds?: number }, reply: FastifyReply, who: string): void {
  if (result.isAllowed || !result.isExceeded) return;
  const retryAfter = String(Math.max(result.ttlInSeconds ?? 1, 1));
  void reply.header('retry-after', retryAfter);
  throw new TooManyRequestsError(`too many requests from ${who}; retry in ${retryAfter} seconds`);
}
