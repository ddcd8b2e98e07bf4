/**
 * Judge: the official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
 * devDependencies), run in `client` mode against the gateway as OAuth client of its upstreams. The
 * suite's 14 authorization scenarios (exactly the `auth/*` client scenarios that its requirement
 * set for 2025-11-25 lists) each start a mock MCP server and a mock authorization server; the client
 * under test is test/judges/support/conformance-client-driver.ts, a real Gatehouse with that
 * server as its `per_user_oauth` upstream and a user who calls its tool through /mcp and connects
 * their account from the connect link. The suite judges discovery (RFC 9728 and RFC 8414/OIDC URL
 * orders), registration (pre-registered, Client ID Metadata Document, DCR), PKCE, `resource`,
 * scope selection, step-up and its retry limit, and token endpoint authentication.
 *
 * The mock servers listen on all interfaces, so the suite runs in a private network namespace
 * (`unshare -rn`); without one the test is skipped, saying why. Suite mode ignores the client's
 * exit code, so the driver's own verdict (its `RESULT` line, kept in each scenario's stdout.txt)
 * is checked too: the tool call must have succeeded through the gateway — except in
 * auth/scope-retry-limit, where the gateway must give up with a tool error and no further link.
 * Scenarios the gateway does not pass yet are listed with their reasons in
 * conformance-client-auth-baseline.yml; the tool exits non-zero on a failure (or warning) not in
 * the baseline and on a baseline entry that now passes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { cleanEnv, ROOT } from '../helpers/process.js';
import { makeTempDir } from '../helpers/tmp.js';
import { CONFORMANCE, CONFORMANCE_SHIM, failingChecks, spawnJudge, type Check } from './support/judge.js';

const REQUIREMENTS = 'node_modules/@modelcontextprotocol/conformance/requirements/2025-11-25.yaml';
const BASELINE = 'test/judges/conformance-client-auth-baseline.yml';
const DRIVER = 'test/judges/support/conformance-client-driver.ts';
const SPEC_VERSION = '2025-11-25';
/**
 * The 14 scenarios run in parallel, each driver starting its own gateway: about 3 s of CPU each,
 * so ~25 s on two cores. The per-scenario timeout leaves room for a loaded machine; each driver
 * gives up on its own before it (DRIVER_DEADLINE_MS), and the whole run is bounded by TIMEOUT_MS.
 */
const SCENARIO_TIMEOUT_MS = 90_000;
const DRIVER_DEADLINE_MS = 80_000;
const TIMEOUT_MS = 150_000;
/** The scenario in which the tool call cannot succeed: the gateway must stop asking. */
const RETRY_LIMIT = 'auth/scope-retry-limit';

interface DriverResult {
  ok: boolean;
  authorizations: number;
  seconds: number;
  detail: string;
}

/** Why the suite cannot run here (no user and network namespaces), or undefined when it can. */
function namespaceProblem(): string | undefined {
  const probe = spawnSync('unshare', ['-rn', 'sh', '-c', 'ip link set lo up'], { encoding: 'utf8', timeout: 10_000 });
  const why = 'the suite\'s mock servers listen on all interfaces, so it runs only in a private network namespace';
  if (probe.error) return `unshare is not available (${probe.error.message}); ${why}`;
  if (probe.status !== 0) {
    return `"unshare -rn sh -c 'ip link set lo up'" failed (exit ${probe.status}: ${probe.stderr.trim().slice(0, 200)}); ${why}`;
  }
  return undefined;
}

/** The client scenarios of the suite's 2025-11-25 requirement set that judge authorization. */
function requiredAuthScenarios(): string[] {
  const doc = parse(readFileSync(path.join(ROOT, REQUIREMENTS), 'utf8')) as { client: string[] };
  return doc.client.filter((s) => s.startsWith('auth/')).sort();
}

function baselineEntries(): string[] {
  const doc = parse(readFileSync(path.join(ROOT, BASELINE), 'utf8')) as { client?: string[] | null };
  return doc.client ?? [];
}

/** Per scenario: its checks and the driver's RESULT line (directories `auth/<name>-<time>`). */
function readResults(dir: string): Array<{ scenario: string; checks: Check[]; driver: DriverResult | undefined; stdout: string }> {
  const auth = path.join(dir, 'auth');
  if (!existsSync(auth)) return [];
  return readdirSync(auth).map((entry) => {
    const at = path.join(auth, entry);
    const stdout = existsSync(path.join(at, 'stdout.txt')) ? readFileSync(path.join(at, 'stdout.txt'), 'utf8') : '';
    const line = stdout.split('\n').findLast((l) => l.startsWith('RESULT '));
    return {
      scenario: `auth/${entry.replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, '')}`,
      checks: existsSync(path.join(at, 'checks.json')) ? (JSON.parse(readFileSync(path.join(at, 'checks.json'), 'utf8')) as Check[]) : [],
      driver: line ? (JSON.parse(line.slice('RESULT '.length)) as DriverResult) : undefined,
      stdout,
    };
  });
}

const skip = namespaceProblem();
if (skip) console.warn(`conformance client auth: SKIPPED: ${skip}`);

test('judge: MCP conformance client auth scenarios pass with the gateway as OAuth client (baseline excepted)', { skip: skip ?? false, timeout: TIMEOUT_MS + 30_000 }, async (t) => {
  const required = requiredAuthScenarios();
  assert.equal(required.length, 14, `expected the 14 auth scenarios of ${REQUIREMENTS}, found ${required.join(', ')}`);
  const baseline = baselineEntries();
  assert.deepEqual(
    baseline.filter((e) => !required.includes(e)),
    [],
    `${BASELINE} names scenarios that are not required auth scenarios`,
  );

  const out = makeTempDir('gatehouse-conformance-client-');
  t.after(out.remove);
  const started = Date.now();
  // `--command` is split on spaces by the tool, which appends the mock server's URL.
  const command = `${process.execPath} --import tsx ${DRIVER}`;
  const judge = spawnJudge(
    t,
    'unshare',
    [
      '-rn',
      'sh',
      '-c',
      'ip link set lo up && exec "$@"',
      'sh',
      process.execPath,
      '--import',
      CONFORMANCE_SHIM,
      CONFORMANCE,
      'client',
      '--suite',
      'auth',
      '--spec-version',
      SPEC_VERSION,
      '--command',
      command,
      '--timeout',
      String(SCENARIO_TIMEOUT_MS),
      '--expected-failures',
      BASELINE,
      '-o',
      out.dir,
    ],
    {
      cwd: ROOT,
      env: { ...cleanEnv(), CONFORMANCE_DRIVER_DEADLINE_MS: String(DRIVER_DEADLINE_MS) },
      // Its own process group, so that a timeout ends the drivers too.
      detached: true,
      timeoutMs: TIMEOUT_MS,
    },
  );
  const { code } = await judge.exited;
  const { stdout, stderr, timedOut } = judge;
  const seconds = ((Date.now() - started) / 1000).toFixed(1);

  const results = readResults(out.dir);
  const failing = failingChecks(results);
  const drivers = results.map(({ scenario, driver }) => `  ${scenario}: ${driver ? JSON.stringify(driver).slice(0, 400) : 'no RESULT line'}`);
  const summary = stdout.split('\n').find((l) => /^Total: \d+ passed, \d+ failed/.test(l));
  const verdicts = stdout
    .split('\n')
    .filter((l) => /^[✓✗] auth\//.test(l))
    .map((l) => l.slice(2).split(':')[0]!)
    .sort();
  const baselineReport = stdout.includes('=== SUITE SUMMARY ===') ? stdout.slice(stdout.indexOf('=== SUITE SUMMARY ===')).replace(/\x1b\[[0-9;]*m/g, '') : '';
  const report =
    `\n--- summary (${seconds} s) ---\n${baselineReport}\n--- failing checks ---\n${failing.join('\n') || '  none'}` +
    `\n--- driver results ---\n${drivers.join('\n') || '  none'}` +
    (timedOut || !summary ? `\n--- stdout ---\n${stdout.slice(-5000)}\n--- stderr ---\n${stderr.slice(-5000)}` : '');

  console.log(`conformance client auth: ${summary ?? 'no summary'} (${seconds} s; exit code ${code}; ${baseline.length} scenarios in the baseline)`);

  assert.ok(!timedOut, `the conformance tool did not finish within ${TIMEOUT_MS} ms${report}`);
  assert.ok(summary, `no Total line${report}`);
  assert.deepEqual(verdicts, required, `expected exactly the required auth scenarios${report}`);
  assert.deepEqual(results.map((r) => r.scenario).sort(), required, `expected a result directory per scenario${report}`);

  // Suite mode ignores the client's exit code: the driver's own verdict, for every scenario the
  // baseline does not excuse.
  for (const { scenario, driver, stdout: out } of results) {
    if (baseline.includes(scenario)) continue;
    assert.ok(driver, `${scenario}: the driver printed no RESULT line (crashed or killed)\n${out.slice(-2000)}${report}`);
    if (scenario === RETRY_LIMIT) {
      assert.equal(driver.ok, false, `${scenario}: the tool call cannot succeed here${report}`);
      assert.ok(driver.authorizations >= 1 && driver.authorizations <= 3, `${scenario}: ${driver.authorizations} authorizations${report}`);
      assert.match(driver.detail, /^tool error without a connect link/, `${scenario}: the gateway must stop offering connect links${report}`);
    } else {
      assert.equal(driver.ok, true, `${scenario}: the tool call through the gateway did not succeed: ${driver.detail}${report}`);
    }
  }
  assert.equal(code, 0, `exit code ${code}: failures not in ${BASELINE}, or baseline entries that now pass${report}`);
});
