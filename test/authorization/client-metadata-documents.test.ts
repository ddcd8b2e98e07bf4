import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import { after, before, describe, test, type TestContext } from 'node:test';
import {
  ClientMetadataDocumentError,
  ClientMetadataDocuments,
  freshness,
  isMetadataDocumentUrl,
} from '../../src/oauth/client-metadata-documents.js';
import { ConsentBrowser, location } from '../helpers/browser.js';
import { FakeClock } from '../helpers/clock.js';
import { startGateway, type RawConfig, type TestGateway } from '../helpers/gateway.js';
import { authorizeUrl, createKey, pkce, tokenRequest } from '../helpers/oauth.js';

/**
 * Product §2.7: a client_id that is a URL names a Client ID Metadata Document
 * (draft-ietf-oauth-client-id-metadata-document), fetched through the SSRF guard, cached per its
 * HTTP cache headers, and checked against the request.
 */

/** Every test is bounded, whatever the gateway does. */
const BOUND = { timeout: 20_000 };
/** The loopback redirect URI a document registers: no port, so any port matches (RFC 8252 §7.3). */
const REGISTERED_REDIRECT = 'http://127.0.0.1/callback';
/** What the client asks for at authorization: the same URI on the port it happens to listen on. */
const REQUESTED_REDIRECT = 'http://127.0.0.1:49321/callback';

/** Rate limits off: these tests make many authorization requests from one address. */
const NO_LIMITS: RawConfig = {
  rate_limits: { register: { max: 0, window: 60 }, authorize: { max: 0, window: 60 }, token: { max: 0, window: 60 } },
};

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A node:http server on 127.0.0.1 serving documents: the test sets each path's answer. */
class DocumentServer {
  readonly routes = new Map<string, Handler>();
  /** Paths requested, in order. */
  readonly hits: string[] = [];
  connections = 0;
  private readonly server = http.createServer((req, res) => {
    this.hits.push(req.url ?? '');
    const handler = this.routes.get(req.url ?? '');
    if (handler) return handler(req, res);
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('no such document');
  });
  port = 0;

  async start(): Promise<this> {
    this.server.on('connection', () => this.connections++);
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  url(path: string, scheme = 'http'): string {
    return `${scheme}://127.0.0.1:${this.port}${path}`;
  }

  /** How many times `path` was requested. */
  count(path: string): number {
    return this.hits.filter((h) => h === path).length;
  }

  /** Serves `body` at `path` as JSON (a string is sent as is), with extra headers. */
  serve(path: string, body: unknown, headers: Record<string, string> = {}, status = 200): string {
    this.routes.set(path, (_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
    });
    return this.url(path);
  }

  /** Serves a valid document naming its own URL at `path`, merged with `fields`. */
  serveDocument(path: string, fields: Record<string, unknown> = {}, headers: Record<string, string> = {}): string {
    const url = this.url(path);
    this.serve(path, { client_id: url, client_name: 'Doc Client', redirect_uris: [REGISTERED_REDIRECT], ...fields }, headers);
    return url;
  }
}

function authorizeParams(clientId: string, over: Record<string, string | undefined> = {}) {
  return {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REQUESTED_REDIRECT,
    code_challenge: pkce().challenge,
    code_challenge_method: 'S256',
    state: 'st',
    ...over,
  };
}

/** An HTML error page: never a redirect to the client, never a 500. */
async function expectPage(res: Response, text?: RegExp): Promise<string> {
  const body = await res.text();
  assert.equal(res.status, 400, `expected the HTML 400 page, got ${res.status}: ${body.slice(0, 300)}`);
  assert.equal(res.headers.get('location'), null, 'no redirect');
  assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
  if (text) assert.match(body, text);
  return body;
}

/** A gateway and a document server for one suite, both closed afterwards. */
async function setUp(config: RawConfig): Promise<{ gw: TestGateway; docs: DocumentServer }> {
  const docs = await new DocumentServer().start();
  try {
    const gw = await startGateway({ config: { oauth_server: { ...NO_LIMITS, ...config } } });
    return { gw, docs };
  } catch (err) {
    await docs.close();
    throw err;
  }
}

describe('client metadata documents (private network allowed)', () => {
  let gw: TestGateway;
  let docs: DocumentServer;

  before(async () => {
    ({ gw, docs } = await setUp({ client_metadata_documents: { allow_private_network: true } }));
  });
  after(async () => {
    await gw?.close();
    await docs?.close();
  });

  const authorize = (clientId: string, over: Record<string, string | undefined> = {}) =>
    fetch(authorizeUrl(gw, authorizeParams(clientId, over)), { redirect: 'manual', signal: AbortSignal.timeout(15_000) });

  test('a valid document: authorize (loopback port ignored), consent, token exchange', BOUND, async () => {
    const clientId = docs.serveDocument('/flow/client.json', {}, { 'cache-control': 'max-age=60' });
    const key = (await createKey(gw, { name: 'doc user' })).key;
    const { verifier, challenge } = pkce();
    const browser = new ConsentBrowser();
    const back = await browser.authorize(authorizeUrl(gw, authorizeParams(clientId, { code_challenge: challenge })), key);
    assert.equal(`${back.origin}${back.pathname}`, 'http://127.0.0.1:49321/callback', 'the requested port is kept');
    assert.equal(back.searchParams.get('state'), 'st');
    assert.equal(back.searchParams.get('iss'), gw.gatehouse.issuer());
    const code = back.searchParams.get('code');
    assert.ok(code, `a code in ${back}`);

    const res = await tokenRequest(gw, {
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: REQUESTED_REDIRECT,
      client_id: clientId,
    });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.equal(res.json.token_type, 'Bearer');
    const claims = JSON.parse(Buffer.from(String(res.json.access_token).split('.')[1]!, 'base64url').toString());
    assert.equal(claims.client_id, clientId);
    assert.equal(claims.aud, `${gw.gatehouse.issuer()}/mcp`);
    assert.ok(docs.count('/flow/client.json') >= 1);
  });

  test('any port on the registered loopback host matches; another host or path does not', BOUND, async () => {
    const clientId = docs.serveDocument('/ports/client.json', {}, { 'cache-control': 'max-age=600' });
    for (const redirect of ['http://127.0.0.1:1234/callback', 'http://127.0.0.1/callback', 'http://127.0.0.1:65535/callback']) {
      const res = await authorize(clientId, { redirect_uri: redirect });
      assert.equal(res.status, 302, redirect);
      assert.match(location(res, 302), /\/oauth\/consent\?request=/);
    }
    for (const redirect of ['http://localhost:1234/callback', 'http://127.0.0.1:1234/other', 'https://127.0.0.1:1234/callback']) {
      await expectPage(await authorize(clientId, { redirect_uri: redirect }), /Unregistered return address/);
    }
  });

  test("the consent page shows the document's client_name", BOUND, async () => {
    const clientId = docs.serveDocument('/named/client.json', { client_name: 'Metadata <Doc> App' }, { 'cache-control': 'max-age=60' });
    const browser = new ConsentBrowser();
    const start = await browser.get(authorizeUrl(gw, authorizeParams(clientId)));
    const page = await browser.get(location(start, 302));
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.ok(html.includes('Metadata &#60;Doc&#62; App'), 'the name, escaped');
    assert.equal(html.includes('<Doc>'), false);
  });

  describe('refused at authorize with an HTML 400 page', () => {
    const cases: Array<{ name: string; path: string; setUp: (path: string) => void; text: RegExp }> = [
      {
        name: 'a document whose client_id differs from its URL',
        path: '/bad/other-id.json',
        setUp: (path) => docs.serve(path, { client_id: docs.url('/bad/someone-else.json'), redirect_uris: [REGISTERED_REDIRECT] }),
        text: /does not name its own URL as client_id/,
      },
      {
        name: 'a document without client_id',
        path: '/bad/no-id.json',
        setUp: (path) => docs.serve(path, { redirect_uris: [REGISTERED_REDIRECT] }),
        text: /does not name its own URL as client_id/,
      },
      {
        name: 'a document that is not JSON',
        path: '/bad/not-json.json',
        setUp: (path) => docs.serve(path, '<html>hello</html>', { 'content-type': 'text/html' }),
        text: /is not a JSON document/,
      },
      {
        name: 'a document that is not UTF-8',
        path: '/bad/latin1.json',
        setUp: (path) => docs.serve(path, Buffer.from([0x7b, 0x22, 0xe9, 0x22, 0x3a, 0x31, 0x7d])),
        text: /is not a JSON document/,
      },
      {
        name: 'a JSON array',
        path: '/bad/array.json',
        setUp: (path) => docs.serve(path, [{ client_id: docs.url(path), redirect_uris: [REGISTERED_REDIRECT] }]),
        text: /is not a JSON object/,
      },
      {
        name: 'JSON null',
        path: '/bad/null.json',
        setUp: (path) => docs.serve(path, 'null'),
        text: /is not a JSON object/,
      },
      {
        name: 'a document over 5 KiB',
        path: '/bad/big.json',
        setUp: (path) =>
          docs.serve(path, { client_id: docs.url(path), redirect_uris: [REGISTERED_REDIRECT], padding: 'x'.repeat(5 * 1024) }),
        text: /larger than 5120 bytes/,
      },
      {
        name: 'a document over 5 KiB sent without Content-Length',
        path: '/bad/big-chunked.json',
        setUp: (path) =>
          docs.routes.set(path, (_req, res) => {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.write(`{"client_id":${JSON.stringify(docs.url(path))},"redirect_uris":["${REGISTERED_REDIRECT}"],"padding":"`);
            for (let i = 0; i < 6; i++) res.write('x'.repeat(1024));
            res.end('"}');
          }),
        text: /larger than 5120 bytes/,
      },
      {
        name: 'a 302 redirect (not followed)',
        path: '/bad/redirect.json',
        setUp: (path) =>
          docs.routes.set(path, (_req, res) => {
            docs.serveDocument('/bad/redirect-target.json');
            res.writeHead(302, { location: docs.url('/bad/redirect-target.json') });
            res.end();
          }),
        text: /redirects are not followed/,
      },
      {
        name: 'a 404',
        path: '/bad/missing.json',
        setUp: () => {},
        text: /answered with HTTP 404/,
      },
      {
        name: 'a 500 from the document server',
        path: '/bad/error.json',
        setUp: (path) => docs.serve(path, { error: 'oops' }, {}, 500),
        text: /answered with HTTP 500/,
      },
      {
        name: 'a document with client_secret',
        path: '/bad/secret.json',
        setUp: (path) =>
          docs.serve(path, { client_id: docs.url(path), redirect_uris: [REGISTERED_REDIRECT], client_secret: 'shh' }),
        text: /must not contain a client secret/,
      },
      {
        name: 'a document with a confidential client authentication method',
        path: '/bad/auth-method.json',
        setUp: (path) =>
          docs.serve(path, {
            client_id: docs.url(path),
            redirect_uris: [REGISTERED_REDIRECT],
            token_endpoint_auth_method: 'client_secret_basic',
          }),
        text: /token_endpoint_auth_method/,
      },
      {
        name: 'a document with an http://evil.example redirect URI (policy)',
        path: '/bad/evil.json',
        setUp: (path) =>
          docs.serve(path, { client_id: docs.url(path), redirect_uris: [REGISTERED_REDIRECT, 'http://evil.example/callback'] }),
        text: /plain http is allowed only on localhost/,
      },
      {
        name: 'a document without redirect_uris',
        path: '/bad/no-redirects.json',
        setUp: (path) => docs.serve(path, { client_id: docs.url(path) }),
        text: /redirect_uris is required/,
      },
      {
        name: 'a document whose redirect_uris do not include the requested one',
        path: '/bad/other-redirect.json',
        setUp: (path) => docs.serve(path, { client_id: docs.url(path), redirect_uris: ['http://127.0.0.1/elsewhere'] }),
        text: /Unregistered return address/,
      },
    ];

    for (const c of cases) {
      test(c.name, BOUND, async () => {
        c.setUp(c.path);
        const before = docs.count(c.path);
        await expectPage(await authorize(docs.url(c.path)), c.text);
        assert.equal(docs.count(c.path), before + 1, 'the document was fetched once');
      });
    }

    test('a client_id with dot segments or a fragment is not a document URL; nothing is fetched', BOUND, async () => {
      // The document at /dots/client.json names the dotted URL, so only the URL's form is at fault.
      for (const clientId of [
        docs.url('/dots/x/../client.json'),
        docs.url('/dots/x/%2e%2e/client.json'),
        docs.url('/dots/./client.json'),
        `${docs.url('/dots/client.json')}#`,
        `${docs.url('/dots/client.json')}#frag`,
      ]) {
        docs.serve('/dots/client.json', { client_id: clientId, redirect_uris: [REGISTERED_REDIRECT] });
        await expectPage(await authorize(clientId), /not registered here/);
      }
      assert.equal(docs.count('/dots/client.json'), 0);
    });

    test('the redirect target is never requested', BOUND, async () => {
      assert.equal(docs.count('/bad/redirect-target.json'), 0);
    });

    test('a document server that refuses connections', BOUND, async () => {
      const gone = await new DocumentServer().start();
      const clientId = gone.url('/client.json');
      await gone.close();
      await expectPage(await authorize(clientId), /could not be fetched/);
    });

    test('a document server that never answers: refused after 5 seconds', { timeout: 20_000 }, async (t: TestContext) => {
      const path = '/bad/hang.json';
      const pending: http.ServerResponse[] = [];
      docs.routes.set(path, (_req, res) => pending.push(res));
      t.after(() => pending.forEach((res) => res.destroy()));
      const started = performance.now();
      await expectPage(await authorize(docs.url(path)), /timed out/);
      const elapsed = performance.now() - started;
      assert.ok(elapsed >= 4500 && elapsed < 10_000, `refused after ${Math.round(elapsed)} ms`);
    });

    test('a failed document is not cached: fixing it takes effect at once', BOUND, async () => {
      const path = '/bad/fixed-later.json';
      docs.serve(path, { client_id: 'wrong', redirect_uris: [REGISTERED_REDIRECT] }, { 'cache-control': 'max-age=3600' });
      await expectPage(await authorize(docs.url(path)));
      docs.serveDocument(path, {}, { 'cache-control': 'max-age=3600' });
      assert.equal((await authorize(docs.url(path))).status, 302);
      assert.equal(docs.count(path), 2);
    });
  });

  describe('caching', () => {
    test('Cache-Control: max-age=60: fetched once for two authorizations, again once stale', BOUND, async () => {
      const path = '/cache/max-age.json';
      const clientId = docs.serveDocument(path, {}, { 'cache-control': 'public, max-age=60' });
      assert.equal((await authorize(clientId)).status, 302);
      assert.equal((await authorize(clientId)).status, 302);
      assert.equal(docs.count(path), 1);
      gw.clock.advance(61);
      assert.equal((await authorize(clientId)).status, 302);
      assert.equal(docs.count(path), 2);
      assert.equal((await authorize(clientId)).status, 302);
      assert.equal(docs.count(path), 2);
    });

    test('a cached document is used as cached: a change shows only once the copy is stale', BOUND, async () => {
      const path = '/cache/changed.json';
      const clientId = docs.serveDocument(path, {}, { 'cache-control': 'max-age=60' });
      assert.equal((await authorize(clientId)).status, 302);
      docs.serveDocument(path, { redirect_uris: ['http://127.0.0.1/elsewhere'] }, { 'cache-control': 'max-age=60' });
      assert.equal((await authorize(clientId)).status, 302, 'still the cached document');
      gw.clock.advance(61);
      await expectPage(await authorize(clientId), /Unregistered return address/);
      assert.equal(docs.count(path), 2);
    });

    for (const cacheControl of ['no-store', 'no-cache', 'max-age=0']) {
      test(`Cache-Control: ${cacheControl}: fetched every time`, BOUND, async () => {
        const path = `/cache/${cacheControl.replace(/\W/g, '-')}.json`;
        const clientId = docs.serveDocument(path, {}, { 'cache-control': cacheControl });
        for (let i = 1; i <= 3; i++) {
          assert.equal((await authorize(clientId)).status, 302);
          assert.equal(docs.count(path), i);
        }
      });
    }

    test('a max-age over 24 hours is held for 24 hours at most', BOUND, async () => {
      const path = '/cache/long.json';
      const clientId = docs.serveDocument(path, {}, { 'cache-control': 'max-age=31536000' });
      assert.equal((await authorize(clientId)).status, 302);
      gw.clock.advance(24 * 3600 - 10);
      assert.equal((await authorize(clientId)).status, 302);
      assert.equal(docs.count(path), 1);
      gw.clock.advance(11);
      assert.equal((await authorize(clientId)).status, 302);
      assert.equal(docs.count(path), 2);
    });

    test('Age counts against max-age: a copy 50 s old with max-age=60 is stale 10 s later', BOUND, async () => {
      const path = '/cache/aged.json';
      const clientId = docs.serveDocument(path, {}, { 'cache-control': 'max-age=60', age: '50' });
      assert.equal((await authorize(clientId)).status, 302);
      gw.clock.advance(9);
      assert.equal((await authorize(clientId)).status, 302);
      assert.equal(docs.count(path), 1);
      gw.clock.advance(2);
      assert.equal((await authorize(clientId)).status, 302);
      assert.equal(docs.count(path), 2);
    });

    test("Expires is read against the response's Date, not the gateway's clock", BOUND, async () => {
      const path = '/cache/expires.json';
      // The document server's clock is years away from the gateway's fake one.
      const sent = Date.UTC(2030, 0, 1, 0, 0, 0);
      const clientId = docs.serveDocument(path, {}, {
        date: new Date(sent).toUTCString(),
        expires: new Date(sent + 120_000).toUTCString(),
      });
      assert.equal((await authorize(clientId)).status, 302);
      gw.clock.advance(119);
      assert.equal((await authorize(clientId)).status, 302);
      assert.equal(docs.count(path), 1);
      gw.clock.advance(2);
      assert.equal((await authorize(clientId)).status, 302);
      assert.equal(docs.count(path), 2);
    });

    test('without cache headers a document is kept 5 minutes', BOUND, async () => {
      const path = '/cache/none.json';
      const clientId = docs.serveDocument(path);
      assert.equal((await authorize(clientId)).status, 302);
      gw.clock.advance(299);
      assert.equal((await authorize(clientId)).status, 302);
      assert.equal(docs.count(path), 1);
      gw.clock.advance(2);
      assert.equal((await authorize(clientId)).status, 302);
      assert.equal(docs.count(path), 2);
    });

    test('Expires in the past: fetched every time', BOUND, async () => {
      const path = '/cache/expired.json';
      const clientId = docs.serveDocument(path, {}, { expires: 'Thu, 01 Jan 1970 00:00:00 GMT' });
      assert.equal((await authorize(clientId)).status, 302);
      assert.equal((await authorize(clientId)).status, 302);
      assert.equal(docs.count(path), 2);
    });
  });
});

describe('client metadata documents (default configuration: public addresses only)', () => {
  let gw: TestGateway;
  let docs: DocumentServer;

  before(async () => {
    ({ gw, docs } = await setUp({}));
  });
  after(async () => {
    await gw?.close();
    await docs?.close();
  });

  test('the metadata advertises client_id_metadata_document_supported', BOUND, async () => {
    const res = await fetch(`${gw.url}/.well-known/oauth-authorization-server`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as Record<string, unknown>).client_id_metadata_document_supported, true);
  });

  test('an https client_id on a name that resolves to 127.0.0.1 is refused; nothing reaches the server', BOUND, async () => {
    docs.serveDocument('/client.json');
    const clientId = `https://localhost:${docs.port}/client.json`;
    const res = await fetch(authorizeUrl(gw, authorizeParams(clientId)), { redirect: 'manual', signal: AbortSignal.timeout(15_000) });
    await expectPage(res, /does not resolve to a public address/);
    assert.equal(docs.connections, 0, 'no connection to the document server');
    assert.deepEqual(docs.hits, []);
  });

  test('an https client_id on a loopback or private address literal is refused; nothing reaches the server', BOUND, async () => {
    for (const host of [`127.0.0.1:${docs.port}`, `[::1]:${docs.port}`, `[::ffff:127.0.0.1]:${docs.port}`, '169.254.169.254', '10.0.0.1']) {
      const res = await fetch(authorizeUrl(gw, authorizeParams(`https://${host}/client.json`)), {
        redirect: 'manual',
        signal: AbortSignal.timeout(15_000),
      });
      await expectPage(res, /address is not public/);
    }
    assert.equal(docs.connections, 0);
  });

  test('an http client_id is not a metadata document here: an unknown client', BOUND, async () => {
    const clientId = docs.serveDocument('/plain.json');
    const res = await fetch(authorizeUrl(gw, authorizeParams(clientId)), { redirect: 'manual', signal: AbortSignal.timeout(15_000) });
    await expectPage(res, /not registered here/);
    assert.equal(docs.connections, 0);
  });

  test('the token endpoint refuses such a client_id too', BOUND, async () => {
    const res = await tokenRequest(gw, {
      grant_type: 'authorization_code',
      code: 'x'.repeat(43),
      code_verifier: 'y'.repeat(43),
      redirect_uri: REQUESTED_REDIRECT,
      client_id: `https://localhost:${docs.port}/client.json`,
    });
    assert.ok(res.status === 400 || res.status === 401, `status ${res.status}`);
    assert.equal(docs.connections, 0);
  });
});

describe('client metadata documents disabled', () => {
  let gw: TestGateway;
  let docs: DocumentServer;

  before(async () => {
    ({ gw, docs } = await setUp({ client_metadata_documents: { enabled: false, allow_private_network: true } }));
  });
  after(async () => {
    await gw?.close();
    await docs?.close();
  });

  test('an https URL client_id is refused with an HTML 400 page', BOUND, async () => {
    for (const clientId of ['https://client.example/client.json', docs.serveDocument('/client.json')]) {
      const res = await fetch(authorizeUrl(gw, authorizeParams(clientId)), { redirect: 'manual', signal: AbortSignal.timeout(15_000) });
      await expectPage(res, /does not accept client metadata documents/);
    }
    assert.equal(docs.connections, 0, 'no document is fetched');
  });

  test('the metadata says client_id_metadata_document_supported: false', BOUND, async () => {
    const res = await fetch(`${gw.url}/.well-known/oauth-authorization-server`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as Record<string, unknown>).client_id_metadata_document_supported, false);
  });
});

describe('isMetadataDocumentUrl', () => {
  const yes = [
    'https://app.example/client.json',
    'https://app.example/oauth/client-metadata.json',
    'https://app.example:8443/c',
    'https://app.example/c?v=1',
    'https://app.example/a.b/c..d/...json',
  ];
  const no = [
    'http://app.example/client.json',
    'https://app.example',
    'https://app.example/',
    'https://app.example/?x=1',
    'https://app.example/c#',
    'https://app.example/c#x',
    'https://user@app.example/c',
    'https://user:pw@app.example/c',
    'https://app.example/a/../c',
    'https://app.example/a/./c',
    'https://app.example/a/..',
    'https://app.example/a/%2e%2e/c',
    'https://app.example/a/%2E./c',
    'https://app.example/a/.%2e/c',
    'https://app.example/a\\..\\c',
    'https://app.example/c\tx',
    ' https://app.example/c',
    'https://app.example/c ',
    'https://',
    'HTTPS://app.example/c',
    'client-123',
  ];
  for (const url of yes) test(`${url} is a document URL`, () => assert.equal(isMetadataDocumentUrl(url), true));
  for (const url of no) test(`${JSON.stringify(url)} is not`, () => assert.equal(isMetadataDocumentUrl(url), false));
});

describe('freshness (RFC 9111)', () => {
  const now = Date.UTC(2026, 10, 26, 12, 0, 0);
  const at = (ms: number) => new Date(ms).toUTCString();
  const cases: Array<[string, Parameters<typeof freshness>, number]> = [
    ['max-age', ['max-age=60', undefined, now], 60],
    ['max-age among other directives, any case', ['Public, MAX-AGE=120, must-revalidate', undefined, now], 120],
    ['max-age quoted', ['max-age="90"', undefined, now], 90],
    ['max-age invalid: stale', ['max-age=abc', at(now + 600_000), now], 0],
    ['max-age=0', ['max-age=0', undefined, now], 0],
    ['no-store', ['no-store, max-age=60', undefined, now], 0],
    ['no-cache', ['max-age=60, no-cache', undefined, now], 0],
    ['qualified no-cache is about header fields only', ['no-cache="set-cookie", max-age=60', undefined, now], 60],
    ['capped at 24 h', ['max-age=31536000', undefined, now], 86400],
    ['max-age wins over Expires', ['max-age=10', at(now + 600_000), now], 10],
    ['Age is subtracted', ['max-age=60', undefined, now, { age: '50' }], 10],
    ['Age beyond max-age: stale', ['max-age=60', undefined, now, { age: '61' }], 0],
    ['an invalid Age is ignored', ['max-age=60', undefined, now, { age: '-5' }], 60],
    ['Expires against now', [undefined, at(now + 120_000), now], 120],
    ['Expires against Date', [undefined, at(now + 3_600_000 + 120_000), now, { date: at(now + 3_600_000) }], 120],
    ['Expires in the past', [undefined, at(now - 1000), now], 0],
    ['Expires invalid ("0"): in the past', [undefined, '0', now], 0],
    ['Expires capped at 24 h', [undefined, at(now + 3 * 86_400_000), now], 86400],
    ['nothing: 5 minutes', [undefined, undefined, now], 300],
  ];
  for (const [name, args, seconds] of cases) test(name, () => assert.equal(freshness(...args), seconds));
});

describe('ClientMetadataDocuments cache and settings', () => {
  test('a copy fetched while private networks were allowed is not reused once they are not', BOUND, async (t) => {
    const docs = await new DocumentServer().start();
    t.after(() => docs.close());
    const url = docs.serveDocument('/client.json', {}, { 'cache-control': 'max-age=3600' });
    const documents = new ClientMetadataDocuments(new FakeClock());
    const policy = { privateSchemes: [] };
    const metadata = await documents.resolve(url, { allowPrivateNetwork: true, policy });
    assert.deepEqual(metadata.redirect_uris, [REGISTERED_REDIRECT]);
    await documents.resolve(url, { allowPrivateNetwork: true, policy });
    assert.equal(docs.count('/client.json'), 1, 'cached');
    await assert.rejects(documents.resolve(url, { allowPrivateNetwork: false, policy }), (err: unknown) => {
      assert.ok(err instanceof ClientMetadataDocumentError);
      assert.match(err.message, /only https/);
      return true;
    });
    assert.equal(docs.connections, 1, 'the guard, as configured now, refused before connecting');
  });
});
