import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { describe, test, type TestContext } from 'node:test';
import { startGateway } from '../helpers/gateway.js';
import { register } from '../helpers/http.js';
import { cleanEnv, ROOT, runCli } from '../helpers/process.js';
import { makeTempDir } from '../helpers/tmp.js';

function tempDir(t: TestContext): string {
  const temp = makeTempDir();
  t.after(temp.remove);
  return temp.dir;
}

describe('the gatehouse command', () => {
  test('--help prints the usage; no command is a usage error; an unknown command too', async () => {
    const help = await runCli(['--help']);
    assert.equal(help.code, 0);
    for (const word of ['serve', 'migrate', 'clients list', 'clients delete', '--config', '--data', '--host', '--port']) {
      assert.ok(help.stdout.includes(word), word);
    }
    const none = await runCli([]);
    assert.equal(none.code, 2);
    const unknown = await runCli(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    const badFlag = await runCli(['serve', '--prot', '1']);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /--prot/);
  });

  test('an invalid configuration: exit 2, the file, line and field named, and no database created', async (t) => {
    const dir = tempDir(t);
    const config = path.join(dir, 'bad.yaml');
    writeFileSync(config, 'server:\n  port: 8787\nupstreams:\n  - name: notion\n    transport: http\n    auth_type: per_user_oauth\n');
    const data = path.join(dir, 'data');
    for (const command of [['serve'], ['migrate'], ['clients', 'list']]) {
      const res = await runCli([...command, '--config', config, '--data', data]);
      assert.equal(res.code, 2, command.join(' '));
      assert.match(res.stderr, /bad\.yaml:4:\d+: upstreams\[0\]\.url: is required/, res.stderr);
      assert.equal(existsSync(data), false, 'the data directory was not touched');
    }
    const port = await runCli(['serve', '--port', 'http', '--data', data]);
    assert.equal(port.code, 2);
    assert.match(port.stderr, /--port \(server\.port\): expected a port number/);
  });

  test('migrate applies the migrations once; concurrent runs all succeed', async (t) => {
    const data = tempDir(t);
    const runs = await Promise.all([1, 2, 3].map(() => runCli(['migrate', '--data', data])));
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    assert.equal(runs.filter((r) => r.stdout.includes('applied: 0001_oauth_clients')).length, 1);
    const again = await runCli(['migrate', '--data', data]);
    assert.match(again.stdout, /is up to date/);
    assert.ok(existsSync(path.join(data, 'gatehouse.db')));
  });

  test('clients list and delete work against the database of a running gateway', async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close());
    const args = ['--config', gw.configFile, '--data', gw.dataDir];
    assert.match((await runCli(['clients', 'list', ...args])).stdout, /no registered clients/);

    const a = (await register(gw.url, { client_name: 'Cursor', redirect_uris: ['cursor://anysphere.cursor-mcp/oauth/callback'] })).json;
    const b = (await register(gw.url, { redirect_uris: ['http://127.0.0.1:33418/'] })).json;
    const table = await runCli(['clients', 'list', ...args]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^CLIENT_ID\s+NAME\s+ISSUED\s+LAST_USED\s+REDIRECT_URIS/);
    assert.match(table.stdout, new RegExp(`${a.client_id}\\s+Cursor\\s+\\S+Z\\s+never\\s+cursor://anysphere`));
    assert.match(table.stdout, new RegExp(`${b.client_id}\\s+-\\s+`));

    const json = JSON.parse((await runCli(['clients', 'list', '--json', ...args])).stdout) as Array<{ client_id: string }>;
    assert.deepEqual(json.map((c) => c.client_id).sort(), [a.client_id, b.client_id].sort());

    const del = await runCli(['clients', 'delete', a.client_id, ...args]);
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stdout, new RegExp(`deleted client ${a.client_id}`));
    assert.equal(await gw.gatehouse.clients.find(a.client_id), undefined, 'gone for the running gateway too');
    const again = await runCli(['clients', 'delete', a.client_id, ...args]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /no client with client_id/);
    assert.equal((await runCli(['clients', 'delete', ...args])).code, 2);
  });

  test('serve on a port in use: one clear line, exit 1', async (t) => {
    const blocker = net.createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    t.after(() => blocker.close());
    const port = (blocker.address() as net.AddressInfo).port;
    const res = await runCli(['serve', '--port', String(port), '--data', tempDir(t)]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\)`));
  });

  test('an unreachable PostgreSQL: exit 1, and the password is not printed', async (t) => {
    const res = await runCli(['migrate', '--data', tempDir(t)], {
      env: { GATEHOUSE_DATABASE_URL: 'postgres://gatehouse:hunter2secret@127.0.0.1:1/gatehouse' },
    });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /cannot connect to PostgreSQL at postgres:\/\/gatehouse:\*\*\*@127\.0\.0\.1:1\/gatehouse/);
    assert.equal(res.stderr.includes('hunter2secret'), false);
  });
});

describe('npm start', () => {
  test('the built command serves the example configuration, with registration live', async (t) => {
    const cli = path.join(ROOT, 'dist', 'cli.js');
    assert.ok(existsSync(cli), 'dist/cli.js exists (npm test builds before testing)');
    const data = tempDir(t);
    const child = spawn(process.execPath, [cli, 'serve', '--config', 'gatehouse.example.yaml', '--data', data, '--port', '0'], {
      cwd: ROOT,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    t.after(() => child.kill('SIGKILL'));
    let url = '';
    for await (const line of createInterface({ input: child.stdout })) {
      const log = JSON.parse(line) as { msg: string; url?: string };
      if (log.msg === 'gatehouse listening') {
        url = log.url!;
        break;
      }
    }
    const res = await register(url, { client_name: 'Claude Code', redirect_uris: ['http://localhost:54321/callback'] });
    assert.equal(res.status, 201);
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
    assert.ok(existsSync(path.join(data, 'gatehouse.db')));
  });

  test('the example configuration has a per_user_oauth upstream', async () => {
    const { loadConfig } = await import('../../src/config/load.js');
    const c = loadConfig({ file: path.join(ROOT, 'gatehouse.example.yaml'), env: {} });
    assert.ok(c.upstreams.some((u) => u.auth_type === 'per_user_oauth'));
    assert.equal(c.server.port, 8787);
    assert.equal(c.server.host, '127.0.0.1');
  });
});
