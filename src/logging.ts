import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs. Nothing in the gateway logs request bodies, tokens or credential headers
 * (tests scan the logs of whole flows for them); redacting headers is a second line of defence
 * should a request object ever be logged whole.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  // Each line is written to stdout before the request moves on: a system call to a file or a pipe
  // costs less CPU than handing every line to the thread pool (pino's default destination is
  // asynchronous), and nothing is lost if the process dies.
  destination ??= pino.destination({ dest: 1, sync: true });
  return pino(
    {
      level,
      base: { service: 'gatehouse' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
