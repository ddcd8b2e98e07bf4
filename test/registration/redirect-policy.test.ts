import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { checkRedirectUri } from '../../src/oauth/redirect-uri-policy.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { register } from '../helpers/http.js';

/**
 * Product §2.6 at registration time, case by case through the real endpoint. Each refused case
 * names what the description must mention, so a refusal for the wrong reason fails too.
 */
const ALLOWED: Array<[string, string]> = [
  ['loopback http, localhost, with port', 'http://localhost:54321/callback'],
  ['loopback http, localhost, no port', 'http://localhost/callback'],
  ['loopback http, 127.0.0.1, with port', 'http://127.0.0.1:33418/'],
  ['loopback http, 127.0.0.1, no port', 'http://127.0.0.1/oauth/callback'],
  ['loopback http, [::1], with port', 'http://[::1]:8080/cb'],
  ['loopback http, [::1], no port', 'http://[::1]/cb'],
  ['loopback https, localhost, with port', 'https://localhost:8443/cb'],
  ['loopback https, localhost, no port', 'https://localhost/cb'],
  ['loopback https, 127.0.0.1, with port', 'https://127.0.0.1:8443/cb'],
  ['loopback https, 127.0.0.1, no port', 'https://127.0.0.1/cb'],
  ['loopback https, [::1], with port', 'https://[::1]:8443/cb'],
  ['loopback https, [::1], no port', 'https://[::1]/cb'],
  ['loopback with a query', 'http://127.0.0.1:9999/cb?x=1'],
  ['Claude.ai', 'https://claude.ai/api/mcp/auth_callback'],
  ['Claude.com', 'https://claude.com/api/mcp/auth_callback'],
  ['Cursor (private-use scheme)', 'cursor://anysphere.cursor-mcp/oauth/callback'],
  ['VS Code (private-use scheme)', 'vscode://vscode.github-authentication/did-authenticate'],
  ['VS Code web', 'https://vscode.dev/redirect'],
];

const REFUSED: Array<[string, string, RegExp]> = [
  ['plain http on a remote host', 'http://example.com/cb', /plain http/],
  ['http on a host that only starts like localhost', 'http://localhost.example.com/cb', /plain http/],
  ['a fragment', 'http://localhost:3000/cb#frag', /fragment/],
  ['an empty fragment', 'https://claude.ai/cb#', /fragment/],
  ['userinfo', 'http://user:pass@localhost/cb', /user information/],
  ['empty userinfo', 'https://@claude.ai/cb', /user information/],
  ['userinfo hiding the real host', 'https://claude.ai@evil.example/cb', /user information/],
  ['javascript:', 'javascript:alert(1)', /javascript: scheme/],
  ['data:', 'data:text/html,<script>alert(1)</script>', /data: scheme|character not allowed/],
  ['data: without spaces', 'data:text/html;base64,PHNjcmlwdD4=', /data: scheme/],
  ['file:', 'file:///etc/passwd', /file: scheme/],
  ['relative', '/callback', /absolute/],
  ['relative without slash', 'callback', /absolute/],
  ['scheme-relative', '//localhost/cb', /absolute/],
  ['empty', '', /empty/],
  ['unlisted private-use scheme', 'myapp://host/cb', /not an allowed private-use scheme/],
  ['private-use scheme without authority', 'cursor:/oauth/callback', /needs an authority/],
  ['whitespace', 'http://localhost/ cb', /character not allowed/],
  ['trailing newline', 'http://localhost/cb\n', /character not allowed/],
  ['backslash', 'http://localhost\\@evil.example/cb', /character not allowed/],
  ['non-ASCII', 'https://clаude.ai/cb', /character not allowed/],
  ['3,000 characters', `https://claude.ai/${'a'.repeat(3000 - 18)}`, /at most 2048 characters/],
  ['malformed port', 'http://localhost:99999/cb', /absolute URI/],
];

describe('redirect URI policy at registration (product §2.6)', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway();
  });
  after(() => gw.close());

  for (const [name, uri] of ALLOWED) {
    test(`allowed: ${name}`, async () => {
      const res = await register(gw.url, { redirect_uris: [uri] });
      assert.equal(res.status, 201, res.text);
      assert.deepEqual(res.json.redirect_uris, [uri], 'stored and echoed exactly as sent');
    });
  }

  for (const [name, uri, reason] of REFUSED) {
    test(`refused: ${name}`, async () => {
      const res = await register(gw.url, { redirect_uris: [uri] });
      assert.equal(res.status, 400, res.text);
      assert.equal(res.json.error, 'invalid_redirect_uri');
      assert.match(res.json.error_description, /^redirect_uris\[0\] /);
      assert.match(res.json.error_description, reason);
    });
  }

  test('refused: 33 URIs (at most 32)', async () => {
    const uris = Array.from({ length: 33 }, (_, i) => `http://localhost/cb${i}`);
    const res = await register(gw.url, { redirect_uris: uris });
    assert.equal(res.status, 400);
    assert.equal(res.json.error, 'invalid_redirect_uri');
    assert.match(res.json.error_description, /at most 32/);
  });

  test('allowed: exactly 32 URIs', async () => {
    const uris = Array.from({ length: 32 }, (_, i) => `http://localhost/cb${i}`);
    const res = await register(gw.url, { redirect_uris: uris });
    assert.equal(res.status, 201);
    assert.equal(res.json.redirect_uris.length, 32);
  });

  test('allowed: a URI of exactly 2,048 characters', async () => {
    const uri = `https://claude.ai/${'a'.repeat(2048 - 18)}`;
    assert.equal(uri.length, 2048);
    const res = await register(gw.url, { redirect_uris: [uri] });
    assert.equal(res.status, 201);
  });

  test('one bad URI among good ones refuses the registration and names its index', async () => {
    const res = await register(gw.url, {
      redirect_uris: ['http://localhost/cb', 'https://claude.ai/cb', 'http://evil.example/cb'],
    });
    assert.equal(res.status, 400);
    assert.equal(res.json.error, 'invalid_redirect_uri');
    assert.match(res.json.error_description, /^redirect_uris\[2\] plain http/);
  });

  test('missing, empty, non-array and non-string redirect_uris', async () => {
    for (const [body, reason] of [
      [{}, /redirect_uris is required/],
      [{ redirect_uris: [] }, /at least one/],
      [{ redirect_uris: 'http://localhost/cb' }, /must be an array/],
      [{ redirect_uris: [42] }, /only strings/],
      [{ redirect_uris: null }, /redirect_uris is required/],
    ] as const) {
      const res = await register(gw.url, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.json.error, 'invalid_redirect_uri', JSON.stringify(body));
      assert.match(res.json.error_description, reason);
    }
  });

  test('duplicate URIs are registered once', async () => {
    const res = await register(gw.url, { redirect_uris: ['http://localhost/cb', 'http://localhost/cb'] });
    assert.equal(res.status, 201);
    assert.deepEqual(res.json.redirect_uris, ['http://localhost/cb']);
  });
});

describe('redirect URI policy: operator settings', () => {
  test('allowed_private_schemes replaces the default list', async (t) => {
    const gw = await startGateway({ config: { oauth_server: { allowed_private_schemes: ['myapp'] } } });
    t.after(() => gw.close());
    assert.equal((await register(gw.url, { redirect_uris: ['myapp://host/cb'] })).status, 201);
    const cursor = await register(gw.url, { redirect_uris: ['cursor://anysphere.cursor-mcp/oauth/callback'] });
    assert.equal(cursor.status, 400);
    assert.match(cursor.json.error_description, /allowed: myapp/);
  });

  test('redirect_uri_allowlist makes remote https exact-match; loopback and private schemes unaffected', async (t) => {
    const gw = await startGateway({
      config: { oauth_server: { redirect_uri_allowlist: ['https://claude.ai/api/mcp/auth_callback'] } },
    });
    t.after(() => gw.close());
    assert.equal((await register(gw.url, { redirect_uris: ['https://claude.ai/api/mcp/auth_callback'] })).status, 201);
    const other = await register(gw.url, { redirect_uris: ['https://claude.ai/api/mcp/auth_callback/x'] });
    assert.equal(other.status, 400);
    assert.match(other.json.error_description, /allowed redirect URIs/);
    assert.equal((await register(gw.url, { redirect_uris: ['http://127.0.0.1:9/cb'] })).status, 201);
    assert.equal((await register(gw.url, { redirect_uris: ['cursor://anysphere.cursor-mcp/oauth/callback'] })).status, 201);
  });
});

describe('checkRedirectUri', () => {
  const policy = { privateSchemes: ['cursor', 'vscode'] };
  test('classifies what it allows', () => {
    const kinds = [
      ['http://localhost:1/cb', 'loopback'],
      ['https://[::1]/cb', 'loopback'],
      ['https://claude.ai/api/mcp/auth_callback', 'https'],
      ['cursor://anysphere.cursor-mcp/oauth/callback', 'private-use'],
    ] as const;
    for (const [uri, kind] of kinds) {
      const verdict = checkRedirectUri(uri, policy);
      assert.ok(verdict.allowed, uri);
      assert.equal(verdict.kind, kind, uri);
    }
  });

  test('never allows schemes that run code or read files, whatever the configuration', () => {
    for (const uri of ['javascript://x/%0aalert(1)', 'data://x/y', 'file://host/etc/passwd', 'vbscript://x/y', 'blob://x/y']) {
      const verdict = checkRedirectUri(uri, { privateSchemes: ['javascript', 'data', 'file', 'vbscript', 'blob'] });
      assert.equal(verdict.allowed, false, uri);
    }
  });
});
