import type { Logger } from 'pino';
import { nowSeconds, type Clock } from '../clock.js';
import type { ClientRepository } from '../store/clients.js';

/**
 * Removes registrations that never completed an authorization once they are older than the
 * configured idle period (product §2.1). Public registration endpoints collect floods of
 * one-off registrations (the same client re-registering on every start); without this they grow
 * without bound.
 */
export class UnusedClientSweeper {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly clients: ClientRepository,
    private readonly clock: Clock,
    private readonly ttlSeconds: () => number,
    private readonly logger: Logger,
  ) {}

  /** Deletes what has expired as of now; returns how many registrations were removed. */
  async sweep(): Promise<number> {
    const cutoff = nowSeconds(this.clock) - this.ttlSeconds();
    const removed = await this.clients.deleteUnusedIssuedBefore(cutoff);
    if (removed > 0) this.logger.info({ removed }, 'removed unused client registrations');
    return removed;
  }

  /** Sweeps now and then every `intervalMs`; a failed sweep is logged and retried next time. */
  start(intervalMs: number): void {
    const run = () => {
      this.sweep().catch((err: unknown) => this.logger.warn({ err }, 'sweeping unused client registrations failed'));
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
