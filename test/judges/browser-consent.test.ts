import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium, type ConsoleMessage } from 'playwright-core';
import { startGateway } from '../helpers/gateway.js';
import { authorizeUrl, createKey, pkce, registerClient, tokenRequest } from '../helpers/oauth.js';

/**
 * The consent flow in a real browser (Debian's headless Chromium driven by playwright-core): the
 * HTTP-level helper in test/helpers/browser.ts cannot see what a browser enforces on its own, such
 * as the page's Content-Security-Policy (nonce-based inline style, form-action applied to the
 * redirect that follows Allow) and the SameSite cookie that binds the request to the browser.
 */

const CHROMIUM_CANDIDATES = ['/usr/bin/chromium-headless-shell', '/usr/bin/chromium'];
const executablePath = CHROMIUM_CANDIDATES.find((p) => existsSync(p));
const skip =
  executablePath === undefined
    ? `no Chromium found at ${CHROMIUM_CANDIDATES.join(' or ')} (install Debian's chromium-headless-shell package)`
    : false;

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const SCREENSHOT = path.join(ARTIFACTS, 'consent.png');

/** A client's redirect target: answers 200 "done" on /callback and records every URL it received. */
async function startCallbackServer(): Promise<{ origin: string; received: string[]; close: () => Promise<void> }> {
  const received: string[] = [];
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (new URL(url, 'http://127.0.0.1').pathname === '/callback') {
      received.push(url);
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('done');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

test('browser: a real Chromium completes consent (key, Continue, Allow) and lands on the redirect URI', { skip, timeout: 60_000 }, async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const callback = await startCallbackServer();
  t.after(() => callback.close());

  const redirectUri = `${callback.origin}/callback`;
  const clientId = await registerClient(gw, { redirect_uris: [redirectUri] });
  const { key } = await createKey(gw);
  const { verifier, challenge } = pkce();
  const state = randomBytes(12).toString('hex');
  const issuer = gw.gatehouse.issuer();
  const start = authorizeUrl(gw, {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
  });

  const browser = await chromium.launch({
    executablePath: executablePath!,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  t.after(() => browser.close());
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);

  // Chromium reports every CSP violation (blocked style, blocked form submission or redirect) on
  // the console; keep all messages so a failure shows what the browser said.
  const consoleMessages: string[] = [];
  page.on('console', (msg: ConsoleMessage) => consoleMessages.push(`[${msg.type()}] ${msg.text()} (${msg.location().url})`));
  const cspViolations = () => consoleMessages.filter((m) => /Content Security Policy/i.test(m));
  const diagnostics = () => `console:\n${consoleMessages.join('\n') || '(nothing)'}\npage: ${page.url()}`;

  // 1. The authorize link: a 302 to the consent page, which asks for a key.
  const first = await page.goto(start);
  assert.ok(first, 'no response for the authorize URL');
  assert.equal(first.status(), 200, diagnostics());
  const consentUrl = new URL(page.url());
  assert.equal(consentUrl.origin + consentUrl.pathname, `${issuer}/oauth/consent`, diagnostics());
  // The nonce-carrying <style> was applied (a blocked style would leave the card unstyled).
  assert.equal(await page.evaluate('getComputedStyle(document.querySelector("main")).borderTopLeftRadius'), '12px', diagnostics());

  // 2. Identify: type the key, Continue (POST, 303 back to the consent page), now with Allow/Deny.
  const keyField = page.locator('input[type="password"][name="virtual_key"]');
  await keyField.fill(key);
  await page.getByRole('button', { name: 'Continue' }).click();
  const allow = page.getByRole('button', { name: 'Allow' });
  await allow.waitFor({ state: 'visible' }).catch((err: Error) => assert.fail(`no Allow button after Continue: ${err.message}\n${diagnostics()}`));
  assert.equal(await page.getByRole('button', { name: 'Deny' }).isVisible(), true);
  assert.equal(await keyField.count(), 0, 'the key field is still on the page after identification');
  assert.match(await page.locator('main').innerText(), /Signed in as/);
  assert.equal(new URL(page.url()).pathname, '/oauth/consent');

  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  assert.ok(existsSync(SCREENSHOT), `no screenshot at ${SCREENSHOT}`);

  // 3. Allow: POST, then a 303 to the client's redirect URI, which form-action must let through.
  await Promise.all([
    page.waitForURL((u) => u.origin === callback.origin && u.pathname === '/callback', { waitUntil: 'load' }),
    allow.click(),
  ]).catch((err: Error) => assert.fail(`the browser did not reach ${redirectUri}: ${err.message}\n${diagnostics()}`));

  const landed = new URL(page.url());
  assert.equal(`${landed.origin}${landed.pathname}`, redirectUri);
  const code = landed.searchParams.get('code');
  assert.ok(code, `no code in ${landed}`);
  assert.equal(landed.searchParams.get('state'), state);
  assert.equal(landed.searchParams.get('iss'), issuer);
  assert.equal(landed.searchParams.get('error'), null);
  assert.equal((await page.locator('body').innerText()).trim(), 'done');

  // The client's server saw the same redirect, exactly once.
  assert.equal(callback.received.length, 1, `callback requests: ${JSON.stringify(callback.received)}`);
  const seen = new URL(callback.received[0]!, callback.origin);
  assert.equal(seen.pathname, '/callback');
  assert.equal(seen.searchParams.get('code'), code);
  assert.equal(seen.searchParams.get('state'), state);
  assert.equal(seen.searchParams.get('iss'), issuer);

  assert.deepEqual(cspViolations(), [], `CSP violations on the consent pages:\n${diagnostics()}`);

  // The code the browser carried is a working one (PKCE verifier, same redirect URI).
  const tokens = await tokenRequest(gw, {
    grant_type: 'authorization_code',
    code,
    code_verifier: verifier,
    redirect_uri: redirectUri,
    client_id: clientId,
  });
  assert.equal(tokens.status, 200, JSON.stringify(tokens.json));
  assert.equal(tokens.json.token_type, 'Bearer');
});
