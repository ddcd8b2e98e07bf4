/** Shared by the benchmarks that call through Gatehouse: a gateway process, credentials obtained the way a client would. */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConsentBrowser } from '../test/helpers/browser.js';
import { runCli } from '../test/helpers/process.js';
import { startServer, type ServerProcess } from './lib.js';

/**
 * `gatehouse serve` (the built CLI) on 127.0.0.1 with its data in `dataDir`, the authorization
 * server on without rate limits, tokens valid for an hour, and `upstreams` (YAML flow mappings).
 * BENCH_GATEWAY_NODE_ARGS adds Node options to the gateway process only, to look inside a run
 * (e.g. "--cpu-prof --cpu-prof-dir=/tmp/profiles").
 */
export async function startGateway(dataDir: string, upstreams: string[]): Promise<{ server: ServerProcess; url: string; config: string }> {
  const config = path.join(dataDir, 'gatehouse.yaml');
  writeFileSync(
    config,
    [
      'server: { host: 127.0.0.1 }',
      'oauth_server:',
      '  enabled: true',
      '  access_token_ttl: 3600',
      '  rate_limits: { register: { max: 0, window: 60 }, authorize: { max: 0, window: 60 }, token: { max: 0, window: 60 } }',
      'upstreams:',
      ...upstreams.map((u) => `  - ${u}`),
      '',
    ].join('\n'),
  );
  const server = await startServer([...(process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean), 'dist/cli.js', 'serve', '--config', config, '--data', dataDir, '--port', '0']);
  return { server, url: server.ready.url!, config };
}

/** A new virtual key (the person's credential at the consent page). */
export async function createKey(config: string, dataDir: string, name = 'bench'): Promise<string> {
  return (await runCli(['keys', 'create', '--name', name, '--config', config, '--data', dataDir])).stdout.trim();
}

/** A gateway access token for `resource` (an /mcp URL), through the real flow: registration, consent with `key`, code, token. */
export async function gatewayToken(gateway: string, key: string, resource: string): Promise<string> {
  const redirect = 'http://127.0.0.1:54321/callback';
  const registered = await fetch(`${gateway}/api/oauth/per-user/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'bench', redirect_uris: [redirect] }),
  });
  const clientId = ((await registered.json()) as { client_id: string }).client_id;
  const verifier = randomBytes(32).toString('base64url');
  const authorize = new URL(`${gateway}/api/oauth/per-user/authorize`);
  for (const [k, v] of Object.entries({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirect,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    resource,
  })) {
    authorize.searchParams.set(k, v);
  }
  const back = await new ConsentBrowser().authorize(authorize.toString(), key);
  const res = await fetch(`${gateway}/api/oauth/per-user/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: back.searchParams.get('code')!,
      code_verifier: verifier,
      redirect_uri: redirect,
      client_id: clientId,
    }).toString(),
  });
  return ((await res.json()) as { access_token: string }).access_token;
}
