import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startHttpFixture } from '../fixtures/http-fixture.js';
import { startGateway } from '../helpers/gateway.js';
import { catalogChange, mcpPost, rpc, stdioFixture, upstreamsReady } from '../helpers/mcp.js';
import { createKey } from '../helpers/oauth.js';
import { freePort } from '../helpers/ports.js';

/** Product §3.2: pooled upstream connections that fail alone, time out, reconnect and restart. */
describe('upstream connections', () => {
  test('a call that exceeds the timeout fails as a tool error naming the upstream, and is cancelled upstream', async (t) => {
    const fixture = await startHttpFixture('slowpoke');
    t.after(() => fixture.close());
    const gw = await startGateway({ config: { upstreams: [{ name: 'slowpoke', transport: 'http', url: fixture.url, auth_type: 'none', timeout: 1 }] } });
    t.after(() => gw.close());
    await upstreamsReady(gw, ['slowpoke']);
    const { key } = await createKey(gw);
    const started = Date.now();
    const res = await rpc(gw, key, 'tools/call', { name: 'slowpoke-slow', arguments: { ms: 10_000, tag: 'too-slow' } });
    assert.ok(Date.now() - started < 5000, 'answered at the timeout, not when the tool finished');
    assert.equal(res.result.isError, true);
    assert.match(res.result.content[0].text, /"slowpoke" did not answer within 1 seconds; the call was cancelled/);
    // The upstream received notifications/cancelled and stopped its work.
    await waitFor(() => fixture.log.cancelled.includes('too-slow'));
  });

  test('a client that cancels (or goes away) cancels the upstream call', async (t) => {
    const fixture = await startHttpFixture('cancel');
    t.after(() => fixture.close());
    const gw = await startGateway({ config: { upstreams: [{ name: 'cancel', transport: 'http', url: fixture.url, auth_type: 'none' }] } });
    t.after(() => gw.close());
    await upstreamsReady(gw, ['cancel']);
    const { key } = await createKey(gw);
    const call = mcpPost(gw, { jsonrpc: '2.0', id: 'c-1', method: 'tools/call', params: { name: 'cancel-slow', arguments: { ms: 20_000, tag: 'by-notification' } } }, { credential: key });
    await waitFor(() => fixture.log.calls.some((c) => (c.args as { tag?: string }).tag === 'by-notification'));
    const ack = await mcpPost(gw, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'c-1', reason: 'user' } }, { credential: key });
    assert.equal(ack.status, 202);
    await waitFor(() => fixture.log.cancelled.includes('by-notification'));
    await call;

    const controller = new AbortController();
    const abandoned = mcpPost(gw, { jsonrpc: '2.0', id: 'c-2', method: 'tools/call', params: { name: 'cancel-slow', arguments: { ms: 20_000, tag: 'by-disconnect' } } }, { credential: key, signal: controller.signal }).catch(() => 'aborted');
    await waitFor(() => fixture.log.calls.some((c) => (c.args as { tag?: string }).tag === 'by-disconnect'));
    controller.abort();
    assert.equal(await abandoned, 'aborted');
    await waitFor(() => fixture.log.cancelled.includes('by-disconnect'));
  });

  test('an upstream that is down fails only its own calls, with a tool error that names it', async (t) => {
    const healthy = await startHttpFixture('healthy');
    t.after(() => healthy.close());
    const deadPort = await freePort();
    const gw = await startGateway({
      config: {
        upstreams: [
          { name: 'healthy', transport: 'http', url: healthy.url, auth_type: 'none' },
          { name: 'dead', transport: 'http', url: `http://127.0.0.1:${deadPort}/mcp`, auth_type: 'none' },
        ],
      },
    });
    t.after(() => gw.close());
    await upstreamsReady(gw, ['healthy']);
    const { key } = await createKey(gw);
    const tools = ((await rpc(gw, key, 'tools/list')).result.tools as Array<{ name: string }>).map((t) => t.name);
    assert.ok(tools.includes('healthy-echo'));
    assert.equal(tools.some((n) => n.startsWith('dead-')), false, 'nothing listed for a server never reached');
    assert.equal((await rpc(gw, key, 'tools/call', { name: 'healthy-echo', arguments: { message: 'ok' } })).result.content[0].text, 'healthy: ok');
    const ready = await (await fetch(`${gw.url}/readyz`)).json() as any;
    assert.equal(ready.status, 'ready');
    assert.equal(ready.upstreams.healthy.state, 'ready');
    assert.match(ready.upstreams.dead.state, /^(down|connecting)$/);
  });

  test('an upstream killed mid-call: that call fails cleanly, the child is restarted, the next call works', async (t) => {
    const gw = await startGateway({ config: { upstreams: [stdioFixture('fragile')] } });
    t.after(() => gw.close());
    await upstreamsReady(gw, ['fragile']);
    const { key } = await createKey(gw);
    const pid = (await rpc(gw, key, 'tools/call', { name: 'fragile-pid', arguments: {} })).result.content[0].text;
    const reconnected = catalogChange(gw, 'fragile');
    const crash = await rpc(gw, key, 'tools/call', { name: 'fragile-crash', arguments: {} });
    assert.equal(crash.result?.isError ?? true, true, JSON.stringify(crash));
    const text = crash.result?.content?.[0]?.text ?? crash.error?.message ?? '';
    assert.match(text, /fragile/);
    await reconnected;
    const after = await rpc(gw, key, 'tools/call', { name: 'fragile-pid', arguments: {} });
    assert.notEqual(after.result.content[0].text, pid, 'a new process answers');
    assert.equal((await rpc(gw, key, 'tools/call', { name: 'fragile-echo', arguments: { message: 'back' } })).result.content[0].text, 'fragile: back');
  });

  test('a changed tool list is picked up (notifications/tools/list_changed) and announced on the GET stream', async (t) => {
    const gw = await startGateway({ config: { upstreams: [stdioFixture('shifty')] } });
    t.after(() => gw.close());
    await upstreamsReady(gw, ['shifty']);
    const { key } = await createKey(gw);
    const stream = await fetch(`${gw.url}/mcp`, { headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' } });
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reader = stream.body!.getReader();
    const changed = catalogChange(gw, 'shifty');
    await rpc(gw, key, 'tools/call', { name: 'shifty-add_tool', arguments: { name: 'brand_new' } });
    await changed;
    let received = '';
    while (!received.includes('notifications/tools/list_changed')) {
      const { value, done } = await reader.read();
      if (done) break;
      received += new TextDecoder().decode(value);
    }
    await reader.cancel();
    assert.match(received, /"method":"notifications\/tools\/list_changed"/);
    const names = ((await rpc(gw, key, 'tools/list')).result.tools as Array<{ name: string }>).map((t) => t.name);
    assert.ok(names.includes('shifty-brand_new'));
    assert.equal((await rpc(gw, key, 'tools/call', { name: 'shifty-brand_new', arguments: {} })).result.content[0].text, 'I am brand_new');
  });

  test('a reload adds and removes upstreams without a restart', async (t) => {
    const fixture = await startHttpFixture('later');
    t.after(() => fixture.close());
    const gw = await startGateway({ config: { upstreams: [] } });
    t.after(() => gw.close());
    const { key } = await createKey(gw);
    assert.deepEqual((await rpc(gw, key, 'tools/list')).result.tools, []);
    gw.reload({ server: { host: '127.0.0.1', port: 0 }, upstreams: [{ name: 'later', transport: 'http', url: fixture.url, auth_type: 'none' }] });
    await upstreamsReady(gw, ['later']);
    assert.ok(((await rpc(gw, key, 'tools/list')).result.tools as unknown[]).length > 0);
    gw.reload({ server: { host: '127.0.0.1', port: 0 }, upstreams: [] });
    assert.deepEqual((await rpc(gw, key, 'tools/list')).result.tools, []);
  });
});

/** Waits for a condition the test cannot subscribe to (another party's bookkeeping), bounded. */
async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setImmediate(resolve));
  }
}
