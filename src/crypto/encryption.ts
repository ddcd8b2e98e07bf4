import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Encryption at rest (product §5): signing keys, upstream tokens and client secrets are sealed
 * with AES-256-GCM before they reach the database. Each value is bound to what it is for (the
 * additional authenticated data), so a sealed value copied into another row does not open.
 */
const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class DecryptionError extends Error {
  override name = 'DecryptionError';
}

export class SecretBox {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error('the encryption key must be 32 bytes');
    this.key = key;
  }

  /** `v1.<iv>.<ciphertext>.<tag>` in base64url. */
  seal(plaintext: string, purpose: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(purpose, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
  }

  /** A key for another purpose (HKDF-SHA256 of this one), so one configured secret serves several uses. */
  deriveKey(label: string): Buffer {
    return Buffer.from(hkdfSync('sha256', this.key, Buffer.alloc(0), `gatehouse:${label}`, 32));
  }

  /** Throws DecryptionError when the value was sealed with another key or for another purpose. */
  open(sealed: string, purpose: string): string {
    const [version, iv, body, tag] = sealed.split('.');
    if (version !== VERSION || iv === undefined || body === undefined || tag === undefined) {
      throw new DecryptionError('not a sealed value');
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'), { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(purpose, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new DecryptionError('the value does not decrypt with this key');
    }
  }
}

/** Parses a configured key: 64 hex digits or base64/base64url of 32 bytes. */
export function parseEncryptionKey(text: string): Buffer {
  const key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
  if (key.length !== 32) throw new Error('the encryption key must be 32 bytes');
  return key;
}

export const KEY_FILE = 'encryption.key';

/**
 * The key from the configuration (GATEHOUSE_ENCRYPTION_KEY), else the data directory's key file,
 * created (mode 0600) on first use. Replicas sharing a PostgreSQL database must share the key:
 * set GATEHOUSE_ENCRYPTION_KEY on all of them.
 */
export function loadEncryptionKey(configured: string | undefined, dataDir: string): { key: Buffer; source: string } {
  if (configured) return { key: parseEncryptionKey(configured), source: 'GATEHOUSE_ENCRYPTION_KEY' };
  const file = path.join(dataDir, KEY_FILE);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  try {
    writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  return { key: parseEncryptionKey(readFileSync(file, 'utf8').trim()), source: file };
}
