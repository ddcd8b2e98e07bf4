import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { PER_USER_UPSTREAM, startGateway, testConfig } from '../helpers/gateway.js';
import { register } from '../helpers/http.js';
import { storageKinds } from '../helpers/postgres.js';
import { spawnGateway } from '../helpers/process.js';
import { makeTempDir } from '../helpers/tmp.js';

const BODY = { redirect_uris: ['http://localhost:54321/callback'] };
const NOT_FOUND = { error: 'not_found', error_description: 'no such endpoint' };
const STATIC_UPSTREAM = { name: 'docs', transport: 'http', url: 'https://docs.example/mcp', auth_type: 'none' };

/**
 * The seed: "only available when at least one MCP client is configured with auth_type:
 * per_user_oauth. Returns 404 otherwise." oauth_server.enabled true/false overrides "auto".
 */
for (const { kind, skip } of storageKinds) {
  describe(`the registration gate (${kind})`, { skip }, () => {
    test('no per_user_oauth upstream: 404, the same as an unknown endpoint', async (t) => {
      const gw = await startGateway({ storage: kind, config: { upstreams: [STATIC_UPSTREAM] } });
      t.after(() => gw.close());
      const res = await register(gw.url, BODY);
      assert.equal(res.status, 404);
      assert.deepEqual(res.json, NOT_FOUND);
      assert.deepEqual((await gw.gatehouse.clients.list()).length, 0, 'nothing was stored');
    });

    test('no upstreams at all: 404', async (t) => {
      const gw = await startGateway({ storage: kind, config: { upstreams: [] } });
      t.after(() => gw.close());
      assert.equal((await register(gw.url, BODY)).status, 404);
    });

    test('enabled: true opens it without a per-user upstream; enabled: false closes it despite one', async (t) => {
      const open = await startGateway({ storage: kind, config: { upstreams: [], oauth_server: { enabled: true } } });
      t.after(() => open.close());
      assert.equal((await register(open.url, BODY)).status, 201);
      const closed = await startGateway({ storage: kind, config: { oauth_server: { enabled: false } } });
      t.after(() => closed.close());
      assert.equal((await register(closed.url, BODY)).status, 404);
    });

    test('follows the live configuration: a reload adding the upstream opens it, removing closes it', async (t) => {
      const gw = await startGateway({ storage: kind, config: { upstreams: [STATIC_UPSTREAM] } });
      t.after(() => gw.close());
      assert.equal((await register(gw.url, BODY)).status, 404);
      assert.deepEqual(gw.reload(testConfig({ upstreams: [STATIC_UPSTREAM, PER_USER_UPSTREAM] })), []);
      assert.equal((await register(gw.url, BODY)).status, 201);
      gw.reload(testConfig({ upstreams: [STATIC_UPSTREAM] }));
      assert.equal((await register(gw.url, BODY)).status, 404);
    });
  });
}

describe('the gate in a real gateway process', () => {
  const temp = makeTempDir();
  after(temp.remove);
  const configFile = path.join(temp.dir, 'gatehouse.yaml');
  const write = (upstreams: object[]) =>
    writeFileSync(configFile, `server: { host: 127.0.0.1 }\nupstreams: ${JSON.stringify(upstreams)}\n`);

  test('SIGHUP reloads the file: adding a per_user_oauth upstream opens registration, a bad file changes nothing', async () => {
    write([STATIC_UPSTREAM]);
    const gw = await spawnGateway(['--config', configFile, '--data', temp.dir]);
    try {
      assert.equal((await register(gw.url, BODY)).status, 404);

      write([STATIC_UPSTREAM, PER_USER_UPSTREAM]);
      const reloads = gw.logs.filter((l) => l.msg === 'configuration reloaded').length;
      gw.child.kill('SIGHUP');
      await gw.waitForLog((l) => l.msg === 'configuration reloaded' && gw.logs.filter((x) => x.msg === l.msg).length > reloads);
      assert.equal((await register(gw.url, BODY)).status, 201);

      writeFileSync(configFile, 'upstreams: [{ name: Bad }]\n');
      gw.child.kill('SIGHUP');
      const failed = await gw.waitForLog((l) => String(l.msg).startsWith('configuration reload failed'));
      assert.match(JSON.stringify(failed.problems), /gatehouse\.yaml:1:\d+: upstreams\[0\]/);
      assert.equal((await register(gw.url, BODY)).status, 201, 'the running configuration is kept');
    } finally {
      assert.equal(await gw.stop(), 0);
    }
  });

  test('a restart with a per_user_oauth upstream added opens registration', async () => {
    write([STATIC_UPSTREAM]);
    const before = await spawnGateway(['--config', configFile, '--data', temp.dir]);
    assert.equal((await register(before.url, BODY)).status, 404);
    assert.equal(await before.stop(), 0);
    write([PER_USER_UPSTREAM]);
    const afterRestart = await spawnGateway(['--config', configFile, '--data', temp.dir]);
    try {
      assert.equal((await register(afterRestart.url, BODY)).status, 201);
    } finally {
      await afterRestart.stop();
    }
  });
});
