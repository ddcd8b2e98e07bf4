import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHttpFixture, type HttpFixture } from '../fixtures/http-fixture.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { mcpPost, rpc, upstreamsReady } from '../helpers/mcp.js';
import { createKey } from '../helpers/oauth.js';

/** Product §3.1: the catalog under reversible names, and everything passing through untouched. */
describe('catalog and pass-through', () => {
  let gw: TestGateway;
  let one: HttpFixture;
  let two: HttpFixture;
  let key: string;
  before(async () => {
    [one, two] = await Promise.all([startHttpFixture('one'), startHttpFixture('two_b')]);
    gw = await startGateway({
      config: {
        upstreams: [
          { name: 'one', transport: 'http', url: one.url, auth_type: 'none' },
          { name: 'two_b', transport: 'http', url: two.url, auth_type: 'headers', headers: { authorization: 'Bearer upstream-secret', 'x-tenant': 'acme' } },
        ],
        oauth_server: { enabled: true },
      },
    });
    await upstreamsReady(gw, ['one', 'two_b']);
    key = (await createKey(gw)).key;
  });
  after(async () => {
    await gw.close();
    await Promise.all([one.close(), two.close()]);
  });

  test('tools of every upstream, prefixed with the upstream name; the same tool of two upstreams does not collide', async () => {
    const tools = (await rpc(gw, key, 'tools/list')).result.tools as Array<Record<string, any>>;
    const names = tools.map((t) => t.name);
    for (const n of ['one-echo', 'one-add', 'two_b-echo', 'two_b-add']) assert.ok(names.includes(n), n);
    assert.equal(new Set(names).size, names.length);
    for (const name of names) assert.match(name, /^[A-Za-z0-9_.-]{1,128}$/, 'within the MCP tool-name rules');
    const add = tools.find((t) => t.name === 'one-add')!;
    assert.deepEqual(add.outputSchema.required, ['sum'], 'outputSchema passes through');
    assert.deepEqual(add._meta, { 'example.com/tier': 'free' }, '_meta passes through');
    const echo = tools.find((t) => t.name === 'one-echo')!;
    assert.deepEqual(echo.annotations, { readOnlyHint: true, title: 'Echo' }, 'annotations pass through');
  });

  test('calls reach the right upstream; structuredContent, _meta and isError pass through', async () => {
    assert.equal((await rpc(gw, key, 'tools/call', { name: 'two_b-echo', arguments: { message: 'hello' } })).result.content[0].text, 'two_b: hello');
    const sum = (await rpc(gw, key, 'tools/call', { name: 'one-add', arguments: { a: 2, b: 3 } })).result;
    assert.deepEqual(sum.structuredContent, { sum: 5 });
    assert.deepEqual(sum._meta, { 'example.com/cost': 0 });
    const failed = (await rpc(gw, key, 'tools/call', { name: 'one-fail', arguments: {} })).result;
    assert.equal(failed.isError, true);
    assert.match(failed.content[0].text, /always fails/);
    // Argument errors from the upstream come back as its JSON-RPC error.
    const bad = await rpc(gw, key, 'tools/call', { name: 'one-add', arguments: { a: 'x' } });
    assert.ok(bad.error || bad.result.isError, JSON.stringify(bad));
  });

  test("the upstream gets the operator's headers, never the client's credential", async () => {
    const seen = JSON.parse((await rpc(gw, key, 'tools/call', { name: 'two_b-whoami', arguments: {} })).result.content[0].text);
    assert.equal(seen.authorization, 'Bearer upstream-secret');
    assert.equal(seen['x-tenant'], 'acme');
    const plain = JSON.parse((await rpc(gw, key, 'tools/call', { name: 'one-whoami', arguments: {} })).result.content[0].text);
    assert.equal(plain.authorization, undefined);
    assert.equal(JSON.stringify([...one.log.headers, ...two.log.headers]).includes(key), false, 'the virtual key never leaves the gateway');
  });

  test('resources and templates under gatehouse://<upstream>/, read back through the same name', async () => {
    const resources = (await rpc(gw, key, 'resources/list')).result.resources as Array<{ uri: string }>;
    assert.ok(resources.some((r) => r.uri === 'gatehouse://one/fixture://readme'));
    assert.ok(resources.some((r) => r.uri === 'gatehouse://two_b/fixture://readme'));
    const read = (await rpc(gw, key, 'resources/read', { uri: 'gatehouse://two_b/fixture://readme' })).result;
    assert.deepEqual(read.contents, [{ uri: 'gatehouse://two_b/fixture://readme', mimeType: 'text/plain', text: 'readme of two_b' }]);
    const templates = (await rpc(gw, key, 'resources/templates/list')).result.resourceTemplates as Array<{ uriTemplate: string }>;
    assert.ok(templates.some((t) => t.uriTemplate === 'gatehouse://one/fixture://items/{id}'));
    const item = (await rpc(gw, key, 'resources/read', { uri: 'gatehouse://one/fixture://items/42' })).result;
    assert.equal(item.contents[0].text, 'item 42 of one');
    assert.equal((await rpc(gw, key, 'resources/read', { uri: 'fixture://readme' })).error?.code, -32602);
  });

  test('prompts, prefixed like tools', async () => {
    const prompts = (await rpc(gw, key, 'prompts/list')).result.prompts as Array<{ name: string }>;
    assert.ok(prompts.some((p) => p.name === 'one-greet'));
    const got = (await rpc(gw, key, 'prompts/get', { name: 'one-greet', arguments: { who: 'Ada' } })).result;
    assert.equal(got.messages[0].content.text, 'Hello Ada, from one');
  });

  test('/mcp/<upstream> serves one upstream under its own names', async () => {
    const tools = (await rpc(gw, key, 'tools/list', undefined, '/mcp/one')).result.tools as Array<{ name: string }>;
    assert.ok(tools.some((t) => t.name === 'echo'));
    assert.ok(tools.every((t) => !t.name.includes('-')));
    assert.equal((await rpc(gw, key, 'tools/call', { name: 'echo', arguments: { message: 'x' } }, '/mcp/one')).result.content[0].text, 'one: x');
    const read = (await rpc(gw, key, 'resources/read', { uri: 'fixture://readme' }, '/mcp/one')).result;
    assert.equal(read.contents[0].uri, 'fixture://readme');
    assert.equal((await mcpPost(gw, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { credential: key, path: '/mcp/nope' })).status, 404);
  });

  test('progress notifications stream back when the client asks for them', async () => {
    const res = await mcpPost(gw, {
      jsonrpc: '2.0',
      id: 77,
      method: 'tools/call',
      params: { name: 'one-slow', arguments: { ms: 80 }, _meta: { progressToken: 'tok-1' } },
    }, { credential: key });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const events = res.text
      .split('\n\n')
      .filter((e) => e.includes('data: '))
      .map((e) => JSON.parse(e.slice(e.indexOf('data: ') + 6)));
    const progress = events.filter((e) => e.method === 'notifications/progress');
    assert.equal(progress.length, 4);
    assert.deepEqual(progress.map((p) => p.params.progressToken), ['tok-1', 'tok-1', 'tok-1', 'tok-1'], "the client's own token");
    assert.deepEqual(progress.map((p) => p.params.progress), [1, 2, 3, 4]);
    assert.equal(events.at(-1).id, 77);
    assert.equal(events.at(-1).result.content[0].text, 'done');
  });

  test('200 concurrent callers over one pooled connection get their own, unmixed results', async () => {
    const sessionsBefore = new Set(one.log.headers.map((h) => h['mcp-session-id']).filter(Boolean));
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => rpc(gw, key, 'tools/call', { name: 'one-echo', arguments: { message: `m${i}` } })),
    );
    results.forEach((r, i) => assert.equal(r.result.content[0].text, `one: m${i}`));
    const sessionsAfter = new Set(one.log.headers.map((h) => h['mcp-session-id']).filter(Boolean));
    assert.equal(sessionsAfter.size, sessionsBefore.size, 'no new upstream session: the pooled one was reused');
    assert.equal(sessionsAfter.size, 1);
  });
});
