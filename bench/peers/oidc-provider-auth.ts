/**
 * Benchmark peer: oidc-provider 9 as an authorization server for the code and refresh grants,
 * comparable to Gatehouse's: one public client (PKCE S256, token_endpoint_auth_method "none"),
 * refresh tokens issued to clients with the refresh_token grant and rotated on every use (its
 * default for public clients). Storage is an in-memory adapter without eviction (the built-in
 * development adapter keeps only 1,000 entries and would forget live refresh tokens mid-run).
 * Its own login and consent are auto-approved for one user, the way a person clicking through
 * would be, so a full flow can be timed.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

const CLIENT_ID = 'bench-client';

type Payload = Record<string, unknown> & { grantId?: string; uid?: string; userCode?: string; consumed?: number };

/** oidc-provider's adapter interface over plain Maps (no eviction; expired entries read as absent). */
const store = new Map<string, { payload: Payload; expiresAt: number | undefined }>();
const byGrant = new Map<string, Set<string>>();
class MapAdapter {
  constructor(private readonly model: string) {}
  private key(id: string) {
    return `${this.model}:${id}`;
  }
  async upsert(id: string, payload: Payload, expiresIn?: number) {
    const key = this.key(id);
    store.set(key, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined });
    if (payload.grantId) {
      let keys = byGrant.get(payload.grantId);
      if (!keys) byGrant.set(payload.grantId, (keys = new Set()));
      keys.add(key);
    }
    if (payload.uid) store.set(`${this.model}:uid:${payload.uid}`, { payload: { id } as Payload, expiresAt: undefined });
    if (payload.userCode) store.set(`${this.model}:code:${payload.userCode}`, { payload: { id } as Payload, expiresAt: undefined });
  }
  async find(id: string) {
    const entry = store.get(this.key(id));
    if (!entry || (entry.expiresAt !== undefined && entry.expiresAt < Date.now())) return undefined;
    return entry.payload;
  }
  async findByUid(uid: string) {
    const ref = store.get(`${this.model}:uid:${uid}`);
    return ref ? this.find(String(ref.payload.id)) : undefined;
  }
  async findByUserCode(userCode: string) {
    const ref = store.get(`${this.model}:code:${userCode}`);
    return ref ? this.find(String(ref.payload.id)) : undefined;
  }
  async consume(id: string) {
    const entry = store.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id: string) {
    store.delete(this.key(id));
  }
  async revokeByGrantId(grantId: string) {
    for (const key of byGrant.get(grantId) ?? []) store.delete(key);
    byGrant.delete(grantId);
  }
}
const REDIRECT_URI = 'http://127.0.0.1:54321/callback';

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    adapter: MapAdapter,
    clients: [
      {
        client_id: CLIENT_ID,
        token_endpoint_auth_method: 'none',
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      },
    ],
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: { AccessToken: 900, AuthorizationCode: 120, RefreshToken: 30 * 86400, Interaction: 600, Session: 3600, Grant: 30 * 86400 },
  });
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (!req.url?.startsWith('/interaction/')) {
      callback(req, res);
      return;
    }
    // Auto-approve: the user signs in as "bench-user" and grants what was asked.
    void (async () => {
      const details = await provider.interactionDetails(req, res);
      const grant = new provider.Grant({ accountId: 'bench-user', clientId: String(details.params.client_id) });
      grant.addOIDCScope(String(details.params.scope ?? 'openid'));
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { login: { accountId: 'bench-user' }, consent: { grantId } }, { mergeWithLastSubmission: false });
    })().catch((err: Error) => {
      res.statusCode = 500;
      res.end(err.message);
    });
  });
  process.stdout.write(`${JSON.stringify({ url: issuer, ready: 'true', client_id: CLIENT_ID, redirect_uri: REDIRECT_URI })}\n`);
});
