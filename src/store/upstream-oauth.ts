import type { Kysely } from 'kysely';
import type { SecretBox } from '../crypto/encryption.js';
import type { Database } from './database.js';
import type { ConnectTicketTable, Schema, UpstreamConsentTable, UpstreamFlowTable, UpstreamRegistrationTable, UpstreamTokenTable } from './schema.js';
import { prepared } from './prepared.js';
import type { TransactionRunner } from './transactions.js';

/**
 * What the gateway keeps as an OAuth client of upstreams (product §3.3, §5). Every secret is sealed
 * (AES-256-GCM) bound to its row — a token copied into another user's row does not open — and is
 * opened only here.
 */
export type UpstreamRegistration = UpstreamRegistrationTable;

/** One connection's tokens, opened (the refresh lease stays in here). */
export type UpstreamTokens = Omit<UpstreamTokenTable, 'lock_owner' | 'lock_until'>;

export interface UpstreamFlow extends Omit<UpstreamFlowTable, 'code_verifier'> {
  code_verifier: string;
}

export type ConnectTicket = Omit<ConnectTicketTable, 'ticket_hash'>;

/** The additional authenticated data of a sealed token: bound to its row and its kind. */
const tokenPurpose = (subject: string, upstream: string, kind: 'access' | 'refresh') => `upstream-token:${subject}:${upstream}:${kind}`;

/** How many connections' opened access tokens are remembered; past it, the oldest is forgotten. */
const OPENED_LIMIT = 10_000;

/** What a call needs of a connection: its state and its access token, opened. */
export type CurrentAccessToken = Pick<UpstreamTokens, 'access_token' | 'expires_at' | 'status'>;

export class UpstreamOAuthRepository {
  private readonly db: Kysely<Schema>;
  private readonly transactions: TransactionRunner;

  // Every call through a per-user connection reads its token: built and compiled once (store/prepared.ts).
  private readonly selectAccessToken = prepared<[string, string], Pick<UpstreamTokenTable, 'access_token' | 'expires_at' | 'status'>>(2, (subject, upstream) =>
    this.db.selectFrom('upstream_tokens').select(['access_token', 'expires_at', 'status']).where('subject', '=', subject).where('upstream', '=', upstream),
  );
  /**
   * The last access token opened per connection, with its sealed form: the row is still read on
   * every call (a disconnect or a refresh elsewhere shows at once); only unchanged ciphertext skips
   * AES-GCM.
   */
  private readonly opened = new Map<string, { sealed: string; token: string }>();

  constructor(
    database: Database,
    private readonly box: SecretBox,
  ) {
    this.db = database.db;
    this.transactions = database.transactions;
  }

  // --- registrations, per upstream issuer ---

  async registration(issuer: string): Promise<UpstreamRegistration | undefined> {
    const row = await this.db.selectFrom('upstream_registrations').selectAll().where('issuer', '=', issuer).executeTakeFirst();
    if (!row) return undefined;
    return {
      ...row,
      registered_at: Number(row.registered_at),
      client_secret_expires_at: row.client_secret_expires_at === null ? null : Number(row.client_secret_expires_at),
      client_secret: row.client_secret === null ? null : this.box.open(row.client_secret, `upstream-client:${issuer}`),
    };
  }

  async saveRegistration(r: UpstreamRegistration): Promise<void> {
    const row = { ...r, client_secret: r.client_secret === null ? null : this.box.seal(r.client_secret, `upstream-client:${r.issuer}`) };
    await this.transactions.run(async (trx) => {
      await trx.deleteFrom('upstream_registrations').where('issuer', '=', r.issuer).execute();
      await trx.insertInto('upstream_registrations').values(row).execute();
    });
  }

  async deleteRegistration(issuer: string): Promise<void> {
    await this.transactions.run((trx) => trx.deleteFrom('upstream_registrations').where('issuer', '=', issuer).execute());
  }

  // --- tokens, per (identity, upstream) ---

  async tokens(subject: string, upstream: string): Promise<UpstreamTokens | undefined> {
    const row = await this.db
      .selectFrom('upstream_tokens')
      .selectAll()
      .where('subject', '=', subject)
      .where('upstream', '=', upstream)
      .executeTakeFirst();
    return row ? this.open(row) : undefined;
  }

  /** The state and access token of a connection, as each call reads it (the refresh token stays sealed). */
  async accessToken(subject: string, upstream: string): Promise<CurrentAccessToken | undefined> {
    const row = (await this.selectAccessToken(this.db, subject, upstream)).rows[0];
    if (!row) return undefined;
    const purpose = tokenPurpose(subject, upstream, 'access');
    let opened = this.opened.get(purpose);
    if (opened?.sealed !== row.access_token) {
      opened = { sealed: row.access_token, token: this.box.open(row.access_token, purpose) };
      this.opened.delete(purpose);
      this.opened.set(purpose, opened);
      if (this.opened.size > OPENED_LIMIT) this.opened.delete(this.opened.keys().next().value!);
    }
    return { access_token: opened.token, expires_at: row.expires_at === null ? null : Number(row.expires_at), status: row.status };
  }

  /** Every connection of one identity (without the secrets), or of everyone. */
  async connections(subject?: string): Promise<Array<Omit<UpstreamTokens, 'access_token' | 'refresh_token'>>> {
    let query = this.db
      .selectFrom('upstream_tokens')
      .select(['subject', 'upstream', 'issuer', 'client_id', 'resource', 'scope', 'expires_at', 'status', 'updated_at']);
    if (subject !== undefined) query = query.where('subject', '=', subject);
    const rows = await query.orderBy('subject').orderBy('upstream').execute();
    return rows.map((r) => ({ ...r, expires_at: r.expires_at === null ? null : Number(r.expires_at), updated_at: Number(r.updated_at) }));
  }

  /**
   * Stores tokens (a new connection, or a refresh) and releases the refresh lease. The refresh
   * token is written before the new access token is handed to anyone: a rotated refresh token
   * that was used but not kept would end the connection.
   */
  async saveTokens(t: UpstreamTokens): Promise<void> {
    const row = {
      ...t,
      access_token: this.box.seal(t.access_token, tokenPurpose(t.subject, t.upstream, 'access')),
      refresh_token: t.refresh_token === null ? null : this.box.seal(t.refresh_token, tokenPurpose(t.subject, t.upstream, 'refresh')),
      lock_owner: null,
      lock_until: null,
    };
    await this.transactions.run(async (trx) => {
      await trx.deleteFrom('upstream_tokens').where('subject', '=', t.subject).where('upstream', '=', t.upstream).execute();
      await trx.insertInto('upstream_tokens').values(row).execute();
    });
  }

  async markNeedsReauth(subject: string, upstream: string, at: number): Promise<void> {
    await this.transactions.run((trx) =>
      trx
        .updateTable('upstream_tokens')
        .set({ status: 'needs_reauth', updated_at: at, lock_owner: null, lock_until: null })
        .where('subject', '=', subject)
        .where('upstream', '=', upstream)
        .execute(),
    );
  }

  async deleteTokens(subject: string, upstream: string): Promise<boolean> {
    this.opened.delete(tokenPurpose(subject, upstream, 'access'));
    const result = await this.transactions.run((trx) =>
      trx.deleteFrom('upstream_tokens').where('subject', '=', subject).where('upstream', '=', upstream).executeTakeFirst(),
    );
    return result.numDeletedRows > 0n;
  }

  /**
   * Takes the refresh lease of (subject, upstream) until `until`, if nobody holds a live one:
   * exactly one refresh at a time per connection, across every process sharing the database.
   */
  async tryLock(subject: string, upstream: string, owner: string, now: number, until: number): Promise<boolean> {
    const result = await this.transactions.run((trx) =>
      trx
        .updateTable('upstream_tokens')
        .set({ lock_owner: owner, lock_until: until })
        .where('subject', '=', subject)
        .where('upstream', '=', upstream)
        .where((eb) => eb.or([eb('lock_until', 'is', null), eb('lock_until', '<=', now)]))
        .executeTakeFirst(),
    );
    return result.numUpdatedRows > 0n;
  }

  async unlock(subject: string, upstream: string, owner: string): Promise<void> {
    await this.transactions.run((trx) =>
      trx
        .updateTable('upstream_tokens')
        .set({ lock_owner: null, lock_until: null })
        .where('subject', '=', subject)
        .where('upstream', '=', upstream)
        .where('lock_owner', '=', owner)
        .execute(),
    );
  }

  // --- flows and connect tickets ---

  async insertFlow(flow: UpstreamFlow): Promise<void> {
    const row = { ...flow, code_verifier: this.box.seal(flow.code_verifier, `upstream-flow:${flow.state_hash}`) };
    await this.transactions.run((trx) => trx.insertInto('upstream_flows').values(row).execute());
  }

  /** Removes and returns the flow: a state is good for one callback only. */
  async consumeFlow(stateHash: string, now: number): Promise<UpstreamFlow | undefined> {
    return this.transactions.run(async (trx) => {
      const row = await trx.selectFrom('upstream_flows').selectAll().where('state_hash', '=', stateHash).executeTakeFirst();
      if (!row) return undefined;
      await trx.deleteFrom('upstream_flows').where('state_hash', '=', stateHash).execute();
      if (Number(row.expires_at) <= now) return undefined;
      return {
        ...row,
        created_at: Number(row.created_at),
        expires_at: Number(row.expires_at),
        code_verifier: this.box.open(row.code_verifier, `upstream-flow:${stateHash}`),
      };
    });
  }

  async insertTicket(ticket: ConnectTicketTable): Promise<void> {
    await this.transactions.run((trx) => trx.insertInto('connect_tickets').values(ticket).execute());
  }

  async ticket(ticketHash: string, now: number): Promise<ConnectTicket | undefined> {
    const row = await this.db
      .selectFrom('connect_tickets')
      .select(['subject', 'upstream', 'client_id', 'scope', 'expires_at'])
      .where('ticket_hash', '=', ticketHash)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return row ? { ...row, expires_at: Number(row.expires_at) } : undefined;
  }

  // --- consents (confused-deputy protection) ---

  async recordConsent(consent: UpstreamConsentTable): Promise<void> {
    await this.transactions.run(async (trx) => {
      await trx
        .deleteFrom('upstream_consents')
        .where('subject', '=', consent.subject)
        .where('upstream', '=', consent.upstream)
        .where('client_id', '=', consent.client_id)
        .execute();
      await trx.insertInto('upstream_consents').values(consent).execute();
    });
  }

  async consents(subject: string): Promise<UpstreamConsentTable[]> {
    const rows = await this.db.selectFrom('upstream_consents').selectAll().where('subject', '=', subject).orderBy('upstream').orderBy('client_id').execute();
    return rows.map((r) => ({ ...r, consented_at: Number(r.consented_at) }));
  }

  // --- catalogs ---

  async saveCatalog(upstream: string, catalog: unknown, at: number): Promise<void> {
    const row = { upstream, catalog: JSON.stringify(catalog), listed_at: at };
    await this.transactions.run(async (trx) => {
      await trx.deleteFrom('upstream_catalogs').where('upstream', '=', upstream).execute();
      await trx.insertInto('upstream_catalogs').values(row).execute();
    });
  }

  async catalogs(): Promise<Array<{ upstream: string; catalog: unknown; listed_at: number }>> {
    const rows = await this.db.selectFrom('upstream_catalogs').selectAll().execute();
    return rows.map((r) => ({ upstream: r.upstream, catalog: JSON.parse(r.catalog) as unknown, listed_at: Number(r.listed_at) }));
  }

  /** Deletes expired flows and tickets. */
  async prune(now: number): Promise<number> {
    return this.transactions.run(async (trx) => {
      const flows = await trx.deleteFrom('upstream_flows').where('expires_at', '<=', now).executeTakeFirst();
      const tickets = await trx.deleteFrom('connect_tickets').where('expires_at', '<=', now).executeTakeFirst();
      return Number(flows.numDeletedRows) + Number(tickets.numDeletedRows);
    });
  }

  private open(row: Schema['upstream_tokens']): UpstreamTokens {
    return {
      subject: row.subject,
      upstream: row.upstream,
      issuer: row.issuer,
      client_id: row.client_id,
      resource: row.resource,
      access_token: this.box.open(row.access_token, tokenPurpose(row.subject, row.upstream, 'access')),
      refresh_token: row.refresh_token === null ? null : this.box.open(row.refresh_token, tokenPurpose(row.subject, row.upstream, 'refresh')),
      scope: row.scope,
      expires_at: row.expires_at === null ? null : Number(row.expires_at),
      status: row.status,
      updated_at: Number(row.updated_at),
    };
  }
}
