/**
 * Benchmark peer: oidc-provider 9 as an authorization server for the code and refresh grants,
 * comparable to Gatehouse's: one public client (PKCE S256, token_endpoint_auth_method "none"),
 * refresh tokens issued to clients with the refresh_token grant and rotated on every use (its
 * default for public clients). Storage is an in-memory adapter without eviction (the built-in
 * development adapter keeps only 1,000 entries and would forget live refresh tokens mid-run).
 * Its own login and consent are auto-approved for one user, the way a person clicking through
 * would be, so a full flow can be timed.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';
import { memoryAdapter } from '../../test/fixtures/oidc-memory-adapter.js';

const CLIENT_ID = 'bench-client';

const REDIRECT_URI = 'http://127.0.0.1:54321/callback';

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    adapter: memoryAdapter(),
    clients: [
      {
        client_id: CLIENT_ID,
        token_endpoint_auth_method: 'none',
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      },
    ],
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: { AccessToken: 900, AuthorizationCode: 120, RefreshToken: 30 * 86400, Interaction: 600, Session: 3600, Grant: 30 * 86400 },
  });
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (!req.url?.startsWith('/interaction/')) {
      callback(req, res);
      return;
    }
    // Auto-approve: the user signs in as "bench-user" and grants what was asked.
    void (async () => {
      const details = await provider.interactionDetails(req, res);
      const grant = new provider.Grant({ accountId: 'bench-user', clientId: String(details.params.client_id) });
      grant.addOIDCScope(String(details.params.scope ?? 'openid'));
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { login: { accountId: 'bench-user' }, consent: { grantId } }, { mergeWithLastSubmission: false });
    })().catch((err: Error) => {
      res.statusCode = 500;
      res.end(err.message);
    });
  });
  process.stdout.write(`${JSON.stringify({ url: issuer, ready: 'true', client_id: CLIENT_ID, redirect_uri: REDIRECT_URI })}\n`);
});
