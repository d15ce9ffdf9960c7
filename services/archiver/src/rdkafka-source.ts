// ArchiveSource on librdkafka (@confluentinc/kafka-javascript's native API).
//
// Consumer: one group member on the archived topics (the events topic and the
// status topic), read_committed, manual commits, EAGER assignment
// (round-robin). The machines assume that a new
// generation reads every owned partition again from its committed offset
// (archiver.ts, onAssigned: every machine is revoked, new ones start empty),
// which is what an eager rebalance does; cooperative-sticky would keep the
// fetch position of a partition kept across the rebalance while its machine
// is replaced, and the records it held would be lost. @netmon/common's
// NativeConsumer fixes cooperative-sticky, so the consumer is built here from
// rdkafkaConsumerSettings(); the dead-letter producer is common's idempotent
// NativeProducer.
//
// One loop: consumeBatch() of @netmon/common (a batch across partitions in
// one Buffer, each message's key and value views of it), split per topic
// partition (references, no copy per record), one handlers.batch() per topic
// partition, in order, awaited. The messages fit InMessage as they are (number
// offsets). Errors the queue carries (a missing topic) are logged, not fatal.
// Where a batch ends past trailing control records (transaction markers) is
// the consumer's position: librdkafka advances it past the markers it served
// while filling the batch.
//
// A topic that does not exist yet (the status topic before the enricher first
// created it): librdkafka answers the consume with "Unknown topic or
// partition" and keeps the subscription; the topic is found at the next
// metadata refresh (every 10 s here, 5 min by default), which rebalances the
// group. A warning, not a crash: the other topic is archived meanwhile.
//
// The next consume is in flight while a batch is handled (the thread pool
// that runs it is gzip's too: waiting for it in turn idled the loop half its
// time). So where a batch ends is read as its consume returns, before the
// next one moves the position.
//
// Staleness, since the native calls overlap the consume in flight:
// - seek runs on a worker thread: the loop waits for every pending seek
//   before it consumes again, and a partition sought while a consume was in
//   flight has its messages of that consume dropped and is sought again to
//   the same offset (they may be from after the seek: the position moved past
//   them);
// - a rebalance while a consume is in flight may mix messages of both
//   generations in its result: the result is dropped and every partition
//   owned now is sought to its committed offset, where the new machines
//   expect to start.
import { randomUUID } from 'node:crypto';
import { CODES, type ConsumerGlobalConfig, KafkaConsumer, type LibrdKafkaError, type Message } from '@confluentinc/kafka-javascript';
import {
  type BatchError,
  DLQ_HEADERS,
  consumeBatch,
  deadLetterValue,
  type KafkaSettings,
  type Logger,
  NativeProducer,
  connectClient,
  describeError,
  forwardLogs,
  kafkaFailure,
  rdkafkaConsumerSettings,
} from '@netmon/common';
import type { BatchEnd, InMessage } from './partition';
import { type ArchiveSource, type DeadLetterRecord, type SourceHandlers, type TopicPartition, tpKey } from './source';

/** librdkafka's OFFSET_BEGINNING: where a partition without a committed offset starts (auto.offset.reset=earliest). */
const OFFSET_BEGINNING = -2;

export interface RdkafkaSourceOptions {
  /** The topics archived: one group member reads them all. */
  topics: string[];
  dlqTopic: string;
  groupId: string;
  /** Messages per consume() call (default 1000). */
  batchSize?: number;
}

/** How long a consume waits for its first message (then it takes what is ready). */
const CONSUME_WAIT_MS = 500;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** How often a warning about a missing subscribed topic repeats. */
const MISSING_TOPIC_WARN_MS = 60_000;

const CLIENT = 'archiver consumer';
const failure = (what: string, err: LibrdKafkaError) => kafkaFailure(CLIENT, what, err);

/** A consume's result: its messages per topic partition (tpKey). */
interface Consumed {
  /** The rebalance generation when it started. */
  generation: number;
  batches: Array<{ key: string; tp: TopicPartition; messages: Message[]; end: BatchEnd; epoch: number }>;
}

export class RdkafkaSource implements ArchiveSource {
  private readonly consumer: KafkaConsumer;
  private producer?: NativeProducer;
  private handlers?: SourceHandlers;
  private readonly memberId = `rdkafka-${randomUUID()}`;
  private readonly batchSize: number;
  /** Bumped by every rebalance event (called on the JS thread). */
  private generation = 0;
  /** Per topic partition (tpKey), bumped by every seek. */
  private readonly epochs = new Map<string, number>();
  /** Per topic partition (tpKey), the offset of its last seek (sought again if a consume overlapped it). */
  private readonly seekTargets = new Map<string, number>();
  private readonly pendingSeeks = new Set<Promise<void>>();
  private closing = false;
  private loop?: Promise<void>;
  private missingWarnedAt = 0;

  constructor(
    private readonly kafka: KafkaSettings,
    private readonly log: Logger,
    private readonly o: RdkafkaSourceOptions,
  ) {
    this.batchSize = o.batchSize ?? 1000;
    const config: ConsumerGlobalConfig = {
      ...rdkafkaConsumerSettings(kafka, 'archiver'),
      'group.id': o.groupId,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'isolation.level': 'read_committed',
      // Eager: see the top of this file.
      'partition.assignment.strategy': 'roundrobin',
      'session.timeout.ms': 30_000,
      'heartbeat.interval.ms': 3_000,
      'max.partition.fetch.bytes': 1 << 20,
      'fetch.max.bytes': 32 << 20,
      // A partition that becomes fetchable (its start offset found) waits for the fetch in flight: no longer than this.
      'fetch.wait.max.ms': 100,
      'queued.max.messages.kbytes': 32 << 10,
      // A subscribed topic created after the start is consumed within 10 s (see the top of this file).
      'topic.metadata.refresh.interval.ms': 10_000,
      // The client assigns and unassigns right after the 'rebalance' event (eager: the whole assignment).
      rebalance_cb: true,
    };
    this.consumer = new KafkaConsumer(config, { 'auto.offset.reset': 'earliest' });
    const name = String(config['client.id']);
    forwardLogs(this.consumer, this.log, name);
    this.consumer.on('rebalance', (err: LibrdKafkaError, assignment: Array<{ topic: string; partition: number }>) => this.rebalanced(err, assignment));
    this.consumer.on('rebalance.error', (err: unknown) => this.log.error({ err: describeError(err) }, 'assigning partitions failed'));
  }

  async start(h: SourceHandlers): Promise<void> {
    this.handlers = h;
    this.producer = await NativeProducer.connect(this.kafka, this.log, { clientSuffix: 'archiver-dlq', idempotent: true });
    try {
      await connectClient(this.consumer, CLIENT);
    } catch (err) {
      await this.producer.disconnect();
      throw err;
    }
    this.consumer.subscribe(this.o.topics);
    this.loop = this.run(h);
  }

  /** Called on the JS thread, just before the client assigns or unassigns (eager: the whole assignment). */
  private rebalanced(err: LibrdKafkaError, assignment: Array<{ topic: string; partition: number }>): void {
    this.generation++;
    this.seekTargets.clear();
    if (err.code === CODES.ERRORS.ERR__ASSIGN_PARTITIONS) {
      const partitions = assignment.filter((a) => this.o.topics.includes(a.topic)).map((a) => ({ topic: a.topic, partition: a.partition }));
      this.handlers?.assigned(partitions, this.memberId);
    } else if (err.code === CODES.ERRORS.ERR__REVOKE_PARTITIONS) {
      // Nothing more is committed for partitions no longer ours: their machines go now.
      this.handlers?.assigned([], this.memberId);
    } else {
      this.log.error({ err: describeError(err) }, 'rebalance failed');
    }
  }

  private async run(h: SourceHandlers): Promise<void> {
    let next: Promise<Consumed> | undefined;
    while (!this.closing) {
      const current = next ?? this.consume();
      next = undefined;
      let consumed: Consumed;
      try {
        consumed = await current;
      } catch (err) {
        if (this.closing) break;
        h.crashed(err, true);
        await sleep(1000);
        continue;
      }
      // The next batch is fetched while this one is handled (on a thread of
      // the pool, which gzip shares), unless a seek must land first.
      if (!this.closing && this.pendingSeeks.size === 0) next = this.consume();
      if (consumed.batches.length === 0 || this.closing) continue;
      if (this.generation !== consumed.generation) {
        // Messages of an earlier generation may be among them: read again from the committed offsets.
        await this.rewindToCommitted().catch((err: unknown) => h.crashed(err, true));
        continue;
      }
      for (const { key, tp, messages, end, epoch } of consumed.batches) {
        if (epoch !== (this.epochs.get(key) ?? 0)) {
          // Sought since this consume started: these may be from after the seek, which the position has passed.
          const to = this.seekTargets.get(key);
          if (to !== undefined) this.seek(tp, to);
          continue;
        }
        const { generation } = consumed;
        const stale = () => this.closing || this.generation !== generation || (this.epochs.get(key) ?? 0) !== epoch;
        if (stale()) continue;
        try {
          // The messages have number offsets and Buffer (or null) keys and values: InMessage as they are.
          await h.batch(tp, messages as readonly Message[] as readonly InMessage[], end, stale);
        } catch (err) {
          h.crashed(err, true);
        }
      }
    }
    await next?.catch(() => undefined);
  }

  /**
   * One consume, once pending seeks have landed: its messages per archived
   * topic partition, each with where it ends, read before the next consume
   * moves the position on.
   */
  private async consume(): Promise<Consumed> {
    while (this.pendingSeeks.size > 0) await Promise.all(this.pendingSeeks);
    const generation = this.generation;
    const epochs = new Map(this.epochs);
    let messages: Message[];
    let errors: BatchError[];
    try {
      ({ messages, errors } = await consumeBatch(this.consumer, this.batchSize, CONSUME_WAIT_MS));
    } catch (err) {
      throw failure('consuming', err as LibrdKafkaError);
    }
    for (const err of errors) {
      if (err.code === CODES.ERRORS.ERR_UNKNOWN_TOPIC_OR_PART) {
        // A subscribed topic does not exist (yet): the others are consumed meanwhile.
        if (Date.now() - this.missingWarnedAt > MISSING_TOPIC_WARN_MS) {
          this.missingWarnedAt = Date.now();
          this.log.warn({ topics: this.o.topics, err: describeError(err) }, 'a subscribed topic does not exist yet; it is read once it is created');
        }
      } else if (!this.closing) {
        this.log.warn({ topic: err.topic, partition: err.partition, err: describeError(err) }, 'consumer error; consuming on');
      }
    }
    const batches: Consumed['batches'] = [];
    if (messages.length === 0 || this.closing) return { generation, batches };
    for (const [key, list] of byPartition(messages)) {
      const tp: TopicPartition = { topic: list[0]!.topic, partition: list[0]!.partition };
      if (this.o.topics.includes(tp.topic)) batches.push({ key, tp, messages: list, end: this.endOf(tp, list), epoch: epochs.get(key) ?? 0 });
    }
    return { generation, batches };
  }

  /** Where the batch ends: past the control records served after its last message (the position), and the high watermark. */
  private endOf(tp: TopicPartition, batch: Message[]): BatchEnd {
    const last = batch[batch.length - 1]!.offset;
    let position = -1;
    let hw = -1;
    try {
      position = this.consumer.position([{ topic: tp.topic, partition: tp.partition }])[0]?.offset ?? -1;
      hw = this.consumer.getWatermarkOffsets(tp.topic, tp.partition).highOffset ?? -1;
    } catch {
      // Not assigned any more, or no watermark cached yet: what the batch itself tells.
    }
    return { lastOffset: Math.max(last, position - 1), highWatermark: Math.max(hw, last + 1) };
  }

  private async rewindToCommitted(): Promise<void> {
    const owned = this.consumer.assignments().filter((a) => this.o.topics.includes(a.topic));
    if (owned.length === 0) return;
    const committed = await new Promise<Array<{ topic: string; partition: number; offset?: number }>>((resolve, reject) =>
      this.consumer.committed(owned, 10_000, (err, tps) => (err ? reject(failure('reading committed offsets', err)) : resolve(tps))),
    );
    for (const tp of committed) this.seek(tp, tp.offset !== undefined && tp.offset >= 0 ? tp.offset : OFFSET_BEGINNING);
  }

  seek(tp: TopicPartition, offset: number): void {
    const key = tpKey(tp);
    this.epochs.set(key, (this.epochs.get(key) ?? 0) + 1);
    this.seekTargets.set(key, offset);
    const { topic, partition } = tp;
    const done = new Promise<void>((resolve) =>
      this.consumer.seek({ topic, partition, offset }, 0, (err) => {
        // A partition no longer assigned cannot be sought: its next owner reads from the committed offset.
        if (err) this.log.warn({ topic, partition, offset, err: describeError(err) }, 'seek failed');
        resolve();
      }),
    );
    this.pendingSeeks.add(done);
    void done.then(() => this.pendingSeeks.delete(done));
  }

  pause(tp: TopicPartition): void {
    this.pauseOrResume('pause', tp);
  }

  resume(tp: TopicPartition): void {
    this.pauseOrResume('resume', tp);
  }

  private pauseOrResume(what: 'pause' | 'resume', { topic, partition }: TopicPartition): void {
    try {
      this.consumer[what]([{ topic, partition }]);
    } catch (err) {
      // Not assigned (any more), or the client is leaving: its next owner starts unpaused.
      this.log.debug({ topic, partition, err: describeError(err) }, `${what} ignored`);
    }
  }

  pauseAll(): void {
    try {
      this.consumer.pause(this.consumer.assignments());
    } catch {
      // Not connected: nothing to pause.
    }
  }

  commit({ topic, partition }: TopicPartition, offset: number): Promise<void> {
    // commitCb: the synchronous commit on a worker thread (the JS thread goes on). Fenced by the group generation.
    const consumer = this.consumer as KafkaConsumer & {
      commitCb(tps: Array<{ topic: string; partition: number; offset: number }>, cb: (err: LibrdKafkaError | null) => void): void;
    };
    return new Promise((resolve, reject) =>
      consumer.commitCb([{ topic, partition, offset }], (err) => (err ? reject(failure(`committing ${topic}/${partition} at ${offset}`, err)) : resolve())),
    );
  }

  async deadLetter(d: DeadLetterRecord): Promise<void> {
    if (!this.producer) throw new Error('archiver source not started');
    const { value, headers: cut } = deadLetterValue(d.value);
    await this.producer.send(this.o.dlqTopic, [
      {
        // A null value stays null (librdkafka produces a tombstone), as kafkajs sent it.
        value: value as Buffer,
        key: d.key ?? undefined,
        headers: [
          ...Object.entries(cut).map(([k, v]) => ({ [k]: v })),
          { [DLQ_HEADERS.reason]: d.reason },
          { [DLQ_HEADERS.detail]: d.detail },
          { [DLQ_HEADERS.sourceTopic]: d.topic },
          { [DLQ_HEADERS.sourcePartition]: String(d.partition) },
          { [DLQ_HEADERS.sourceOffset]: String(d.offset) },
        ],
      },
    ]);
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.loop?.catch(() => undefined);
    let failed: unknown;
    if (this.consumer.isConnected()) {
      await new Promise<void>((resolve) =>
        this.consumer.disconnect((err: unknown) => {
          failed = err;
          resolve();
        }),
      );
    }
    await this.producer?.disconnect();
    if (failed) throw new Error(`consumer disconnect failed: ${describeError(failed)}`, { cause: failed });
  }
}

/** The messages of one consume() per topic partition (tpKey), in order (references: no copy per record). */
function byPartition(messages: Message[]): Map<string, Message[]> {
  const out = new Map<string, Message[]>();
  const { topic, partition } = messages[0]!;
  const last = messages[messages.length - 1]!;
  if (last.partition === partition && last.topic === topic && messages.every((m) => m.partition === partition && m.topic === topic)) {
    out.set(tpKey({ topic, partition }), messages);
    return out;
  }
  for (const m of messages) {
    const key = tpKey(m);
    const list = out.get(key);
    if (list) list.push(m);
    else out.set(key, [m]);
  }
  return out;
}
