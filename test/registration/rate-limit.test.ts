import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startGateway } from '../helpers/gateway.js';
import { rawRequest, REGISTER } from '../helpers/http.js';

const BODY = JSON.stringify({ redirect_uris: ['http://localhost:54321/callback'] });

/** Product §2.1: registrations are limited per address (60 a minute by default), with Retry-After. */
describe('registration rate limit', () => {
  const from = (url: string, localAddress: string) =>
    rawRequest(url + REGISTER, { body: BODY, headers: { 'content-type': 'application/json' }, localAddress });

  test('the request over the limit gets 429, a JSON error and Retry-After; another address is unaffected', async (t) => {
    const gw = await startGateway({ config: { oauth_server: { rate_limits: { register: { max: 3, window: '1m' } } } } });
    t.after(() => gw.close());

    for (let i = 0; i < 3; i++) assert.equal((await from(gw.url, '127.0.0.1')).status, 201);
    const limited = await from(gw.url, '127.0.0.1');
    assert.equal(limited.status, 429);
    assert.equal(limited.json.error, 'too_many_requests');
    assert.match(limited.json.error_description, /retry in/);
    const retryAfter = Number(limited.headers['retry-after']);
    assert.ok(Number.isInteger(retryAfter) && retryAfter > 0 && retryAfter <= 60, `Retry-After: ${limited.headers['retry-after']}`);
    assert.equal(limited.headers['access-control-allow-origin'], '*', 'a browser client can read the 429');
    assert.equal((await gw.gatehouse.clients.list()).length, 3, 'the refused registration was not stored');

    // 127.0.0.2 is another loopback address: another client, with its own budget.
    for (let i = 0; i < 3; i++) assert.equal((await from(gw.url, '127.0.0.2')).status, 201, 'other address');
    assert.equal((await from(gw.url, '127.0.0.2')).status, 429);
  });

  test('the default is 60 registrations a minute per address', async (t) => {
    const gw = await startGateway({ config: { oauth_server: { rate_limits: null } } });
    t.after(() => gw.close());
    assert.deepEqual(gw.gatehouse.config().oauth_server.rate_limits.register, { max: 60, window: 60 });
    const statuses = [];
    for (let i = 0; i < 61; i++) statuses.push((await from(gw.url, '127.0.0.3')).status);
    assert.deepEqual(statuses.slice(0, 60), Array(60).fill(201));
    assert.equal(statuses[60], 429);
  });

  test('max: 0 switches the limit off; a reload can switch it on', async (t) => {
    const gw = await startGateway({ config: { oauth_server: { rate_limits: { register: { max: 0, window: 60 } } } } });
    t.after(() => gw.close());
    for (let i = 0; i < 70; i++) assert.equal((await from(gw.url, '127.0.0.1')).status, 201);
    gw.reload({ server: { host: '127.0.0.1', port: 0 }, upstreams: gw.gatehouse.config().upstreams, oauth_server: { rate_limits: { register: { max: 1, window: 60 } } } });
    assert.equal((await from(gw.url, '127.0.0.4')).status, 201);
    assert.equal((await from(gw.url, '127.0.0.4')).status, 429);
  });
});
