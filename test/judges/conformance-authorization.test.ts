/**
 * Judge: the official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
 * devDependencies), run as a client against the gateway's authorization server. Its
 * authorization-server scenarios check the RFC 8414 metadata (fields, issuer, PKCE S256, Client ID
 * Metadata Document support) and a full authorization code flow with PKCE: the authorization
 * response (code, state, RFC 9207 iss) and the token response. Every check must be SUCCESS: no
 * FAILURE, no WARNING.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { ConsentBrowser } from '../helpers/browser.js';
import { startGateway } from '../helpers/gateway.js';
import { createKey, registerClient } from '../helpers/oauth.js';
import { cleanEnv, ROOT } from '../helpers/process.js';
import { makeTempDir } from '../helpers/tmp.js';
import { CONFORMANCE, CONFORMANCE_SHIM, spawnJudge, type Check } from './support/judge.js';

const BROWSER_PROMPT = 'Access the following URL in your browser and complete the authentication process.';
const TIMEOUT_MS = 60_000;

/** A port nothing listens on right now, for the tool's callback server. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Every checks.json the tool wrote under `dir` (one per scenario). */
function readChecks(dir: string): Array<{ file: string; checks: Check[] }> {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => path.basename(f) === 'checks.json')
    .map((f) => ({ file: f, checks: JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Check[] }));
}

test('judge: MCP conformance authorization-server scenarios pass', { timeout: TIMEOUT_MS + 15_000 }, async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const out = makeTempDir('gatehouse-conformance-');
  t.after(out.remove);

  const port = await freePort();
  const clientId = await registerClient(gw, {
    client_name: 'MCP conformance suite',
    redirect_uris: [`http://127.0.0.1:${port}/callback`],
  });
  const { key } = await createKey(gw, { name: 'conformance' });
  const issuer = gw.gatehouse.issuer();

  const judge = spawnJudge(
    t,
    process.execPath,
    ['--import', CONFORMANCE_SHIM, CONFORMANCE, 'authorization', '--url', issuer, '--client-id', clientId, '-p', String(port), '-o', out.dir],
    { cwd: ROOT, env: cleanEnv(), timeoutMs: TIMEOUT_MS },
  );

  // The browser's part: the line after the prompt is the authorize URL. Consent with the key, then
  // deliver the final redirect to the tool's callback server as the browser would.
  let browserError: unknown;
  let browserDone: Promise<void> | undefined;
  let promptSeen = false;
  createInterface({ input: judge.child.stdout }).on('line', (line) => {
    if (line === BROWSER_PROMPT) {
      promptSeen = true;
    } else if (promptSeen && !browserDone) {
      const authorizeUrl = line.trim();
      browserDone = (async () => {
        const back = await new ConsentBrowser().authorize(authorizeUrl, key);
        const res = await fetch(back);
        await res.arrayBuffer();
      })().catch((err: unknown) => {
        browserError = err;
        judge.kill();
      });
    }
  });

  const { code } = await judge.exited;
  await browserDone;
  const { stdout, stderr, timedOut } = judge;
  const report = `\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`;

  assert.ok(!timedOut, `the conformance tool did not finish within ${TIMEOUT_MS} ms${report}`);
  assert.equal(browserError, undefined, `the browser part of the flow failed: ${String(browserError)}${report}`);
  assert.ok(promptSeen && browserDone, `the tool never asked for the browser step (code-grant scenario skipped?)${report}`);

  const results = readChecks(out.dir);
  assert.ok(results.length >= 2, `expected a checks.json per scenario, found ${results.map((r) => r.file).join(', ') || 'none'}${report}`);
  const all = results.flatMap((r) => r.checks.map((c) => ({ ...c, file: r.file })));
  const bad = all.filter((c) => c.status === 'FAILURE' || c.status === 'WARNING' || c.status === 'SKIPPED');
  assert.deepEqual(bad, [], `checks not SUCCESS${report}`);
  assert.equal(all.find((c) => c.id === 'authorization-server-metadata-cimd')?.status, 'SUCCESS', `no CIMD check${report}`);

  const total = /Total: (\d+) passed, (\d+) failed/.exec(stdout);
  assert.ok(total, `no Total line${report}`);
  assert.equal(Number(total[2]), 0, `failures reported${report}`);
  assert.ok(Number(total[1]) >= 3, `expected at least 3 passed checks${report}`);
  assert.equal(code, 0, `exit code ${code}${report}`);
});
