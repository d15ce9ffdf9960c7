// The sensor: kernel payloads → RawRecords → Kafka, one per host. It stays thin
// (no enrichment) and stays up whatever Kafka does: the publisher spools and
// counts, and the ring-buffer callback only encodes and enqueues.
import path from 'node:path';
import { type Logger, type NetmonConfig, type RawPayloadOf, createRegistry, describeError, startMetricsServer } from '@netmon/common';
import { Counter, Gauge, Histogram } from 'prom-client';
import { hostIdentity } from './identity';
import { KafkaLink } from './kafka-link';
import { Publisher } from './publisher';
import { type RecordRun, packRecords, runOf } from './runs';
import { compileRedaction } from '../probe/redact';
import { snapshotProcesses } from './snapshot';
import type { DecodeOptions, KernelSource, StartSource, TimedPayload } from './source';
import { Spool } from './spool';
import { RecordStamper } from './stamper';

export interface SensorOptions {
  startSource: StartSource;
  /** Publish one record per running process first (default true). */
  snapshot?: boolean;
  /** Test and bench hook: the /proc to read. */
  procDir?: string;
  /** Bench hook: called with each acknowledged batch's produce latency (ms). */
  onProduced?: (ms: number) => void;
}

export interface Sensor {
  readonly runId: string;
  readonly mode: string;
  readonly metricsPort: number;
  counters(): { seen: number; lostKernel: number; sent: number; spooled: number; dropped: number; spoolBytes: number };
  stop(): Promise<void>;
}

const nowUs = () => Date.now() * 1000;

export async function startSensor(config: NetmonConfig, logger: Logger, opts: SensorOptions): Promise<Sensor> {
  const host = hostIdentity(config.host);
  const stamper = new RecordStamper(host);
  const log = logger.child({ host: host.id, run_id: stamper.runId });
  const registry = createRegistry('sensor');
  const metric = {
    seen: new Counter({ name: 'netmon_sensor_seen_total', help: 'Records read from the kernel', registers: [registry] }),
    sent: new Counter({ name: 'netmon_sensor_sent_total', help: 'Records acknowledged by Kafka', registers: [registry] }),
    latency: new Histogram({
      name: 'netmon_sensor_produce_seconds',
      help: 'Kafka produce latency per batch',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    kafkaUp: new Gauge({ name: 'netmon_sensor_kafka_up', help: '1 while sends succeed', registers: [registry] }),
  };

  const kafka = new KafkaLink(config.kafka, log);
  new Gauge({
    name: 'netmon_sensor_producer_replaced',
    help: 'Kafka producers replaced because they stopped delivering',
    registers: [registry],
    collect() {
      this.set(kafka.replaced);
    },
  });
  const spool = new Spool(path.join(config.sensor.spoolDir, config.topics.raw), config.sensor.spoolMaxBytes);
  if (!spool.isEmpty) log.info({ records: spool.records, bytes: spool.bytes }, 'spool from an earlier run: draining it first');
  const publisher = new Publisher({
    spool,
    // One request: a few packed messages, under the broker's 1 MiB batch limit
    // once compressed (and well under it before).
    maxBatchRecords: 20_000,
    maxBatchBytes: 768 * 1024,
    lingerMs: 20,
    // ~10 MB of encoded records; a longer backlog waits on disk.
    maxMemoryRecords: 30_000,
    send: async (runs) => {
      // Records are packed back to back into few Kafka messages: a message
      // costs more than the few Avro records in it (see README).
      await kafka.send(
        config.topics.raw,
        packRecords(runs).map((value) => ({ key: host.id, value })),
      );
    },
    onSent: (n, ms) => {
      metric.sent.inc(n);
      metric.latency.observe(ms / 1000);
      opts.onProduced?.(ms);
      metric.kafkaUp.set(1);
    },
    onReleased: (runs) => stamper.release(runs),
    onError: (err, attempt) => {
      metric.kafkaUp.set(0);
      if (attempt === 1 || attempt % 10 === 0) log.warn({ attempt, err: describeError(err) }, 'kafka send failed; records wait in memory and the spool');
    },
  });

  let seen = 0;
  const counted = (n: number) => {
    seen += n;
    metric.seen.inc(n);
  };
  const publish = (batch: readonly TimedPayload[]) => {
    publisher.enqueue(batch.map((p) => runOf(stamper.stamp(p.payload, p.timeUs))));
  };
  const publishRecords = (batch: Buffer, decode: DecodeOptions) => {
    const out: RecordRun[] = [];
    counted(stamper.stampKernelBatch(batch, decode, out));
    publisher.enqueue(out);
  };

  // Start the probes first so that nothing that happens during the /proc scan
  // is missed, but hold their records until the snapshot is out.
  let held: Array<() => void> | undefined = [];
  let source: KernelSource;
  try {
    source = opts.startSource(
      (batch) => {
        counted(batch.length);
        if (held) held.push(() => publish(batch));
        else publish(batch);
      },
      (batch, decode) => {
        if (!held) return publishRecords(batch, decode);
        const copy = Buffer.from(batch); // the source reuses the batch's memory
        held.push(() => publishRecords(copy, decode));
      },
    );
  } catch (err) {
    // Nothing may keep a sensor that cannot see the kernel alive.
    await publisher.close(0);
    throw err;
  }
  log.info({ mode: source.mode, reason: source.reason }, 'probes attached');
  if (opts.snapshot !== false) {
    const processes = snapshotProcesses(opts.procDir, config.sensor.maxArgsBytes, compileRedaction(config.sensor.redactArgs));
    const at = nowUs();
    publish(processes.map((value) => ({ payload: { kind: 'exec', value } satisfies RawPayloadOf, timeUs: at })));
    if (processes.unreadable)
      log.warn(
        { unreadable: processes.unreadable },
        'processes the snapshot could not read (CAP_SYS_PTRACE missing?): their connections go out without binary path and args',
      );
    log.info({ processes: processes.length }, 'published the snapshot of running processes');
  }
  for (const release of held) release();
  held = undefined;

  const counters = () => ({
    seen,
    lostKernel: source.lost(),
    sent: publisher.counters.sent,
    spooled: publisher.counters.spooled,
    dropped: publisher.counters.dropped,
    spoolBytes: spool.bytes,
  });
  new Gauge({
    name: 'netmon_sensor_lost_kernel',
    help: 'Records lost in the kernel (ring buffer full)',
    registers: [registry],
    collect() {
      this.set(source.lost());
    },
  });
  new Gauge({
    name: 'netmon_sensor_spooled_total',
    help: 'Records written to the spool',
    registers: [registry],
    collect() {
      this.set(publisher.counters.spooled);
    },
  });
  new Gauge({
    name: 'netmon_sensor_dropped_total',
    help: 'Records dropped: spool full',
    registers: [registry],
    collect() {
      this.set(publisher.counters.dropped);
    },
  });
  new Gauge({
    name: 'netmon_sensor_spool_bytes',
    help: 'Bytes in the spool',
    registers: [registry],
    collect() {
      this.set(spool.bytes);
    },
  });
  new Gauge({
    name: 'netmon_sensor_queue_records',
    help: 'Records waiting in memory',
    registers: [registry],
    collect() {
      this.set(publisher.queued);
    },
  });

  const publishStatus = () => {
    const c = counters();
    publish([
      {
        payload: { kind: 'status', value: { seen: c.seen, lost_kernel: c.lostKernel, spooled: c.spooled, dropped: c.dropped, spool_bytes: c.spoolBytes } },
        timeUs: nowUs(),
      },
    ]);
  };
  const statusTimer = setInterval(publishStatus, config.sensor.statusIntervalS * 1000);
  // Readiness: Kafka takes what the kernel gives. Records waiting on disk for
  // longer than the bound (Kafka slow or away) make the sensor not ready;
  // liveness stays: a restart would only lose what the spool holds.
  let spoolingSince: number | undefined;
  const sampleSpooling = () => {
    if (publisher.isHealthy && spool.isEmpty) spoolingSince = undefined;
    else spoolingSince ??= Date.now();
  };
  const spoolingTimer = setInterval(sampleSpooling, 1000);
  const ready = () => {
    sampleSpooling();
    if (spoolingSince === undefined) return undefined;
    const s = (Date.now() - spoolingSince) / 1000;
    return s >= config.sensor.notReadyAfterSpoolingS
      ? `spooling for ${Math.round(s)} s (${spool.bytes} bytes waiting): Kafka is slow or unreachable`
      : undefined;
  };
  const metrics = await startMetricsServer(registry, config.sensor.metricsPort, () => undefined, undefined, ready);
  log.info({ metrics_port: metrics.port, topic: config.topics.raw }, 'sensor started');

  let stopped: Promise<void> | undefined;
  return {
    runId: stamper.runId,
    mode: source.mode,
    metricsPort: metrics.port,
    counters,
    stop: () => {
      stopped ??= (async () => {
        clearInterval(statusTimer);
        clearInterval(spoolingTimer);
        await source.stop(); // the last kernel batch is delivered before this resolves
        publishStatus();
        await publisher.close(15_000);
        await kafka.close();
        await metrics.close();
        log.info(counters(), 'sensor stopped');
      })();
      return stopped;
    },
  };
}
