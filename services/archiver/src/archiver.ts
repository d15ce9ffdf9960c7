// The archiver service: a consumer group on the events topic and the status
// topic (read committed) that lands every NetworkEvent, and every sensor
// status record, in S3 exactly once: the events under s3.prefix (or
// s3.prefix + "-parquet"), the status records under s3.prefix + "-status"
// (config.ts, ArchiveStream).
//
// This file only wires and performs. The decisions (when to seal, where a
// replay must end, what to upload, when to commit, when to pause, what to
// retry) are PartitionMachine's (partition.ts), one per assigned topic
// partition, whichever topic: events go in, commands come out, and this
// adapter carries them out with the current clients: the Kafka side behind
// ArchiveSource (source.ts), S3 through ArchiveStore (store.ts), compression in
// FlushBuilder (batch.ts).
// It also owns the clock, the timers, the metrics and the logs.
import { hostname } from 'node:os';
import { type Logger, type MetricsServer, type NetmonConfig, createRegistry, createS3Client, describeError, startMetricsServer } from '@netmon/common';
import type { Registry } from 'prom-client';
import { FlushBuilder, type FlushStorage, SpoolDir } from './batch';
import { type ArchiveStream, type ArchiverSettings, archiverSettings } from './config';
import { EventDecoder } from './decode';
import { dataPrefix } from './layout';
import { type ArchiverMetrics, archiverMetrics } from './metrics';
import { ParquetWriter } from './parquet';
import { type BatchEnd, type Command, type InMessage, type IoCommand, type Notice, PartitionMachine } from './partition';
import { RdkafkaSource } from './rdkafka-source';
import { type ArchiveSource, type TopicPartition, tpKey } from './source';
import { ArchiveStore } from './store';
import { checkStoreWritable } from './store-check';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

type Machine = PartitionMachine<FlushBuilder>;

/** An owned topic partition: its machine, and the stream (topic settings) it archives. */
interface Owned {
  tp: TopicPartition;
  stream: ArchiveStream;
  m: Machine;
}

async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** The label of a failed call in netmon_archiver_upload_errors_total. */
function opLabel(cmd: IoCommand<FlushBuilder>): string {
  switch (cmd.kind) {
    case 'readManifest':
      return cmd.why === 'align' ? 'lookup' : 'manifest';
    case 'createManifest':
      return 'manifest';
    case 'put':
      return 'put';
    case 'commit':
      return 'commit';
    case 'deadLetter':
      return 'dead-letter';
    case 'seal':
      return 'seal';
  }
}

export interface ArchiverOptions {
  logger: Logger;
  registry?: Registry;
  /** Wall clock, for tests. */
  now?: () => number;
  /** The Kafka side (default: librdkafka). */
  source?: ArchiveSource;
}

export class Archiver {
  readonly settings: ArchiverSettings;
  readonly store: ArchiveStore;
  readonly metrics: ArchiverMetrics;
  readonly registry: Registry;
  private readonly log: Logger;
  private readonly source: ArchiveSource;
  /** Per topic: its stream and its decoder (a decoder's output is valid until its next call: one per topic). */
  private readonly streams = new Map<string, { stream: ArchiveStream; decoder: EventDecoder }>();
  private readonly now: () => number;
  /** By tpKey. */
  private machines = new Map<string, Owned>();
  private memberId = '';
  private stopping = false;
  private activeBatches = 0;
  private timer?: NodeJS.Timeout;
  private wakeTimer?: NodeJS.Timeout;
  private wakeAt = Number.POSITIVE_INFINITY;
  private metricsServer?: MetricsServer;
  private stopped?: Promise<void>;
  private problem: string | undefined = 'starting';
  private lastWarn = 0;
  /** Spool and scratch files, and the Parquet writer (DuckDB starts at its first conversion). */
  private storage?: FlushStorage & { spool: SpoolDir; parquet: ParquetWriter };

  constructor(
    readonly config: NetmonConfig,
    opts: ArchiverOptions,
  ) {
    this.settings = archiverSettings(config);
    this.log = opts.logger;
    this.now = opts.now ?? Date.now;
    this.registry = opts.registry ?? createRegistry('archiver');
    this.metrics = archiverMetrics(this.registry);
    this.store = new ArchiveStore(createS3Client(config.s3), config.s3, { partSize: this.settings.partSize, queueSize: 4 });
    const s = this.settings;
    for (const stream of s.streams) this.streams.set(stream.topic, { stream, decoder: stream.kind === 'status' ? EventDecoder.status() : new EventDecoder() });
    this.source = opts.source ?? new RdkafkaSource(config.kafka, this.log, { topics: s.streams.map((x) => x.topic), dlqTopic: s.dlqTopic, groupId: s.groupId });
  }

  /** The /healthz answer: undefined when healthy. */
  health(): string | undefined {
    return this.problem;
  }

  get metricsPort(): number | undefined {
    return this.metricsServer?.port;
  }

  async start(): Promise<void> {
    const s = this.settings;
    // Before joining the group: an archiver that cannot write must not take partitions from one that can.
    await checkStoreWritable(this.store, this.config);
    // Any format may have to write the other (a replayed manifest decides): both are ready.
    const spool = await SpoolDir.create(s.spoolDir);
    this.storage = { spool, parquet: new ParquetWriter({ tmpDir: spool.dir, rowGroupRows: s.parquetRowGroupRows }) };
    this.metricsServer = await startMetricsServer(this.registry, s.metricsPort, () => this.health());
    await this.source.start({
      assigned: (partitions, memberId) => this.onAssigned(partitions, memberId),
      batch: (tp, messages, end, isStale) => this.onBatch(tp, messages, end, isStale),
      crashed: (err, restart) => {
        this.problem = `consumer crashed: ${describeError(err)}${restart ? ' (restarting)' : ''}`;
        this.log.error({ err, restart }, 'consumer crashed');
      },
    });
    this.timer = setInterval(() => this.tick(), 500);
    this.timer.unref();
    this.log.info(
      {
        topic: s.topic,
        statusTopic: s.statusTopic,
        groupId: s.groupId,
        bucket: s.s3.bucket,
        prefix: s.s3.prefix,
        format: s.format,
        objects: `${dataPrefix(s.s3.prefix, s.format)}/dt=YYYY-MM-DD/hour=HH/`,
        statusObjects: `${s.streams.find((x) => x.kind === 'status')!.prefix}/dt=YYYY-MM-DD/hour=HH/`,
        endpoint: s.s3.endpoint || '(AWS)',
        limits: s.limits,
        metricsPort: this.metricsPort,
      },
      'archiver started',
    );
  }

  // ---- group membership -------------------------------------------------

  /**
   * A new generation: reading restarts at the committed offsets, so everything
   * held and not committed is dropped (it will be read again). Operations in
   * flight finish but their outcome is ignored: nothing more is committed.
   */
  private onAssigned(partitions: TopicPartition[], memberId: string): void {
    this.memberId = memberId;
    for (const o of this.machines.values()) this.perform(o, o.m.revoked());
    this.machines = new Map();
    for (const tp of partitions) {
      const o = this.owned(tp);
      if (o) this.machines.set(tpKey(tp), o);
    }
    this.countPaused();
    if (this.problem === 'starting' || this.problem?.startsWith('consumer crashed')) this.problem = undefined;
    this.log.info({ memberId, partitions }, partitions.length > 0 ? 'joined the group' : 'partitions revoked');
  }

  /** A new machine for a topic partition of an archived topic (undefined for any other topic). */
  private owned(tp: TopicPartition): Owned | undefined {
    const s = this.settings;
    const storage = this.storage!;
    const found = this.streams.get(tp.topic);
    if (!found) return undefined;
    const { stream, decoder } = found;
    const { topic, partition } = tp;
    // JSON mode holds gzip in memory; Parquet mode spools plain NDJSON for DuckDB.
    const hold: FlushStorage = stream.format === 'parquet' ? storage : { parquet: storage.parquet };
    const m: Machine = new PartitionMachine<FlushBuilder>({
      topic,
      partition,
      prefix: stream.prefix,
      format: stream.format,
      limits: s.limits,
      maxQueuedFlushes: s.maxQueuedFlushes,
      writer: { host: hostname(), pid: process.pid, memberId: this.memberId },
      openFlush: (firstOffset, now) => new FlushBuilder(stream.prefix, topic, partition, firstOffset, s.gzipLevel, now, hold),
      // Straight into the open flush's chunk where the record's hour group is the last one's.
      decode: (msg, offset) => decoder.decode(msg, offset, m.openFlush),
    });
    return { tp: { topic, partition }, stream, m };
  }

  // ---- consuming --------------------------------------------------------

  private async onBatch(tp: TopicPartition, messages: readonly InMessage[], end: BatchEnd, isStale: () => boolean): Promise<void> {
    if (this.stopping || isStale() || messages.length === 0) return;
    this.activeBatches++;
    try {
      const key = tpKey(tp);
      let o = this.machines.get(key);
      if (!o) {
        o = this.owned(tp);
        if (!o) return; // not an archived topic
        this.machines.set(key, o);
      }
      const m = o.m;
      this.metrics.read.inc({ topic: tp.topic }, messages.length);
      const deadLetters = this.perform(o, m.records(messages, end, this.now()));
      this.updateLag(o);
      // Dead letters of this batch are sent before the next batch is fetched, as records are read: in order.
      if (deadLetters) await deadLetters;
      // Back-pressure on the compressors: do not fetch faster than gzip keeps up.
      const open = m.openFlush;
      if (open?.congested) await open.drained();
    } finally {
      this.activeBatches--;
    }
  }

  // ---- performing commands ------------------------------------------------

  /** Carries out a machine's commands; returns the dead-letter sends among them (in order), if any. */
  private perform(o: Owned, cmds: Command<FlushBuilder>[]): Promise<void> | undefined {
    const { m, tp } = o;
    let deadLetters: Promise<void> | undefined;
    for (const c of cmds) {
      switch (c.kind) {
        case 'seek':
          this.source.seek(tp, c.offset);
          break;
        case 'pause':
        case 'resume':
          if (c.kind === 'pause') this.source.pause(tp);
          else this.source.resume(tp);
          this.log.info(
            { topic: tp.topic, partition: tp.partition, queued: m.queued },
            c.kind === 'pause' ? 'partition paused (back-pressure)' : 'partition resumed',
          );
          this.countPaused();
          break;
        case 'wake':
          this.scheduleWake(c.at);
          break;
        case 'readManifest':
          this.io(
            o,
            c,
            () => this.store.getManifest(c.key),
            (r, now) => m.manifestRead(c.op, r, now),
          );
          break;
        case 'seal':
          this.log.debug(
            { partition: m.partition, firstOffset: c.firstOffset, lastOffset: c.lastOffset, records: c.records, reason: c.reason, format: c.format },
            'flush sealed',
          );
          this.io(
            o,
            c,
            () => c.flush.seal(c.format),
            (r, now) => m.sealed(c.op, r.objects, now),
          );
          break;
        case 'createManifest':
          this.io(
            o,
            c,
            () => this.store.createManifest(c.key, c.manifest),
            (r, now) => m.manifestCreated(c.op, r, now),
          );
          break;
        case 'put':
          this.io(
            o,
            c,
            () => mapLimit(c.objects, this.settings.uploadConcurrency, (o) => this.store.putObject(o.key, o.body)),
            (_, now) => m.uploaded(c.op, now),
          );
          break;
        case 'commit':
          this.io(
            o,
            c,
            () => this.source.commit(tp, c.offset),
            (_, now) => m.committed(c.op, now),
          );
          break;
        case 'deadLetter': {
          if (c.attempt === 0) {
            this.metrics.decodeErrors.inc({ reason: c.reason });
            this.log.warn(
              { topic: tp.topic, partition: tp.partition, offset: c.offset, reason: c.reason, err: describeError(c.error) },
              'record not archivable; dead-lettered',
            );
          }
          const send = () =>
            this.source.deadLetter({
              topic: tp.topic,
              partition: tp.partition,
              offset: c.offset,
              key: c.key,
              value: c.value,
              reason: c.reason,
              detail: describeError(c.error).slice(0, 1000),
            });
          const prev = deadLetters;
          deadLetters = this.io(o, c, prev ? () => prev.then(send) : send, (_, now) => m.deadLettered(c.op, now));
          break;
        }
        default:
          this.notice(o, c);
      }
    }
    return deadLetters;
  }

  /** Runs one I/O command and feeds its outcome back to the machine that asked for it. Never rejects. */
  private io<T>(o: Owned, cmd: IoCommand<FlushBuilder>, call: () => Promise<T>, done: (r: T, now: number) => Command<FlushBuilder>[]): Promise<void> {
    return call()
      .then(
        (r) => {
          this.perform(o, done(r, this.now()));
        },
        (err: unknown) => {
          this.failed(o, cmd, err);
          this.perform(o, o.m.failed(cmd.op, this.now()));
        },
      )
      .catch((err: unknown) =>
        this.log.error({ topic: o.tp.topic, partition: o.tp.partition, op: cmd.kind, err: describeError(err) }, 'performing a command failed'),
      );
  }

  private failed(o: Owned, cmd: IoCommand<FlushBuilder>, err: unknown): void {
    const { topic, partition } = o.tp;
    if (cmd.kind === 'seal') {
      this.log.error({ topic, partition, err: describeError(err) }, 'flush failed; reading the partition again from its first offset');
      return;
    }
    const op = opLabel(cmd);
    this.metrics.uploadErrors.inc({ op });
    const now = this.now();
    if (cmd.attempt === 0 || now - this.lastWarn > 5000) {
      this.lastWarn = now;
      const key = 'key' in cmd ? cmd.key : `${topic}/${partition}@${'offset' in cmd ? cmd.offset : cmd.firstOffset}`;
      this.log.warn({ op, key, attempt: cmd.attempt, err: describeError(err) }, 'call failed; retrying with backoff');
    }
  }

  private notice(o: Owned, n: Notice): void {
    const { topic, partition } = o.tp;
    switch (n.kind) {
      case 'rewound':
        this.log.warn({ topic, partition, offset: n.offset, held: n.held }, 'fetch position rewound; dropping what is held');
        break;
      case 'replay':
        this.log.info({ topic, partition, key: n.key, firstOffset: n.firstOffset, lastOffset: n.lastOffset }, 'replaying a flush of an earlier run');
        break;
      case 'realigned':
        if (n.cause === 'lookup') {
          this.metrics.realigned.inc();
          this.log.info({ topic, partition, key: n.key, manifestEnd: n.manifestEnd, held: n.held, from: n.from }, 'realigning to an existing flush');
        } else if (n.cause === 'mismatch') {
          this.metrics.realigned.inc();
          this.log.warn({ topic, partition, key: n.key, manifestEnd: n.manifestEnd, from: n.from }, 'another writer fixed this flush first; realigning');
        }
        break;
      case 'archived': {
        this.metrics.records.inc({ topic }, n.range.records);
        this.metrics.objects.inc({ topic }, n.objects);
        this.metrics.bytes.inc({ topic }, n.bytes);
        this.metrics.flushes.inc({ reason: n.reason });
        this.metrics.flushSeconds.observe((this.now() - n.sealedAt) / 1000);
        this.updateLag(o);
        this.log.info(
          {
            topic,
            partition,
            firstOffset: n.range.firstOffset,
            lastOffset: n.range.lastOffset,
            records: n.range.records,
            objects: n.objects,
            bytes: n.bytes,
            reason: n.reason,
            replay: n.replay,
            format: n.format,
          },
          'flush committed',
        );
        break;
      }
    }
  }

  // ---- housekeeping -------------------------------------------------------

  /** A retry is due at `at`: tick then (the 500 ms tick would be late for short backoffs). */
  private scheduleWake(at: number): void {
    if (this.wakeTimer && at >= this.wakeAt) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeAt = at;
    this.wakeTimer = setTimeout(
      () => {
        this.wakeTimer = undefined;
        this.wakeAt = Number.POSITIVE_INFINITY;
        this.tick();
      },
      Math.max(0, at - this.now()) + 1,
    );
    this.wakeTimer.unref();
  }

  private countPaused(): void {
    let n = 0;
    for (const o of this.machines.values()) if (o.m.paused) n++;
    this.metrics.paused.set(n);
  }

  private updateLag(o: Owned): void {
    const lag = o.m.lag;
    if (lag !== undefined) this.metrics.lag.set({ topic: o.tp.topic, partition: String(o.tp.partition) }, lag);
  }

  /** Seals flushes whose partition went idle (or whose span is reached), issues the retries that are due. */
  private tick(): void {
    const now = this.now();
    let held = 0;
    for (const o of this.machines.values()) {
      this.perform(o, o.m.tick(now));
      held += o.m.heldBytes;
    }
    this.metrics.buffered.set(held);
  }

  // ---- shutdown -----------------------------------------------------------

  /** SIGTERM: stop fetching, seal and upload what is held, commit, leave the group. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    this.log.info('stopping: sealing and uploading what is held');
    this.stopping = true;
    this.problem = 'stopping';
    if (this.timer) clearInterval(this.timer);
    this.source.pauseAll();
    const deadline = this.now() + this.settings.shutdownTimeoutMs;
    while (this.activeBatches > 0 && this.now() < deadline) await sleep(10);
    for (const o of this.machines.values()) this.perform(o, o.m.stop(this.now()));
    for (;;) {
      this.tick();
      if ([...this.machines.values()].every((o) => o.m.idle)) break;
      if (this.now() >= deadline) {
        this.log.warn('shutdown timeout: leaving with flushes not uploaded (they will be read again)');
        // Not performed: resuming partitions while leaving the group would only fetch again.
        for (const o of this.machines.values()) o.m.revoked();
        break;
      }
      await sleep(20);
    }
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    await this.source.close().catch((err) => this.log.warn({ err: describeError(err) }, 'consumer disconnect failed'));
    await this.metricsServer?.close();
    this.store.client.destroy();
    await this.storage?.parquet.close().catch((err: unknown) => this.log.warn({ err: describeError(err) }, 'closing the Parquet writer failed'));
    this.storage?.spool.remove();
    this.log.info('stopped');
  }
}
