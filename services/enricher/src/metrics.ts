// The enricher's Prometheus metrics.
import { Counter, Gauge, type Registry } from 'prom-client';

export function enricherMetrics(registry: Registry) {
  const registers = [registry];
  return {
    recordsIn: new Counter({ name: 'netmon_enricher_records_in_total', help: 'Raw records read', registers }),
    eventsOut: new Counter({ name: 'netmon_enricher_events_out_total', help: 'NetworkEvents written', registers }),
    filtered: new Counter({ name: 'netmon_enricher_filtered_total', help: 'Socket records dropped by process_filter', registers }),
    waited: new Counter({ name: 'netmon_enricher_waited_total', help: 'Socket records that waited for their process record', registers }),
    unknown: new Counter({ name: 'netmon_enricher_unknown_process_total', help: 'Socket records that went out without their process record', registers }),
    dlq: new Counter({ name: 'netmon_enricher_dlq_total', help: 'Records dead-lettered', labelNames: ['reason'], registers }),
    replaySkipped: new Counter({
      name: 'netmon_enricher_replay_skipped_total',
      help: 'Records skipped after a restart because their output was committed already',
      registers,
    }),
    dnsResponses: new Counter({
      name: 'netmon_enricher_dns_responses_total',
      help: 'DNS responses read, by result: parsed (into the cache, or no address in it) or unparsed (malformed)',
      labelNames: ['result'],
      registers,
    }),
    dnsEntries: new Gauge({ name: 'netmon_enricher_dns_cache_entries', help: 'DNS cache entries (address, name) of all owned partitions', registers }),
    statusRecords: new Counter({ name: 'netmon_enricher_sensor_status_total', help: 'SensorStatus records read', registers }),
    processRecords: new Counter({
      name: 'netmon_enricher_process_records_total',
      help: 'Process records read, by kind: exec (and snapshot), fork (a new process running its parent program), exit',
      labelNames: ['kind'],
      registers,
    }),
    commits: new Counter({ name: 'netmon_enricher_commits_total', help: 'Transactions (or offset commits) done', registers }),
    commitFailures: new Counter({ name: 'netmon_enricher_commit_failures_total', help: 'Transactions aborted or failed', registers }),
    restores: new Counter({ name: 'netmon_enricher_state_restores_total', help: 'Partitions restored from the changelog', registers }),
    evicted: new Counter({ name: 'netmon_enricher_table_evicted_total', help: 'Process table entries evicted by the size bound', registers }),
    lag: new Gauge({ name: 'netmon_enricher_lag', help: 'Records behind the end of the raw partition', labelNames: ['partition'], registers }),
    tableSize: new Gauge({ name: 'netmon_enricher_table_entries', help: 'Process table entries (all owned partitions)', registers }),
    held: new Gauge({ name: 'netmon_enricher_held_records', help: 'Records held back waiting for a process record', registers }),
    sensorLost: new Gauge({ name: 'netmon_enricher_sensor_lost_kernel', help: 'Latest lost_kernel of each sensor', labelNames: ['host'], registers }),
    sensorDropped: new Gauge({ name: 'netmon_enricher_sensor_dropped', help: 'Latest dropped of each sensor', labelNames: ['host'], registers }),
    sensorSeen: new Gauge({ name: 'netmon_enricher_sensor_seen', help: 'Latest seen of each sensor', labelNames: ['host'], registers }),
  };
}

export type EnricherMetrics = ReturnType<typeof enricherMetrics>;
