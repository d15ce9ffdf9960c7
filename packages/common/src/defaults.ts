// Defaults of the local stack (`netmon stack up`): with no config, every
// command talks to these. One place, so the stack and the services agree.

export const DEFAULT_BROKERS = ['127.0.0.1:9092'];

export const DEFAULT_TOPICS = {
  raw: 'netmon.raw.v1',
  events: 'netmon.events.v1',
  dlq: 'netmon.dlq.v1',
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
