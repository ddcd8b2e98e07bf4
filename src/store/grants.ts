import type { Kysely, Transaction } from 'kysely';
import type { Database } from './database.js';
import { prepared } from './prepared.js';
import type { GrantTable, RefreshTokenTable, Schema } from './schema.js';
import type { TransactionRunner } from './transactions.js';

export type GrantRow = GrantTable;

type Db = Kysely<Schema> | Transaction<Schema>;

/** How long a refresh token that was just exchanged counts as "in use by a concurrent request". */
export const CONCURRENT_REFRESH_WINDOW = 2;

/** A reason to refuse, with its RFC 6749 §5.2 error code. */
export interface Refusal {
  error: 'invalid_grant' | 'invalid_scope' | 'invalid_target' | 'invalid_client';
  description: string;
}

/** The state of a grant's virtual key: for checks made inside the unit of work, and what it may reach. */
export interface KeyState {
  active: boolean;
  expires_at: number | null;
  /** Upstreams the key may reach (null = all). */
  upstreams: string[] | null;
  /** `upstream/tool` patterns the key may call (null = all). */
  tools: string[] | null;
}

export type CodeExchange =
  | { outcome: 'ok'; grant: GrantRow; key: KeyState | null }
  | { outcome: 'invalid'; refusal: Refusal }
  /** The code had been used already: the grant it created is revoked (RFC 6749 §4.1.2). */
  | { outcome: 'replayed' };

export type RefreshRotation =
  | { outcome: 'rotated'; grant: GrantRow; key: KeyState | null }
  | { outcome: 'invalid'; refusal: Refusal }
  /** Exchanged a moment ago by another request: a clean, retryable refusal, nothing revoked. */
  | { outcome: 'concurrent' }
  /** An older token came back after its successor was used: the grant is revoked. */
  | { outcome: 'replayed' };

function invalid(description: string): { outcome: 'invalid'; refusal: Refusal } {
  return { outcome: 'invalid', refusal: { error: 'invalid_grant', description } };
}

function normalizeGrant(g: GrantRow): GrantRow {
  return { ...g, created_at: Number(g.created_at), revoked_at: g.revoked_at === null ? null : Number(g.revoked_at) };
}

/**
 * Grants and what hangs off them: authorization codes and the chain of refresh tokens. Codes and
 * refresh tokens are stored as hashes only. Every state change is one unit of work, and the
 * conditional updates make concurrent requests (several replicas on PostgreSQL) resolve to one
 * winner.
 */
export class GrantRepository {
  private readonly db: Kysely<Schema>;
  private readonly transactions: TransactionRunner;

  // The refresh path runs these on every request: built and compiled once (store/prepared.ts).
  private readonly selectRefreshToken = prepared<[string], RefreshTokenTable>(1, (hash) =>
    this.db.selectFrom('refresh_tokens').selectAll().where('token_hash', '=', hash),
  );
  private readonly claimRefreshToken = prepared<[number, string], unknown>(2, (now, hash) =>
    this.db
      .updateTable('refresh_tokens')
      .set({ used_at: now })
      .where('token_hash', '=', hash)
      .where('used_at', 'is', null)
      .where('superseded_at', 'is', null),
  );
  private readonly insertToken = prepared<[string, string, string | null, number, number], unknown>(
    5,
    (hash, grantId, parentHash, createdAt, expiresAt) =>
      this.db.insertInto('refresh_tokens').values({
        token_hash: hash,
        grant_id: grantId,
        parent_hash: parentHash,
        created_at: createdAt,
        expires_at: expiresAt,
        used_at: null,
        superseded_at: null,
      }),
  );
  private readonly selectGrantWithKey = prepared<
    [string],
    GrantRow & {
      key_found: string | null;
      key_active: number | null;
      key_expires_at: number | null;
      key_upstreams: string | null;
      key_tools: string | null;
    }
  >(1, (id) =>
    this.db
      .selectFrom('grants')
      .leftJoin('virtual_keys', 'virtual_keys.id', 'grants.key_id')
      .selectAll('grants')
      .select([
        'virtual_keys.id as key_found',
        'virtual_keys.active as key_active',
        'virtual_keys.expires_at as key_expires_at',
        'virtual_keys.upstreams as key_upstreams',
        'virtual_keys.tools as key_tools',
      ])
      .where('grants.id', '=', id),
  );

  constructor(database: Database) {
    this.db = database.db;
    this.transactions = database.transactions;
  }

  /** Records a new grant and the code that redeems it. */
  async createWithCode(
    grant: GrantRow,
    code: { code_hash: string; redirect_uri: string; code_challenge: string; expires_at: number },
  ): Promise<void> {
    await this.transactions.run(async (trx) => {
      await trx.insertInto('grants').values(grant).execute();
      await trx
        .insertInto('authorization_codes')
        .values({ ...code, grant_id: grant.id, client_id: grant.client_id, created_at: grant.created_at, used_at: null })
        .execute();
    });
  }

  /**
   * Redeems a code once. `check` validates the request against the code (client, redirect URI,
   * PKCE) before it is spent; a failed check leaves the code as it was.
   */
  async redeemCode(
    codeHash: string,
    now: number,
    check: (
      code: { client_id: string; redirect_uri: string; code_challenge: string },
      grant: GrantRow,
      key: KeyState | null,
    ) => Refusal | undefined,
    refresh: { token_hash: string; expires_at: number } | undefined,
  ): Promise<CodeExchange> {
    return this.transactions.run(async (trx): Promise<CodeExchange> => {
      const code = await trx.selectFrom('authorization_codes').selectAll().where('code_hash', '=', codeHash).executeTakeFirst();
      if (!code) return invalid('the authorization code is not valid');
      const found = await this.grantWithKey(trx, code.grant_id);
      if (!found) return invalid('the authorization code is not valid');
      const { grant, key } = found;
      if (code.used_at !== null) {
        await this.revoke(trx, grant.id, now, 'authorization code used twice');
        return { outcome: 'replayed' };
      }
      if (Number(code.expires_at) <= now) return invalid('the authorization code has expired');
      if (grant.revoked_at !== null) return invalid('the authorization was revoked');
      const refusal = check(code, grant, key);
      if (refusal) return { outcome: 'invalid', refusal };
      const spent = await trx
        .updateTable('authorization_codes')
        .set({ used_at: now })
        .where('code_hash', '=', codeHash)
        .where('used_at', 'is', null)
        .executeTakeFirst();
      if (spent.numUpdatedRows === 0n) {
        // Another request redeemed it between our read and our write: that is a second use too.
        await this.revoke(trx, grant.id, now, 'authorization code used twice');
        return { outcome: 'replayed' };
      }
      if (refresh) await this.insertRefreshToken(trx, grant.id, null, refresh, now);
      return { outcome: 'ok', grant, key };
    });
  }

  /**
   * Exchanges a refresh token for a new one (product §2.5). The previous token stays valid until
   * its successor is first used, so a lost response does not log the user out; a token presented
   * again within CONCURRENT_REFRESH_WINDOW seconds of its exchange is a concurrent request and is
   * refused without effect; a token whose successor has been used is a replay, which revokes the
   * grant. A successor that was replaced before ever being used is simply invalid.
   */
  async rotateRefreshToken(
    tokenHash: string,
    now: number,
    check: (grant: GrantRow, key: KeyState | null) => Refusal | undefined,
    next: { token_hash: string; expires_at: number },
  ): Promise<RefreshRotation> {
    return this.transactions.run(async (trx): Promise<RefreshRotation> => {
      const token = (await this.selectRefreshToken(trx, tokenHash)).rows[0];
      if (!token) return invalid('the refresh token is not valid');
      const found = await this.grantWithKey(trx, token.grant_id);
      if (!found || found.grant.revoked_at !== null) return invalid('the refresh token has been revoked');
      const { grant, key } = found;
      if (token.superseded_at !== null) return invalid('the refresh token was replaced by a newer one');
      if (Number(token.expires_at) <= now) return invalid('the refresh token has expired');
      const refusal = check(grant, key);
      if (refusal) return { outcome: 'invalid', refusal };

      if (token.used_at === null) {
        const claimed = await this.claimRefreshToken(trx, now, tokenHash);
        if (!claimed.numAffectedRows) return { outcome: 'concurrent' };
        await this.insertRefreshToken(trx, grant.id, tokenHash, next, now);
        return { outcome: 'rotated', grant, key };
      }

      // Exchanged before. Its live successor tells whether this is a retry or a replay.
      const successor = await trx
        .selectFrom('refresh_tokens')
        .selectAll()
        .where('parent_hash', '=', tokenHash)
        .where('superseded_at', 'is', null)
        .orderBy('created_at', 'desc')
        .executeTakeFirst();
      if (!successor) return invalid('the refresh token is not valid');
      if (successor.used_at !== null) {
        await this.revoke(trx, grant.id, now, 'refresh token replayed');
        return { outcome: 'replayed' };
      }
      if (now - Number(token.used_at) < CONCURRENT_REFRESH_WINDOW) return { outcome: 'concurrent' };
      // The successor was never used: its response was lost. Replace it and answer again.
      const replaced = await trx
        .updateTable('refresh_tokens')
        .set({ superseded_at: now })
        .where('token_hash', '=', successor.token_hash)
        .where('used_at', 'is', null)
        .where('superseded_at', 'is', null)
        .executeTakeFirst();
      if (replaced.numUpdatedRows === 0n) return { outcome: 'concurrent' };
      await trx.updateTable('refresh_tokens').set({ used_at: now }).where('token_hash', '=', tokenHash).execute();
      await this.insertRefreshToken(trx, grant.id, tokenHash, next, now);
      return { outcome: 'rotated', grant, key };
    });
  }

  /** The grant behind a refresh token (for revocation), if any. */
  async grantOfRefreshToken(tokenHash: string): Promise<GrantRow | undefined> {
    const row = await this.db.selectFrom('refresh_tokens').select('grant_id').where('token_hash', '=', tokenHash).executeTakeFirst();
    return row ? this.grant(this.db, row.grant_id) : undefined;
  }

  async find(grantId: string): Promise<GrantRow | undefined> {
    return this.grant(this.db, grantId);
  }

  /** Whether tokens of the grant may be honoured: not revoked, and its key (if any) usable. */
  async status(grantId: string): Promise<{ revoked: boolean; key: KeyState | null } | undefined> {
    const found = await this.grantWithKey(this.db, grantId);
    return found && { revoked: found.grant.revoked_at !== null, key: found.key };
  }

  async revokeGrant(grantId: string, now: number, reason: string): Promise<void> {
    await this.transactions.run((trx) => this.revoke(trx, grantId, now, reason));
  }

  /**
   * Deletes what nobody can use any more: expired codes; refresh tokens expired for longer than an
   * access token lives (so none minted with them is still valid); grants revoked `keepRevokedFor`
   * seconds ago; and grants left with nothing to redeem or refresh that are older than
   * `accessTokenTtl` plus `codeTtl` (a grant whose refresh tokens have all gone, or that never had
   * one, cannot have a live access token left).
   */
  async prune(now: number, limits: { keepRevokedFor: number; accessTokenTtl: number; codeTtl: number }): Promise<number> {
    return this.transactions.run(async (trx) => {
      const codes = await trx.deleteFrom('authorization_codes').where('expires_at', '<', now).executeTakeFirst();
      const tokens = await trx.deleteFrom('refresh_tokens').where('expires_at', '<', now - limits.accessTokenTtl).executeTakeFirst();
      const revoked = await trx
        .deleteFrom('grants')
        .where('revoked_at', '<', now - limits.keepRevokedFor)
        .executeTakeFirst();
      const abandoned = await trx
        .deleteFrom('grants')
        .where('revoked_at', 'is', null)
        .where('created_at', '<', now - limits.accessTokenTtl - limits.codeTtl)
        .where((eb) =>
          eb.and([
            eb.not(eb.exists(eb.selectFrom('refresh_tokens').select('refresh_tokens.grant_id').whereRef('refresh_tokens.grant_id', '=', 'grants.id'))),
            eb.not(eb.exists(eb.selectFrom('authorization_codes').select('authorization_codes.grant_id').whereRef('authorization_codes.grant_id', '=', 'grants.id'))),
          ]),
        )
        .executeTakeFirst();
      return [codes, tokens, revoked, abandoned].reduce((n, r) => n + Number(r.numDeletedRows), 0);
    });
  }

  /** A grant and the state of its virtual key, in one query. */
  private async grantWithKey(db: Db, id: string): Promise<{ grant: GrantRow; key: KeyState | null } | undefined> {
    const row = (await this.selectGrantWithKey(db, id)).rows[0];
    if (!row) return undefined;
    const { key_found, key_active, key_expires_at, key_upstreams, key_tools, ...grant } = row;
    let key: KeyState | null = null;
    if (grant.key_id !== null) {
      // A key deleted from under its grant counts as inactive.
      key =
        key_found === null
          ? { active: false, expires_at: null, upstreams: [], tools: [] }
          : {
              active: Number(key_active) === 1,
              expires_at: key_expires_at === null ? null : Number(key_expires_at),
              upstreams: key_upstreams === null ? null : (JSON.parse(key_upstreams) as string[]),
              tools: key_tools === null ? null : (JSON.parse(key_tools) as string[]),
            };
    }
    return { grant: normalizeGrant(grant), key };
  }

  private async grant(db: Db, id: string): Promise<GrantRow | undefined> {
    const row = await db.selectFrom('grants').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? normalizeGrant(row) : undefined;
  }

  private async revoke(db: Db, grantId: string, now: number, reason: string): Promise<void> {
    await db.updateTable('grants').set({ revoked_at: now, revoked_reason: reason }).where('id', '=', grantId).where('revoked_at', 'is', null).execute();
  }

  private async insertRefreshToken(
    db: Db,
    grantId: string,
    parentHash: string | null,
    token: { token_hash: string; expires_at: number },
    now: number,
  ): Promise<void> {
    await this.insertToken(db, token.token_hash, grantId, parentHash, now, token.expires_at);
  }
}
