import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { rawRequest, register, REGISTER } from '../helpers/http.js';

/** Browser-based MCP clients register from their own pages: any origin may call the endpoint. */
describe('registration CORS', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway();
  });
  after(() => gw.close());

  test('the preflight allows POST with a JSON body from any origin', async () => {
    const res = await rawRequest(gw.url + REGISTER, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://inspector.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers['access-control-allow-origin'], '*');
    assert.match(String(res.headers['access-control-allow-methods']), /\bPOST\b/);
    assert.match(String(res.headers['access-control-allow-headers']), /content-type/i);
    assert.equal(res.headers['access-control-allow-credentials'], undefined, 'no credentials: * is safe');
  });

  test('successes and errors alike carry Access-Control-Allow-Origin', async () => {
    const ok = await register(gw.url, { redirect_uris: ['http://localhost/cb'] }, { origin: 'https://inspector.example' });
    assert.equal(ok.status, 201);
    assert.equal(ok.headers.get('access-control-allow-origin'), '*');
    const bad = await register(gw.url, { redirect_uris: ['ftp://x/cb'] }, { origin: 'https://inspector.example' });
    assert.equal(bad.status, 400);
    assert.equal(bad.headers.get('access-control-allow-origin'), '*');
  });

  test('responses are never cached', async () => {
    const ok = await register(gw.url, { redirect_uris: ['http://localhost/cb'] });
    assert.equal(ok.headers.get('cache-control'), 'no-store');
    assert.equal(ok.headers.get('pragma'), 'no-cache');
  });
});
