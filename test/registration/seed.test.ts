import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { PER_USER_UPSTREAM, startGateway } from '../helpers/gateway.js';
import { register } from '../helpers/http.js';
import { storageKinds } from '../helpers/postgres.js';
import { runCli, spawnGateway } from '../helpers/process.js';
import { makeTempDir } from '../helpers/tmp.js';

/** The example request of the seed document (register-oauth-client.txt), byte for byte. */
const SEED_REQUEST = `{
"client_id": "550e8400-e29b-41d4-a716-446655440000",
"client_name": "Claude Code",
"redirect_uris": [
"http://localhost:54321/callback"
],
"grant_types": [
"authorization_code"
],
"token_endpoint_auth_method": "none"
}`;

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

for (const { kind, skip } of storageKinds) {
  describe(`the seed's example registration (${kind})`, { skip }, () => {
    test('returns 201 with every field of the seed response, a fresh UUID, issued_at and scope', async (t) => {
      const gw = await startGateway({ storage: kind });
      t.after(() => gw.close());

      const res = await register(gw.url, SEED_REQUEST);
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      const body = res.json;
      assert.match(body.client_id, UUID_V4);
      // A client_id sent in the request is not the client's to choose (RFC 7591 §3.2.1).
      assert.notEqual(body.client_id, '550e8400-e29b-41d4-a716-446655440000');
      assert.deepEqual(Object.keys(body).sort(), [
        'client_id',
        'client_id_issued_at',
        'client_name',
        'grant_types',
        'redirect_uris',
        'response_types',
        'scope',
        'token_endpoint_auth_method',
      ]);
      assert.equal(body.client_name, 'Claude Code');
      assert.deepEqual(body.redirect_uris, ['http://localhost:54321/callback']);
      assert.deepEqual(body.grant_types, ['authorization_code']);
      assert.deepEqual(body.response_types, ['code']);
      assert.equal(body.token_endpoint_auth_method, 'none');
      assert.equal(body.scope, 'mcp:read mcp:write');
      assert.equal(body.client_id_issued_at, Math.floor(gw.clock.now() / 1000));

      const stored = await gw.gatehouse.clients.find(body.client_id);
      assert.ok(stored, 'the registration is in the database');
      assert.deepEqual({ ...stored, last_used_at: undefined }, { ...body, last_used_at: undefined });
    });

    test('two registrations get two different client_ids', async (t) => {
      const gw = await startGateway({ storage: kind });
      t.after(() => gw.close());
      const [a, b] = await Promise.all([register(gw.url, SEED_REQUEST), register(gw.url, SEED_REQUEST)]);
      assert.equal(a.status, 201);
      assert.equal(b.status, 201);
      assert.notEqual(a.json.client_id, b.json.client_id);
    });
  });
}

describe('persistence across a restart of the gateway process', () => {
  const temp = makeTempDir();
  after(temp.remove);

  test('a client registered before a restart is still registered after it', async () => {
    const configFile = path.join(temp.dir, 'gatehouse.yaml');
    writeFileSync(
      configFile,
      `server: { host: 127.0.0.1 }\nupstreams:\n  - ${JSON.stringify(PER_USER_UPSTREAM)}\n`,
    );
    const first = await spawnGateway(['--config', configFile, '--data', temp.dir]);
    const res = await register(first.url, SEED_REQUEST);
    assert.equal(first.child.pid !== undefined, true);
    assert.equal(await first.stop(), 0);
    assert.equal(res.status, 201);

    const second = await spawnGateway(['--config', configFile, '--data', temp.dir]);
    try {
      assert.notEqual(second.child.pid, first.child.pid);
      const listed = await runCli(['clients', 'list', '--json', '--config', configFile, '--data', temp.dir]);
      assert.equal(listed.code, 0, listed.stderr);
      const clients = JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
      const found = clients.find((c) => c.client_id === res.json.client_id);
      assert.ok(found, 'the client survived the restart');
      assert.equal(found.client_name, 'Claude Code');
      assert.deepEqual(found.redirect_uris, ['http://localhost:54321/callback']);
      // And the restarted process serves from the same database.
      const again = await register(second.url, SEED_REQUEST);
      assert.equal(again.status, 201);
    } finally {
      assert.equal(await second.stop(), 0);
    }
  });
});
