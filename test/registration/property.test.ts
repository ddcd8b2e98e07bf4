import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { rawRequest, REGISTER } from '../helpers/http.js';

const ERRORS = new Set(['invalid_request', 'invalid_redirect_uri', 'invalid_client_metadata']);

/** Redirect URIs both allowed and refused, plus arbitrary strings. */
const redirectUri = fc.oneof(
  fc.constantFrom(
    'http://localhost:54321/callback',
    'http://127.0.0.1/cb',
    'http://[::1]:8080/cb',
    'https://claude.ai/api/mcp/auth_callback',
    'cursor://anysphere.cursor-mcp/oauth/callback',
    'http://example.com/cb',
    'javascript:alert(1)',
    'https://a.example/cb#x',
  ),
  fc.webUrl({ withFragments: true, withQueryParameters: true }),
  fc.string(),
);

/** Mostly a valid value, sometimes anything at all: so that both outcomes are exercised often. */
const mostly = <T>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<unknown> = fc.anything()) =>
  fc.oneof({ arbitrary: valid, weight: 12 }, { arbitrary: invalid, weight: 1 });

const metadata = fc.record(
  {
    redirect_uris: fc.oneof(
      {
        arbitrary: fc.array(
          fc.constantFrom('http://localhost:54321/callback', 'https://claude.ai/api/mcp/auth_callback', 'cursor://anysphere.cursor-mcp/oauth/callback'),
          { minLength: 1, maxLength: 3 },
        ),
        weight: 6,
      },
      { arbitrary: fc.array(redirectUri, { maxLength: 4 }), weight: 2 },
      { arbitrary: fc.anything(), weight: 1 },
    ),
    client_name: mostly(fc.string({ minLength: 1, maxLength: 40 }), fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), fc.anything())),
    grant_types: mostly(
      fc.subarray(['authorization_code', 'refresh_token']).map((g) => ['authorization_code', ...g]),
      fc.array(fc.constantFrom('authorization_code', 'refresh_token', 'implicit', 'password'), { maxLength: 3 }),
    ),
    response_types: mostly(fc.constant(['code']), fc.array(fc.constantFrom('code', 'token'), { maxLength: 2 })),
    token_endpoint_auth_method: mostly(fc.constant('none'), fc.constantFrom('client_secret_basic', 42, '')),
    scope: mostly(fc.constantFrom('mcp:read', 'mcp:write mcp:read', 'mcp:read  mcp:read'), fc.oneof(fc.constantFrom('mcp:read openid', ''), fc.string())),
    client_uri: mostly(fc.webUrl(), fc.string()),
    contacts: mostly(fc.array(fc.emailAddress(), { maxLength: 3 })),
    application_type: mostly(fc.constantFrom('web', 'native'), fc.string()),
    unknown_member: fc.anything(),
  },
  { requiredKeys: [] },
);

const unique = <T>(xs: T[]) => [...new Set(xs)];

describe('registration under random input (property-based)', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway();
  });
  after(() => gw.close());

  const post = (body: string | Buffer) =>
    rawRequest(gw.url + REGISTER, { body, headers: { 'content-type': 'application/json' } });

  const wellFormedError = (res: Awaited<ReturnType<typeof post>>) => {
    assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}: ${res.text}`);
    assert.deepEqual(Object.keys(res.json ?? {}).sort(), ['error', 'error_description'], res.text);
    assert.ok(ERRORS.has(res.json.error), res.text);
    assert.equal(typeof res.json.error_description, 'string');
  };

  test('metadata-shaped objects: 201 that round-trips what was sent, or a well-formed 4xx', async (t) => {
    let created = 0;
    await fc.assert(
      fc.asyncProperty(metadata, async (sent) => {
        const res = await post(JSON.stringify(sent));
        if (res.status !== 201) return wellFormedError(res);
        created++;
        const got = res.json;
        const s = sent as Record<string, any>;
        assert.deepEqual(got.redirect_uris, unique(s.redirect_uris));
        if (typeof s.client_name === 'string') assert.equal(got.client_name, s.client_name);
        assert.deepEqual(got.grant_types, Array.isArray(s.grant_types) ? unique(s.grant_types) : ['authorization_code']);
        assert.deepEqual(got.response_types, ['code']);
        assert.equal(got.token_endpoint_auth_method, 'none');
        const scope = typeof s.scope === 'string' ? unique(s.scope.split(' ').filter(Boolean)).join(' ') : 'mcp:read mcp:write';
        assert.equal(got.scope, scope);
        if (typeof s.client_uri === 'string') assert.equal(got.client_uri, s.client_uri);
        if (Array.isArray(s.contacts)) assert.deepEqual(got.contacts, unique(s.contacts));
        if (typeof s.application_type === 'string') assert.equal(got.application_type, s.application_type);
        assert.equal('unknown_member' in got, false);
        const stored = await gw.gatehouse.clients.find(got.client_id);
        assert.deepEqual({ ...stored, last_used_at: undefined }, { ...got, last_used_at: undefined });
      }),
      { numRuns: 300 },
    );
    t.diagnostic(`${created} of 300 random registrations were valid and created`);
    assert.ok(created >= 15, `only ${created} of 300 random registrations were valid: the round-trip is barely exercised`);
  });

  test('any JSON value: 201 or a well-formed 4xx, never a 500', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), async (value) => {
        const res = await post(JSON.stringify(value));
        if (res.status !== 201) wellFormedError(res);
      }),
      { numRuns: 200 },
    );
  });

  test('any bytes: a well-formed 4xx (or 201 if they happen to be valid), never a 500', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), async (bytes) => {
        const res = await post(Buffer.from(bytes));
        if (res.status !== 201) wellFormedError(res);
      }),
      { numRuns: 200 },
    );
  });
});
