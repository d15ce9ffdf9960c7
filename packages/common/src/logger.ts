// pino JSON logs, one logger per process, secrets redacted wherever they sit.
import pino, { type Logger } from 'pino';

export type { Logger };

const REDACT = ['password', '*.password', '*.*.password', 'secretAccessKey', '*.secretAccessKey', '*.*.secretAccessKey', 'sasl', '*.sasl'];

export function createLogger(service: string, level = process.env.NETMON_LOG_LEVEL ?? 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    { name: `netmon-${service}`, level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } },
    destination ?? pino.destination(2),
  );
}
