import assert from 'node:assert/strict';
import type http from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, test, type TestContext } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { eventStreamAnswer } from '../../src/upstreams/event-stream.js';
import { httpUpstream } from './support.js';

/**
 * Upstream answers that are event streams: one that holds only its result and ends reaches the SDK
 * as JSON; every other one as the stream it is, as it arrives.
 */
describe('upstream event-stream answers', () => {
  const RESULT = { jsonrpc: '2.0', id: 7, result: { content: [{ type: 'text', text: 'done' }] } };
  const PROGRESS = { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 't', progress: 1 } };

  /** A server whose answer is written by `write` (an event-stream response, already started). */
  async function serve(t: TestContext, write: (res: http.ServerResponse) => void) {
    const server = await httpUpstream(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'mcp-session-id': 's-1' });
      res.flushHeaders();
      write(res);
    });
    return { fetch: () => server.fetch(`${server.url}/mcp`, { method: 'POST', body: '{}' }) };
  }

  async function events(res: Response): Promise<string> {
    let text = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) text += decoder.decode(chunk, { stream: true });
    return text;
  }

  const event = (message: unknown, extra = '') => `${extra}event: message\ndata: ${JSON.stringify(message)}\n\n`;

  test('a stream holding only its result (after a priming event) reaches the SDK as JSON, headers kept', async (t) => {
    const server = await serve(t, (res) => {
      res.write('id: e-0\ndata:\n\n');
      setImmediate(() => res.end(event(RESULT, 'id: e-1\n')));
    });
    const res = await server.fetch();
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.equal(res.headers.get('mcp-session-id'), 's-1');
    assert.deepEqual(await res.json(), RESULT);
  });

  test('progress before the result: the stream as it arrives, the progress before the result exists', async (t) => {
    let finish: (() => void) | undefined;
    const server = await serve(t, (res) => {
      res.write(event(PROGRESS));
      finish = () => res.end(event(RESULT));
    });
    const res = await server.fetch();
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const reader = res.body!.getReader();
    assert.equal(new TextDecoder().decode((await reader.read()).value), event(PROGRESS));
    finish!();
    assert.equal(new TextDecoder().decode((await reader.read()).value), event(RESULT));
    assert.equal((await reader.read()).done, true);
  });

  test('a result on a stream that stays open, an error response, a retry hint, a comment: streams, whole and in order', async (t) => {
    const cases: Array<{ name: string; write: (res: http.ServerResponse) => void; expected: string }> = [
      { name: 'stays open', write: (res) => res.write(event(RESULT)), expected: event(RESULT) },
      {
        name: 'error response',
        write: (res) => res.end(event({ jsonrpc: '2.0', id: 7, error: { code: -32602, message: 'no' } })),
        expected: event({ jsonrpc: '2.0', id: 7, error: { code: -32602, message: 'no' } }),
      },
      { name: 'retry hint', write: (res) => res.end(`retry: 1000\n${event(RESULT)}`), expected: `retry: 1000\n${event(RESULT)}` },
      { name: 'comment', write: (res) => res.write(': keep-alive\n\n'), expected: ': keep-alive\n\n' },
    ];
    for (const c of cases) {
      let response: http.ServerResponse | undefined;
      const server = await serve(t, (res) => {
        response = res;
        c.write(res);
      });
        const res = await server.fetch();
      assert.equal(res.headers.get('content-type'), 'text/event-stream', c.name);
      const reader = res.body!.getReader();
      assert.equal(new TextDecoder().decode((await reader.read()).value), c.expected, c.name);
      response!.end();
      await reader.cancel();
    }
  });

  test('an answer that breaks before its first event is a stream that fails', async (t) => {
    const server = await serve(t, (res) => {
      res.write('id: e-0\ndata:\n\n');
      setImmediate(() => res.destroy());
    });
    const res = await server.fetch();
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    await assert.rejects(events(res));
  });

  test('only a stream that the SDK would read as its result and nothing else becomes the result', async () => {
    const answer = async (text: string) => {
      const source = new PassThrough();
      const pending = eventStreamAnswer(source);
      source.end(text);
      const got = await pending;
      return 'result' in got ? got.result : 'stream';
    };
    assert.deepEqual(await answer(event(RESULT)), RESULT);
    assert.deepEqual(await answer(`id: 1\ndata:\n\n: \n${event(RESULT, 'id: 2\n')}`), 'stream', 'a comment');
    assert.deepEqual(await answer(`id: 1\ndata:\n\n${event(RESULT, 'id: 2\n')}`), RESULT, 'after a priming event');
    assert.equal(await answer(`${event(PROGRESS)}${event(RESULT)}`), 'stream', 'a notification first');
    assert.equal(await answer(`${event(RESULT)}${event(PROGRESS)}`), 'stream', 'something after the result');
    assert.equal(await answer('event: message\ndata: {not json\n\n'), 'stream', 'data that is not JSON is reported by the SDK');
    assert.equal(await answer(`event: other\ndata: ${JSON.stringify(RESULT)}\n\n`), 'stream', 'events of another type are skipped by the SDK');
    assert.equal(await answer(`event: message\ndata: ${JSON.stringify({ hello: 1 })}\n\n`), 'stream', 'not a JSON-RPC message');
    assert.equal(await answer(`retry: 5\n${event(RESULT)}`), 'stream', 'a retry hint changes the SDK');
    assert.equal(await answer('id: 1\ndata:\n\n'), 'stream', 'no result');
  });

  test('the SDK client over it: results, and progress that arrives before its result', async (t) => {
    const server = await httpUpstream(t, async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const mcp = new McpServer({ name: 'sse', version: '1.0.0' });
      mcp.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
      mcp.registerTool('steps', { inputSchema: { n: z.number() } }, async ({ n }, extra) => {
        for (let i = 1; i <= n; i++) {
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: extra._meta!.progressToken!, progress: i, total: n } });
        }
        return { content: [{ type: 'text', text: `${n} steps` }] };
      });
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      res.on('close', () => void mcp.close());
      await mcp.connect(transport);
      await transport.handleRequest(req, res, chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined);
    });
    const client = new Client({ name: 'test', version: '1.0.0' });
    t.after(() => client.close());
    await client.connect(new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`), { fetch: server.fetch }));
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => client.callTool({ name: 'echo', arguments: { text: `call ${i}` } })));
    assert.deepEqual(
      results.map((r) => (r.content as Array<{ text: string }>)[0]!.text),
      Array.from({ length: 20 }, (_, i) => `call ${i}`),
    );
    const progress: number[] = [];
    const stepped = await client.request({ method: 'tools/call', params: { name: 'steps', arguments: { n: 3 } } }, CallToolResultSchema, {
      onprogress: (p) => progress.push(p.progress),
    });
    assert.equal((stepped.content[0] as { text: string }).text, '3 steps');
    assert.deepEqual(progress, [1, 2, 3]);
  });
});
