import type { FastifyInstance } from 'fastify';

/**
 * CORS for the public OAuth endpoints: any origin may call them, because browser-based MCP
 * clients register and fetch metadata from their own web pages. They carry no cookies or ambient
 * credentials, so a wildcard origin exposes nothing.
 */
const ALLOWED_HEADERS = 'content-type, authorization, mcp-protocol-version';

/**
 * Adds `Access-Control-Allow-Origin: *` to every response of the routes registered in `scope`
 * (errors included, so a browser client can read them). Call it inside an encapsulated plugin.
 */
export function allowAnyOriginIn(scope: FastifyInstance): void {
  scope.addHook('onRequest', (_request, reply, done) => {
    void reply.header('access-control-allow-origin', '*').header('cross-origin-resource-policy', 'cross-origin');
    done();
  });
}

/** Answers the CORS preflight for `url`. */
export function answerPreflight(scope: FastifyInstance, url: string, methods: readonly string[]): void {
  scope.options(url, (_request, reply) => {
    void reply
      .code(204)
      .header('access-control-allow-methods', [...methods, 'OPTIONS'].join(', '))
      .header('access-control-allow-headers', ALLOWED_HEADERS)
      .header('access-control-max-age', '86400')
      .send();
  });
}
