import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import type http from 'node:http';
import { describe, test } from 'node:test';
import { PassThrough } from 'node:stream';
import { webStream } from '../../src/upstreams/event-stream.js';
import { httpUpstream } from './support.js';

/** The HTTP client under the upstream transports, against a local server. */
describe('upstream HTTP client', () => {
  async function body(req: http.IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  test('sends method, headers and body; reads status, headers and JSON; keeps connections alive', async (t) => {
    const seen: Array<{ method: string | undefined; headers: http.IncomingHttpHeaders; body: string; port: number | undefined }> = [];
    const server = await httpUpstream(t, async (req, res) => {
      seen.push({ method: req.method, headers: req.headers, body: await body(req), port: req.socket.remotePort });
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 's-1' });
      res.end(JSON.stringify({ ok: seen.length }));
    });
    for (const headers of [new Headers({ 'Content-Type': 'application/json', 'X-Extra': 'a' }), { 'Content-Type': 'application/json', 'X-Extra': 'a' }]) {
      const res = await server.fetch(new URL(`${server.url}/mcp?x=1`), { method: 'POST', headers, body: '{"a":1}' });
      assert.equal(res.status, 200);
      assert.equal(res.ok, true);
      assert.equal(res.headers.get('Mcp-Session-Id'), 's-1');
      assert.equal(res.headers.get('absent'), null);
      assert.deepEqual(await res.json(), { ok: seen.length });
    }
    assert.equal(seen.length, 2);
    for (const s of seen) {
      assert.equal(s.method, 'POST');
      assert.equal(s.body, '{"a":1}');
      assert.equal(s.headers['content-type'], 'application/json');
      assert.equal(s.headers['x-extra'], 'a');
    }
    // Sequential requests share kept-alive connections (undici checks an idle one in the next
    // turn of the event loop, so a request sent at once may open a second one): not one each.
    for (let i = 0; i < 18; i++) await (await server.fetch(`${server.url}/mcp`, { method: 'POST', body: '{}' })).json();
    assert.ok(new Set(seen.map((s) => s.port)).size <= 2, `${new Set(seen.map((s) => s.port)).size} connections for 20 requests`);
  });

  test('credentials in the URL are sent as HTTP Basic, unless the request has its own authorization', async (t) => {
    const seen: Array<string | undefined> = [];
    const server = await httpUpstream(t, (req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(204);
      res.end();
    });
    const withUser = new URL(server.url);
    withUser.username = 'gate%20house';
    withUser.password = 'p%3Ass';
    await server.fetch(`${withUser.href}mcp`);
    await server.fetch(`${withUser.href}mcp`, { headers: { Authorization: 'Bearer t' } });
    await server.fetch(`${server.url}/mcp`);
    assert.deepEqual(seen, [`Basic ${Buffer.from('gate house:p:ss').toString('base64')}`, 'Bearer t', undefined]);
  });

  test('an event stream is handed over as it arrives', async (t) => {
    let push: ((text: string) => void) | undefined;
    const server = await httpUpstream(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: one\n\n');
      push = (text) => res.write(text);
    });
    const res = await server.fetch(`${server.url}/mcp`, { method: 'GET', headers: { accept: 'text/event-stream' } });
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    assert.equal(decoder.decode((await reader.read()).value), 'data: one\n\n');
    push!('data: two\n\n');
    assert.equal(decoder.decode((await reader.read()).value), 'data: two\n\n');
    await reader.cancel();
  });

  test('an event stream pauses its source while the reader is behind, and cancelling it destroys the source', async () => {
    const source = new PassThrough();
    const stream = webStream(source);
    for (let i = 0; i < 50; i++) source.write(Buffer.from(`data: ${i}\n\n`));
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(source.isPaused(), true, 'the source is paused while nobody reads');
    const reader = stream.getReader();
    const decoder = new TextDecoder();
    let text = '';
    for (let i = 0; i < 50; i++) text += decoder.decode((await reader.read()).value);
    assert.equal(text, Array.from({ length: 50 }, (_, i) => `data: ${i}\n\n`).join(''));
    source.end();
    assert.equal((await reader.read()).done, true);

    const other = new PassThrough();
    const cancelled = webStream(other).getReader();
    await cancelled.cancel(new Error('the reader went away'));
    assert.equal(other.destroyed, true);
  });

  test('an event stream answering an error is read whole by text()', async (t) => {
    const server = await httpUpstream(t, (_req, res) => {
      res.writeHead(503, { 'content-type': 'text/event-stream' });
      res.end('upstream is overloaded');
    });
    const res = await server.fetch(`${server.url}/mcp`, { method: 'POST', body: '{}' });
    assert.equal(res.ok, false);
    assert.equal(res.status, 503);
    assert.equal(await res.text(), 'upstream is overloaded');
  });

  test('a long-lived signal: no listener stays behind a finished request, and aborting it ends an open stream', async (t) => {
    const server = await httpUpstream(t, (req, res) => {
      if (req.url === '/stream') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': open\n\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    const controller = new AbortController();
    for (let i = 0; i < 20; i++) await (await server.fetch(`${server.url}/json`, { method: 'POST', body: '{}', signal: controller.signal })).json();
    // At most the last request's, which goes when its body's stream closes: they do not pile up.
    assert.ok(getEventListeners(controller.signal, 'abort').length <= 1);
    const stream = await server.fetch(`${server.url}/stream`, { signal: controller.signal });
    const reader = stream.body!.getReader();
    await reader.read();
    controller.abort(new Error('closing'));
    await assert.rejects(async () => {
      for (;;) if ((await reader.read()).done) return;
    });
  });

  test('no body for 204 and HEAD; redirects are returned, not followed; only http(s) and string bodies', async (t) => {
    const server = await httpUpstream(t, (req, res) => {
      if (req.url === '/moved') {
        res.writeHead(302, { location: '/elsewhere' });
        res.end('moved');
        return;
      }
      res.writeHead(req.method === 'HEAD' ? 200 : 204);
      res.end();
    });
    const empty = await server.fetch(`${server.url}/nothing`, { method: 'DELETE' });
    assert.equal(empty.status, 204);
    assert.equal(empty.body, null);
    assert.equal(await empty.text(), '');
    const head = await server.fetch(`${server.url}/nothing`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, null);
    const moved = await server.fetch(`${server.url}/moved`);
    assert.equal(moved.status, 302);
    assert.equal(moved.ok, false);
    assert.equal(moved.headers.get('location'), '/elsewhere');
    assert.equal(await moved.text(), 'moved');
    await assert.rejects(server.fetch('ftp://127.0.0.1/x'), /unsupported protocol ftp:/);
    await assert.rejects(server.fetch(`${server.url}/x`, { method: 'POST', body: new Uint8Array([1]) }), /only string bodies/);
  });
});
