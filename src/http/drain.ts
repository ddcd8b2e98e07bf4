import type { FastifyInstance } from 'fastify';

/**
 * Graceful shutdown (product §5: SIGTERM drains in-flight requests). Fastify stops accepting and
 * closes idle keep-alive connections, but a connection that was opened and never used (clients
 * open spare ones) would hold the server open until its header timeout. So requests are counted,
 * and once none is left — or the drain time is up — every remaining connection is closed.
 * Long-lived event streams register a closer so they end at once.
 */
export class Drain {
  private inFlight = 0;
  private idle: (() => void) | undefined;
  private readonly streams = new Set<() => void>();

  constructor(app: FastifyInstance) {
    app.addHook('onRequest', (_request, reply, done) => {
      this.inFlight++;
      reply.raw.once('close', () => {
        this.inFlight--;
        if (this.inFlight === 0) this.idle?.();
      });
      done();
    });
  }

  /** Registers how to end a long-lived stream at shutdown; returns how to unregister it. */
  onShutdown(end: () => void): () => void {
    this.streams.add(end);
    return () => this.streams.delete(end);
  }

  /** Closes `app`, waiting at most `timeoutMs` for requests in flight. */
  async close(app: FastifyInstance, timeoutMs: number): Promise<void> {
    const closing = app.close();
    for (const end of [...this.streams]) end();
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        this.idle = resolve;
        setTimeout(resolve, timeoutMs).unref();
      });
    }
    app.server.closeAllConnections();
    await closing;
  }
}
