import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs. Nothing in the gateway logs request bodies or credential headers; the
 * redaction list is a second line of defence for fields that must never reach a log.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'gatehouse' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'headers.authorization',
          'headers.cookie',
          '*.access_token',
          '*.refresh_token',
          '*.code',
          '*.code_verifier',
          '*.client_secret',
          '*.virtual_key',
          'access_token',
          'refresh_token',
          'client_secret',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
