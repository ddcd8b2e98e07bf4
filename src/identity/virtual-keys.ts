import { nowSeconds, type Clock } from '../clock.js';
import { hashSecret } from '../crypto/hash.js';
import { randomToken } from '../crypto/random.js';
import { SUPPORTED_SCOPES } from '../oauth/client-metadata.js';
import type { VirtualKeyRecord, VirtualKeyRepository } from '../store/virtual-keys.js';

/**
 * Virtual keys (product §4): `sk-gw-` and 43 random characters (256 bits). Only a hash is stored;
 * the key is shown once, when created. A key is the identity a user proves on the consent page
 * and, sent directly to /mcp, a credential of its own.
 */
export const VIRTUAL_KEY_PREFIX = 'sk-gw-';
const KEY_SHAPE = /^sk-gw-[A-Za-z0-9_-]{32,128}$/;

/** Who a request or a grant acts for. */
export interface Identity {
  /** The key's owner (a user id) when it has one, else `key:<key id>`: what per-user data is keyed by. */
  subject: string;
  keyId: string;
  /** For people: the key's name and owner. */
  label: string;
  /** Scope ceiling. */
  scopes: string[];
  upstreams: string[] | null;
  tools: string[] | null;
}

export interface NewVirtualKey {
  name: string;
  owner?: string | undefined;
  upstreams?: string[] | undefined;
  tools?: string[] | undefined;
  scopes?: string | undefined;
  /** Seconds from now; none = never expires. */
  expiresIn?: number | undefined;
}

export class VirtualKeyError extends Error {
  override name = 'VirtualKeyError';
}

export function identityOf(key: VirtualKeyRecord): Identity {
  return {
    subject: key.owner ?? `key:${key.id}`,
    keyId: key.id,
    label: key.owner ? `${key.name} (${key.owner})` : key.name,
    scopes: key.scopes.split(' ').filter(Boolean),
    upstreams: key.upstreams,
    tools: key.tools,
  };
}

/** Whether a stored key may be used at `now`. */
export function keyUsable(key: Pick<VirtualKeyRecord, 'active' | 'expires_at'>, now: number): boolean {
  return key.active && (key.expires_at === null || key.expires_at > now);
}

export class VirtualKeys {
  constructor(
    private readonly repository: VirtualKeyRepository,
    private readonly clock: Clock,
  ) {}

  /** Creates a key; the returned `key` is the only time the secret exists outside the caller. */
  async create(input: NewVirtualKey): Promise<{ key: string; record: VirtualKeyRecord }> {
    const name = input.name.trim();
    if (name === '' || name.length > 128) throw new VirtualKeyError('the name must be 1 to 128 characters');
    const scopes = (input.scopes ?? SUPPORTED_SCOPES.join(' ')).split(' ').filter(Boolean);
    const unknown = scopes.filter((s) => !(SUPPORTED_SCOPES as readonly string[]).includes(s));
    if (scopes.length === 0 || unknown.length > 0) {
      throw new VirtualKeyError(`scopes must be among: ${SUPPORTED_SCOPES.join(' ')}${unknown.length ? ` (not ${unknown.join(', ')})` : ''}`);
    }
    if (input.owner !== undefined && !/^[\x21-\x7e]{1,128}$/.test(input.owner)) {
      throw new VirtualKeyError('the user id must be 1 to 128 printable characters without spaces');
    }
    const key = VIRTUAL_KEY_PREFIX + randomToken(32);
    const now = nowSeconds(this.clock);
    const record: VirtualKeyRecord = {
      id: `vk_${randomToken(9)}`,
      prefix: key.slice(0, VIRTUAL_KEY_PREFIX.length + 4),
      name,
      owner: input.owner ?? null,
      upstreams: input.upstreams ? [...new Set(input.upstreams)] : null,
      tools: input.tools ? [...new Set(input.tools)] : null,
      scopes: [...new Set(scopes)].join(' '),
      expires_at: input.expiresIn !== undefined ? now + input.expiresIn : null,
      active: true,
      created_at: now,
      revoked_at: null,
    };
    await this.repository.insert(record, hashSecret(key));
    return { key, record };
  }

  /** The usable key behind `key`, or undefined (unknown, malformed, inactive or expired). */
  async verify(key: string): Promise<VirtualKeyRecord | undefined> {
    if (!KEY_SHAPE.test(key)) return undefined;
    const record = await this.repository.findByHash(hashSecret(key));
    return record && keyUsable(record, nowSeconds(this.clock)) ? record : undefined;
  }

  find(id: string): Promise<VirtualKeyRecord | undefined> {
    return this.repository.find(id);
  }

  list(): Promise<VirtualKeyRecord[]> {
    return this.repository.list();
  }

  /** Deactivates a key: its JWTs and refresh tokens stop working within seconds (product §4). */
  revoke(id: string): Promise<boolean> {
    return this.repository.deactivate(id, nowSeconds(this.clock));
  }
}
