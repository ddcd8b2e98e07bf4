import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { rawRequest, REGISTER } from '../helpers/http.js';

/** Bodies that are not a JSON object of metadata: always a 4xx with a JSON error, never a 500. */
describe('malformed registration requests', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway();
  });
  after(() => gw.close());

  const send = (body: Buffer | string | undefined, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    rawRequest(gw.url + REGISTER, { body, headers });

  const expectError = async (
    res: Awaited<ReturnType<typeof send>>,
    status: number,
    error: string,
    reason?: RegExp,
  ) => {
    assert.equal(res.status, status, res.text);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(Object.keys(res.json).sort(), ['error', 'error_description']);
    assert.equal(res.json.error, error);
    if (reason) assert.match(res.json.error_description, reason);
    assert.doesNotMatch(res.text, /at .*\.(ts|js):\d+|node_modules|Error:/, 'no stack trace or internal message');
  };

  test('not JSON', async () => {
    await expectError(await send('{"redirect_uris": ['), 400, 'invalid_request', /not valid JSON/);
    await expectError(await send('redirect_uris=http://localhost/cb'), 400, 'invalid_request', /not valid JSON/);
  });

  test('JSON that is not an object: array, null, string, number, boolean', async () => {
    for (const body of ['[]', '[{"redirect_uris":["http://localhost/cb"]}]', 'null', '"x"', '42', 'true']) {
      await expectError(await send(body), 400, 'invalid_request', /must be a JSON object/);
    }
  });

  test('an empty body, with and without a content type', async () => {
    await expectError(await send(''), 400, 'invalid_request', /empty/);
    await expectError(await send('   \n'), 400, 'invalid_request', /empty/);
    await expectError(await send(undefined, {}), 400, 'invalid_request');
  });

  test('a body over 16 KiB is refused with 413, whether or not Content-Length announces it', async () => {
    const huge = JSON.stringify({ redirect_uris: ['http://localhost/cb'], client_name: 'x', pad: 'p'.repeat(17 * 1024) });
    await expectError(await send(huge), 413, 'invalid_request', /too large/);
    await expectError(
      await send(huge, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }),
      413,
      'invalid_request',
    );
  });

  test('a body just under 16 KiB is accepted', async () => {
    const body = { redirect_uris: ['http://localhost/cb'], pad: '' };
    body.pad = 'p'.repeat(16 * 1024 - JSON.stringify(body).length);
    const res = await send(JSON.stringify(body));
    assert.equal(Buffer.byteLength(JSON.stringify(body)), 16 * 1024);
    assert.equal(res.status, 201, res.text);
  });

  test('invalid UTF-8 is refused, not silently replaced', async () => {
    const prefix = Buffer.from('{"redirect_uris":["http://localhost/cb"],"client_name":"');
    for (const bad of [[0xff], [0xc3, 0x28], [0xe2, 0x82], [0xed, 0xa0, 0x80] /* UTF-16 surrogate */]) {
      const body = Buffer.concat([prefix, Buffer.from(bad), Buffer.from('"}')]);
      await expectError(await send(body), 400, 'invalid_request', /not valid UTF-8/);
    }
  });

  test('duplicate member names are refused (also when one is escaped)', async () => {
    await expectError(
      await send('{"redirect_uris":["http://evil.example/cb"],"redirect_uris":["http://localhost/cb"]}'),
      400,
      'invalid_request',
      /repeats the member "redirect_uris"/,
    );
    await expectError(
      await send('{"client_name":"a","client_n\\u0061me":"b","redirect_uris":["http://localhost/cb"]}'),
      400,
      'invalid_request',
      /repeats the member "client_name"/,
    );
    await expectError(
      await send('{"redirect_uris":["http://localhost/cb"],"x":{"k":1,"k":2}}'),
      400,
      'invalid_request',
      /repeats the member "k"/,
    );
  });

  test('the same name in different objects is not a duplicate', async () => {
    const res = await send('{"redirect_uris":["http://localhost/cb"],"a":{"redirect_uris":1},"b":[{"a":1},{"a":2}]}');
    assert.equal(res.status, 201, res.text);
  });

  test('prototype-poisoning members are refused', async () => {
    await expectError(await send('{"redirect_uris":["http://localhost/cb"],"__proto__":{"x":1}}'), 400, 'invalid_request', /__proto__/);
    await expectError(
      await send('{"redirect_uris":["http://localhost/cb"],"constructor":{"prototype":{"x":1}}}'),
      400,
      'invalid_request',
    );
  });

  test('content types other than JSON are refused', async () => {
    const body = JSON.stringify({ redirect_uris: ['http://localhost/cb'] });
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      await expectError(await send(body, { 'content-type': type }), 400, 'invalid_request', /Content-Type/);
    }
    const charset = await send(body, { 'content-type': 'application/json; charset=utf-8' });
    assert.equal(charset.status, 201, 'a charset parameter is fine');
  });

  test('deeply nested and oversized values in ignored members do not break anything', async () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    const res = await send(`{"redirect_uris":["http://localhost/cb"],"x":${deep}}`);
    assert.equal(res.status, 201, res.text);
    const deepKnown = await send(`{"redirect_uris":${'['.repeat(3000)}${']'.repeat(3000)}}`);
    await expectError(deepKnown, 400, 'invalid_redirect_uri');
  });

  test('numbers, booleans and objects where strings belong', async () => {
    for (const body of [
      { redirect_uris: [{ uri: 'http://localhost/cb' }] },
      { redirect_uris: [true] },
      { redirect_uris: { 0: 'http://localhost/cb' } },
      { redirect_uris: ['http://localhost/cb'], grant_types: [1] },
      { redirect_uris: ['http://localhost/cb'], client_name: { en: 'x' } },
      { redirect_uris: ['http://localhost/cb'], scope: 1e308 },
    ]) {
      const res = await send(JSON.stringify(body));
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(res.json.error, /^invalid_(redirect_uri|client_metadata)$/);
    }
  });

  test('other methods and paths answer with a JSON 404', async () => {
    for (const [method, path] of [
      ['GET', REGISTER],
      ['PUT', REGISTER],
      ['POST', `${REGISTER}/x`],
      ['POST', '/nope'],
    ] as const) {
      const res = await rawRequest(gw.url + path, { method });
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.deepEqual(res.json, { error: 'not_found', error_description: 'no such endpoint' });
    }
  });

  test('the gateway still works after all of that', async () => {
    const res = await send(JSON.stringify({ redirect_uris: ['http://localhost/cb'] }));
    assert.equal(res.status, 201);
  });
});
