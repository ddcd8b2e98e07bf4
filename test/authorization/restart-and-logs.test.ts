import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ConsentBrowser, location, readForm } from '../helpers/browser.js';
import { FakeClock } from '../helpers/clock.js';
import { startGateway } from '../helpers/gateway.js';
import { authorizeUrl, createKey, obtainTokens, pkce, REDIRECT, registerClient, tokenRequest } from '../helpers/oauth.js';
import { freePort } from '../helpers/ports.js';
import { makeTempDir } from '../helpers/tmp.js';

describe('a restart in the middle of a flow', () => {
  const temp = makeTempDir();
  after(temp.remove);

  test('the pending request, an unused code and a refresh token all survive', async () => {
    const port = await freePort();
    const clock = new FakeClock();
    const config = { server: { port, public_url: `http://127.0.0.1:${port}` } };
    let gw = await startGateway({ config, clock, dataDir: temp.dir });
    const clientId = await registerClient(gw);
    const { key } = await createKey(gw);
    const done = await obtainTokens(gw, { clientId, key }); // a refresh token to carry over

    // A pending request, left at the consent page.
    const browser = new ConsentBrowser();
    const { verifier, challenge } = pkce();
    const started = await browser.get(
      authorizeUrl(gw, { response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256', state: 's1' }),
    );
    const consentUrl = location(started, 302);
    // A code issued but not yet exchanged.
    const unused = await (async () => {
      const b = new ConsentBrowser();
      const p = pkce();
      const back = await b.authorize(
        authorizeUrl(gw, { response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, code_challenge: p.challenge, code_challenge_method: 'S256' }),
        key,
      );
      return { code: back.searchParams.get('code')!, verifier: p.verifier };
    })();

    await gw.close();
    gw = await startGateway({ config, clock, dataDir: temp.dir });
    try {
      // The pending request continues on the new process.
      let form = readForm(await (await browser.get(consentUrl)).text());
      const identified = await browser.post(form.action, { ...form.hidden, action: 'identify', virtual_key: key });
      form = readForm(await (await browser.get(location(identified, 303))).text());
      const back = new URL(location(await browser.post(form.action, { ...form.hidden, action: 'allow' }), 303));
      const fromPending = await tokenRequest(gw, {
        grant_type: 'authorization_code', code: back.searchParams.get('code')!, code_verifier: verifier, redirect_uri: REDIRECT, client_id: clientId,
      });
      assert.equal(fromPending.status, 200, JSON.stringify(fromPending.json));
      // The code issued before the restart is exchanged after it.
      const fromUnused = await tokenRequest(gw, {
        grant_type: 'authorization_code', code: unused.code, code_verifier: unused.verifier, redirect_uri: REDIRECT, client_id: clientId,
      });
      assert.equal(fromUnused.status, 200, JSON.stringify(fromUnused.json));
      // The refresh token from before the restart still refreshes, and the old access token still verifies.
      const refreshed = await tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: done.tokens.refresh_token!, client_id: clientId });
      assert.equal(refreshed.status, 200);
      await gw.gatehouse.accessTokens.verify(done.tokens.access_token, `http://127.0.0.1:${port}/mcp`);
    } finally {
      await gw.close();
    }
  });
});

describe('logs of a full flow', () => {
  test('no access token, refresh token, code, verifier or virtual key appears in the logs', async (t) => {
    const gw = await startGateway({ config: { log: { level: 'trace' } } });
    t.after(() => gw.close());
    const flow = await obtainTokens(gw);
    const refreshed = await tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: flow.tokens.refresh_token!, client_id: flow.clientId });
    await tokenRequest(gw, { token: refreshed.json.refresh_token, client_id: flow.clientId }, '/api/oauth/per-user/revoke');
    const logs = gw.logs.join('\n');
    const secrets = {
      access_token: flow.tokens.access_token,
      refresh_token: flow.tokens.refresh_token!,
      refreshed_access_token: refreshed.json.access_token,
      refreshed_refresh_token: refreshed.json.refresh_token,
      code: flow.code,
      code_verifier: flow.verifier,
      virtual_key: flow.key,
      // Even a fragment of the key or token would be a leak.
      key_body: flow.key.slice(10, 30),
      jwt_signature: flow.tokens.access_token.split('.')[2]!,
    };
    for (const [name, value] of Object.entries(secrets)) assert.equal(logs.includes(value), false, `${name} leaked into the logs`);
    assert.ok(gw.logs.some((l) => l.includes('"path":"/api/oauth/per-user/token"')), 'the requests were logged');
  });

  test('the database holds no secret in plain text', async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close());
    const flow = await obtainTokens(gw);
    // Read while the gateway runs: the main file and the write-ahead log.
    const files = ['gatehouse.db', 'gatehouse.db-wal'].map((f) => path.join(gw.dataDir, f));
    const bytes = files.map((f) => {
      try {
        return readFileSync(f).toString('latin1');
      } catch {
        return '';
      }
    }).join('');
    for (const secret of [flow.tokens.refresh_token!, flow.code, flow.key, flow.verifier]) {
      assert.equal(bytes.includes(secret), false);
    }
  });
});
