import type { Logger } from 'pino';
import type { Services } from '../app.js';
import { nowSeconds } from '../clock.js';
import type { Config } from '../config/schema.js';
import { AUTHORIZATION_CODE_TTL } from './context.js';

export interface HousekeepingReport {
  /** Registrations never used in a successful authorization, older than the idle period. */
  unusedClients: number;
  /** Authorization requests nobody answered in time. */
  expiredRequests: number;
  /** Expired codes and refresh tokens, grants revoked long ago, and grants nothing is left of. */
  expiredGrantData: number;
  /** Signing keys retired longer than any token they signed can live. */
  retiredKeys: number;
  /** Upstream authorizations never completed, and connect links, past their time. */
  expiredUpstreamFlows: number;
}

/** Revoked grants are kept this long (to answer "revoked" rather than "unknown", and for audit). */
const KEEP_REVOKED_GRANTS = 30 * 86400;

/**
 * Periodic clean-up. Public registration endpoints collect floods of one-off registrations (the
 * same client re-registering on every start), and every flow leaves expired rows behind; without
 * this the database grows without bound. Nothing here is needed for correctness: expired rows are
 * already refused where they are read.
 */
export class Housekeeping {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly services: Pick<Services, 'clients' | 'requests' | 'grants' | 'signingKeys' | 'upstreamOAuth' | 'clock'>,
    private readonly config: () => Config,
    private readonly logger: Logger,
  ) {}

  async run(): Promise<HousekeepingReport> {
    const { clients, requests, grants, signingKeys, upstreamOAuth, clock } = this.services;
    const now = nowSeconds(clock);
    const report: HousekeepingReport = {
      unusedClients: await clients.deleteUnusedIssuedBefore(now - this.config().oauth_server.unused_client_ttl),
      expiredRequests: await requests.deleteExpired(now),
      expiredGrantData: await grants.prune(now, {
        keepRevokedFor: KEEP_REVOKED_GRANTS,
        accessTokenTtl: this.config().oauth_server.access_token_ttl,
        codeTtl: AUTHORIZATION_CODE_TTL,
      }),
      retiredKeys: await signingKeys.prune(),
      expiredUpstreamFlows: await upstreamOAuth.prune(now),
    };
    if (Object.values(report).some((n) => n > 0)) this.logger.info(report, 'housekeeping removed expired data');
    return report;
  }

  /** Runs now and then every `intervalMs`; a failed run is logged and retried next time. */
  start(intervalMs: number): void {
    const run = () => {
      this.run().catch((err: unknown) => this.logger.warn({ err }, 'housekeeping failed'));
    };
    run();
    this.timer = setInterval(run, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
