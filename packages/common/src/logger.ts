// pino JSON logs, one logger per process, secrets redacted wherever they sit.
import pino, { type Logger } from 'pino';

export type { Logger };

// Whole objects where secrets sit (kafka.sasl, s3.credentials), and lone keys.
// No path may lie inside another (`*.sasl` and `*.*.password` both match
// kafka.sasl.password): the redactor then leaves the caller's own object
// censored after the log line.
const REDACT = ['password', '*.password', 'secretAccessKey', '*.secretAccessKey', 'sasl', '*.sasl', 'credentials', '*.credentials'];

export function createLogger(service: string, level = process.env.NETMON_LOG_LEVEL ?? 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    { name: `netmon-${service}`, level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } },
    destination ?? pino.destination(2),
  );
}
