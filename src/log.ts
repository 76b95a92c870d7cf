import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { scrubValue } from './ops/log-scrub.ts';

export type { Logger };

const INFO = 30;

/**
 * Structured JSON logs. Fields that could carry a secret are redacted by name, and secrets
 * found by their shape (nsec, a connection URI's secret) are removed from every line, as a
 * second line of defence; the first is never to log them. At info and above, Lightning
 * invoices are abbreviated (`src/ops/log-scrub.ts`). `destination`: where the lines go
 * (default stdout).
 */
export function createLogger(level: string, base: Record<string, unknown> = {}, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { ...base },
    redact: {
      paths: ['secret', '*.secret', 'key', '*.key', 'authorization', '*.authorization', 'preimage', '*.preimage', 'masterKey', '*.masterKey'],
      censor: '[redacted]',
    },
    hooks: {
      logMethod(args, method, level) {
        const scrubbed = args.map((a) => scrubValue(a, level >= INFO)) as Parameters<typeof method>;
        method.apply(this, scrubbed);
      },
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** A logger that writes nothing, for tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' });
