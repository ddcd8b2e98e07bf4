/**
 * Judge: the official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
 * devDependencies), run in `server` mode against the gateway's `/mcp/<upstream>` endpoint. The
 * upstream is test/fixtures/conformance-fixture.ts: the tools, resources and prompts the suite's
 * scenarios ask for by name (those of its reference "everything server"), so that what the suite
 * judges is what the gateway passes through to a real client.
 *
 * The tool cannot send a credential, so it talks to a small forwarding proxy on 127.0.0.1 that adds
 * `Authorization: Bearer <virtual key>` and forwards everything else (method, path, headers
 * including Host and Origin, body, streamed responses) unchanged.
 *
 * The active suite runs (the 2025-11-25 wire: initialize handshake). Scenarios the gateway does
 * not pass are listed, each with its reason, in conformance-server-baseline.yml; the tool exits
 * non-zero on a failure (or warning) not in the baseline and on a baseline entry that now passes,
 * so the run's exit code must be 0. Tools, resources and prompts scenarios are never baselined.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { startGateway } from '../helpers/gateway.js';
import { upstreamsReady } from '../helpers/mcp.js';
import { createKey } from '../helpers/oauth.js';
import { cleanEnv, ROOT } from '../helpers/process.js';
import { makeTempDir } from '../helpers/tmp.js';
import { CONFORMANCE, CONFORMANCE_SHIM, failingChecks, spawnJudge, type Check } from './support/judge.js';

const BASELINE = 'test/judges/conformance-server-baseline.yml';
const FIXTURE = path.join(ROOT, 'test/fixtures/conformance-fixture.ts');
const UPSTREAM = 'everything';
const TIMEOUT_MS = 120_000;
/** Per scenario: the slowest legitimate one takes well under a second here. */
const SCENARIO_TIMEOUT_MS = 15_000;

/** Scenarios whose names say they judge tools, resources or prompts: these must pass, never baselined. */
const MUST_PASS = /^(tools|resources|prompts)-/;

/** Headers that describe one hop, not the message (RFC 9110 §7.6.1): never forwarded. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function endToEnd(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  return out;
}

/**
 * A forwarding proxy on 127.0.0.1 that adds the credential: the request goes to `target` as it came
 * (method, path, headers — Host and Origin included — and body, streamed), and the response comes
 * back as the gateway sent it, event streams flushed as they arrive.
 */
async function startCredentialProxy(target: string, credential: string): Promise<{ url: string; close(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const server = http.createServer((req, res) => {
    const upstream = http.request(
      { host: hostname, port, method: req.method, path: req.url, headers: { ...endToEnd(req.headers), authorization: `Bearer ${credential}` } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, endToEnd(answer.headers));
        res.flushHeaders();
        answer.pipe(res);
      },
    );
    upstream.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`proxy: ${err.message}`);
    });
    // The client went away (or cancelled a stream): so does the request to the gateway.
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port: own } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${own}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Every checks.json the tool wrote under `dir`, by scenario (directory `server-<scenario>-<time>`). */
function readChecks(dir: string): Array<{ scenario: string; checks: Check[] }> {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => path.basename(f) === 'checks.json')
    .map((f) => ({
      scenario: path.basename(path.dirname(f)).replace(/^server-/, '').replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, ''),
      checks: JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Check[],
    }));
}

/** The baseline's entries (`- name` lines under `server:`), without their comments. */
function baselineEntries(): string[] {
  return readFileSync(path.join(ROOT, BASELINE), 'utf8')
    .split('\n')
    .map((line) => /^\s*-\s*([^\s#]+)/.exec(line)?.[1])
    .filter((e): e is string => e !== undefined);
}

test('judge: MCP conformance server scenarios pass through /mcp/<upstream> (baseline excepted)', { timeout: TIMEOUT_MS + 30_000 }, async (t) => {
  const baseline = baselineEntries();
  assert.deepEqual(
    baseline.filter((e) => MUST_PASS.test(e)),
    [],
    `${BASELINE} must not excuse tools, resources or prompts scenarios`,
  );

  const started = Date.now();
  const gw = await startGateway({
    config: {
      upstreams: [{ name: UPSTREAM, transport: 'stdio', command: process.execPath, args: ['--import', 'tsx', FIXTURE], auth_type: 'none' }],
    },
  });
  t.after(() => gw.close());
  await upstreamsReady(gw, [UPSTREAM]);
  const { key } = await createKey(gw, { name: 'conformance-server' });
  const proxy = await startCredentialProxy(gw.url, key);
  t.after(() => proxy.close());
  const out = makeTempDir('gatehouse-conformance-server-');
  t.after(out.remove);

  const url = `${proxy.url}/mcp/${UPSTREAM}`;
  const judge = spawnJudge(
    t,
    process.execPath,
    ['--import', CONFORMANCE_SHIM, CONFORMANCE, 'server', '--url', url, '--expected-failures', BASELINE, '--timeout', String(SCENARIO_TIMEOUT_MS), '-o', out.dir],
    { cwd: ROOT, env: cleanEnv(), timeoutMs: TIMEOUT_MS },
  );
  const { code } = await judge.exited;
  const { stdout, stderr, timedOut } = judge;
  const seconds = ((Date.now() - started) / 1000).toFixed(1);

  // What failed, and why, from the per-scenario results (the summary alone gives no reasons).
  const results = readChecks(out.dir);
  const failing = failingChecks(results);
  const summary = stdout.split('\n').find((l) => /^Total: \d+ passed, \d+ failed/.test(l));
  const verdicts = stdout.split('\n').filter((l) => /^[✓✗] /.test(l));
  const baselineReport = stdout.slice(stdout.indexOf('=== SUMMARY ===')).replace(/\x1b\[[0-9;]*m/g, '');
  const report =
    `\n--- summary (${seconds} s) ---\n${baselineReport}\n--- failing checks ---\n${failing.join('\n') || '  none'}` +
    (timedOut || !summary ? `\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}` : '');

  console.log(`conformance server: ${summary ?? 'no summary'} (${seconds} s; exit code ${code})`);

  assert.ok(!timedOut, `the conformance tool did not finish within ${TIMEOUT_MS} ms${report}`);
  assert.ok(summary, `no Total line${report}`);
  assert.ok(verdicts.length >= 30, `expected the active suite (30+ scenarios), saw ${verdicts.length}${report}`);
  assert.equal(results.length, verdicts.length, `expected a checks.json per scenario${report}`);
  // Tools, resources and prompts scenarios: every check SUCCESS (or INFO/SKIPPED), none excused.
  const mustPass = verdicts.map((l) => l.slice(2).split(':')[0]!).filter((s) => MUST_PASS.test(s));
  assert.ok(mustPass.length >= 20, `expected 20+ tools, resources and prompts scenarios, saw ${mustPass.length}${report}`);
  const mustPassFailing = failing.filter((line) => MUST_PASS.test(line.trim()));
  assert.deepEqual(mustPassFailing, [], `tools, resources and prompts scenarios must pass${report}`);
  assert.equal(code, 0, `exit code ${code}: failures not in ${BASELINE}, or baseline entries that now pass${report}`);
});
