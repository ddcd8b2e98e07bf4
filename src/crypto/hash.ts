import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * How secrets are kept and compared. Codes, refresh tokens and virtual keys are 256-bit random
 * values, so an unsalted SHA-256 is a safe way to store them (there is nothing to brute-force);
 * the database holds only the hash and lookups go by hash.
 */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('base64url');
}

/** Compares two strings in time independent of where they differ (for every secret we check). */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  // Comparing against itself keeps the time independent of `a` when the lengths differ.
  return x.length === y.length ? timingSafeEqual(x, y) : (timingSafeEqual(y, y), false);
}

/** HMAC-SHA256 as base64url: derives values bound to a secret (CSRF tokens from the browser binding). */
export function hmac(key: string, message: string): string {
  return createHmac('sha256', key).update(message, 'utf8').digest('base64url');
}

/** RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))). */
export function s256(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}
