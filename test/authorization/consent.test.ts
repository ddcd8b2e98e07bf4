import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConsentBrowser, location, readForm } from '../helpers/browser.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { authorizeUrl, createKey, pkce, REDIRECT, registerClient } from '../helpers/oauth.js';

/** Product §2.4: the consent page. */
describe('consent', () => {
  let gw: TestGateway;
  let clientId: string;
  let key: string;

  before(async () => {
    gw = await startGateway();
    clientId = await registerClient(gw, {
      client_name: 'Claude <Code> & "friends"',
      redirect_uris: [REDIRECT, 'https://claude.ai/api/mcp/auth_callback', 'cursor://anysphere.cursor-mcp/oauth/callback'],
    });
    key = (await createKey(gw, { name: 'alice laptop', owner: 'alice' })).key;
  });
  after(() => gw.close());

  /** Starts a request in `browser` and returns the consent page URL. */
  async function start(browser: ConsentBrowser, over: Record<string, string> = {}) {
    const res = await browser.get(
      authorizeUrl(gw, {
        response_type: 'code',
        client_id: clientId,
        redirect_uri: REDIRECT,
        code_challenge: pkce().challenge,
        code_challenge_method: 'S256',
        state: 'st',
        ...over,
      }),
    );
    return location(res, 302);
  }

  async function page(browser: ConsentBrowser, url: string) {
    const res = await browser.get(url);
    return { res, html: await res.text() };
  }

  test('the page: client name (escaped), scopes, resource, destination; strict headers; a password field', async () => {
    const browser = new ConsentBrowser();
    const { res, html } = await page(browser, await start(browser));
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html; charset=utf-8/);
    const csp = res.headers.get('content-security-policy') ?? '';
    for (const d of ["default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self' http://127.0.0.1:54321"]) {
      assert.ok(csp.includes(d), `${d} in ${csp}`);
    }
    assert.doesNotMatch(csp, /unsafe-inline|script-src/);
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.equal(res.headers.get('access-control-allow-origin'), null, 'the consent page is not for other origins');
    assert.ok(html.includes('Claude &#60;Code&#62; &#38; &#34;friends&#34;'), 'the client name is escaped');
    assert.equal(html.includes('<Code>'), false);
    assert.match(html, /Call tools on your behalf/);
    assert.match(html, /See the tools, resources and prompts/);
    assert.ok(html.includes(`${gw.gatehouse.issuer()}/mcp`));
    assert.match(html, /<strong>127\.0\.0\.1:54321<\/strong>/);
    assert.match(html, /<input type="password" id="virtual_key" name="virtual_key"/);
    assert.match(html, /<input type="hidden" name="csrf_token" value="[A-Za-z0-9_-]{43}">/);
    assert.doesNotMatch(html, /<script/);
  });

  test('a remote https destination is flagged; a loopback one is not', async () => {
    const browser = new ConsentBrowser();
    const remote = await page(browser, await start(browser, { redirect_uri: 'https://claude.ai/api/mcp/auth_callback' }));
    assert.match(remote.html, /class="warn"[^>]*>After you decide, your browser goes to the website <strong>claude\.ai<\/strong>/);
    assert.match(remote.res.headers.get('content-security-policy') ?? '', /form-action 'self' https:\/\/claude\.ai;/);
    const local = await page(browser, await start(browser));
    assert.doesNotMatch(local.html, /class="warn"/);
    const cursor = await page(browser, await start(browser, { redirect_uri: 'cursor://anysphere.cursor-mcp/oauth/callback' }));
    assert.match(cursor.res.headers.get('content-security-policy') ?? '', /form-action 'self' cursor:;/);
  });

  test('identify, then allow: the code goes to the redirect URI with state and iss', async () => {
    const browser = new ConsentBrowser();
    const url = await start(browser);
    let form = readForm((await page(browser, url)).html);
    const identified = await browser.post(form.action, { ...form.hidden, action: 'identify', virtual_key: key });
    assert.equal(identified.status, 303);
    const step2 = await page(browser, location(identified, 303));
    assert.match(step2.html, /Signed in as <strong>alice laptop \(alice\)<\/strong>/);
    assert.doesNotMatch(step2.html, /name="virtual_key"/, 'the key is not asked again, nor echoed');
    form = readForm(step2.html);
    const decided = await browser.post(form.action, { ...form.hidden, action: 'allow' });
    const back = new URL(location(decided, 303));
    assert.equal(`${back.origin}${back.pathname}`, REDIRECT);
    assert.match(back.searchParams.get('code') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.equal(back.searchParams.get('state'), 'st');
    assert.equal(back.searchParams.get('iss'), gw.gatehouse.issuer());
    // The request is consumed: submitting again does nothing.
    const again = await browser.post(form.action, { ...form.hidden, action: 'allow' });
    assert.equal(again.status, 400);
  });

  test('deny: access_denied with state and iss, and the request is gone', async () => {
    const browser = new ConsentBrowser();
    const url = await start(browser);
    const form = readForm((await page(browser, url)).html);
    const denied = await browser.post(form.action, { ...form.hidden, action: 'deny' });
    const back = new URL(location(denied, 303));
    assert.equal(back.searchParams.get('error'), 'access_denied');
    assert.equal(back.searchParams.get('state'), 'st');
    assert.equal(back.searchParams.get('iss'), gw.gatehouse.issuer());
    assert.equal(back.searchParams.get('code'), null);
    assert.equal((await browser.get(url)).status, 400);
  });

  test('a wrong, revoked or expired key is refused on the page, without leaving it', async () => {
    const revoked = await createKey(gw, { name: 'old' });
    await gw.gatehouse.virtualKeys.revoke(revoked.record.id);
    const expiring = await createKey(gw, { name: 'short', expiresIn: 60 });
    const browser = new ConsentBrowser();
    const url = await start(browser);
    for (const wrong of ['sk-gw-wrong', 'not a key', '', revoked.key]) {
      const form = readForm((await page(browser, url)).html);
      const res = await browser.post(form.action, { ...form.hidden, action: 'identify', virtual_key: wrong });
      assert.equal(res.status, 400, wrong);
      assert.match(await res.text(), /That key is not valid/);
    }
    gw.clock.advance(61);
    const form = readForm((await page(browser, url)).html);
    const res = await browser.post(form.action, { ...form.hidden, action: 'identify', virtual_key: expiring.key });
    assert.equal(res.status, 400);
  });

  test('allow without identifying first is refused', async () => {
    const browser = new ConsentBrowser();
    const form = readForm((await page(browser, await start(browser))).html);
    const res = await browser.post(form.action, { ...form.hidden, action: 'allow' });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /Enter your Gatehouse key first/);
  });

  test('the browser binding: a consent link opened in another browser is refused', async () => {
    const victim = new ConsentBrowser();
    const url = await start(new ConsentBrowser()); // started by someone else
    const res = await victim.get(url);
    assert.equal(res.status, 400);
    assert.match(await res.text(), /started in another browser/);
  });

  test('CSRF: a post without the token, with a wrong one, or with another request\'s, is refused', async () => {
    const browser = new ConsentBrowser();
    const url = await start(browser);
    const form = readForm((await page(browser, url)).html);
    const otherForm = readForm((await page(browser, await start(browser))).html);
    for (const csrf of [undefined, 'x'.repeat(43), otherForm.hidden.csrf_token!]) {
      const fields: Record<string, string> = { request: form.hidden.request!, action: 'identify', virtual_key: key };
      if (csrf !== undefined) fields.csrf_token = csrf;
      const res = await browser.post(form.action, fields);
      assert.equal(res.status, 400);
      assert.match(await res.text(), /not submitted from this page/);
    }
    // A forged cross-site post carries no cookie at all.
    const forged = await fetch(form.action, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...form.hidden, action: 'allow' }).toString(),
    });
    assert.equal(forged.status, 400);
  });

  test('the pending request expires after 10 minutes', async () => {
    const browser = new ConsentBrowser();
    const url = await start(browser);
    gw.clock.advance(601);
    const res = await browser.get(url);
    assert.equal(res.status, 400);
    assert.match(await res.text(), /expired/);
  });

  test("the key's scope ceiling narrows what is granted; a key that allows none of it is refused", async () => {
    const readOnly = await createKey(gw, { name: 'reader', scopes: 'mcp:read' });
    const browser = new ConsentBrowser();
    const back = await browser.authorize(
      authorizeUrl(gw, {
        response_type: 'code',
        client_id: clientId,
        redirect_uri: REDIRECT,
        code_challenge: pkce().challenge,
        code_challenge_method: 'S256',
      }),
      readOnly.key,
    );
    assert.ok(back.searchParams.get('code'));
    const writeOnly = await registerClient(gw, { scope: 'mcp:write' });
    const b2 = new ConsentBrowser();
    const url = await start(b2, { client_id: writeOnly });
    const form = readForm((await page(b2, url)).html);
    const res = await b2.post(form.action, { ...form.hidden, action: 'identify', virtual_key: readOnly.key });
    assert.equal(res.status, 403);
    assert.match(await res.text(), /does not allow the access requested/);
  });

  test('a key limited to some upstreams cannot authorize another upstream\'s endpoint', async () => {
    const docsOnly = await createKey(gw, { name: 'docs only', upstreams: ['docs'] });
    const browser = new ConsentBrowser();
    const url = await start(browser, { resource: `${gw.gatehouse.issuer()}/mcp/notion` });
    const form = readForm((await page(browser, url)).html);
    const res = await browser.post(form.action, { ...form.hidden, action: 'identify', virtual_key: docsOnly.key });
    assert.equal(res.status, 403);
    assert.match(await res.text(), /does not give access to notion/);
  });

  test('malformed consent requests get a page, never a 500', async () => {
    const browser = new ConsentBrowser();
    for (const path of ['/oauth/consent', '/oauth/consent?request=', '/oauth/consent?request=../../etc', '/oauth/consent?request=a&request=b', '/oauth/consent?request=%FF']) {
      const res = await browser.get(gw.url + path);
      assert.equal(res.status, 400, path);
    }
    const res = await fetch(`${gw.url}/oauth/consent`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: Buffer.from([0x72, 0x65, 0x71, 0x3d, 0xff]),
    });
    assert.equal(res.status, 400);
    const json = await fetch(`${gw.url}/oauth/consent`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(json.status, 400);
  });
});
