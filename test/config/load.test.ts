import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { makeTempDir } from '../helpers/tmp.js';

const temp = makeTempDir();
after(temp.remove);
let n = 0;
function file(text: string, ext = 'yaml'): string {
  const f = path.join(temp.dir, `config-${n++}.${ext}`);
  writeFileSync(f, text);
  return f;
}

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('configuration loading (product §1)', () => {
  test('no file: every default', () => {
    const c = loadConfig({ env: {}, cwd: temp.dir });
    assert.equal(c.server.host, '127.0.0.1');
    assert.equal(c.server.port, 8787);
    assert.equal(c.server.public_url, undefined);
    assert.equal(c.storage.data_dir, path.join(temp.dir, 'data'));
    assert.equal(c.storage.sqlite, path.join(temp.dir, 'data', 'gatehouse.db'));
    assert.equal(c.oauth_server.enabled, 'auto');
    assert.equal(c.oauth_server.access_token_ttl, 900);
    assert.deepEqual(c.oauth_server.allowed_private_schemes, ['cursor', 'vscode']);
    assert.equal(c.oauth_server.unused_client_ttl, 30 * 86400);
    assert.deepEqual(c.oauth_server.rate_limits.register, { max: 60, window: 60 });
    assert.equal(c.gateway.auth_mode, 'both');
    assert.deepEqual(c.upstreams, []);
  });

  test("the product's example configuration loads as documented", () => {
    const c = loadConfig({
      env: {},
      file: file(`
server:
  host: 127.0.0.1
  port: 8787
  public_url: http://127.0.0.1:8787
storage:
  sqlite: ./data/gatehouse.db
oauth_server:
  enabled: auto
  access_token_ttl: 900
  allowed_private_schemes: [cursor, vscode]
gateway:
  auth_mode: both
upstreams:
  - name: notion
    transport: http
    url: https://mcp.notion.com/mcp
    auth_type: per_user_oauth
    oauth: { client_id: null, scopes: [] }
    tools_to_execute: ["*"]
  - name: everything
    transport: stdio
    command: npx
    args: ["-y", "@modelcontextprotocol/server-everything"]
    auth_type: none
`),
    });
    assert.equal(c.upstreams.length, 2);
    assert.equal(c.upstreams[0]!.auth_type, 'per_user_oauth');
    assert.equal(c.upstreams[1]!.transport, 'stdio');
    assert.equal(c.storage.sqlite, path.join(temp.dir, 'data', 'gatehouse.db'), 'relative to the file');
  });

  test('JSON files work too', () => {
    const c = loadConfig({ env: {}, file: file('{"server": {"port": 9000}, "upstreams": []}', 'json') });
    assert.equal(c.server.port, 9000);
  });

  test('an error names the file, the line, the field path and what was expected', () => {
    const f = file(`server:
  port: 99999
upstreams:
  - name: Notion
    transport: http
    url: https://mcp.notion.com/mcp
    auth_type: per_user
`);
    const p = problems(() => loadConfig({ env: {}, file: f }));
    const rel = path.basename(f);
    assert.ok(p.some((x) => x.includes(rel) && /:2:3: server\.port: .*65535/.test(x)), p.join('\n'));
    assert.ok(p.some((x) => /:4:5: upstreams\[0\]\.name: must contain only a-z, 0-9 and _/.test(x)), p.join('\n'));
    assert.ok(p.some((x) => /:7:5: upstreams\[0\]\.auth_type: .*"none".*"per_user_oauth"/.test(x)), p.join('\n'));
  });

  test('misspelt settings are errors, not silently ignored', () => {
    const p = problems(() => loadConfig({ env: {}, file: file('server:\n  publik_url: https://x.example\n') }));
    assert.deepEqual(p.length, 1);
    assert.match(p[0]!, /:2:3: server\.publik_url: unknown setting/);
  });

  test('upstream rules: names, transports, auth types, per-transport fields, uniqueness', () => {
    const cases: Array<[string, RegExp]> = [
      ['- { name: a, transport: ftp, url: "https://x", auth_type: none }', /transport to be one of "http", "sse", "stdio"/],
      ['- { name: a, transport: http, auth_type: none }', /upstreams\[0\]\.url: is required/],
      ['- { name: a, transport: http, url: "ftp://x", auth_type: none }', /url: expected an absolute http/],
      ['- { name: a, transport: stdio, auth_type: none }', /upstreams\[0\]\.command: is required/],
      ['- { name: a, transport: stdio, command: x, auth_type: per_user_oauth }', /stdio upstream .* use auth_type "none"/],
      ['- { name: a, transport: http, url: "https://x", auth_type: headers }', /needs a non-empty headers map/],
      ['- { name: a, transport: http, url: "https://x" }', /auth_type: is required/],
      ['- { name: "", transport: http, url: "https://x", auth_type: none }', /name/],
      [`- { name: ${'a'.repeat(33)}, transport: http, url: "https://x", auth_type: none }`, /at most 32/],
      ['- { name: a, transport: http, url: "https://x", auth_type: none, oauth: { scopes: [] } }', /oauth settings apply only/],
      ['- { name: a, transport: http, url: "https://x", auth_type: none }\n  - { name: a, transport: sse, url: "https://y", auth_type: none }', /upstreams\[1\]\.name: duplicate upstream name "a"/],
    ];
    for (const [yaml, expected] of cases) {
      const p = problems(() => loadConfig({ env: {}, file: file(`upstreams:\n  ${yaml}\n`) }));
      assert.ok(p.some((x) => expected.test(x)), `${yaml}\n=> ${p.join('\n')}`);
    }
  });

  test('YAML syntax errors and duplicate keys are reported with their line', () => {
    assert.match(problems(() => loadConfig({ env: {}, file: file('server:\n  port: [\n') }))[0]!, /:\d+:\d+: /);
    const dup = problems(() => loadConfig({ env: {}, file: file('server:\n  port: 1\n  port: 2\n') }));
    assert.match(dup[0]!, /:3:3: .*unique/i);
  });

  test('a missing file is a clear error', () => {
    const p = problems(() => loadConfig({ env: {}, file: path.join(temp.dir, 'nope.yaml') }));
    assert.match(p[0]!, /nope\.yaml: cannot read the configuration file \(ENOENT\)/);
  });

  test('env:NAME references are resolved; an unset one is an error naming the variable and the field', () => {
    const f = file(`upstreams:
  - name: docs
    transport: http
    url: https://docs.example/mcp
    auth_type: headers
    headers: { Authorization: env:DOCS_TOKEN }
`);
    const c = loadConfig({ env: { DOCS_TOKEN: 'Bearer abc' }, file: f });
    const u = c.upstreams[0]!;
    assert.equal(u.transport === 'http' && u.headers?.Authorization, 'Bearer abc');
    const p = problems(() => loadConfig({ env: {}, file: f }));
    assert.match(p[0]!, /:6:16: upstreams\[0\]\.headers\.Authorization: environment variable DOCS_TOKEN is not set/);
  });

  test('environment overrides win over the file; flags win over the environment', () => {
    const f = file('server: { port: 1000, public_url: https://file.example }\nstorage: { postgres: postgres://file/db }\n');
    const env = {
      GATEHOUSE_PORT: '2000',
      GATEHOUSE_PUBLIC_URL: 'https://env.example/',
      GATEHOUSE_DATABASE_URL: 'postgres://env@127.0.0.1/db',
      GATEHOUSE_ENCRYPTION_KEY: 'a'.repeat(64),
      GATEHOUSE_ADMIN_TOKEN: 'admin-token-0123456789',
    };
    const c = loadConfig({ env, file: f });
    assert.equal(c.server.port, 2000);
    assert.equal(c.server.public_url, 'https://env.example', 'trailing slash dropped once, here');
    assert.equal(c.storage.postgres, 'postgres://env@127.0.0.1/db');
    assert.equal(c.security.encryption_key, 'a'.repeat(64));
    assert.equal(c.admin.token, 'admin-token-0123456789');
    const flagged = loadConfig({ env, file: f, flags: { port: '3000', host: '::1', data: 'elsewhere' }, cwd: temp.dir });
    assert.equal(flagged.server.port, 3000);
    assert.equal(flagged.server.host, '::1');
    assert.equal(flagged.storage.sqlite, path.join(temp.dir, 'elsewhere', 'gatehouse.db'));
  });

  test('a bad environment override names the variable', () => {
    const p = problems(() => loadConfig({ env: { GATEHOUSE_PORT: 'eighty' } }));
    assert.deepEqual(p, ['GATEHOUSE_PORT (server.port): expected a port number from 0 to 65535']);
    const k = problems(() => loadConfig({ env: { GATEHOUSE_ENCRYPTION_KEY: 'short' } }));
    assert.match(k[0]!, /^GATEHOUSE_ENCRYPTION_KEY \(security\.encryption_key\): expected 32 bytes/);
  });

  test('durations take seconds or a unit', () => {
    const c = loadConfig({ env: {}, file: file('oauth_server: { access_token_ttl: 15m, unused_client_ttl: 7d, rate_limits: { register: { max: 5, window: 1h } } }\n') });
    assert.equal(c.oauth_server.access_token_ttl, 900);
    assert.equal(c.oauth_server.unused_client_ttl, 7 * 86400);
    assert.deepEqual(c.oauth_server.rate_limits.register, { max: 5, window: 3600 });
    assert.match(problems(() => loadConfig({ env: {}, file: file('oauth_server: { access_token_ttl: soon }\n') }))[0]!, /expected a duration/);
  });

  test('public_url must be an http(s) URL without query or fragment', () => {
    for (const bad of ['ftp://x.example', 'https://x.example/?a=1', 'https://x.example/#f', 'not a url']) {
      assert.equal(problems(() => loadConfig({ env: { GATEHOUSE_PUBLIC_URL: bad } })).length, 1, bad);
    }
  });

  test('private-use schemes cannot name http, https or dangerous schemes', () => {
    for (const bad of ['https', 'javascript', 'data', 'file', 'cursor://']) {
      const p = problems(() => loadConfig({ env: {}, file: file(`oauth_server: { allowed_private_schemes: ["${bad}"] }\n`) }));
      assert.match(p[0]!, /allowed_private_schemes\[0\]/, bad);
    }
  });
});
