import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { guardedGet, GuardedFetchError, isPublicAddress, type GuardOptions } from '../../src/net/guarded-fetch.js';

/** Product §2.7: the SSRF guard in front of every fetch of a URL someone else gave us. */

const LIMITS = { maxBytes: 1024, timeoutMs: 2000 };
const LOCAL: GuardOptions = { ...LIMITS, allowPrivateNetwork: true };
/** Every test is bounded, whatever the guard does. */
const BOUND = { timeout: 10_000 };

/** Expects `promise` to fail with a GuardedFetchError whose message matches `reason`. */
async function refused(promise: Promise<unknown>, reason: RegExp): Promise<GuardedFetchError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof GuardedFetchError, `a GuardedFetchError, got ${String(err)}`);
    assert.match(err.message, reason);
    return err;
  }
  assert.fail('the fetch was not refused');
}

interface LocalServer {
  base: string;
  port: number;
  /** Paths requested, in order. */
  hits: string[];
  /** TCP connections accepted. */
  connections: number;
}

/** A node:http server on 127.0.0.1 whose answers the test writes, closed when the test ends. */
async function localServer(t: TestContext, handler: http.RequestListener): Promise<LocalServer> {
  const state = { hits: [] as string[], connections: 0 };
  const server = http.createServer((req, res) => {
    state.hits.push(req.url ?? '');
    handler(req, res);
  });
  server.on('connection', () => state.connections++);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    port,
    get hits() {
      return state.hits;
    },
    get connections() {
      return state.connections;
    },
  };
}

/** A bare TCP listener on 127.0.0.1 that counts connections and never speaks. */
async function tcpListener(t: TestContext): Promise<{ port: number; connections: () => number }> {
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as net.AddressInfo).port, connections: () => count };
}

describe('isPublicAddress', () => {
  const notPublic = [
    // IPv4 special-purpose ranges (RFC 6890 and the IANA registry)
    '0.0.0.0',
    '0.1.2.3',
    '10.0.0.1',
    '10.255.255.255',
    '100.64.0.1',
    '100.127.255.254',
    '127.0.0.1',
    '127.1.2.3',
    '169.254.169.254',
    '172.16.0.1',
    '172.20.1.1',
    '172.31.255.255',
    '192.0.0.8',
    '192.0.2.1',
    '192.88.99.1',
    '192.168.0.1',
    '192.168.255.255',
    '198.18.0.1',
    '198.19.255.255',
    '198.51.100.7',
    '203.0.113.9',
    '224.0.0.1',
    '239.255.255.250',
    '240.0.0.1',
    '255.255.255.255',
    // IPv6
    '::1',
    '::',
    '0:0:0:0:0:0:0:1',
    'fc00::1',
    'fd12:3456:789a::1',
    'fe80::1',
    'febf::1',
    'ff02::1',
    'ff05::1:3',
    '2001:db8::1',
    '100::1',
    '2001::1',
    // IPv4 inside IPv6: mapped, NAT64, 6to4, in their compressed and expanded spellings
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::FFFF:7F00:1',
    '::ffff:10.0.0.1',
    '::ffff:c0a8:101',
    '0:0:0:0:0:ffff:7f00:1',
    '0000:0000:0000:0000:0000:ffff:0a00:0001',
    '64:ff9b::a00:1',
    '64:ff9b::127.0.0.1',
    '64:ff9b:0:0:0:0:a00:1',
    '64:ff9b:0:0:0:0:7f00:1',
    '64:ff9b:1::1',
    '2002:c0a8:0101::',
    '2002:c0a8:101::1',
    '2002:7f00:1::',
    '2002:0a00:0001:0:0:0:0:1',
    // IPv4-compatible (deprecated, RFC 4291 §2.5.5.1): never a public destination
    '::127.0.0.1',
    '::7f00:1',
    // Not addresses at all
    'localhost',
    'example.com',
    '',
    '256.1.1.1',
  ];
  const isPublic = [
    '8.8.8.8',
    '1.1.1.1',
    '93.184.216.34',
    '172.15.255.255',
    '172.32.0.1',
    '100.63.255.255',
    '100.128.0.1',
    '192.169.0.1',
    '2606:4700::1111',
    '2606:4700:4700::1111',
    '2a00:1450:4001:82a::200e',
    '::ffff:8.8.8.8',
    '64:ff9b::808:808',
    '2002:0808:0808::1',
  ];

  for (const address of notPublic) {
    test(`${JSON.stringify(address)} is not public`, () => {
      assert.equal(isPublicAddress(address), false);
    });
  }
  for (const address of isPublic) {
    test(`${address} is public`, () => {
      assert.equal(isPublicAddress(address), true);
    });
  }
});

describe('guardedGet refusals, before any request', () => {
  test('plain http is refused: only https', BOUND, async () => {
    await refused(guardedGet('http://example.com/client.json', LIMITS), /only https/);
    await refused(guardedGet('http://8.8.8.8/client.json', LIMITS), /only https/);
  });

  test('other schemes are refused', BOUND, async () => {
    for (const url of ['ftp://example.com/x', 'file:///etc/passwd', 'data:application/json,{}']) {
      await refused(guardedGet(url, LIMITS), /only https/);
    }
  });

  test('an invalid URL is refused', BOUND, async () => {
    for (const url of ['', 'not a url', 'https://', '//example.com/x', 'https://[::1/x']) {
      await refused(guardedGet(url, LIMITS), /not a valid URL/);
    }
  });

  test('credentials in the URL are refused', BOUND, async () => {
    await refused(guardedGet('https://user:secret@example.com/client.json', LIMITS), /credentials/);
    await refused(guardedGet('https://user@example.com/client.json', LIMITS), /credentials/);
  });

  test('https to a literal private, loopback or link-local address is refused before connecting', BOUND, async (t) => {
    const listener = await tcpListener(t);
    for (const host of [
      `127.0.0.1:${listener.port}`,
      `127.1:${listener.port}`,
      `0x7f.1:${listener.port}`,
      `2130706433:${listener.port}`,
      '10.0.0.1',
      '169.254.169.254',
      '192.168.1.1',
      '100.64.0.1',
      '0.0.0.0',
      '[::1]',
      '[::ffff:127.0.0.1]',
      '[fe80::1]',
      '[fd00::1]',
    ]) {
      await refused(guardedGet(`https://${host}/client.json`, LIMITS), /not public/);
    }
    assert.equal(listener.connections(), 0, 'no connection was made');
  });

  test('a hostname that resolves to loopback (localhost) is refused after resolution, without connecting', BOUND, async (t) => {
    const listener = await tcpListener(t);
    await refused(guardedGet(`https://localhost:${listener.port}/client.json`, LIMITS), /localhost does not resolve to a public address/);
    assert.equal(listener.connections(), 0, 'no connection was made');
  });

  test('without allowPrivateNetwork, http on loopback is refused', BOUND, async (t) => {
    const server = await localServer(t, (_req, res) => res.end('{}'));
    await refused(guardedGet(`${server.base}/client.json`, LIMITS), /only https/);
    assert.equal(server.connections, 0);
  });
});

describe('guardedGet against a local server (allowPrivateNetwork)', () => {
  test('a 200 JSON body is returned, with status and headers', BOUND, async (t) => {
    const body = JSON.stringify({ client_id: 'x', redirect_uris: ['http://127.0.0.1/cb'] });
    let accept: string | undefined;
    const server = await localServer(t, (req, res) => {
      accept = req.headers.accept;
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' });
      res.end(body);
    });
    const res = await guardedGet(`${server.base}/client.json`, LOCAL);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.equal(res.headers['cache-control'], 'max-age=60');
    assert.equal(res.body.toString('utf8'), body);
    assert.equal(accept, 'application/json');
    assert.deepEqual(server.hits, ['/client.json']);
  });

  test('a non-2xx status is returned as such, for the caller to judge', BOUND, async (t) => {
    const server = await localServer(t, (_req, res) => {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not here');
    });
    const res = await guardedGet(`${server.base}/missing.json`, LOCAL);
    assert.equal(res.status, 404);
    assert.equal(res.body.toString(), 'not here');
  });

  for (const status of [301, 302, 303, 307, 308]) {
    test(`a ${status} redirect is refused and its target never requested`, BOUND, async (t) => {
      const server = await localServer(t, (req, res) => {
        if (req.url === '/redirect') {
          res.writeHead(status, { location: '/target' });
          res.end();
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{}');
        }
      });
      await refused(guardedGet(`${server.base}/redirect`, LOCAL), new RegExp(`redirect \\(${status}\\)`));
      // guardedGet has settled: had it followed the redirect, the target would have been hit by now.
      assert.deepEqual(server.hits, ['/redirect']);
    });
  }

  test('a body of exactly maxBytes is accepted', BOUND, async (t) => {
    const server = await localServer(t, (_req, res) => res.end(Buffer.alloc(LIMITS.maxBytes, 'a')));
    const res = await guardedGet(`${server.base}/exact`, LOCAL);
    assert.equal(res.body.length, LIMITS.maxBytes);
  });

  test('a body over maxBytes announced by Content-Length is refused', BOUND, async (t) => {
    const server = await localServer(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(LIMITS.maxBytes + 1) });
      res.end(Buffer.alloc(LIMITS.maxBytes + 1, 'a'));
    });
    await refused(guardedGet(`${server.base}/big`, LOCAL), /larger than 1024 bytes/);
  });

  test('a body over maxBytes in chunked transfer (no Content-Length) is refused', BOUND, async (t) => {
    let chunked: string | undefined;
    const server = await localServer(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(300, 'a');
      const timer = setInterval(() => {
        // Keeps writing until the client hangs up: the guard must stop reading, not the server writing.
        if (res.destroyed || !res.write(chunk)) clearInterval(timer);
      }, 5);
      res.on('close', () => clearInterval(timer));
      res.write(chunk);
      chunked = String(res.getHeader('transfer-encoding') ?? 'chunked');
    });
    await refused(guardedGet(`${server.base}/stream`, LOCAL), /larger than 1024 bytes/);
    assert.equal(chunked, 'chunked');
  });

  test('bytes beyond an understated Content-Length are never returned', BOUND, async (t) => {
    // A lying Content-Length is a framing error: the parser stops at the announced length, or the
    // fetch fails; either way the extra bytes (here past maxBytes) are not read into the body.
    const server = await localServer(t, (_req, res) => {
      res.socket!.end(
        `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10\r\nconnection: close\r\n\r\n${'a'.repeat(2000)}`,
      );
    });
    const outcome = await guardedGet(`${server.base}/liar`, LOCAL).then(
      (res) => res.body.length,
      (err: unknown) => err,
    );
    if (typeof outcome === 'number') assert.equal(outcome, 10, 'only the announced bytes are read');
    else assert.ok(outcome instanceof GuardedFetchError, String(outcome));
  });

  test('a server that never answers is refused after timeoutMs', BOUND, async (t) => {
    const server = await localServer(t, () => {
      /* never answers */
    });
    const started = performance.now();
    await refused(guardedGet(`${server.base}/slow`, { ...LOCAL, timeoutMs: 300 }), /timed out/);
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 250, `waited ${elapsed} ms`);
    assert.ok(elapsed < 2000, `gave up after ${elapsed} ms`);
  });

  test('a server that sends headers and then trickles the body is refused after timeoutMs', BOUND, async (t) => {
    const server = await localServer(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{');
      const timer = setInterval(() => res.write(' '), 50);
      res.on('close', () => clearInterval(timer));
    });
    const started = performance.now();
    await refused(guardedGet(`${server.base}/trickle`, { ...LOCAL, timeoutMs: 300 }), /timed out/);
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 2000, `gave up after ${elapsed} ms`);
  });

  test('a connection closed in the middle of the body is refused, not returned truncated', BOUND, async (t) => {
    const server = await localServer(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"client_id":');
      setTimeout(() => res.destroy(), 20);
    });
    await refused(guardedGet(`${server.base}/cut`, LOCAL), /could not be fetched|timed out/);
  });

  test('a refused connection is reported as such', BOUND, async () => {
    // Nothing listens on a port just released by its own server.
    const closed = net.createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await refused(guardedGet(`http://127.0.0.1:${port}/x`, LOCAL), /could not be fetched \(ECONNREFUSED\)/);
  });
});

describe('guardedGet allowedHosts', () => {
  test("allowedHosts: ['127.0.0.1'] admits that host, over http too", BOUND, async (t) => {
    const server = await localServer(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
    const res = await guardedGet(`${server.base}/doc.json`, { ...LIMITS, allowedHosts: ['127.0.0.1'] });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body.toString()), { ok: true });
  });

  test('allowedHosts admits only the hosts it names', BOUND, async (t) => {
    const listener = await tcpListener(t);
    await refused(guardedGet(`https://localhost:${listener.port}/x`, { ...LIMITS, allowedHosts: ['127.0.0.1'] }), /public address/);
    await refused(guardedGet(`https://127.0.0.2:${listener.port}/x`, { ...LIMITS, allowedHosts: ['127.0.0.1'] }), /not public/);
    await refused(guardedGet(`http://localhost:${listener.port}/x`, { ...LIMITS, allowedHosts: ['127.0.0.1'] }), /only https/);
    assert.equal(listener.connections(), 0);
  });

  test('allowedHosts still refuses redirects and oversized bodies', BOUND, async (t) => {
    const server = await localServer(t, (req, res) => {
      if (req.url === '/redirect') {
        res.writeHead(302, { location: '/doc.json' });
        res.end();
      } else {
        res.end(Buffer.alloc(LIMITS.maxBytes + 1));
      }
    });
    const options = { ...LIMITS, allowedHosts: ['127.0.0.1'] };
    await refused(guardedGet(`${server.base}/redirect`, options), /redirect/);
    await refused(guardedGet(`${server.base}/doc.json`, options), /larger than/);
    assert.deepEqual(server.hits, ['/redirect', '/doc.json']);
  });
});
