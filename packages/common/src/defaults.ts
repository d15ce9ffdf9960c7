// Defaults of the local stack (`netmon stack up`): with no config, every
// command talks to these. One place, so the stack and the services agree.

export const DEFAULT_BROKERS = ['127.0.0.1:9092'];

export const DEFAULT_TOPICS = {
  raw: 'netmon.raw.v1',
  events: 'netmon.events.v1',
  dlq: 'netmon.dlq.v1',
  status: 'netmon.status.v1',
} as const;

export const DEFAULT_S3 = {
  endpoint: 'http://127.0.0.1:9000',
  region: 'us-east-1',
  bucket: 'netmon-archive',
  accessKeyId: 'netmon',
  secretAccessKey: 'netmon-secret-key',
  forcePathStyle: true,
} as const;

/** sensor.max_args_bytes: args kept per process (UTF-8 bytes, the "…" marker included). */
export const DEFAULT_MAX_ARGS_BYTES = 4096;

/** Names of arguments that carry secrets (password, token, api-key, …). */
const SECRET_NAME = '[\\w.-]*?(?:password|passwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credentials?)';

/**
 * sensor.redact_args by default: what command lines commonly carry in the
 * clear. Each is a RedactRule (config.ts); `[]` in the config turns redaction off.
 */
export const DEFAULT_REDACT_ARGS: { arg?: string; flag?: string; binary?: string }[] = [
  // --password=x, --db-token=x, -Djavax.net.ssl.keyStorePassword=x, PGPASSWORD=x, token=x
  { arg: `^-{0,2}${SECRET_NAME}=(?<secret>.+)$` },
  // --password x, --token x
  { flag: `-{1,2}${SECRET_NAME}` },
  // scheme://user:pass@host
  { arg: '[a-z][a-z0-9+.-]*://[^/\\s:@]*:(?<secret>[^@\\s/]+)@' },
  // -H 'Authorization: Bearer x', Cookie: …
  { arg: '^(?:proxy-)?(?:authorization|x-api-key|cookie):\\s*(?:(?:bearer|basic|token)\\s+)?(?<secret>.+)$' },
  // mysql -pSECRET (a bare -p asks on the terminal)
  { arg: '^-p(?<secret>.+)$', binary: '^(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)$' },
  // curl -u user:pass
  { flag: '-u|--user', binary: '^curl$' },
];

/**
 * The archiver flush policy `netmon run --pipeline` gives the local stack
 * (with no config file of the user's): a connection is queryable seconds
 * later. Production keeps the Athena-sized defaults (idle_flush_s 30,
 * flush_span_s 300).
 */
export const LOCAL_RUN_FLUSH = { idleFlushS: 2, flushSpanS: 10 } as const;
