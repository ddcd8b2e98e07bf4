import { randomBytes, randomUUID } from 'node:crypto';

/** The one random source: node:crypto's CSPRNG. */

/** A random RFC 4122 version 4 UUID, the form of registered client_ids. */
export function newClientId(): string {
  return randomUUID();
}

/** `bytes` random bytes as base64url (no padding). */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}
