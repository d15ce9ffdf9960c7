// The enricher service: a consumer group on the raw topic, one pure protocol
// machine per owned partition (partition.ts), NetworkEvents out keyed by host
// id. This file only performs the machines' commands with a client (client.ts;
// rdkafka.ts: librdkafka), keeps one lock per partition, runs the deadline ticks, and
// turns the machines' notes into metrics and logs.
//
// Exactly once (enricher.exactly_once: true): each flush of a partition is one
// transaction holding its events, its sensor status records (status topic),
// its dead letters, its changelog records and the consumer offset of that
// partition. Before a newly assigned partition is
// read, its transactional output is opened, which fences the previous owner;
// only then are the changelog and the committed offset read, which can no
// longer move.
//
// At least once (false): one shared output; events, dead letters and
// changelog are sent, then the offsets committed.
//
// Bad records: a message that does not decode, or a record that breaks the
// contract (ContractError from push) or whose enrichment throws anyway, is
// dead-lettered, counted (netmon_enricher_dlq_total{reason}) and logged once
// per reason; it never stops the consumer.
import { type Logger, type MetricsServer, type NetmonConfig, createLogger, createRegistry, describeError, startMetricsServer } from '@netmon/common';
import type { EnricherClient, FlushOutput, RawBatch } from './client';
import { enricherSettings } from './config';
import { type EnricherCounters, RejectTally, type TableOptions, zeroCounters } from './lib';
import { type EnricherMetrics, enricherMetrics } from './metrics';
import { type Command, DEFAULT_CHUNK_LIMITS, type PartitionContext, PartitionMachine, type RawMessage, partitionContext } from './partition';
import { RdkafkaClient } from './rdkafka';

export interface StartOptions extends Partial<TableOptions> {
  /** How often waiting records are checked for their deadline (ms). */
  tickMs?: number;
  /** false: no /metrics server (tests run several instances). */
  metrics?: boolean;
  /** Partitions whose batches are handled at the same time. */
  concurrency?: number;
  /** A long batch is read in parts of this many messages (default READ_AHEAD_MESSAGES). */
  readAheadMessages?: number;
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

/** An owned partition: its machine, its output, its lock. */
interface Slot {
  machine: PartitionMachine;
  /** Exactly once: the partition's transactional output, once fenced. */
  output: FlushOutput | null;
  lock: Promise<void>;
  /** Library counters already turned into metrics. */
  seen: EnricherCounters;
}

/** What a batch's commands did that the batch handler needs to know. */
interface Step {
  rewound: boolean;
}

/**
 * Produce requests hold at most this many messages (NETMON_ENRICHER_CHUNK):
 * see ChunkLimits in partition.ts.
 */
const CHUNK_MESSAGES = Number(process.env.NETMON_ENRICHER_CHUNK ?? DEFAULT_CHUNK_LIMITS.messages);

/** A long batch is read in parts of this many messages (~15 ms each), I/O callbacks running between them (NETMON_ENRICHER_READ_AHEAD). */
const READ_AHEAD_MESSAGES = Number(process.env.NETMON_ENRICHER_READ_AHEAD ?? 2000);

class EnricherService implements EnricherHandle {
  private readonly client: EnricherClient;
  private readonly ctx: PartitionContext;
  private readonly slots = new Map<number, Slot>();
  private readonly metrics: EnricherMetrics;
  private readonly registry = createRegistry('enricher');
  /** Dead letters by reason: the first of each is logged. */
  private readonly rejects = new RejectTally();
  private server: MetricsServer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private generation = 0;
  private joined = false;
  /** Between a revocation and the next assignment: no deadline flush. */
  private revoking = false;
  private stopping: Promise<void> | undefined;
  private crashed: string | undefined;
  private evictedSeen = 0;
  private failFn: (err: Error) => void = () => {};
  readonly failed: Promise<never>;

  constructor(
    private readonly config: NetmonConfig,
    private readonly logger: Logger,
    private readonly options: StartOptions,
  ) {
    const settings = enricherSettings(config);
    this.client = new RdkafkaClient(config, settings, logger);
    const table: Partial<TableOptions> = {};
    if (options.exitGraceUs !== undefined) table.exitGraceUs = options.exitGraceUs;
    if (options.maxEntries !== undefined) table.maxEntries = options.maxEntries;
    this.ctx = partitionContext({
      exactlyOnce: config.enricher.exactlyOnce,
      topics: { raw: config.topics.raw, events: config.topics.events, dlq: config.topics.dlq, state: settings.stateTopic, status: config.topics.status },
      enricher: { processWaitMs: config.enricher.processWaitMs, filter: config.processFilter, ...table },
      chunk: { ...DEFAULT_CHUNK_LIMITS, messages: CHUNK_MESSAGES },
    });
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
    const { config } = this;
    await this.client.start();
    if (this.options.metrics !== false) {
      this.server = await startMetricsServer(
        this.registry,
        config.enricher.metricsPort,
        () => this.crashed ?? (this.joined ? undefined : 'not in the consumer group yet'),
      );
    }
    await this.client.consume(
      {
        batch: (b) => this.onBatch(b),
        assigned: (partitions) => this.onAssigned(partitions),
        revoking: () => {
          this.revoking = true;
        },
        crashed: (err, restart) => {
          this.logger.error({ err: describeError(err), restart }, 'consumer crashed');
          if (!restart) {
            this.crashed = `consumer crashed: ${describeError(err)}`;
            this.failFn(err);
          }
        },
      },
      this.options.concurrency ?? 2,
    );
    this.timer = setInterval(() => this.tick(), this.options.tickMs ?? 100);
    this.logger.info(
      {
        raw: config.topics.raw,
        events: config.topics.events,
        status: config.topics.status,
        state: this.ctx.topics.state,
        exactlyOnce: config.enricher.exactlyOnce,
        group: config.enricher.groupId,
        metrics_port: this.metricsPort,
      },
      'enricher started',
    );
  }

  private onAssigned(partitions: number[]): void {
    this.generation++;
    this.joined = true;
    this.revoking = false;
    const owned = new Set(partitions);
    this.logger.info({ generation: this.generation, partitions }, 'joined the group');
    for (const p of [...this.slots.keys()]) if (!owned.has(p)) void this.release(p);
    for (const p of partitions) void this.readyEarly(p, this.generation);
  }

  /**
   * Prepares a partition of a new assignment before its first batch (see
   * PartitionMachine.assigned). A failure here is not the partition's end:
   * its first batch prepares it again, and fails as a batch does.
   */
  private async readyEarly(partition: number, generation: number): Promise<void> {
    const slot = this.slotOf(partition);
    try {
      await this.withLock(slot, async () => {
        if (this.slots.get(partition) !== slot || generation !== this.generation) return;
        await this.perform(slot, slot.machine.assigned(generation));
      });
    } catch (err) {
      this.logger.warn({ partition, err: describeError(err) }, 'preparing the partition failed; its first batch tries again');
    }
  }

  /** Runs `fn` alone for the slot (batches, deadline flushes, release). */
  private withLock<T>(slot: Slot, fn: () => Promise<T>): Promise<T> {
    const run = slot.lock.then(fn);
    slot.lock = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  private slotOf(partition: number): Slot {
    let slot = this.slots.get(partition);
    if (!slot) {
      slot = { machine: new PartitionMachine(partition, this.ctx), output: null, lock: Promise.resolve(), seen: zeroCounters() };
      this.slots.set(partition, slot);
    }
    return slot;
  }

  private async onBatch(b: RawBatch): Promise<void> {
    const slot = this.slotOf(b.partition);
    await this.withLock(slot, async () => {
      // Fetched before a seek: the records come again from the new position.
      if (b.messages.length === 0 || b.stale()) return;
      if (this.slots.get(b.partition) !== slot) return; // dropped meanwhile
      const m = slot.machine;
      const step: Step = { rewound: false };
      // The batch is one step of the generation it started in, even when read
      // in parts: what its parts read is flushed with it (a new generation,
      // after another partition's crash, would else prepare again and drop it).
      const generation = this.generation;
      try {
        const rest = await this.readAhead(m, b, generation);
        await this.perform(slot, m.batch(generation, rest, Date.now(), b.live()), b, step);
      } finally {
        this.count(slot);
      }
      if (step.rewound) return; // the batch was dropped
      this.metrics.lag.set({ partition: String(b.partition) }, Math.max(0, b.highWatermark - 1 - m.lastRead));
      await b.heartbeat();
    });
  }

  /**
   * Reads a long batch into the machine in parts (READ_AHEAD_MESSAGES),
   * letting I/O callbacks run between them; returns the last part, for
   * batch(). Enriching 20,000 records holds the thread ~150 ms: read in one
   * go, each step of another partition's transaction (begin, produce, send
   * the offsets, commit: each a callback) waited behind one or two such
   * batches, so a 40 ms transaction took 300 ms, and its partitions sat idle.
   */
  private async readAhead(m: PartitionMachine, b: RawBatch, generation: number): Promise<readonly RawMessage[]> {
    const { messages } = b;
    const part = Math.max(1, this.options.readAheadMessages ?? READ_AHEAD_MESSAGES);
    let from = 0;
    while (messages.length - from > part && b.live() && m.readsAhead(generation)) {
      m.readAhead(generation, messages.slice(from, from + part), Date.now());
      from += part;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return from === 0 ? messages : messages.slice(from);
  }

  /** Performs a machine's commands in order, feeding the outcomes back into it. */
  private async perform(slot: Slot, commands: Command[], batch?: RawBatch, step?: Step): Promise<void> {
    const m = slot.machine;
    const p = m.partition;
    for (const c of commands) {
      switch (c.kind) {
        case 'prepare': {
          const committed = await this.prepare(slot, c.fence, c.restore);
          await this.perform(slot, m.prepared(committed, Date.now(), batch ? batch.live() : true), batch, step);
          break;
        }
        case 'transaction': {
          let failed = false;
          try {
            await (slot.output ?? this.client.shared()).write(c.requests, c.commit);
          } catch (err) {
            failed = true;
            this.metrics.commitFailures.inc();
            this.logger.error({ partition: p, err: describeError(err) }, 'commit failed: the partition state is dropped and read again');
          }
          if (failed) {
            await this.perform(slot, m.flushFailed(), batch, step);
          } else {
            this.metrics.commits.inc();
            this.metrics.eventsOut.inc(c.events);
            await this.perform(slot, m.flushDone(), batch, step);
          }
          break;
        }
        case 'seek':
          if (c.reason === 'rewind') {
            // The consumer started past what is committed (the previous
            // owner's last transaction was aborted): go back.
            this.logger.info({ partition: p, from: c.from, to: c.offset }, 'seeking back to the committed offset');
            if (step) step.rewound = true;
          }
          try {
            this.client.seek(p, c.offset);
          } catch (err) {
            if (c.reason === 'rewind') throw err;
            this.logger.warn({ partition: p, err: describeError(err) }, 'seek after a failure failed');
          }
          break;
        case 'consumed':
          batch?.consumed(c.offset);
          break;
        case 'close': {
          if (this.slots.get(p) === slot) this.slots.delete(p);
          const output = slot.output;
          slot.output = null;
          await output?.close();
          break;
        }
        case 'rejected':
          this.metrics.dlq.inc({ reason: c.reason });
          // Once per reason: a flood of bad records must not flood the log.
          if (this.rejects.add(`${c.reason}: ${c.detail}`)) {
            this.logger.warn(
              { partition: p, offset: c.offset, reason: c.reason, detail: c.detail },
              'record dead-lettered (logged once per reason; netmon_enricher_dlq_total counts them all)',
            );
          }
          break;
        case 'status': {
          const { host, status: s } = c;
          this.metrics.sensorSeen.set({ host }, s.seen);
          this.metrics.sensorLost.set({ host }, s.lost_kernel);
          this.metrics.sensorDropped.set({ host }, s.dropped);
          if (s.lost_kernel > 0 || s.dropped > 0) this.logger.warn({ host, ...s }, 'sensor reports lost records');
          break;
        }
        case 'skipped':
          this.metrics.replaySkipped.inc(c.count);
          break;
      }
    }
  }

  /**
   * Makes a partition ready: fences the previous owner (exactly once),
   * restores the table from the changelog, returns the committed offset.
   */
  private async prepare(slot: Slot, fence: boolean, restore: boolean): Promise<number> {
    const m = slot.machine;
    const p = m.partition;
    if (fence) {
      const previous = slot.output;
      slot.output = null;
      await previous?.close(); // a prepare that failed half-way
      slot.output = await this.client.fence(p);
    }
    if (restore) {
      const t0 = Date.now();
      const { records } = await this.client.restore(p, m.restoreSink());
      this.metrics.restores.inc();
      this.logger.info({ partition: p, records, entries: m.enricher.table.size, hosts: m.enricher.hostCount, ms: Date.now() - t0 }, 'partition state restored');
    }
    return this.client.committed(p);
  }

  /** Library counters → metrics, as deltas. */
  private count(slot: Slot): void {
    const c = slot.machine.counters;
    const s = slot.seen;
    this.metrics.recordsIn.inc(c.records - s.records);
    this.metrics.filtered.inc(c.filtered - s.filtered);
    this.metrics.waited.inc(c.waited - s.waited);
    this.metrics.unknown.inc(c.unknown - s.unknown);
    this.metrics.statusRecords.inc(c.status - s.status);
    this.metrics.dnsResponses.inc({ result: 'parsed' }, c.dns - c.dnsUnparsed - (s.dns - s.dnsUnparsed));
    this.metrics.dnsResponses.inc({ result: 'unparsed' }, c.dnsUnparsed - s.dnsUnparsed);
    this.metrics.processRecords.inc({ kind: 'exec' }, c.exec - s.exec);
    this.metrics.processRecords.inc({ kind: 'fork' }, c.fork - s.fork);
    this.metrics.processRecords.inc({ kind: 'exit' }, c.exit - s.exit);
    Object.assign(s, c);
  }

  /** A partition went to another member. */
  private async release(p: number): Promise<void> {
    const slot = this.slots.get(p);
    if (!slot) return;
    await this.withLock(slot, async () => {
      if (this.slots.get(p) !== slot) return;
      this.logger.info({ partition: p }, 'partition released');
      await this.perform(slot, slot.machine.revoked());
    });
  }

  /** Lets records whose wait ended go out, on partitions with no new batch. */
  private tick(): void {
    const now = Date.now();
    let size = 0;
    let held = 0;
    let evicted = 0;
    let dnsEntries = 0;
    for (const slot of this.slots.values()) {
      const m = slot.machine;
      size += m.enricher.table.size;
      dnsEntries += m.enricher.dns.size;
      held += m.enricher.heldCount;
      evicted += m.enricher.table.evicted;
      if (this.revoking || !m.due(now, this.generation)) continue;
      this.withLock(slot, async () => {
        if (this.revoking || this.slots.get(m.partition) !== slot) return;
        try {
          await this.perform(slot, m.tick(Date.now(), this.generation));
        } finally {
          this.count(slot);
        }
      }).catch((err: unknown) => this.logger.error({ partition: m.partition, err: describeError(err) }, 'deadline flush failed'));
    }
    this.metrics.tableSize.set(size);
    this.metrics.dnsEntries.set(dnsEntries);
    this.metrics.held.set(held);
    const e = evicted - this.evictedSeen;
    if (e > 0) this.metrics.evicted.inc(e);
    this.evictedSeen = evicted;
  }

  reload(config: NetmonConfig): void {
    const filter = config.processFilter;
    this.ctx.enricher = { ...this.ctx.enricher, filter };
    for (const slot of this.slots.values()) slot.machine.setFilter(filter);
    this.logger.info({ processFilter: filter }, 'process_filter reloaded');
  }

  counters(): EnricherCounters {
    const sum = zeroCounters();
    for (const slot of this.slots.values()) {
      const c = slot.machine.counters;
      for (const k of Object.keys(sum) as Array<keyof EnricherCounters>) sum[k] += c[k];
    }
    return sum;
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.logger.info('stopping: finishing the batch, committing, leaving the group');
    if (this.timer) clearInterval(this.timer);
    // Waits for the batch in hand, which flushes and commits.
    await this.client.stopConsuming().catch((err) => this.logger.warn({ err: describeError(err) }, 'consumer stop'));
    for (const slot of this.slots.values()) await slot.lock;
    await this.client.close();
    for (const slot of this.slots.values()) await slot.output?.close();
    this.slots.clear();
    await this.server?.close();
    this.logger.info('stopped');
  }
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
