/**
 * The benchmark's per-user OAuth upstream: the tests' OAuth upstream (test/fixtures/oauth-upstream.ts),
 * oidc-provider at `issuer` in front of an SDK MCP server (Streamable HTTP, sessions) that verifies
 * the bearer JWT (ES256, JWKS cached) on every request at `url`, and serves the same MCP server
 * without authentication at `openUrl`. Its list of calls made is emptied every second, so it does
 * not grow during a run.
 */
import { startOAuthUpstream } from '../../test/fixtures/oauth-upstream.js';

const upstream = await startOAuthUpstream({ name: 'oauth-echo', accessTokenTtl: 3600, open: true });
setInterval(() => {
  upstream.calls.length = 0;
}, 1000);
process.stdout.write(`${JSON.stringify({ url: upstream.url, issuer: upstream.issuer, openUrl: upstream.openUrl, ready: 'true' })}\n`);
