import { createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { calculateJwkThumbprint, type JWK } from 'jose';
import type { Logger } from 'pino';
import { nowSeconds, type Clock } from '../clock.js';
import { DecryptionError, type SecretBox } from '../crypto/encryption.js';
import type { SigningKeyRepository, SigningKeyRow } from '../store/signing-keys.js';

/**
 * The ES256 keys that sign access tokens (product §2.2, §5). The newest current key signs; a key
 * retired by rotation stays published in the JWKS (and accepted) until every token it signed has
 * expired. Private keys are sealed at rest. The set is re-read from the database periodically and
 * whenever a token names an unknown key, so a rotation made by the CLI or another replica is
 * picked up without a restart.
 */
export class SigningKeyUnavailableError extends Error {
  override name = 'SigningKeyUnavailableError';
}

interface LoadedKey {
  kid: string;
  publicJwk: JWK;
  publicKey: KeyObject;
  row: SigningKeyRow;
}

/** Extra time a retired key stays published beyond the longest access token lifetime. */
const RETIREMENT_MARGIN = 300;
const PURPOSE = (kid: string) => `signing-key:${kid}`;

export class SigningKeys {
  private keys: LoadedKey[] = [];
  private signer: { kid: string; privateKey: KeyObject } | undefined;
  private lastReload = Number.NEGATIVE_INFINITY;
  /** The re-read that lookups of unknown key ids wait for, shared by all of them. */
  private pendingLookupReload: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly repository: SigningKeyRepository,
    private readonly box: SecretBox,
    private readonly clock: Clock,
    /** Current access token lifetime: how long a retired key must stay published. */
    private readonly tokenTtl: () => number,
    private readonly logger: Logger,
  ) {}

  /**
   * Loads the keys, creating the first one if there is none. Throws SigningKeyUnavailableError
   * when the current key does not decrypt (the encryption key changed): a gateway that cannot sign
   * must not start.
   */
  async init(): Promise<void> {
    await this.reload();
    if (!this.signer) {
      if (await this.repository.addFirst(await this.newKey())) this.logger.info('created the first signing key');
      await this.reload();
    }
    if (!this.signer) throw new SigningKeyUnavailableError('no signing key could be loaded');
  }

  /** Makes a new current key; the previous one stays published until its tokens expire. */
  async rotate(): Promise<string> {
    const row = await this.newKey();
    await this.repository.addCurrent(row);
    await this.reload();
    return row.kid;
  }

  /** Re-reads the key set every `intervalMs`. */
  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      this.reload().catch((err: unknown) => this.logger.warn({ err }, 'reloading signing keys failed'));
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The key to sign with now. */
  current(): { kid: string; privateKey: KeyObject } {
    if (!this.signer) throw new SigningKeyUnavailableError('signing keys are not loaded');
    return this.signer;
  }

  /** RFC 7517 JWK Set of the published public keys. */
  jwks(): { keys: JWK[] } {
    return { keys: this.published().map((k) => k.publicJwk) };
  }

  /**
   * The public key for `kid`, re-reading the set once if it is unknown (a key another process has
   * just made). Re-reads are at most one a second, on real time: a flood of tokens naming unknown
   * keys must not become a flood of queries. A lookup inside that second waits for the next re-read
   * rather than refusing a token signed a moment after this process last read the keys.
   */
  async publicKey(kid: string): Promise<KeyObject | undefined> {
    let key = this.published().find((k) => k.kid === kid);
    if (!key) {
      await this.lookupReload();
      key = this.published().find((k) => k.kid === kid);
    }
    return key?.publicKey;
  }

  private lookupReload(): Promise<void> {
    this.pendingLookupReload ??= (async () => {
      try {
        const wait = this.lastReload + 1000 - performance.now();
        if (wait > 0) await delay(wait);
        await this.reload();
      } finally {
        this.pendingLookupReload = undefined;
      }
    })();
    return this.pendingLookupReload;
  }

  /** Current keys, and retired ones whose tokens may still be alive. */
  private published(): LoadedKey[] {
    const cutoff = this.retiredCutoff();
    return this.keys.filter((k) => k.row.retired_at === null || k.row.retired_at > cutoff);
  }

  /** Deletes keys retired so long ago that no token they signed can still be valid. */
  async prune(): Promise<number> {
    return this.repository.deleteRetiredBefore(this.retiredCutoff());
  }

  private retiredCutoff(): number {
    return nowSeconds(this.clock) - this.tokenTtl() - RETIREMENT_MARGIN;
  }

  private async reload(): Promise<void> {
    this.lastReload = performance.now();
    const rows = await this.repository.published(this.retiredCutoff());
    const keys = rows.map((row) => {
      const publicJwk = JSON.parse(row.public_jwk) as JWK;
      return { kid: row.kid, publicJwk, publicKey: createPublicKey({ key: publicJwk as JsonWebKey, format: 'jwk' }), row };
    });
    const currentRow = rows.find((r) => r.retired_at === null);
    let signer = this.signer;
    if (currentRow && currentRow.kid !== signer?.kid) {
      let privateJwk: string;
      try {
        privateJwk = this.box.open(currentRow.private_jwk, PURPOSE(currentRow.kid));
      } catch (err) {
        if (err instanceof DecryptionError) {
          throw new SigningKeyUnavailableError(
            'the encryption key does not decrypt the stored signing key: was GATEHOUSE_ENCRYPTION_KEY ' +
              'or the data directory\'s encryption.key changed? Restore the key that was used before.',
          );
        }
        throw err;
      }
      signer = { kid: currentRow.kid, privateKey: createPrivateKey({ key: JSON.parse(privateJwk) as JsonWebKey, format: 'jwk' }) };
    }
    this.keys = keys;
    this.signer = currentRow ? signer : undefined;
  }

  private async newKey(): Promise<SigningKeyRow> {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = publicKey.export({ format: 'jwk' }) as JWK;
    const kid = await calculateJwkThumbprint(pub);
    const publicJwk: JWK = { kty: pub.kty, crv: pub.crv, x: pub.x, y: pub.y, kid, alg: 'ES256', use: 'sig' };
    return {
      kid,
      public_jwk: JSON.stringify(publicJwk),
      private_jwk: this.box.seal(JSON.stringify(privateKey.export({ format: 'jwk' })), PURPOSE(kid)),
      created_at: nowSeconds(this.clock),
      retired_at: null,
    };
  }
}
