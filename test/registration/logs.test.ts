import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startGateway } from '../helpers/gateway.js';
import { register, REGISTER } from '../helpers/http.js';

/** One structured line per request; never a body of an OAuth endpoint. */
describe('request logs', () => {
  test('one JSON line per request with method, path, status and duration, and nothing of the body', async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close());
    const marker = 'MarkerClientName7f3a';
    const ok = await register(gw.url, { client_name: marker, redirect_uris: ['http://localhost:61234/marker-callback'] });
    assert.equal(ok.status, 201);
    const bad = await register(gw.url, { client_name: marker, redirect_uris: ['http://marker-host.example/cb'] });
    assert.equal(bad.status, 400);
    await fetch(`${gw.url}${REGISTER}?code=secret-code-in-query`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });

    const lines = gw.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    const requests = lines.filter((l) => l.msg === 'request');
    assert.equal(requests.length, 3);
    assert.deepEqual(
      requests.map((r) => [r.method, r.path, r.status]),
      [
        ['POST', REGISTER, 201],
        ['POST', REGISTER, 400],
        ['POST', REGISTER, 400],
      ],
    );
    for (const r of requests) assert.equal(typeof r.duration_ms, 'number');
    const all = gw.logs.join('\n');
    for (const secret of [marker, 'marker-callback', 'marker-host', ok.json.client_id, 'secret-code-in-query']) {
      assert.equal(all.includes(secret), false, `${secret} must not be logged`);
    }
  });
});
