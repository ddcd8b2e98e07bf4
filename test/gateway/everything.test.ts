import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { startGateway } from '../helpers/gateway.js';
import { rpc, upstreamsReady } from '../helpers/mcp.js';
import { createKey } from '../helpers/oauth.js';
import { freePort } from '../helpers/ports.js';
import { ROOT } from '../helpers/process.js';

const EVERYTHING = path.join(ROOT, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');

/** The MCP reference server, behind the gateway, over stdio and over Streamable HTTP. */
/** Starts server-everything on a free port in the given HTTP mode; resolves once it says it listens. */
async function startEverything(mode: 'streamableHttp' | 'sse', t: TestContext): Promise<number> {
  const port = await freePort();
  const child = spawn(process.execPath, [EVERYTHING, mode], { env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(async () => {
    child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'exit');
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server-everything (${mode}) did not start`)), 20_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      if (/listening|running/i.test(chunk.toString())) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return port;
}

describe('@modelcontextprotocol/server-everything behind the gateway', () => {
  test('over the legacy SSE transport too', async (t) => {
    const port = await startEverything('sse', t);
    const gw = await startGateway({ config: { upstreams: [{ name: 'ev_sse', transport: 'sse', url: `http://127.0.0.1:${port}/sse`, auth_type: 'none' }] } });
    t.after(() => gw.close());
    await upstreamsReady(gw, ['ev_sse']);
    const { key } = await createKey(gw);
    const echo = await rpc(gw, key, 'tools/call', { name: 'ev_sse-echo', arguments: { message: 'over SSE' } });
    assert.equal(echo.result.content[0].text, 'Echo: over SSE');
  });

  test('over stdio and over Streamable HTTP at once: list, call, structured content, resources, prompts', async (t) => {
    const port = await startEverything('streamableHttp', t);
    const gw = await startGateway({
      config: {
        upstreams: [
          { name: 'ev_stdio', transport: 'stdio', command: process.execPath, args: [EVERYTHING, 'stdio'], auth_type: 'none' },
          { name: 'ev_http', transport: 'http', url: `http://127.0.0.1:${port}/mcp`, auth_type: 'none' },
        ],
      },
    });
    t.after(() => gw.close());
    await upstreamsReady(gw, ['ev_stdio', 'ev_http']);
    const { key } = await createKey(gw);

    const tools = (await rpc(gw, key, 'tools/list')).result.tools as Array<{ name: string; annotations?: unknown }>;
    for (const name of ['ev_stdio-echo', 'ev_http-echo', 'ev_stdio-get-sum', 'ev_http-get-structured-content']) {
      assert.ok(tools.some((x) => x.name === name), `${name} in ${tools.map((x) => x.name).join(', ')}`);
    }
    for (const upstream of ['ev_stdio', 'ev_http']) {
      const echo = await rpc(gw, key, 'tools/call', { name: `${upstream}-echo`, arguments: { message: 'through the gateway' } });
      assert.equal(echo.result.content[0].text, 'Echo: through the gateway');
      const sum = await rpc(gw, key, 'tools/call', { name: `${upstream}-get-sum`, arguments: { a: 2, b: 40 } });
      assert.match(sum.result.content[0].text, /42/);
      const structured = await rpc(gw, key, 'tools/call', { name: `${upstream}-get-structured-content`, arguments: { location: 'New York' } });
      assert.ok(structured.result.structuredContent, JSON.stringify(structured));
    }
    const resources = (await rpc(gw, key, 'resources/list')).result.resources as Array<{ uri: string }>;
    const first = resources.find((r) => r.uri.startsWith('gatehouse://ev_http/'));
    assert.ok(first, 'resources of the HTTP upstream are listed');
    const read = await rpc(gw, key, 'resources/read', { uri: first.uri });
    assert.equal(read.result.contents[0].uri, first.uri);
    const prompts = (await rpc(gw, key, 'prompts/list')).result.prompts as Array<{ name: string }>;
    assert.ok(prompts.some((p) => p.name.startsWith('ev_stdio-')));
  });
});
