import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { startHttpFixture } from '../fixtures/http-fixture.js';
import { startGateway } from '../helpers/gateway.js';
import { rpc, upstreamsReady } from '../helpers/mcp.js';
import { createKey } from '../helpers/oauth.js';
import { runCli, spawnGateway } from '../helpers/process.js';
import { makeTempDir } from '../helpers/tmp.js';

describe('operations', () => {
  test('/healthz, /readyz and /metrics', async (t) => {
    const fixture = await startHttpFixture('metered');
    t.after(() => fixture.close());
    const gw = await startGateway({ config: { upstreams: [{ name: 'metered', transport: 'http', url: fixture.url, auth_type: 'none' }] } });
    t.after(() => gw.close());
    await upstreamsReady(gw, ['metered']);
    const { key } = await createKey(gw);
    await rpc(gw, key, 'tools/call', { name: 'metered-echo', arguments: { message: 'x' } });
    await rpc(gw, key, 'tools/call', { name: 'metered-fail', arguments: {} });

    const health = await fetch(`${gw.url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const ready = await fetch(`${gw.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(((await ready.json()) as any).upstreams.metered, { state: 'ready', tools: 6 });

    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(metrics, /gatehouse_tool_calls_total\{upstream="metered",outcome="ok"\} 1/);
    assert.match(metrics, /gatehouse_tool_calls_total\{upstream="metered",outcome="tool_error"\} 1/);
    assert.match(metrics, /gatehouse_tool_call_duration_seconds_count\{upstream="metered"\} 2/);
    assert.match(metrics, /gatehouse_http_requests_total\{method="POST",route="\/mcp",status="200"\} 2/);
    assert.match(metrics, /gatehouse_http_request_duration_seconds_bucket\{le="0.001",route="\/mcp"\}/);
    assert.match(metrics, /gatehouse_upstream_up\{upstream="metered",state="ready"\} 1/);
    assert.match(metrics, /gatehouse_upstream_connections\{upstream="metered"\} 1/);
    assert.match(metrics, /gatehouse_process_resident_memory_bytes/);
  });

  test('/readyz is 503 when the database is gone', async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close().catch(() => {}));
    await gw.gatehouse.database.close();
    const ready = await fetch(`${gw.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(((await ready.json()) as any).database, /^unavailable/);
  });

  test('SIGTERM lets a call in flight finish, then the process exits 0 and its stdio upstream is reaped', async (t) => {
    const fixture = await startHttpFixture('draining');
    t.after(() => fixture.close());
    const temp = makeTempDir();
    t.after(temp.remove);
    const config = path.join(temp.dir, 'gatehouse.yaml');
    writeFileSync(config, `upstreams:\n  - { name: draining, transport: http, url: "${fixture.url}", auth_type: none }\n`);
    const key = (await runCli(['keys', 'create', '--name', 'drain', '--config', config, '--data', temp.dir])).stdout.trim();
    const gw = await spawnGateway(['--config', config, '--data', temp.dir]);
    await gw.waitForLog((l) => l.msg === 'upstream connected');
    const call = fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'draining-slow', arguments: { ms: 800, tag: 'drain' } } }),
    });
    while (!fixture.log.calls.some((c) => (c.args as { tag?: string }).tag === 'drain')) await new Promise((r) => setImmediate(r));
    const exit = gw.stop();
    const res = await call;
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as any).result.content[0].text, 'done drain');
    assert.equal(await exit, 0);
  });
});
