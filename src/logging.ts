import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs. Nothing in the gateway logs request bodies, tokens or credential headers
 * (tests scan the logs of whole flows for them); redacting headers is a second line of defence
 * should a request object ever be logged whole.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  // Asynchronous writes to stdout: lines written while a write is under way go out together, so a
  // busy gateway makes one write per batch rather than one system call per request. Pino flushes
  // what is pending when the process exits.
  destination ??= pino.destination({ dest: 1, sync: false });
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
