import '@fastify/cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { constantTimeEqual, hashSecret, hmac } from '../crypto/hash.js';
import { randomToken } from '../crypto/random.js';

/**
 * Binds a pending authorization to the browser that started it: a random value in an HttpOnly
 * cookie, whose hash is stored with the request. A consent link opened in another browser (or
 * sent to a victim by an attacker) finds no matching cookie and is refused. The CSRF token of the
 * consent form is derived from the same secret, so it needs no storage of its own.
 */
const SHAPE = /^[A-Za-z0-9_-]{43}$/;
const MAX_AGE_SECONDS = 600;

export function cookieName(issuer: string): string {
  // __Host- pins the cookie to this exact origin and path /, but requires Secure (https).
  return issuer.startsWith('https://') ? '__Host-gatehouse_auth' : 'gatehouse_auth';
}

/** The browser's binding value: the existing one, or a new one set as a cookie on `reply`. */
export function bindBrowser(request: FastifyRequest, reply: FastifyReply, issuer: string): string {
  const name = cookieName(issuer);
  const existing = request.cookies[name];
  const value = existing && SHAPE.test(existing) ? existing : randomToken(32);
  void reply.setCookie(name, value, {
    path: '/',
    httpOnly: true,
    secure: issuer.startsWith('https://'),
    // Lax: sent on the top-level navigation from the client's authorize link, never on
    // cross-site subrequests or form posts.
    sameSite: 'lax',
    maxAge: MAX_AGE_SECONDS,
  });
  return value;
}

/** The binding value sent by this browser, if any. */
export function browserBinding(request: FastifyRequest, issuer: string): string | undefined {
  const value = request.cookies[cookieName(issuer)];
  return value && SHAPE.test(value) ? value : undefined;
}

export function bindingHash(binding: string): string {
  return hashSecret(binding);
}

export function matchesBinding(binding: string | undefined, storedHash: string): boolean {
  return binding !== undefined && constantTimeEqual(hashSecret(binding), storedHash);
}

export function csrfToken(binding: string, requestId: string): string {
  return hmac(binding, `consent:${requestId}`);
}

export function csrfValid(binding: string, requestId: string, token: string | undefined): boolean {
  return token !== undefined && constantTimeEqual(csrfToken(binding, requestId), token);
}
