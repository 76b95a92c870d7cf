import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs. Fields that could carry a secret are redacted by name as a second
 * line of defence; the first is never to log them.
 */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { ...base },
    redact: {
      paths: ['secret', '*.secret', 'key', '*.key', 'authorization', '*.authorization', 'preimage', '*.preimage', 'masterKey', '*.masterKey'],
      censor: '[redacted]',
    },
  });
}

/** A logger that writes nothing, for tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' });
