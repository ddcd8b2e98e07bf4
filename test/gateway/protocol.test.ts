import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHttpFixture, type HttpFixture } from '../fixtures/http-fixture.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { mcpPost, rpc, upstreamsReady } from '../helpers/mcp.js';
import { rawRequest } from '../helpers/http.js';
import { createKey } from '../helpers/oauth.js';

/** MCP Streamable HTTP, stateless: what any request to /mcp gets. */
describe('/mcp protocol', () => {
  let gw: TestGateway;
  let fixture: HttpFixture;
  let key: string;
  before(async () => {
    fixture = await startHttpFixture('fx');
    gw = await startGateway({ config: { upstreams: [{ name: 'fx', transport: 'http', url: fixture.url, auth_type: 'none' }] } });
    await upstreamsReady(gw, ['fx']);
    key = (await createKey(gw)).key;
  });
  after(async () => {
    await gw.close();
    await fixture.close();
  });

  test('initialize negotiates the protocol version and issues a session id', async () => {
    const res = await mcpPost(gw, {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    }, { credential: key });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('mcp-session-id') ?? '', /^s1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    assert.equal(res.json.result.protocolVersion, '2025-06-18');
    assert.equal(res.json.result.serverInfo.name, 'gatehouse');
    assert.ok(res.json.result.capabilities.tools);
    const future = await rpc(gw, key, 'initialize', { protocolVersion: '2099-01-01', capabilities: {}, clientInfo: { name: 't', version: '1' } });
    assert.equal(future.result.protocolVersion, '2025-11-25', 'an unknown version gets our latest');
  });

  test('notifications and responses are accepted with 202 and no body', async () => {
    const res = await mcpPost(gw, { jsonrpc: '2.0', method: 'notifications/initialized' }, { credential: key });
    assert.equal(res.status, 202);
    assert.equal(res.text, '');
    assert.equal((await mcpPost(gw, { jsonrpc: '2.0', id: 9, result: {} }, { credential: key })).status, 202);
  });

  test('a session id is checked, not stored: the issued one works, any other is an unknown session; none is needed', async () => {
    const init = await mcpPost(
      gw,
      { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } },
      { credential: key },
    );
    const session = init.headers.get('mcp-session-id')!;
    const ping = (headers: Record<string, string>, credential = key) => mcpPost(gw, { jsonrpc: '2.0', id: 1, method: 'ping' }, { credential, headers });
    const ok = await ping({ 'mcp-session-id': session });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.json.result, {});
    assert.equal((await ping({})).status, 200, 'requests without a session id are answered');
    for (const forged of ['whatever-123', session.slice(0, -2) + 'AA', `s1.${Buffer.from('{"s":"x","u":1}').toString('base64url')}.${session.split('.')[2]}`]) {
      const res = await ping({ 'mcp-session-id': forged });
      assert.equal(res.status, 404, forged);
      assert.equal(res.json.error.code, -32001);
    }
    // Issued to another identity: not this caller's session.
    const { key: other } = await createKey(gw, { name: 'other' });
    assert.equal((await ping({ 'mcp-session-id': session }, other)).status, 404);
    // Still refused without credentials: a session id is not one.
    assert.equal((await mcpPost(gw, { jsonrpc: '2.0', id: 1, method: 'ping' }, { headers: { 'mcp-session-id': session } })).status, 401);
  });

  test('batches get an array of answers', async () => {
    const res = await mcpPost(gw, [
      { jsonrpc: '2.0', id: 1, method: 'ping' },
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'fx-echo', arguments: { message: 'b' } } },
    ], { credential: key });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json.map((r: { id: number }) => r.id), [1, 2]);
    assert.equal(res.json[1].result.content[0].text, 'fx: b');
  });

  test('malformed messages: JSON-RPC errors with 400, never a 500', async () => {
    for (const [body, code] of [
      ['{not json', -32700],
      ['{"jsonrpc":"2.0","id":1,"method":"ping","method":"x"}', -32700],
      ['{"jsonrpc":"1.0","id":1,"method":"ping"}', -32600],
      ['{"jsonrpc":"2.0","id":null,"method":"ping"}', -32600],
      ['{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1]}', -32600],
      ['[]', -32600],
      ['"ping"', -32600],
    ] as const) {
      const res = await mcpPost(gw, body, { credential: key });
      assert.equal(res.status, 400, body);
      assert.equal(res.json.error.code, code, body);
    }
    const huge = await mcpPost(gw, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(5 * 1024 * 1024) } }), { credential: key });
    assert.equal(huge.status, 413);
  });

  test('unknown methods and bad parameters', async () => {
    assert.equal((await rpc(gw, key, 'nope/nothing')).error?.code, -32601);
    assert.equal((await rpc(gw, key, 'tools/call', {})).error?.code, -32602);
    assert.equal((await rpc(gw, key, 'tools/call', { name: 'fx-does_not_exist' })).error?.code, -32602);
    assert.equal((await rpc(gw, key, 'tools/call', { name: 'nodash' })).error?.code, -32602);
    assert.equal((await rpc(gw, key, 'resources/read', { uri: 'gatehouse://' })).error?.code, -32602);
  });

  test('DELETE is refused (nothing to end); an unsupported MCP-Protocol-Version is 400', async () => {
    const del = await fetch(`${gw.url}/mcp`, { method: 'DELETE', headers: { authorization: `Bearer ${key}` } });
    assert.equal(del.status, 405);
    assert.match(del.headers.get('allow') ?? '', /POST/);
    const version = await mcpPost(gw, { jsonrpc: '2.0', id: 1, method: 'ping' }, { credential: key, headers: { 'mcp-protocol-version': '1999-01-01' } });
    assert.equal(version.status, 400);
    const ok = await mcpPost(gw, { jsonrpc: '2.0', id: 1, method: 'ping' }, { credential: key, headers: { 'mcp-protocol-version': '2025-11-25' } });
    assert.equal(ok.status, 200);
  });

  test('DNS rebinding: a foreign Origin or Host is refused with 403; local and own origins pass', async () => {
    const ping = { jsonrpc: '2.0', id: 1, method: 'ping' };
    const evil = await mcpPost(gw, ping, { credential: key, headers: { origin: 'http://evil.example.com' } });
    assert.equal(evil.status, 403);
    // (fetch cannot set Host; node:http can, as a browser under DNS rebinding would send it)
    const rebound = await rawRequest(`${gw.url}/mcp`, {
      headers: { host: 'evil.example.com', authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(ping),
    });
    assert.equal(rebound.status, 403);
    assert.equal((await mcpPost(gw, ping, { credential: key, headers: { origin: gw.gatehouse.issuer() } })).status, 200);
    assert.equal((await mcpPost(gw, ping, { credential: key, headers: { origin: 'http://localhost:6274' } })).status, 200, 'a local browser-based client');
  });

  test('GET without Accept: text/event-stream is 406; completion is forwarded', async () => {
    const get = await fetch(`${gw.url}/mcp`, { headers: { authorization: `Bearer ${key}`, accept: 'application/json' } });
    assert.equal(get.status, 406);
    const completion = await rpc(gw, key, 'completion/complete', { ref: { type: 'ref/prompt', name: 'fx-greet' }, argument: { name: 'who', value: 'a' } });
    assert.deepEqual(completion.result?.completion?.values, ['Ada', 'Alan'], JSON.stringify(completion));
  });
});
