import { createHash, randomBytes } from 'node:crypto';
import type { TestGateway } from './gateway.js';
import { ConsentBrowser } from './browser.js';
import { register } from './http.js';

export const AUTHORIZE = '/api/oauth/per-user/authorize';
export const TOKEN = '/api/oauth/per-user/token';
export const REVOKE = '/api/oauth/per-user/revoke';
export const REDIRECT = 'http://127.0.0.1:54321/callback';

export function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export async function registerClient(gw: TestGateway, metadata: Record<string, unknown> = {}): Promise<string> {
  const res = await register(gw.url, {
    client_name: 'Test client',
    redirect_uris: [REDIRECT],
    grant_types: ['authorization_code', 'refresh_token'],
    ...metadata,
  });
  if (res.status !== 201) throw new Error(`registration failed: ${res.text}`);
  return res.json.client_id as string;
}

export async function createKey(gw: TestGateway, options: Parameters<TestGateway['gatehouse']['virtualKeys']['create']>[0] = { name: 'test' }) {
  return gw.gatehouse.virtualKeys.create(options);
}

export function authorizeUrl(gw: TestGateway, params: Record<string, string | undefined>): string {
  const url = new URL(gw.url + AUTHORIZE);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  return url.toString();
}

export interface TokenResult {
  status: number;
  headers: Headers;
  json: any;
}

export async function tokenRequest(gw: TestGateway, params: Record<string, string>, path = TOKEN): Promise<TokenResult> {
  const res = await fetch(gw.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params).toString(),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, headers: res.headers, json };
}

/** Registration, consent with a fresh key, and the code: everything up to the token request. */
export async function authorizeWithConsent(
  gw: TestGateway,
  options: { clientId?: string; key?: string; scope?: string; resource?: string; redirectUri?: string; state?: string } = {},
) {
  const clientId = options.clientId ?? (await registerClient(gw));
  const key = options.key ?? (await createKey(gw)).key;
  const { verifier, challenge } = pkce();
  const state = options.state ?? randomBytes(8).toString('hex');
  const redirectUri = options.redirectUri ?? REDIRECT;
  const browser = new ConsentBrowser();
  const back = await browser.authorize(
    authorizeUrl(gw, {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: redirectUri,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
      scope: options.scope,
      resource: options.resource,
    }),
    key,
  );
  const code = back.searchParams.get('code');
  if (!code) throw new Error(`no code: ${back}`);
  return { clientId, key, verifier, challenge, state, redirectUri, code, back, browser };
}

/** A full authorization: tokens for a fresh client and key. */
export async function obtainTokens(gw: TestGateway, options: Parameters<typeof authorizeWithConsent>[1] = {}) {
  const flow = await authorizeWithConsent(gw, options);
  const res = await tokenRequest(gw, {
    grant_type: 'authorization_code',
    code: flow.code,
    code_verifier: flow.verifier,
    redirect_uri: flow.redirectUri,
    client_id: flow.clientId,
    ...(options.resource ? { resource: options.resource } : {}),
  });
  if (res.status !== 200) throw new Error(`token request failed: ${JSON.stringify(res.json)}`);
  return { ...flow, tokens: res.json as { access_token: string; refresh_token?: string; expires_in: number; scope: string; token_type: string } };
}
