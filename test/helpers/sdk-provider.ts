import { randomBytes } from 'node:crypto';
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import assert from 'node:assert/strict';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { bounded } from './bounded.js';
import { ConsentBrowser } from './browser.js';

/** An in-memory OAuthClientProvider: stores what the SDK hands it, unchanged. */
export class MemoryProvider implements OAuthClientProvider {
  private info: OAuthClientInformationMixed | undefined;
  private stored: OAuthTokens | undefined;
  private verifier: string | undefined;
  private lastState: string | undefined;
  readonly redirects: URL[] = [];
  readonly invalidated: string[] = [];
  readonly tokenHistory: OAuthTokens[] = [];
  /** Set to use the SDK's URL-based client_id (SEP-991) branch. */
  clientMetadataUrl?: string;

  constructor(
    readonly redirectUrl: string,
    readonly clientMetadata: OAuthClientMetadata,
    initialClientInformation?: OAuthClientInformationMixed,
  ) {
    this.info = initialClientInformation;
  }

  state(): string {
    this.lastState = randomBytes(12).toString('base64url');
    return this.lastState;
  }

  get expectedState(): string | undefined {
    return this.lastState;
  }

  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.info;
  }

  saveClientInformation(info: OAuthClientInformationMixed): void {
    this.info = info;
  }

  tokens(): OAuthTokens | undefined {
    return this.stored;
  }

  saveTokens(tokens: OAuthTokens): void {
    this.stored = tokens;
    this.tokenHistory.push(tokens);
  }

  redirectToAuthorization(url: URL): void {
    this.redirects.push(url);
  }

  saveCodeVerifier(verifier: string): void {
    this.verifier = verifier;
  }

  codeVerifier(): string {
    if (this.verifier === undefined) throw new Error('no code verifier saved');
    return this.verifier;
  }

  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
    this.invalidated.push(scope);
    if (scope === 'all' || scope === 'client') this.info = undefined;
    if (scope === 'all' || scope === 'tokens') this.stored = undefined;
    if (scope === 'all' || scope === 'verifier') this.verifier = undefined;
  }
}


/**
 * The browser's part of an SDK client's flow: consent with `key` at `authorizationUrl`, then check
 * the redirect back to the provider's callback (no error, its state, RFC 9207 `iss`); returns the code.
 */
export async function consentForCode(provider: MemoryProvider, authorizationUrl: URL, key: string, issuer: string): Promise<string> {
  const back = await bounded('consent', new ConsentBrowser().authorize(authorizationUrl.toString(), key));
  assert.equal(`${back.origin}${back.pathname}`, provider.redirectUrl);
  assert.equal(back.searchParams.get('error'), null, `authorization error: ${back}`);
  assert.equal(back.searchParams.get('state'), provider.expectedState);
  assert.equal(back.searchParams.get('iss'), issuer);
  const code = back.searchParams.get('code');
  assert.ok(code, `no code in ${back}`);
  return code;
}
