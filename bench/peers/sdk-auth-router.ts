/**
 * Benchmark peer: the MCP TypeScript SDK's reference authorization server router (`mcpAuthRouter`,
 * Express) with an in-memory client store and its rate limit off. Only registration is exercised;
 * the provider's other grants are outside this benchmark and refuse.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { mcpAuthRouter } from '@modelcontextprotocol/sdk/server/auth/router.js';
import type { OAuthRegisteredClientsStore } from '@modelcontextprotocol/sdk/server/auth/clients.js';
import type { OAuthServerProvider } from '@modelcontextprotocol/sdk/server/auth/provider.js';
import type { OAuthClientInformationFull } from '@modelcontextprotocol/sdk/shared/auth.js';

const clients = new Map<string, OAuthClientInformationFull>();
const clientsStore: OAuthRegisteredClientsStore = {
  getClient: (id) => clients.get(id),
  registerClient: (client) => {
    // The SDK's handler fills in client_id before calling the store (clientIdGeneration).
    const full = client as OAuthClientInformationFull;
    clients.set(full.client_id, full);
    return full;
  },
};
const outOfScope = async (): Promise<never> => {
  throw new Error('not part of the registration benchmark');
};
const provider: OAuthServerProvider = {
  clientsStore,
  authorize: outOfScope,
  challengeForAuthorizationCode: outOfScope,
  exchangeAuthorizationCode: outOfScope,
  exchangeRefreshToken: outOfScope,
  verifyAccessToken: outOfScope,
};

const server = express().listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  const issuerUrl = new URL(`http://127.0.0.1:${port}`);
  const app = express();
  app.use(mcpAuthRouter({ provider, issuerUrl, clientRegistrationOptions: { rateLimit: false } }));
  server.removeAllListeners('request');
  server.on('request', app);
  process.stdout.write(`${JSON.stringify({ url: issuerUrl.origin, register: '/register' })}\n`);
});
