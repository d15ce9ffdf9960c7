// The enricher service: a consumer group on the raw topic, the enrichment
// library per partition, NetworkEvents out keyed by host id.
//
// Exactly once (enricher.exactly_once: true): one transactional producer per
// owned raw partition, transactional id "<group>.<raw topic>.<partition>".
// Each flush of a partition is one transaction holding its events, its
// dead letters, its changelog records and the consumer offset of that
// partition. kafkajs 2.2.4 cannot send the consumer group metadata with the
// offsets (KIP-447), so zombie fencing comes from the transactional id: the
// next owner of a partition initialises the same id, which aborts any open
// transaction of the previous owner and fences its producer. Only then does
// it read the committed offset and the changelog, which can no longer move.
//
// At least once (false): one idempotent producer; events, dead letters and
// changelog are sent, then the offsets committed.
//
// Bad records: a message that does not decode, or a record that breaks the
// contract (ContractError from push) or whose enrichment throws anyway, is
// dead-lettered, counted (netmon_enricher_dlq_total{reason}) and logged once
// per reason; it never stops the consumer.
//
// Offsets: a partition's committed offset is its oldest record still held
// (waiting for a process record) or the next one. Records of other hosts
// after that offset may have gone out already: each host's done offset is in
// the changelog, and after a restart records at or below it are skipped.
import {
  DLQ_HEADERS,
  DecodeError,
  type Logger,
  type NetmonConfig,
  type NetworkEvent,
  type RawRecord,
  type SensorStatus,
  createKafka,
  createLogger,
  createRegistry,
  describeError,
  networkEventCodec,
  rawRecordCodec,
  startMetricsServer,
  type MetricsServer,
  cachingPartitioner,
} from '@netmon/common';
import type { Admin, Consumer, EachBatchPayload, IHeaders, Kafka, Message, Producer, TopicMessages } from 'kafkajs';
import { enricherSettings, type EnricherSettings } from './config';
import { ContractError, Enricher, type EnricherCounters, type EnrichError, RejectTally, type TableOptions, zeroCounters } from './lib';
import { type EnricherMetrics, enricherMetrics } from './metrics';
import { StateReader, changeMessage, doneMessage } from './state';

export interface StartOptions extends Partial<TableOptions> {
  /** How often waiting records are checked for their deadline (ms). */
  tickMs?: number;
  /** false: no /metrics server (tests run several instances). */
  metrics?: boolean;
  /** kafkajs partitionsConsumedConcurrently. */
  concurrency?: number;
}

export interface EnricherHandle {
  /** Stops consuming, finishes the batch, commits, leaves the group. */
  stop(): Promise<void>;
  /** Applies the process_filter of a new config (SIGHUP). */
  reload(config: NetmonConfig): void;
  readonly metricsPort: number | undefined;
  /** Library counters summed over the partitions owned now. */
  counters(): EnricherCounters;
  /** Rejects when the consumer crashed for good. */
  readonly failed: Promise<never>;
}

interface PartitionState {
  partition: number;
  enricher: Enricher;
  /** Generation of the group this state was checked against. */
  generation: number;
  producer: Producer | null;
  /** Offsets below this are ignored (already committed by the previous owner). */
  skipBelow: number;
  /** Last offset read into the enricher (or dead-lettered). */
  lastRead: number;
  /** Offset committed last. */
  committed: number;
  events: Message[];
  dlq: Message[];
  /** A seek to the committed offset was done; accept the next batch as is. */
  seeked: boolean;
  /** Fenced and restored from the changelog. */
  restored: boolean;
  lock: Promise<void>;
  seen: EnricherCounters;
}

// A transaction right after a commit meets CONCURRENT_TRANSACTIONS until the
// broker has written the markers (milliseconds): retry fast, like the Java
// client's 20 ms backoff, not with the client-wide 200 ms.
const TXN_RETRY = { initialRetryTime: 10, maxRetryTime: 1000, retries: Number.MAX_SAFE_INTEGER };

/**
 * A raw message packs up to this many records (the sensor sends at most 4096);
 * record i of the message at offset o has the position o × 2^16 + i, exact in
 * a double up to offset 2^37.
 */
const RECORDS_PER_MESSAGE = 65536;

class EnricherService implements EnricherHandle {
  private readonly settings: EnricherSettings;
  private readonly kafka: Kafka;
  private readonly consumer: Consumer;
  private readonly admin: Admin;
  private readonly reader: StateReader;
  private readonly partitions = new Map<number, PartitionState>();
  private readonly metrics: EnricherMetrics;
  private readonly registry = createRegistry('enricher');
  private readonly rawCodec = rawRecordCodec();
  private readonly eventCodec = networkEventCodec();
  private readonly hostKeys = new Map<string, Buffer>();
  /** Dead letters by reason: the first of each is logged. */
  private readonly rejects = new RejectTally();
  private sharedProducer: Producer | null = null;
  private server: MetricsServer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private generation = 0;
  private joined = false;
  private stopping: Promise<void> | undefined;
  private crashed: string | undefined;
  private failFn: (err: Error) => void = () => {};
  readonly failed: Promise<never>;

  constructor(
    private config: NetmonConfig,
    private readonly logger: Logger,
    private readonly options: StartOptions,
  ) {
    this.settings = enricherSettings(config);
    this.kafka = createKafka(config.kafka, logger, 'enricher');
    this.consumer = this.kafka.consumer({
      groupId: config.enricher.groupId,
      readUncommitted: false,
      // A killed instance's partitions move after 10 s (Java's default is 45 s).
      sessionTimeout: 10000,
      heartbeatInterval: 1000,
      maxBytesPerPartition: 4 << 20,
      maxBytes: 16 << 20,
      maxWaitTimeInMs: 200,
    });
    this.admin = this.kafka.admin();
    this.reader = new StateReader(this.kafka, this.admin, this.settings.stateTopic, logger);
    this.metrics = enricherMetrics(this.registry);
    this.failed = new Promise<never>((_, reject) => {
      this.failFn = reject;
    });
    this.failed.catch(() => {});
  }

  get metricsPort(): number | undefined {
    return this.server?.port;
  }

  async start(): Promise<void> {
    const { config, settings } = this;
    await this.admin.connect();
    await this.ensureTopics();
    if (this.options.metrics !== false) {
      this.server = await startMetricsServer(
        this.registry,
        config.enricher.metricsPort,
        () => this.crashed ?? (this.joined ? undefined : 'not in the consumer group yet'),
      );
    }
    if (!config.enricher.exactlyOnce) {
      this.sharedProducer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: TXN_RETRY, createPartitioner: cachingPartitioner });
      await this.sharedProducer.connect();
    }
    await this.reader.start();
    const { GROUP_JOIN, CRASH } = this.consumer.events;
    this.consumer.on(GROUP_JOIN, (e) => {
      this.generation++;
      this.joined = true;
      const owned = new Set(e.payload.memberAssignment[config.topics.raw] ?? []);
      this.logger.info({ generation: this.generation, partitions: [...owned] }, 'joined the group');
      for (const p of [...this.partitions.keys()]) if (!owned.has(p)) void this.release(p);
    });
    this.consumer.on(CRASH, (e) => {
      const err = e.payload.error;
      this.logger.error({ err: describeError(err), restart: e.payload.restart }, 'consumer crashed');
      if (!e.payload.restart) {
        this.crashed = `consumer crashed: ${describeError(err)}`;
        this.failFn(err);
      }
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: config.topics.raw, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.options.concurrency ?? 2,
      eachBatch: (payload) => this.onBatch(payload),
    });
    this.timer = setInterval(() => this.tick(), this.options.tickMs ?? 100);
    this.logger.info(
      {
        raw: config.topics.raw,
        events: config.topics.events,
        state: settings.stateTopic,
        exactlyOnce: config.enricher.exactlyOnce,
        group: config.enricher.groupId,
      },
      'enricher started',
    );
  }

  private async ensureTopics(): Promise<void> {
    const { topics } = this.config;
    const cluster = await this.admin.describeCluster();
    const replicationFactor = Math.min(3, cluster.brokers.length);
    const existing = new Set(await this.admin.listTopics());
    const wanted = [
      { topic: topics.raw, numPartitions: topics.partitions },
      { topic: topics.events, numPartitions: topics.partitions },
      { topic: topics.dlq, numPartitions: 1 },
    ].filter((t) => !existing.has(t.topic));
    if (wanted.length > 0) await this.createTopics(wanted.map((t) => ({ ...t, replicationFactor })));
    if (!existing.has(this.settings.stateTopic)) {
      // One changelog partition per raw partition.
      const meta = await this.admin.fetchTopicMetadata({ topics: [topics.raw] });
      const numPartitions = meta.topics[0]!.partitions.length;
      await this.createTopics([
        {
          topic: this.settings.stateTopic,
          numPartitions,
          replicationFactor,
          configEntries: [
            { name: 'cleanup.policy', value: 'compact' },
            { name: 'min.compaction.lag.ms', value: '60000' },
          ],
        },
      ]);
    }
  }

  private async createTopics(topics: Parameters<Admin['createTopics']>[0]['topics']): Promise<void> {
    try {
      await this.admin.createTopics({ topics, waitForLeaders: true });
    } catch (err) {
      // Another instance created them at the same time.
      if (!/already exists/i.test(describeError(err))) throw err;
    }
  }

  /** Runs `fn` alone for partition p (batches and deadline flushes). */
  private withLock<T>(st: PartitionState, fn: () => Promise<T>): Promise<T> {
    const run = st.lock.then(fn);
    st.lock = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  private stateOf(partition: number): PartitionState {
    let st = this.partitions.get(partition);
    if (!st) {
      const created: PartitionState = {
        partition,
        enricher: undefined as unknown as Enricher,
        generation: -1,
        producer: null,
        skipBelow: 0,
        lastRead: -1,
        committed: -1,
        events: [],
        dlq: [],
        seeked: false,
        restored: false,
        lock: Promise.resolve(),
        seen: zeroCounters(),
      };
      created.enricher = this.newEnricher(created);
      this.partitions.set(partition, created);
      st = created;
    }
    return st;
  }

  private newEnricher(st: PartitionState): Enricher {
    const { config, options } = this;
    const table: Partial<TableOptions> = { trackChanges: true };
    if (options.exitGraceUs !== undefined) table.exitGraceUs = options.exitGraceUs;
    if (options.maxEntries !== undefined) table.maxEntries = options.maxEntries;
    const codec = this.eventCodec;
    return new Enricher(
      { processWaitMs: config.enricher.processWaitMs, filter: config.processFilter, ...table },
      {
        event: (ev: NetworkEvent, hostId: string) => {
          let value: Buffer;
          try {
            value = codec.encode(ev);
          } catch (err) {
            // Not an event of the contract: the event itself is the dead letter.
            const { run_id, seq } = ev.source;
            this.deadLetter(st, Buffer.from(JSON.stringify(ev)), 'encode', `event of run ${run_id} seq ${seq}: ${describeError(err)}`, st.lastRead);
            return;
          }
          st.events.push({ key: this.hostKey(hostId), value });
        },
        rejected: (record: RawRecord, position: number, err: EnrichError) => {
          // Possibly a record held since an earlier batch: its message may be
          // gone, so the record alone is the dead letter.
          let value: Buffer;
          try {
            value = this.rawCodec.encode(record);
          } catch {
            value = Buffer.alloc(0);
          }
          const offset = Math.floor(position / RECORDS_PER_MESSAGE);
          this.deadLetter(st, value, err.reason, `record ${position % RECORDS_PER_MESSAGE}: ${err.message}`, offset);
        },
        status: (record: RawRecord, s: SensorStatus) => {
          const host = record.hostname || record.host_id;
          this.metrics.sensorSeen.set({ host }, s.seen);
          this.metrics.sensorLost.set({ host }, s.lost_kernel);
          this.metrics.sensorDropped.set({ host }, s.dropped);
          if (s.lost_kernel > 0 || s.dropped > 0) this.logger.warn({ host, ...s }, 'sensor reports lost records');
        },
      },
    );
  }

  private hostKey(hostId: string): Buffer {
    let key = this.hostKeys.get(hostId);
    if (!key) {
      key = Buffer.from(hostId, 'utf8');
      if (this.hostKeys.size > 100_000) this.hostKeys.clear();
      this.hostKeys.set(hostId, key);
    }
    return key;
  }

  /**
   * Makes partition p ready after an assignment: fences the previous owner,
   * restores the table from the changelog, reads the committed offset.
   * Returns false when the batch must be dropped (a seek was made).
   */
  private async prepare(st: PartitionState, firstOffset: number): Promise<boolean> {
    const { config, settings } = this;
    const p = st.partition;
    if (st.generation === this.generation) return true;
    if (!st.restored) {
      if (config.enricher.exactlyOnce) {
        const producer = this.kafka.producer({
          transactionalId: `${settings.transactionalIdPrefix}.${p}`,
          idempotent: true,
          maxInFlightRequests: 1,
          transactionTimeout: 60000,
          retry: TXN_RETRY,
          createPartitioner: cachingPartitioner,
        });
        await producer.connect();
        // Initialises the transactional id: fences the previous owner and
        // aborts its open transaction, if any.
        const txn = await producer.transaction();
        await txn.abort();
        st.producer = producer;
      }
      const t0 = Date.now();
      const enricher = st.enricher;
      const { records } = await this.reader.restore(p, {
        entry: (hostId, pid, ticks, state) => (state ? enricher.table.restore(hostId, state) : enricher.table.forget(hostId, pid, ticks)),
        done: (hostId, position) => enricher.restoreDone(hostId, position),
      });
      enricher.table.takeChanges();
      enricher.takeDone();
      this.metrics.restores.inc();
      st.restored = true;
      this.logger.info({ partition: p, records, entries: enricher.table.size, hosts: enricher.hostCount, ms: Date.now() - t0 }, 'partition state restored');
    } else {
      // Still ours after a rebalance: the table agrees with the committed
      // offsets; only held records go (they will be read again).
      st.enricher.dropHeld();
      st.events = [];
      st.dlq = [];
    }
    const committed = await this.committedOffset(p);
    st.generation = this.generation;
    st.skipBelow = committed;
    st.committed = committed;
    st.lastRead = committed - 1;
    if (firstOffset > committed && !st.seeked) {
      // The consumer started past what is committed (the previous owner's
      // last transaction was aborted): go back.
      this.logger.info({ partition: p, from: firstOffset, to: committed }, 'seeking back to the committed offset');
      st.seeked = true;
      st.generation = -2; // prepare again (light) on the next batch
      this.consumer.seek({ topic: config.topics.raw, partition: p, offset: String(committed) });
      return false;
    }
    st.seeked = false;
    return true;
  }

  private async committedOffset(p: number): Promise<number> {
    const { config } = this;
    const res = await this.admin.fetchOffsets({ groupId: config.enricher.groupId, topics: [config.topics.raw] });
    const o = res[0]?.partitions.find((x) => x.partition === p);
    const n = o ? Number(o.offset) : -1;
    if (n >= 0) return n;
    // Nothing committed: the start of the partition.
    const offsets = await this.admin.fetchTopicOffsets(config.topics.raw);
    return Number(offsets.find((x) => x.partition === p)?.low ?? 0);
  }

  private async onBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const st = this.stateOf(batch.partition);
    await this.withLock(st, async () => {
      // Fetched before a seek: the records come again from the new position.
      if (batch.messages.length === 0 || isStale()) return;
      if (this.partitions.get(batch.partition) !== st) return; // reset meanwhile
      if (!(await this.prepare(st, Number(batch.messages[0]!.offset)))) return;
      const now = Date.now();
      const { enricher } = st;
      enricher.expire(now);
      let skipped = 0;
      for (const m of batch.messages) {
        if (!isRunning() || isStale()) break;
        const offset = Number(m.offset);
        if (offset < st.skipBelow) continue;
        st.lastRead = offset;
        if (m.value === null || m.value.length === 0) {
          this.deadLetter(st, m.value ?? Buffer.alloc(0), 'empty', 'record without a value', offset, m.headers);
          continue;
        }
        let records: RawRecord[];
        try {
          records = this.rawCodec.decodeAll(m.value);
          if (records.length > RECORDS_PER_MESSAGE) throw new ContractError(`${records.length} records in one message, at most ${RECORDS_PER_MESSAGE}`);
        } catch (err) {
          if (!(err instanceof DecodeError || err instanceof ContractError)) throw err;
          this.deadLetter(st, m.value, err.reason, err.message, offset, m.headers);
          continue;
        }
        for (let i = 0; i < records.length; i++) {
          const record = records[i]!;
          const position = offset * RECORDS_PER_MESSAGE + i;
          if (position <= enricher.doneOf(record.host_id)) {
            skipped++;
            continue;
          }
          try {
            enricher.push(record, position, now);
          } catch (err) {
            // A record that breaks the contract, for whatever reason, or
            // anything else thrown while enriching it: one record must not
            // stop the consumer (a rethrow would crash it on every retry).
            const reason = err instanceof ContractError ? err.reason : 'enrich';
            this.deadLetter(st, m.value, reason, `record ${i}: ${describeError(err)}`, offset, m.headers);
          }
        }
      }
      if (skipped > 0) this.metrics.replaySkipped.inc(skipped);
      this.metrics.lag.set({ partition: String(batch.partition) }, Math.max(0, Number(batch.highWatermark) - 1 - st.lastRead));
      const ok = await this.flush(st);
      if (ok && st.lastRead >= 0) resolveOffset(String(st.lastRead));
      await heartbeat();
    });
  }

  private deadLetter(st: PartitionState, value: Buffer, reason: string, detail: string, offset: number, original?: IHeaders): void {
    this.metrics.dlq.inc({ reason });
    // Once per reason: a flood of bad records must not flood the log.
    if (this.rejects.add(`${reason}: ${detail}`)) {
      this.logger.warn(
        { partition: st.partition, offset, reason, detail },
        'record dead-lettered (logged once per reason; netmon_enricher_dlq_total counts them all)',
      );
    }
    const headers: IHeaders = {
      ...original,
      [DLQ_HEADERS.reason]: reason,
      [DLQ_HEADERS.detail]: detail.slice(0, 1000),
      [DLQ_HEADERS.sourceTopic]: this.config.topics.raw,
      [DLQ_HEADERS.sourcePartition]: String(st.partition),
      [DLQ_HEADERS.sourceOffset]: String(offset),
    };
    st.dlq.push({ value, headers });
  }

  /** Writes a partition's output and commits its offset; false on failure (state dropped). */
  private async flush(st: PartitionState): Promise<boolean> {
    const { config, settings } = this;
    const p = st.partition;
    const { enricher } = st;
    const held = enricher.oldestHeld();
    // The message of the oldest held record is read again after a restart;
    // its records at or below their host's done position are skipped then.
    const commitOffset = held !== undefined ? Math.floor(held / RECORDS_PER_MESSAGE) : st.lastRead + 1;
    const state: Message[] = [];
    for (const c of enricher.table.takeChanges()) state.push(changeMessage(c, p));
    for (const [hostId, position] of enricher.takeDone()) state.push(doneMessage(hostId, position, p));
    const topicMessages: TopicMessages[] = [];
    if (st.events.length > 0) topicMessages.push({ topic: config.topics.events, messages: st.events });
    if (st.dlq.length > 0) topicMessages.push({ topic: config.topics.dlq, messages: st.dlq });
    if (state.length > 0) topicMessages.push({ topic: settings.stateTopic, messages: state });
    const events = st.events.length;
    st.events = [];
    st.dlq = [];
    this.count(st);
    if (topicMessages.length === 0 && commitOffset === st.committed) return true;
    const offsets = [{ topic: config.topics.raw, partitions: [{ partition: p, offset: String(commitOffset) }] }];
    try {
      if (st.producer) {
        const txn = await st.producer.transaction();
        try {
          for (const chunk of chunks(topicMessages)) await txn.sendBatch({ topicMessages: chunk, acks: -1 });
          await txn.sendOffsets({ consumerGroupId: config.enricher.groupId, topics: offsets });
          await txn.commit();
        } catch (err) {
          await txn.abort().catch(() => {});
          throw err;
        }
      } else {
        for (const chunk of chunks(topicMessages)) await this.sharedProducer!.sendBatch({ topicMessages: chunk, acks: -1 });
        await this.consumer.commitOffsets(offsets.flatMap((t) => t.partitions.map((x) => ({ topic: t.topic, ...x }))));
      }
    } catch (err) {
      this.metrics.commitFailures.inc();
      this.logger.error({ partition: p, err: describeError(err) }, 'commit failed: the partition state is dropped and read again');
      await this.reset(st);
      return false;
    }
    st.committed = commitOffset;
    this.metrics.commits.inc();
    this.metrics.eventsOut.inc(events);
    return true;
  }

  /** Library counters → metrics, as deltas. */
  private count(st: PartitionState): void {
    const c = st.enricher.counters;
    const s = st.seen;
    this.metrics.recordsIn.inc(c.records - s.records);
    this.metrics.filtered.inc(c.filtered - s.filtered);
    this.metrics.waited.inc(c.waited - s.waited);
    this.metrics.unknown.inc(c.unknown - s.unknown);
    this.metrics.statusRecords.inc(c.status - s.status);
    this.metrics.processRecords.inc({ kind: 'exec' }, c.exec - s.exec);
    this.metrics.processRecords.inc({ kind: 'fork' }, c.fork - s.fork);
    this.metrics.processRecords.inc({ kind: 'exit' }, c.exit - s.exit);
    Object.assign(s, c);
  }

  /** Forgets a partition's state after a failure: it is restored again before its next batch. */
  private async reset(st: PartitionState): Promise<void> {
    const producer = st.producer;
    this.partitions.delete(st.partition);
    if (producer) await producer.disconnect().catch(() => {});
    // Read from the committed offset again (if still ours).
    try {
      const committed = await this.committedOffset(st.partition);
      this.consumer.seek({ topic: this.config.topics.raw, partition: st.partition, offset: String(committed) });
    } catch (err) {
      this.logger.warn({ partition: st.partition, err: describeError(err) }, 'seek after a failure failed');
    }
  }

  /** A partition went to another member. */
  private async release(p: number): Promise<void> {
    const st = this.partitions.get(p);
    if (!st) return;
    await this.withLock(st, async () => {
      if (this.partitions.get(p) !== st) return;
      this.partitions.delete(p);
      this.logger.info({ partition: p }, 'partition released');
      await st.producer?.disconnect().catch(() => {});
    });
  }

  /** Lets records whose wait ended go out, on partitions with no new batch. */
  private tick(): void {
    const now = Date.now();
    let size = 0;
    let held = 0;
    let evicted = 0;
    for (const st of this.partitions.values()) {
      size += st.enricher.table.size;
      held += st.enricher.heldCount;
      evicted += st.enricher.table.evicted;
      const deadline = st.enricher.nextDeadline();
      if (deadline === undefined || deadline > now || st.generation !== this.generation) continue;
      this.withLock(st, async () => {
        if (this.partitions.get(st.partition) !== st || st.generation !== this.generation) return;
        st.enricher.expire(Date.now());
        await this.flush(st);
      }).catch((err: unknown) => this.logger.error({ partition: st.partition, err: describeError(err) }, 'deadline flush failed'));
    }
    this.metrics.tableSize.set(size);
    this.metrics.held.set(held);
    const e = evicted - this.evictedSeen;
    if (e > 0) this.metrics.evicted.inc(e);
    this.evictedSeen = evicted;
  }
  private evictedSeen = 0;

  reload(config: NetmonConfig): void {
    this.config = { ...this.config, processFilter: config.processFilter };
    for (const st of this.partitions.values()) st.enricher.setFilter(config.processFilter);
    this.logger.info({ processFilter: config.processFilter }, 'process_filter reloaded');
  }

  counters(): EnricherCounters {
    const sum = zeroCounters();
    for (const st of this.partitions.values()) for (const k of Object.keys(sum) as Array<keyof EnricherCounters>) sum[k] += st.enricher.counters[k];
    return sum;
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.logger.info('stopping: finishing the batch, committing, leaving the group');
    if (this.timer) clearInterval(this.timer);
    // consumer.stop() waits for the batch in hand, which flushes and commits.
    await this.consumer.stop().catch((err) => this.logger.warn({ err: describeError(err) }, 'consumer stop'));
    for (const st of this.partitions.values()) await st.lock;
    await this.consumer.disconnect().catch((err) => this.logger.warn({ err: describeError(err) }, 'consumer disconnect'));
    for (const st of this.partitions.values()) await st.producer?.disconnect().catch(() => {});
    this.partitions.clear();
    await this.sharedProducer?.disconnect().catch(() => {});
    await this.reader.stop().catch(() => {});
    await this.admin.disconnect().catch(() => {});
    await this.server?.close();
    this.logger.info('stopped');
  }
}

/**
 * Splits output into requests of at most CHUNK_BYTES: kafkajs puts all the
 * messages of a partition into one record batch, and the broker refuses a
 * batch over its max.message.bytes (1 MiB by default).
 */
const CHUNK_BYTES = 768 * 1024;
/**
 * ...and of at most CHUNK_MESSAGES messages: kafkajs 2.2.4 groups a request's
 * messages per partition by copying the partition's array for every message
 * (groupMessagesPerPartition), quadratic in the messages of a request.
 */
const CHUNK_MESSAGES = Number(process.env.NETMON_ENRICHER_CHUNK ?? 1000);
function* chunks(topicMessages: TopicMessages[]): Generator<TopicMessages[]> {
  let chunk: TopicMessages[] = [];
  let bytes = 0;
  let count = 0;
  for (const tm of topicMessages) {
    let current: Message[] = [];
    for (const m of tm.messages) {
      const size = 32 + (m.key ? m.key.length : 0) + (m.value ? m.value.length : 0);
      if ((bytes + size > CHUNK_BYTES || count >= CHUNK_MESSAGES) && bytes > 0) {
        if (current.length > 0) chunk.push({ topic: tm.topic, messages: current });
        yield chunk;
        chunk = [];
        current = [];
        bytes = 0;
        count = 0;
      }
      current.push(m);
      bytes += size;
      count++;
    }
    if (current.length > 0) chunk.push({ topic: tm.topic, messages: current });
  }
  if (chunk.length > 0) yield chunk;
}

/** Starts an enricher; resolves once it is consuming. */
export async function start(
  config: NetmonConfig,
  logger: Logger = createLogger('enricher', config.log.level),
  options: StartOptions = {},
): Promise<EnricherHandle> {
  const service = new EnricherService(config, logger, options);
  try {
    await service.start();
  } catch (err) {
    await service.stop().catch(() => {});
    throw err;
  }
  return service;
}
