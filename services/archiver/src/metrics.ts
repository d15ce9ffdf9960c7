// The archiver's Prometheus metrics.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface ArchiverMetrics {
  read: Counter<'topic'>;
  records: Counter<'topic'>;
  decodeErrors: Counter<'reason'>;
  objects: Counter<'topic'>;
  bytes: Counter<'topic'>;
  flushes: Counter<'reason'>;
  flushSeconds: Histogram<never>;
  uploadErrors: Counter<'op'>;
  realigned: Counter<never>;
  lag: Gauge<'topic' | 'partition'>;
  paused: Gauge<never>;
  buffered: Gauge<never>;
}

export function archiverMetrics(registry: Registry): ArchiverMetrics {
  const registers = [registry];
  const metrics: ArchiverMetrics = {
    records: new Counter({ name: 'netmon_archiver_records_total', help: 'Events archived (committed after upload)', labelNames: ['topic'], registers }),
    read: new Counter({
      name: 'netmon_archiver_read_records_total',
      help: 'Records read from Kafka (archived once committed)',
      labelNames: ['topic'],
      registers,
    }),
    decodeErrors: new Counter({
      name: 'netmon_archiver_decode_errors_total',
      help: 'Records that could not be decoded, sent to the dead-letter topic',
      labelNames: ['reason'],
      registers,
    }),
    objects: new Counter({ name: 'netmon_archiver_objects_total', help: 'Data objects uploaded', labelNames: ['topic'], registers }),
    bytes: new Counter({ name: 'netmon_archiver_bytes_total', help: 'Compressed bytes uploaded', labelNames: ['topic'], registers }),
    flushes: new Counter({ name: 'netmon_archiver_flushes_total', help: 'Flushes committed, by what sealed them', labelNames: ['reason'], registers }),
    flushSeconds: new Histogram({
      name: 'netmon_archiver_flush_seconds',
      help: 'Seal to commit: compression end, manifest, uploads, offset commit',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
    uploadErrors: new Counter({ name: 'netmon_archiver_upload_errors_total', help: 'Failed S3 calls (each is retried)', labelNames: ['op'], registers }),
    realigned: new Counter({
      name: 'netmon_archiver_realignments_total',
      help: 'Flushes re-read to match a manifest another writer created first',
      registers,
    }),
    lag: new Gauge({
      name: 'netmon_archiver_lag_records',
      help: 'High watermark minus committed offset, per topic partition (the events topic and the status topic)',
      labelNames: ['topic', 'partition'],
      registers,
    }),
    paused: new Gauge({ name: 'netmon_archiver_paused_partitions', help: 'Partitions paused for back-pressure', registers }),
    buffered: new Gauge({ name: 'netmon_archiver_buffered_bytes', help: 'Uncompressed bytes of records held, not yet committed', registers }),
  };
  // Every op has a series from the start, so alerts see the first failure as an increase.
  for (const op of ['put', 'manifest', 'lookup', 'commit', 'dead-letter']) metrics.uploadErrors.inc({ op }, 0);
  return metrics;
}
