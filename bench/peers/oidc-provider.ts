/**
 * Benchmark peer: oidc-provider 9 (a certified OpenID Provider, Koa) with dynamic registration
 * enabled and its default in-memory adapter (an LRU of 1,000 entries: it forgets older
 * registrations, which flatters its memory figure).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    features: { registration: { enabled: true }, devInteractions: { enabled: false } },
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ url: issuer, register: '/reg' })}\n`);
});
