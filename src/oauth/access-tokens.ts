import { errors as joseErrors, jwtVerify, SignJWT, type JWTHeaderParameters, type JWTPayload } from 'jose';
import { nowSeconds, type Clock } from '../clock.js';
import { randomToken } from '../crypto/random.js';
import type { GrantRepository, GrantRow } from '../store/grants.js';
import type { SigningKeys } from './signing-keys.js';

/**
 * Access tokens: ES256 JWTs (RFC 9068 profile, `typ: at+jwt`) with iss, aud (the resource),
 * sub, client_id, scope, jti, iat, exp, and sid (the grant). Verification checks the signature,
 * issuer, audience, expiry and — because a JWT outlives a revocation otherwise — that the grant
 * and its virtual key are still live, looked up at most every STATUS_TTL_MS per grant.
 */
export interface AccessTokenClaims {
  iss: string;
  aud: string;
  sub: string;
  client_id: string;
  scope: string;
  jti: string;
  iat: number;
  exp: number;
  /** The grant the token was issued under. */
  sid: string;
}

/** Why a token was refused; `description` is safe to show the client. */
export class InvalidTokenError extends Error {
  override name = 'InvalidTokenError';
  constructor(readonly description: string) {
    super(description);
  }
}

/** A token that verified, and what its grant's key lets it reach. */
export interface VerifiedToken {
  claims: AccessTokenClaims;
  /** Upstreams and `upstream/tool` patterns of the grant's key; null = unrestricted. */
  reach: { upstreams: string[] | null; tools: string[] | null };
}

/** A revocation or key deactivation is seen by every replica within this long (product: ≤ 5 s). */
export const STATUS_TTL_MS = 2000;
const STATUS_CACHE_ENTRIES = 10_000;
const VERIFIED_CACHE_ENTRIES = 10_000;

export class AccessTokens {
  private readonly statusCache = new Map<string, { live: boolean; reach: VerifiedToken['reach']; until: number }>();
  /**
   * Tokens whose signature already verified. A client sends the same token with every request
   * until it expires; checking an ES256 signature costs more than the rest of a tool call's work
   * here. Expiry, audience and the grant's status are still checked on every use.
   */
  private readonly verified = new Map<string, AccessTokenClaims>();

  constructor(
    private readonly keys: SigningKeys,
    private readonly grants: GrantRepository,
    private readonly clock: Clock,
    private readonly issuer: () => string,
    private readonly ttl: () => number,
  ) {}

  async issue(grant: GrantRow, scope: string): Promise<{ token: string; expiresIn: number }> {
    const { kid, privateKey } = this.keys.current();
    const iat = nowSeconds(this.clock);
    const expiresIn = this.ttl();
    const token = await new SignJWT({ client_id: grant.client_id, scope, sid: grant.id })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid })
      .setIssuer(this.issuer())
      .setAudience(grant.resource)
      .setSubject(grant.subject)
      .setJti(randomToken(16))
      .setIssuedAt(iat)
      .setExpirationTime(iat + expiresIn)
      .sign(privateKey);
    return { token, expiresIn };
  }

  /** The verifier /mcp uses. Throws InvalidTokenError for anything but a live token for `resource`. */
  async verify(token: string, resource: string): Promise<AccessTokenClaims> {
    return (await this.verifyWithReach(token, resource)).claims;
  }

  /** As verify, with what the token's key may reach. */
  async verifyWithReach(token: string, resource: string): Promise<VerifiedToken> {
    const known = this.verified.get(token);
    if (known) {
      if (known.exp * 1000 <= this.clock.now()) throw new InvalidTokenError('the token has expired');
      if (known.aud !== resource) throw new InvalidTokenError('the token was issued for another resource');
      if (known.iss !== this.issuer()) throw new InvalidTokenError('the token was issued by another server');
      const status = await this.status(known.sid);
      if (!status.live) throw new InvalidTokenError('the token has been revoked');
      return { claims: known, reach: status.reach };
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keyFor, {
        issuer: this.issuer(),
        audience: resource,
        algorithms: ['ES256'],
        typ: 'at+jwt',
        currentDate: new Date(this.clock.now()),
        requiredClaims: ['sub', 'jti', 'iat', 'exp'],
      }));
    } catch (err) {
      throw new InvalidTokenError(describeJoseError(err));
    }
    const claims = payload as Partial<AccessTokenClaims>;
    if (typeof claims.sid !== 'string' || typeof claims.client_id !== 'string' || typeof claims.scope !== 'string') {
      throw new InvalidTokenError('the token is not a Gatehouse access token');
    }
    if (typeof claims.aud !== 'string') throw new InvalidTokenError('the token must name exactly one audience');
    const status = await this.status(claims.sid);
    if (!status.live) throw new InvalidTokenError('the token has been revoked');
    if (this.verified.size >= VERIFIED_CACHE_ENTRIES) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, claims as AccessTokenClaims);
    return { claims: claims as AccessTokenClaims, reach: status.reach };
  }

  /**
   * The grant of a token this gateway signed, whatever its audience and even if it has expired
   * (for revocation); undefined for anything else.
   */
  async grantOf(token: string): Promise<GrantRow | undefined> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keyFor, {
        issuer: this.issuer(),
        algorithms: ['ES256'],
        typ: 'at+jwt',
        currentDate: new Date(0),
      }));
    } catch {
      return undefined;
    }
    return typeof payload.sid === 'string' ? this.grants.find(payload.sid) : undefined;
  }

  /** jose's key lookup: the published key the token's header names. */
  private readonly keyFor = async (header: JWTHeaderParameters) => {
    const key = header.kid ? await this.keys.publicKey(header.kid) : undefined;
    if (!key) throw new InvalidTokenError('the token was not signed by this gateway');
    return key;
  };

  /** Forgets cached grant states (after a revocation made by this process). */
  forget(grantId: string): void {
    this.statusCache.delete(grantId);
  }

  private async status(grantId: string): Promise<{ live: boolean; reach: VerifiedToken['reach'] }> {
    const now = this.clock.now();
    const cached = this.statusCache.get(grantId);
    if (cached && cached.until > now) return cached;
    const status = await this.grants.status(grantId);
    const seconds = Math.floor(now / 1000);
    const key = status?.key ?? null;
    const live =
      status !== undefined && !status.revoked && (key === null || (key.active && (key.expires_at === null || key.expires_at > seconds)));
    const entry = { live, reach: { upstreams: key?.upstreams ?? null, tools: key?.tools ?? null }, until: now + STATUS_TTL_MS };
    if (this.statusCache.size >= STATUS_CACHE_ENTRIES) this.statusCache.delete(this.statusCache.keys().next().value!);
    this.statusCache.set(grantId, entry);
    return entry;
  }
}

function describeJoseError(err: unknown): string {
  if (err instanceof InvalidTokenError) return err.description;
  if (err instanceof joseErrors.JWTExpired) return 'the token has expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return 'the token was issued for another resource';
    if (err.claim === 'iss') return 'the token was issued by another server';
    return `the token's ${err.claim} claim is not valid`;
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'the token signature is not valid';
  return 'the token is malformed';
}
