import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { startGateway } from '../helpers/gateway.js';
import { runCli } from '../helpers/process.js';

/** Product §4: virtual keys. */
describe('virtual keys', () => {
  test('a key is sk-gw- and 43 random characters; only its hash is stored', async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close());
    const { key, record } = await gw.gatehouse.virtualKeys.create({ name: 'laptop', owner: 'alice', upstreams: ['notion'], scopes: 'mcp:read' });
    assert.match(key, /^sk-gw-[A-Za-z0-9_-]{43}$/);
    assert.equal(record.prefix, key.slice(0, 10));
    assert.equal(record.owner, 'alice');
    assert.deepEqual(record.upstreams, ['notion']);
    assert.equal(record.scopes, 'mcp:read');
    const db = readFileSync(path.join(gw.dataDir, 'gatehouse.db')).toString('latin1') + readFileSync(path.join(gw.dataDir, 'gatehouse.db-wal')).toString('latin1');
    assert.equal(db.includes(key), false);
    assert.equal(db.includes(key.slice(10)), false);
    assert.deepEqual(await gw.gatehouse.virtualKeys.verify(key), record);
  });

  test('verification refuses wrong, malformed, revoked and expired keys', async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close());
    const { key, record } = await gw.gatehouse.virtualKeys.create({ name: 'k', expiresIn: 3600 });
    for (const wrong of ['', 'sk-gw-', `${key}x`, key.slice(0, -1), key.replace('sk-gw-', 'sk-bf-'), key.toUpperCase()]) {
      assert.equal(await gw.gatehouse.virtualKeys.verify(wrong), undefined, wrong);
    }
    gw.clock.advance(3600);
    assert.equal(await gw.gatehouse.virtualKeys.verify(key), undefined, 'expired');
    const other = await gw.gatehouse.virtualKeys.create({ name: 'k2' });
    assert.equal(await gw.gatehouse.virtualKeys.revoke(other.record.id), true);
    assert.equal(await gw.gatehouse.virtualKeys.revoke(other.record.id), false, 'already revoked');
    assert.equal(await gw.gatehouse.virtualKeys.verify(other.key), undefined, 'revoked');
    assert.equal(record.active, true);
  });

  test('bad input to create is refused with a reason', async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close());
    await assert.rejects(gw.gatehouse.virtualKeys.create({ name: '' }), /name/);
    await assert.rejects(gw.gatehouse.virtualKeys.create({ name: 'x', scopes: 'admin' }), /scopes must be among/);
    await assert.rejects(gw.gatehouse.virtualKeys.create({ name: 'x', owner: 'has space' }), /user id/);
  });
});

describe('gatehouse keys', () => {
  test('create prints the key once; list shows it without the key; revoke deactivates it', async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close());
    const args = ['--config', gw.configFile, '--data', gw.dataDir];
    const before = Math.floor(Date.now() / 1000);
    const created = await runCli(['keys', 'create', '--name', 'ci laptop', '--user', 'alice', '--servers', 'notion', '--scopes', 'mcp:read', '--expires', '90d', ...args]);
    assert.equal(created.code, 0, created.stderr);
    const key = created.stdout.trim();
    assert.match(key, /^sk-gw-[A-Za-z0-9_-]{43}$/);
    const id = /created (vk_\S+)/.exec(created.stderr)?.[1];
    assert.ok(id, created.stderr);
    // The running gateway accepts it at once.
    const record = await gw.gatehouse.virtualKeys.verify(key);
    assert.equal(record?.id, id);
    const expires = record!.expires_at!;
    assert.ok(expires >= before + 90 * 86400 && expires <= Math.floor(Date.now() / 1000) + 90 * 86400, String(expires));

    const listed = await runCli(['keys', 'list', ...args]);
    assert.equal(listed.code, 0);
    assert.match(listed.stdout, /^KEY_ID\s+KEY\s+NAME\s+USER\s+SERVERS\s+SCOPES\s+EXPIRES\s+STATE/);
    assert.match(listed.stdout, new RegExp(`${id}\\s+sk-gw-\\S{4}…\\s+ci laptop\\s+alice\\s+notion\\s+mcp:read\\s+\\S+Z\\s+active`));
    assert.equal(listed.stdout.includes(key), false, 'the key is never listed');
    const json = JSON.parse((await runCli(['keys', 'list', '--json', ...args])).stdout) as Array<Record<string, unknown>>;
    assert.equal(json[0]!.id, id);
    assert.equal(JSON.stringify(json).includes(key), false);

    const revoked = await runCli(['keys', 'revoke', id, ...args]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal(await gw.gatehouse.virtualKeys.verify(key), undefined);
    assert.match((await runCli(['keys', 'list', ...args])).stdout, /revoked/);
    const again = await runCli(['keys', 'revoke', id, ...args]);
    assert.equal(again.code, 2);
  });

  test('usage errors: missing name, unknown upstream, bad scope, bad expiry', async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close());
    const args = ['--config', gw.configFile, '--data', gw.dataDir];
    for (const [extra, message] of [
      [[], /needs --name/],
      [['--name', 'x', '--servers', 'nope'], /no upstream named nope/],
      [['--name', 'x', '--scopes', 'admin'], /scopes must be among/],
      [['--name', 'x', '--expires', 'soon'], /--expires takes a duration/],
    ] as const) {
      const res = await runCli(['keys', 'create', ...extra, ...args]);
      assert.equal(res.code, 2, `${extra.join(' ')}: ${res.stderr}`);
      assert.match(res.stderr, message);
    }
  });
});
