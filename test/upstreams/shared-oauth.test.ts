import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startOAuthUpstream } from '../fixtures/oauth-upstream.js';
import { startGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';
import { runCli } from '../helpers/process.js';
import { callTool, connectThroughLink, perUserUpstream, userKey } from './support.js';

test('auth_type oauth: the operator authorizes once with `gatehouse upstreams authorize`, and every identity uses that token', async (t) => {
  const upstream = await startOAuthUpstream({ accessTokenTtl: 120 });
  t.after(() => upstream.close());
  const port = await freePort();
  const gw = await startGateway({
    config: {
      server: { port, public_url: `http://127.0.0.1:${port}` },
      upstreams: [{ ...perUserUpstream('docs', upstream), auth_type: 'oauth' }, perUserUpstream('mine', upstream)],
    },
  });
  t.after(() => gw.close());
  const alice = await userKey(gw, 'alice');
  const bob = await userKey(gw, 'bob');

  const before = await callTool(gw, alice, 'docs-whoami');
  assert.equal(before.isError, true);
  assert.match(before.content[0]!.text, /not authorized yet: the gateway's operator must run "gatehouse upstreams authorize docs"/);
  assert.doesNotMatch(before.content[0]!.text, /\/connect\//, 'users get no link for the operator\'s upstream');

  const cli = await runCli(['upstreams', 'authorize', 'docs', '--config', gw.configFile]);
  assert.equal(cli.code, 0, cli.stderr);
  const link = cli.stdout.trim();
  assert.match(link, new RegExp(`^http://127\\.0\\.0\\.1:${port}/connect/[A-Za-z0-9_-]{43}$`));
  assert.match(cli.stderr, /within 10 minutes/);
  upstream.nextAccount = 'operator';
  const done = await connectThroughLink(link, upstream);
  assert.equal(done.status, 200, done.text.slice(0, 300));
  assert.match(done.text, /for <strong>everyone using this gateway<\/strong>/);

  const results = await Promise.all([callTool(gw, alice, 'docs-whoami'), callTool(gw, bob, 'docs-whoami')]);
  assert.deepEqual(results.map((r) => r.content[0]!.text), ['operator', 'operator']);
  assert.equal(gw.gatehouse.upstreams.personal.size(), 1, 'one connection for everybody');
  // Refreshed like any other token.
  gw.clock.advance(121);
  upstream.ageAccessTokens(121);
  assert.equal((await callTool(gw, bob, 'docs-whoami')).content[0]!.text, 'operator');
  assert.equal(upstream.tokenRequests.refresh_token, 1);
  // The shared connection is not a user's: /api/me/connections shows only per-user upstreams.
  const mine = (await (await fetch(`${gw.url}/api/me/connections`, { headers: { authorization: `Bearer ${alice}` } })).json()) as { connections: Array<{ upstream: string }> };
  assert.deepEqual(mine.connections.map((c) => c.upstream), ['mine']);

  for (const [name, expected] of [
    ['mine', /auth_type "per_user_oauth": only "oauth" upstreams are authorized by the operator \(with per_user_oauth, each user connects/],
    ['nope', /no upstream named nope/],
  ] as const) {
    const refused = await runCli(['upstreams', 'authorize', name, '--config', gw.configFile]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, expected);
  }
});
