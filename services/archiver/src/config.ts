// The archiver's settings: the shared config file's `archiver`, `s3` and
// `topics` sections (validated by @netmon/common's loader), plus a few
// tunables from the environment, validated here once. A bad value is a
// ConfigError naming the variable.
import { tmpdir } from 'node:os';
import { type ArchiveFormat, ConfigError, type NetmonConfig, type S3Settings } from '@netmon/common';
import { statusPrefix } from './layout';
import { DEFAULT_ROW_GROUP_ROWS } from './parquet';
import type { FlushLimits } from './policy';

/** One archived topic: where its flushes go and in which format. */
export interface ArchiveStream {
  /** events: NetworkEvents (topics.events); status: the sensors' heartbeats (topics.status). */
  kind: 'events' | 'status';
  topic: string;
  /** The prefix its manifests (and, for JSON, its objects) go under: s3.prefix for events, s3.prefix + "-status" for status. */
  prefix: string;
  /** The format of the flushes it fixes: archiver.format for events; status records are always JSON. */
  format: ArchiveFormat;
}

export interface ArchiverSettings {
  groupId: string;
  /** The events topic. */
  topic: string;
  /** The status topic (the sensors' heartbeats, written by the enricher). */
  statusTopic: string;
  /** Every archived topic, events first: one consumer group member reads them all. */
  streams: ArchiveStream[];
  dlqTopic: string;
  limits: FlushLimits;
  metricsPort: number;
  s3: S3Settings;
  /** archiver.format: json (gzip NDJSON under s3.prefix) or parquet (under s3.prefix + "-parquet"). */
  format: ArchiveFormat;
  /** Where Parquet mode spools each open flush's NDJSON, and DuckDB its scratch files (NETMON_ARCHIVER_SPOOL_DIR, default the OS temp folder). */
  spoolDir: string;
  /** Rows per Parquet row group (NETMON_ARCHIVER_PARQUET_ROW_GROUP_ROWS, default 122,880). */
  parquetRowGroupRows: number;
  /**
   * gzip level 1..9 (NETMON_ARCHIVER_GZIP_LEVEL, default 6), libdeflate's
   * (gzip.ts). Measured on the archiver benchmark's events (720 bytes of JSON
   * each): zlib at level 6 cost about 3.4 µs of CPU and 29.7 B per event,
   * level 3 1.7 µs and 37.3 B, level 1 1.6 µs and 40.8 B; libdeflate at
   * level 6 about 2.0 µs and 29.3 B. A cheaper level would cut CPU, but the
   * archive is kept for years and scanned by every JSON query: a quarter
   * more bytes stored and scanned costs a fleet more than the CPU it saves.
   */
  gzipLevel: number;
  /** Multipart part size (NETMON_ARCHIVER_PART_MB, default 16 MiB); larger objects go up in parts. */
  partSize: number;
  /** Objects of one flush uploaded at once. */
  uploadConcurrency: number;
  /** Sealed flushes per partition waiting for S3 before the partition pauses. */
  maxQueuedFlushes: number;
  /** How long SIGTERM waits for in-flight flushes before leaving without them. */
  shutdownTimeoutMs: number;
}

function envInt(env: NodeJS.ProcessEnv, key: string, fallback: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError('environment', key, `an integer from ${min} to ${max}`, JSON.stringify(raw));
  return n;
}

export function archiverSettings(config: NetmonConfig, env: NodeJS.ProcessEnv = process.env): ArchiverSettings {
  const a = config.archiver;
  return {
    groupId: a.groupId,
    topic: config.topics.events,
    statusTopic: config.topics.status,
    streams: [
      { kind: 'events', topic: config.topics.events, prefix: config.s3.prefix, format: config.archiver.format },
      { kind: 'status', topic: config.topics.status, prefix: statusPrefix(config.s3.prefix), format: 'json' },
    ],
    dlqTopic: config.topics.dlq,
    limits: { records: a.flushRecords, bytes: a.flushBytes, spanMs: a.flushSpanS * 1000, idleMs: a.idleFlushS * 1000 },
    metricsPort: a.metricsPort,
    s3: config.s3,
    format: config.archiver.format,
    spoolDir: env.NETMON_ARCHIVER_SPOOL_DIR || tmpdir(),
    parquetRowGroupRows: envInt(env, 'NETMON_ARCHIVER_PARQUET_ROW_GROUP_ROWS', DEFAULT_ROW_GROUP_ROWS, 2048, 10_000_000),
    gzipLevel: envInt(env, 'NETMON_ARCHIVER_GZIP_LEVEL', 6, 1, 9),
    partSize: envInt(env, 'NETMON_ARCHIVER_PART_MB', 16, 5, 5120) * 1024 * 1024,
    uploadConcurrency: envInt(env, 'NETMON_ARCHIVER_UPLOAD_CONCURRENCY', 4, 1, 64),
    maxQueuedFlushes: 2,
    shutdownTimeoutMs: envInt(env, 'NETMON_ARCHIVER_SHUTDOWN_TIMEOUT_S', 60, 1, 3600) * 1000,
  };
}
