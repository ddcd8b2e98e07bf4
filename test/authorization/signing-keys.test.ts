import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { startGateway } from '../helpers/gateway.js';
import { obtainTokens } from '../helpers/oauth.js';
import { runCli } from '../helpers/process.js';
import { makeTempDir } from '../helpers/tmp.js';

/** Product §2.2 and §5: ES256 signing keys, sealed at rest, rotated without breaking live tokens. */
describe('signing keys', () => {
  test('the private key is stored encrypted; the key file is 0600', async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close());
    const keyFile = path.join(gw.dataDir, 'encryption.key');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const db = new BetterSqlite3(path.join(gw.dataDir, 'gatehouse.db'), { readonly: true });
    t.after(() => db.close());
    const row = db.prepare('SELECT public_jwk, private_jwk FROM signing_keys').get() as { public_jwk: string; private_jwk: string };
    assert.match(row.private_jwk, /^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    assert.equal(row.private_jwk.includes('"d"'), false);
    assert.equal(JSON.parse(row.public_jwk).d, undefined);
  });

  test('rotation: a new key signs, the old one stays in the JWKS and its tokens stay valid until they expire', async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close());
    const mcp = `${gw.gatehouse.issuer()}/mcp`;
    const before = await obtainTokens(gw);
    const oldKid = gw.gatehouse.signingKeys.current().kid;
    const newKid = await gw.gatehouse.signingKeys.rotate();
    assert.notEqual(newKid, oldKid);
    const jwks = (await (await fetch(`${gw.url}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> };
    assert.deepEqual(jwks.keys.map((k) => k.kid).sort(), [oldKid, newKid].sort());
    const after = await obtainTokens(gw);
    const kidOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString()).kid;
    assert.equal(kidOf(after.tokens.access_token), newKid);
    await gw.gatehouse.accessTokens.verify(before.tokens.access_token, mcp);

    // Past the longest access token lifetime (+ margin), the old key is pruned.
    gw.clock.advance(900 + 301);
    const report = await gw.gatehouse.housekeep();
    assert.equal(report.retiredKeys, 1);
    const after2 = (await (await fetch(`${gw.url}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> };
    assert.deepEqual(after2.keys.map((k) => k.kid), [newKid]);
  });

  test('gatehouse rotate-signing-key rotates in the database; a running gateway picks it up', async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close());
    const oldKid = gw.gatehouse.signingKeys.current().kid;
    const res = await runCli(['rotate-signing-key', '--config', gw.configFile, '--data', gw.dataDir]);
    assert.equal(res.code, 0, res.stderr);
    const newKid = /new signing key (\S+);/.exec(res.stdout)?.[1];
    assert.ok(newKid && newKid !== oldKid);
    // A token signed with the new key verifies on the running gateway (unknown kid → reload).
    assert.equal(await gw.gatehouse.signingKeys.publicKey(newKid) !== undefined, true);
  });

  test('lookups of unknown key ids share one re-read of the keys, at most one a second', async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close());
    const repository = (gw.gatehouse.signingKeys as unknown as { repository: { published: (after: number) => Promise<unknown[]> } }).repository;
    const published = repository.published.bind(repository);
    let reads = 0;
    repository.published = (after) => {
      reads++;
      return published(after);
    };
    const lookups = (n: number) => Promise.all(Array.from({ length: n }, (_, i) => gw.gatehouse.signingKeys.publicKey(`unknown-${i}`)));
    assert.deepEqual(await lookups(50), Array(50).fill(undefined));
    assert.equal(reads, 1);
    assert.deepEqual(await lookups(50), Array(50).fill(undefined));
    assert.equal(reads, 2);
  });

  test('start-up fails with a clear message when the encryption key cannot decrypt the stored key', async (t) => {
    const temp = makeTempDir();
    t.after(temp.remove);
    const first = await runCli(['migrate', '--data', temp.dir]);
    assert.equal(first.code, 0, first.stderr);
    const keys = await runCli(['keys', 'list', '--data', temp.dir]); // loads (and creates) the signing key
    assert.equal(keys.code, 0, keys.stderr);
    writeFileSync(path.join(temp.dir, 'encryption.key'), `${Buffer.alloc(32, 7).toString('base64')}\n`);
    const res = await runCli(['serve', '--data', temp.dir, '--port', '0']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /the encryption key does not decrypt the stored signing key/);
    const env = await runCli(['keys', 'list', '--data', temp.dir], { env: { GATEHOUSE_ENCRYPTION_KEY: 'ab'.repeat(32) } });
    assert.equal(env.code, 1);
    assert.match(env.stderr, /does not decrypt/);
    assert.equal(readFileSync(path.join(temp.dir, 'encryption.key'), 'utf8').trim(), Buffer.alloc(32, 7).toString('base64'), 'nothing overwritten');
  });
});
