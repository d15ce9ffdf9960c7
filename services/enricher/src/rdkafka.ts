// The enricher's client (client.ts) on librdkafka, through
// @confluentinc/kafka-javascript's native API.
//
// Consumer: one group member on the raw topic, read_committed, eager
// (round-robin) assignment: after every rebalance each owned partition is read
// again from its committed offset, which is what the machines' generations
// assume (partition.ts: a partition still ours after a rebalance is made ready
// again from the committed offset, its held records read again). One loop calls
// consume(N) and queues the messages per partition; each partition hands one
// batch at a time to the service (at most `concurrency` partitions at once) and
// is paused while too much of it waits. The rebalance callback is asynchronous:
// a revocation stops the partitions' batches and writes, waits for those in
// hand, then unassigns.
//
// Exactly once (KIP-447): ONE transactional producer per instance,
// transactional id "<group>.<raw topic>.<random>" (events, sensor status records,
// dead letters and changelog in one transaction), and every offset commit goes
// through sendOffsetsToTransaction with the consumer's group metadata, so the
// broker refuses it from a member of an older generation: a zombie is fenced by
// the group, not by its transactional id. Writes of several partitions that
// arrive while a transaction runs are grouped into the next one. A partition's
// "fence" waits until the group's offsets of the partition are stable (an
// OffsetFetch that require_stable retries while a previous owner's transaction
// holding them is open), so the changelog read next is complete. A killed
// instance's open transaction is aborted by the coordinator after
// transaction.timeout.ms (10 s, as Kafka Streams' exactly-once default).
//
// At least once: the idempotent NativeProducer of @netmon/common, then the
// consumer's commit.
//
// What @netmon/common's NativeConsumer/NativeProducer do not offer (an
// asynchronous rebalance callback, session and transaction timeouts, committed
// offsets, watermarks, incremental assignment of the changelog reader) is done
// here with @confluentinc/kafka-javascript directly.
import { randomUUID } from 'node:crypto';
import {
  CODES,
  type ConsumerGlobalConfig,
  KafkaConsumer,
  type LibrdKafkaError,
  type Message,
  type MessageHeader,
  type Metadata,
  Producer,
  type ProducerGlobalConfig,
  type TopicPartitionOffset,
} from '@confluentinc/kafka-javascript';
import {
  type KafkaSettings,
  connectClient,
  consumeBatch,
  forwardLogs,
  kafkaFailure,
  type Logger,
  NativeProducer,
  type NetmonConfig,
  NetmonError,
  type OutgoingMessage,
  describeError,
  produceBatch,
  rdkafkaConsumerSettings,
  rdkafkaSettings,
  withAdmin,
} from '@netmon/common';
import { type StateSink, applyStateMessage } from './changelog';
import type { ConsumerHandlers, EnricherClient, FlushOutput, RawBatch } from './client';
import type { EnricherSettings } from './config';
import type { MessageHeaders, OffsetCommit, OutMessage, RawMessage, TopicBatch } from './partition';

/** Messages asked of one consume() call. */
const CONSUME_MAX = 10_000;
/** How long a consume() call waits for its first message. */
const CONSUME_WAIT_MS = 100;
/** A partition is paused while this many of its messages wait. */
const QUEUE_HIGH = 30_000;
/** A batch handed to the service holds at most this many messages. */
const BATCH_MAX = 20_000;
/** A transaction must end within this (and a killed instance's is aborted after it). */
const TRANSACTION_TIMEOUT_MS = 10_000;
/** Offsets of a partition become stable once a previous owner's transaction ended: at most a transaction timeout, plus the coordinator's 10 s sweep. */
const STABLE_TIMEOUT_MS = 60_000;
/** The timeout given to librdkafka's transactional calls. */
const TRANSACTIONAL_CALL_MS = 30_000;
/** When a transactional call has not answered by then, it never will: its producer is replaced. */
const CALL_DEADLINE_MS = TRANSACTIONAL_CALL_MS + 15_000;
/** How long a restore waits for its changelog partition's leader: failovers take seconds (broker.session.timeout.ms 9 s). */
const WATERMARKS_TIMEOUT_MS = 120_000;

const ERR = CODES.ERRORS;

/** What the typings of 1.10.1 leave out. */
interface Incremental {
  incrementalAssign(assignments: TopicPartitionOffset[] | Array<{ topic: string; partition: number }>): void;
  incrementalUnassign(assignments: Array<{ topic: string; partition: number }>): void;
  setDefaultIsTimeoutOnlyForFirstMessage(v: boolean): void;
  commitCb(offsets: TopicPartitionOffset[], cb: (err: LibrdKafkaError | null) => void): void;
}

function call(client: string, what: string, fn: (cb: (err: LibrdKafkaError | null | undefined) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => fn((err) => (err ? reject(kafkaFailure(client, what, err)) : resolve())));
}

/** A transactional call that never answered: its producer is not to be trusted again. */
export class StalledCall extends NetmonError {}

/**
 * A transactional call of librdkafka (given TRANSACTIONAL_CALL_MS itself),
 * with a deadline of our own: sendOffsetsToTransaction() can block past its
 * timeout, for good, when the group's coordinator dies (librdkafka issues
 * #5456 and #5511, open): without this deadline the partition's write, and
 * with it the revocation and the shutdown, would wait forever.
 */
function transactionalCall(client: string, what: string, fn: (cb: (err: LibrdKafkaError | null | undefined) => void) => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new StalledCall(`${client}: ${what}: no answer after ${CALL_DEADLINE_MS / 1000} s (its own timeout is ${TRANSACTIONAL_CALL_MS / 1000} s)`)),
      CALL_DEADLINE_MS,
    );
  });
  return Promise.race([call(client, what, fn), deadline]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function disconnect(client: Producer | KafkaConsumer, timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    try {
      client.disconnect(() => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

/** kafkajs-style headers (the dead letters') → librdkafka's list. */
function headerList(headers: MessageHeaders | undefined): MessageHeader[] | undefined {
  if (!headers) return undefined;
  const out: MessageHeader[] = [];
  for (const [key, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    for (const x of Array.isArray(v) ? v : [v]) out.push({ [key]: typeof x === 'string' ? Buffer.from(x) : x });
  }
  return out;
}

/** librdkafka's header list → kafkajs-style headers. */
function headerMap(headers: MessageHeader[]): MessageHeaders {
  const out: MessageHeaders = {};
  for (const h of headers) {
    for (const [key, v] of Object.entries(h)) {
      const value = typeof v === 'string' ? v : Buffer.from(v as Buffer);
      const prev = out[key];
      out[key] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
    }
  }
  return out;
}

/** Keys as bytes: librdkafka's binding would cut a string key at its first NUL (the changelog's keys hold NULs). */
function keyOf(k: Buffer | string | null | undefined): Buffer | undefined {
  return k === null || k === undefined ? undefined : Buffer.isBuffer(k) ? k : Buffer.from(k);
}

function bytesOf(v: Buffer | string | null): Buffer | null {
  return v === null || Buffer.isBuffer(v) ? v : Buffer.from(v);
}

/** The changelog could not be read. */
export class StateError extends NetmonError {}

/** A pending write of one partition, for the next transaction. */
interface Write {
  requests: readonly TopicBatch[][];
  commit: OffsetCommit;
  resolve(): void;
  reject(err: Error): void;
}

/**
 * The instance's transactional producer. Writes queue up while a transaction
 * runs and go together in the next one: their messages in order, then their
 * offsets with the consumer's group metadata, then the commit. A failure
 * aborts and fails every write of the transaction; a fatal one (the producer
 * fenced or broken) replaces the producer.
 */
class Transactions {
  private producer: Producer | null = null;
  private opening: Promise<Producer> | null = null;
  private pending: Write[] = [];
  private running: Promise<void> | null = null;
  private broken = false;
  private closed = false;
  /** The call in progress and since when: what a stalled revocation or stop reports. */
  private step: { what: string; since: number } | null = null;
  readonly name: string;

  constructor(
    private readonly kafka: KafkaSettings,
    private readonly logger: Logger,
    private readonly transactionalId: string,
    private readonly consumer: () => KafkaConsumer,
  ) {
    this.name = `${kafka.clientId}-enricher-txn`;
  }

  /** Connects and initialises the transactional id. */
  open(): Promise<Producer> {
    if (this.producer && !this.broken) return Promise.resolve(this.producer);
    this.opening ??= this.create().finally(() => {
      this.opening = null;
    });
    return this.opening;
  }

  private async create(): Promise<Producer> {
    const old = this.producer;
    this.producer = null;
    this.broken = false;
    if (old) await disconnect(old, 5000);
    const config: ProducerGlobalConfig = {
      ...rdkafkaSettings(this.kafka, 'enricher-txn'),
      'transactional.id': this.transactionalId,
      'enable.idempotence': true,
      'transaction.timeout.ms': TRANSACTION_TIMEOUT_MS,
      'compression.codec': this.kafka.compression,
      'linger.ms': 5,
      'batch.num.messages': 100_000,
      'queue.buffering.max.messages': 2_000_000,
      'queue.buffering.max.kbytes': 1_048_576,
      // commitTransaction() flushes and fails on any undelivered message: no delivery reports needed.
      dr_cb: false,
    };
    const producer = new Producer(config, { 'message.timeout.ms': TRANSACTION_TIMEOUT_MS, partitioner: 'murmur2_random' });
    forwardLogs(producer, this.logger, this.name, () => {
      this.broken = true;
    });
    await connectClient(producer, this.name);
    producer.setPollInterval(100);
    await transactionalCall(this.name, 'initializing transactions', (cb) => producer.initTransactions(TRANSACTIONAL_CALL_MS, cb));
    this.producer = producer;
    return producer;
  }

  write(requests: readonly TopicBatch[][], commit: OffsetCommit): Promise<void> {
    if (this.closed) return Promise.reject(new NetmonError('the transactional producer is closed'));
    return new Promise((resolve, reject) => {
      this.pending.push({ requests, commit, resolve, reject });
      this.running ??= this.drain().finally(() => {
        this.running = null;
      });
    });
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const writes = this.pending;
      this.pending = [];
      try {
        await this.transaction(writes);
        for (const w of writes) w.resolve();
      } catch (err) {
        for (const w of writes) w.reject(err as Error);
      }
    }
  }

  /** The transactional call in progress, if any, and how long it has taken. */
  inProgress(): { step: string; ms: number } | null {
    return this.step && { step: this.step.what, ms: Date.now() - this.step.since };
  }

  private async transaction(writes: Write[]): Promise<void> {
    this.step = { what: 'opening the producer', since: Date.now() };
    try {
      await this.transactionSteps(writes);
    } finally {
      this.step = null;
    }
  }

  private async transactionSteps(writes: Write[]): Promise<void> {
    const producer = await this.open();
    const { name } = this;
    await call(name, 'beginning a transaction', (cb) => producer.beginTransaction(cb));
    try {
      this.step = { what: 'producing', since: Date.now() };
      for (const w of writes) for (const chunk of w.requests) for (const tb of chunk) await this.produce(producer, tb.topic, tb.messages);
      const offsets = writes.map((w) => ({ topic: w.commit.topic, partition: w.commit.partition, offset: w.commit.offset }));
      this.step = { what: 'sending offsets to the transaction', since: Date.now() };
      await this.retriable('sending offsets to the transaction', (cb) =>
        producer.sendOffsetsToTransaction(offsets, this.consumer(), TRANSACTIONAL_CALL_MS, cb),
      );
      this.step = { what: 'committing the transaction', since: Date.now() };
      await this.retriable('committing the transaction', (cb) => producer.commitTransaction(TRANSACTIONAL_CALL_MS, cb));
    } catch (err) {
      this.step = { what: 'aborting the transaction', since: Date.now() };
      const cause = (err as { cause?: LibrdKafkaError }).cause;
      if (cause?.isFatal || this.broken || err instanceof StalledCall) {
        this.broken = true;
      } else {
        await transactionalCall(name, 'aborting the transaction', (cb) => producer.abortTransaction(TRANSACTIONAL_CALL_MS, cb)).catch((e: unknown) => {
          this.logger.warn({ err: describeError(e) }, 'abort failed: the transactional producer is replaced');
          this.broken = true;
        });
      }
      throw err;
    }
  }

  /** A transactional call, again while librdkafka says it may succeed on retry. */
  private async retriable(what: string, fn: (cb: (err: LibrdKafkaError) => void) => void): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await transactionalCall(this.name, what, fn);
      } catch (err) {
        const cause = (err as { cause?: LibrdKafkaError }).cause;
        if (!cause?.isRetriable || attempt >= 5) throw err;
        await sleep(20 * attempt);
      }
    }
  }

  private async produce(producer: Producer, topic: string, messages: readonly OutMessage[]): Promise<void> {
    try {
      await produceBatch(producer, topic, messages);
    } catch (err) {
      throw kafkaFailure(this.name, `producing to ${topic}`, err as LibrdKafkaError);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.running?.catch(() => {});
    const p = this.producer ?? (await this.opening?.catch(() => null));
    this.producer = null;
    if (p) await disconnect(p);
  }
}

/** A partition's output on the shared transactional producer. */
class PartitionOutput implements FlushOutput {
  constructor(
    private readonly client: RdkafkaClient,
    private readonly partition: number,
  ) {}

  write(requests: readonly TopicBatch[][], commit: OffsetCommit): Promise<void> {
    return this.client.transact(this.partition, requests, commit);
  }

  /** The producer is the instance's: closed by the client. */
  async close(): Promise<void> {}
}

/** At least once: acknowledged sends on the idempotent producer, then the consumer's commit. */
class SharedOutput implements FlushOutput {
  constructor(
    private readonly producer: NativeProducer,
    private readonly client: RdkafkaClient,
  ) {}

  async write(requests: readonly TopicBatch[][], commit: OffsetCommit): Promise<void> {
    for (const chunk of requests) {
      await Promise.all(
        chunk.map((tb) =>
          this.producer.send(
            tb.topic,
            tb.messages.map((m): OutgoingMessage => {
              const o: OutgoingMessage = { value: bytesOf(m.value) as Buffer };
              const key = keyOf(m.key);
              if (key) o.key = key;
              if (m.partition !== undefined) o.partition = m.partition;
              const h = headerList(m.headers);
              if (h) o.headers = h;
              return o;
            }),
          ),
        ),
      );
    }
    await this.client.commit(commit);
  }

  async close(): Promise<void> {}
}

/** A raw partition owned now. */
interface Owned {
  partition: number;
  /** Bumped by a seek: batches of an older epoch are stale. */
  epoch: number;
  queue: Message[][];
  queued: number;
  paused: boolean;
  /** Messages of consume() calls numbered up to this were fetched before a seek: dropped. */
  dropThrough: number;
  /** A seek to apply before the next consume() call. */
  seekTo: number | undefined;
  /** The batch in the service's hands. */
  batch: Promise<void> | undefined;
  /** The partition's write in a transaction. */
  write: Promise<void> | undefined;
  /** Being revoked: no new batch. */
  revoked: boolean;
}

interface Restore {
  end: number;
  sink: StateSink;
  records: number;
  /** The offset of the latest end of partition reached. */
  eof: number;
  resolve(): void;
  reject(err: Error): void;
}

/**
 * Reads changelog partitions on demand: one consumer outside any group
 * (read_committed, partition EOF events), each partition assigned while it is
 * restored, from its start until the end taken when the restore began.
 */
class StateReader {
  private consumer: KafkaConsumer | null = null;
  private readonly restores = new Map<number, Restore>();
  private loop: Promise<void> | null = null;
  private readonly name: string;

  constructor(
    private readonly kafka: KafkaSettings,
    private readonly topic: string,
    private readonly logger: Logger,
  ) {
    this.name = `${kafka.clientId}-enricher-state`;
  }

  async start(): Promise<void> {
    const config: ConsumerGlobalConfig = {
      ...rdkafkaConsumerSettings(this.kafka, 'enricher-state'),
      'group.id': `netmon-enricher-state-${randomUUID()}`,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'isolation.level': 'read_committed',
      'enable.partition.eof': true,
      'fetch.wait.max.ms': 50,
      // Idle between restores: without this its view of the changelog's leaders could be 5 min old.
      'topic.metadata.refresh.interval.ms': 30_000,
    };
    const consumer = new KafkaConsumer(config, { 'auto.offset.reset': 'earliest' });
    forwardLogs(consumer, this.logger, this.name);
    consumer.on('partition.eof', (e: TopicPartitionOffset) => {
      // Emitted before consume() hands over the messages it follows: noted, acted on after them.
      const r = this.restores.get(e.partition);
      if (r && e.topic === this.topic) r.eof = Math.max(r.eof, e.offset);
    });
    await connectClient(consumer, this.name);
    consumer.setDefaultConsumeTimeout(100);
    (consumer as unknown as Incremental).setDefaultIsTimeoutOnlyForFirstMessage(true);
    this.consumer = consumer;
  }

  /** The cluster's topics and brokers. */
  metadata(): Promise<Metadata> {
    const c = this.consumer;
    if (!c) return Promise.reject(new StateError('state reader not started'));
    return new Promise((resolve, reject) =>
      c.getMetadata({ timeout: 10_000 }, (err, data) => (err ? reject(kafkaFailure(this.name, 'listing topics', err)) : resolve(data))),
    );
  }

  private watermarks(partition: number): Promise<{ lowOffset: number; highOffset: number }> {
    const c = this.consumer!;
    return new Promise((resolve, reject) =>
      c.queryWatermarkOffsets(this.topic, partition, 10_000, (err, o) =>
        err ? reject(kafkaFailure(this.name, `watermarks of ${this.topic}[${partition}]`, err)) : resolve(o),
      ),
    );
  }

  /**
   * The partition's watermarks, asked again until its leader answers. A
   * changelog created a moment ago may not be known yet, and after its
   * leader's failure librdkafka can keep calling the partition unknown until
   * its metadata is refreshed: this consumer has no assignment between
   * restores, so nothing else refreshes it. Each failure asks the cluster for
   * the topic's metadata afresh; a failover takes seconds, the wait is bounded.
   */
  private async currentWatermarks(partition: number): Promise<{ lowOffset: number; highOffset: number }> {
    const deadline = Date.now() + WATERMARKS_TIMEOUT_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.watermarks(partition);
      } catch (err) {
        if (Date.now() >= deadline) throw err;
        if (attempt === 5) this.logger.warn({ partition, err: describeError(err) }, 'changelog partition unavailable; waiting for its leader');
        await this.refreshMetadata().catch(() => {});
        await sleep(Math.min(2000, 100 * attempt));
      }
    }
  }

  /** A metadata request for the changelog topic, whose answer updates the client's cache. */
  private refreshMetadata(): Promise<void> {
    const c = this.consumer;
    if (!c) return Promise.reject(new StateError('state reader not started'));
    return new Promise((resolve, reject) => c.getMetadata({ topic: this.topic, timeout: 5000 }, (err) => (err ? reject(err) : resolve())));
  }

  /** Feeds changelog partition `partition` from its start to its current end into `sink`. */
  async restore(partition: number, sink: StateSink, timeoutMs = STABLE_TIMEOUT_MS): Promise<{ records: number }> {
    if (!this.consumer) throw new StateError('state reader not started');
    if (this.restores.has(partition)) throw new StateError(`changelog ${this.topic}[${partition}] is being restored already`);
    const w = await this.currentWatermarks(partition);
    if (w.highOffset <= w.lowOffset) return { records: 0 };
    const consumer = this.consumer;
    const r: Restore = { end: w.highOffset, sink, records: 0, eof: -1, resolve: () => {}, reject: () => {} };
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.finish(partition, new StateError(`restoring ${this.topic}[${partition}] to offset ${r.end} took over ${timeoutMs} ms`));
      }, timeoutMs);
      r.resolve = () => {
        clearTimeout(timer);
        resolve();
      };
      r.reject = (err) => {
        clearTimeout(timer);
        reject(err);
      };
    });
    this.restores.set(partition, r);
    (consumer as unknown as Incremental).incrementalAssign([{ topic: this.topic, partition, offset: w.lowOffset }]);
    this.loop ??= this.run().finally(() => {
      this.loop = null;
    });
    await done;
    return { records: r.records };
  }

  private finish(partition: number, err?: Error): void {
    const r = this.restores.get(partition);
    if (!r) return;
    this.restores.delete(partition);
    try {
      (this.consumer as unknown as Incremental).incrementalUnassign([{ topic: this.topic, partition }]);
    } catch (e) {
      this.logger.warn({ partition, err: describeError(e) }, 'changelog unassign failed');
    }
    if (err) r.reject(err);
    else r.resolve();
  }

  private async run(): Promise<void> {
    const c = this.consumer!;
    while (this.restores.size > 0 && this.consumer) {
      let messages: Message[];
      try {
        messages = await new Promise<Message[]>((resolve, reject) => c.consume(5000, (err, ms) => (err ? reject(err) : resolve(ms))));
      } catch (err) {
        this.logger.warn({ err: describeError(err) }, 'changelog read failed; reading on');
        await sleep(100);
        continue;
      }
      for (const m of messages) {
        const r = this.restores.get(m.partition);
        if (!r) continue;
        try {
          if (applyStateMessage({ key: (m.key as Buffer | undefined) ?? null, value: m.value ?? null }, r.sink)) r.records++;
        } catch (err) {
          this.logger.warn({ partition: m.partition, offset: m.offset, err: describeError(err) }, 'unreadable changelog record skipped');
        }
        if (m.offset + 1 >= r.end) this.finish(m.partition);
      }
      for (const [p, r] of this.restores) if (r.eof >= r.end) this.finish(p);
    }
  }

  async stop(): Promise<void> {
    for (const p of [...this.restores.keys()]) this.finish(p, new StateError('state reader stopped'));
    await this.loop?.catch(() => {});
    const c = this.consumer;
    this.consumer = null;
    if (c) await disconnect(c);
  }
}

export class RdkafkaClient implements EnricherClient {
  private consumer: KafkaConsumer | null = null;
  private readonly reader: StateReader;
  private readonly txn: Transactions | null;
  private sharedProducer: NativeProducer | null = null;
  private sharedOutput: SharedOutput | null = null;
  private handlers: ConsumerHandlers | null = null;
  private readonly owned = new Map<number, Owned>();
  private concurrency = 1;
  private active = 0;
  /** Partitions with a batch ready, waiting for a free slot of `concurrency`. */
  private readonly ready = new Set<number>();
  private calls = 0;
  private running = false;
  private loop: Promise<void> | null = null;
  private rebalancing: Promise<void> = Promise.resolve();
  private closing = false;
  private readonly name: string;
  private readonly raw: string;

  constructor(
    private readonly config: NetmonConfig,
    private readonly settings: EnricherSettings,
    private readonly logger: Logger,
  ) {
    this.name = `${config.kafka.clientId}-enricher`;
    this.raw = config.topics.raw;
    this.reader = new StateReader(config.kafka, settings.stateTopic, logger);
    this.txn = config.enricher.exactlyOnce
      ? new Transactions(config.kafka, logger, `${settings.transactionalIdPrefix}.${randomUUID().slice(0, 8)}`, () => this.native())
      : null;
  }

  private native(): KafkaConsumer {
    if (!this.consumer) throw new NetmonError('the enricher consumer is not connected');
    return this.consumer;
  }

  async start(): Promise<void> {
    // One client after the other: a refused connection (credentials, TLS)
    // fails the first alone, with one line, before the others try.
    await this.reader.start();
    await this.ensureTopics();
    if (this.txn) await this.txn.open();
    else {
      this.sharedProducer = await NativeProducer.connect(this.config.kafka, this.logger, { clientSuffix: 'enricher', idempotent: true });
      this.sharedOutput = new SharedOutput(this.sharedProducer, this);
    }
    const config: ConsumerGlobalConfig = {
      ...rdkafkaConsumerSettings(this.config.kafka, 'enricher'),
      'group.id': this.config.enricher.groupId,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'isolation.level': 'read_committed',
      // Eager: see the head of the file.
      'partition.assignment.strategy': 'roundrobin',
      // A killed instance's partitions move after 10 s (librdkafka's default is 45 s).
      'session.timeout.ms': 10_000,
      'heartbeat.interval.ms': 1000,
      'fetch.wait.max.ms': 100,
      'max.partition.fetch.bytes': 4 << 20,
      'fetch.max.bytes': 32 << 20,
      'queued.max.messages.kbytes': 32_768,
      rebalance_cb: (err: LibrdKafkaError, assignment: Array<{ topic: string; partition: number }>) => this.onRebalance(err, assignment),
    };
    const consumer = new KafkaConsumer(config, { 'auto.offset.reset': 'earliest' });
    forwardLogs(consumer, this.logger, this.name, (err) => this.handlers?.crashed(kafkaFailure(this.name, 'consuming', err), false));
    await connectClient(consumer, this.name);
    this.consumer = consumer;
  }

  private async ensureTopics(): Promise<void> {
    const { topics } = this.config;
    const meta = await this.reader.metadata();
    const replicationFactor = Math.min(3, meta.brokers.length);
    const existing = new Map(meta.topics.map((t) => [t.name, t.partitions.length]));
    await withAdmin(this.config.kafka, async (admin) => {
      if (!existing.has(topics.raw)) await admin.createTopic(topics.raw, topics.partitions, replicationFactor);
      if (!existing.has(topics.events)) await admin.createTopic(topics.events, topics.partitions, replicationFactor);
      if (!existing.has(topics.status)) await admin.createTopic(topics.status, topics.partitions, replicationFactor);
      if (!existing.has(topics.dlq)) await admin.createTopic(topics.dlq, 1, replicationFactor);
      if (!existing.has(this.settings.stateTopic)) {
        // One changelog partition per raw partition.
        const numPartitions = existing.get(topics.raw) ?? topics.partitions;
        await admin.createTopic(this.settings.stateTopic, numPartitions, replicationFactor, { 'cleanup.policy': 'compact', 'min.compaction.lag.ms': '60000' });
      }
    });
  }

  async consume(handlers: ConsumerHandlers, concurrency: number): Promise<void> {
    this.handlers = handlers;
    this.concurrency = Math.max(1, concurrency);
    this.native().subscribe([this.raw]);
    this.running = true;
    this.loop = this.run();
  }

  /** The consume loop: seeks, then consume(N), then the messages queued per partition. */
  private async run(): Promise<void> {
    const c = this.native();
    while (this.running) {
      await this.applySeeks(c);
      const n = ++this.calls;
      let messages: Message[];
      try {
        // Raw messages' keys (host ids) are never read: the records carry them.
        const batch = await consumeBatch(c, CONSUME_MAX, CONSUME_WAIT_MS, false);
        messages = batch.messages;
        for (const e of batch.errors) this.logger.warn({ err: describeError(e), partition: e.partition }, 'consumer error; consuming on');
      } catch (err) {
        const e = err as LibrdKafkaError;
        if (e.isFatal) {
          this.running = false;
          this.handlers?.crashed(kafkaFailure(this.name, 'consuming', e), false);
          break;
        }
        this.logger.warn({ err: describeError(err) }, 'consume failed; consuming on');
        await sleep(100);
        continue;
      }
      if (messages.length === 0) continue;
      let byPartition: Map<number, Message[]> | undefined;
      let last: Owned | undefined;
      let lastList: Message[] | undefined;
      for (const m of messages) {
        if (last?.partition !== m.partition) {
          last = this.owned.get(m.partition);
          byPartition ??= new Map();
          lastList = byPartition.get(m.partition);
          if (!lastList) {
            lastList = [];
            byPartition.set(m.partition, lastList);
          }
        }
        if (!last || n <= last.dropThrough || m.topic !== this.raw) continue;
        lastList!.push(m);
      }
      if (!byPartition) continue;
      for (const [p, list] of byPartition) {
        const o = this.owned.get(p);
        if (!o || list.length === 0) continue;
        o.queue.push(list);
        o.queued += list.length;
        if (o.queued >= QUEUE_HIGH && !o.paused) {
          o.paused = true;
          this.pause(o, true);
        }
        this.pump(o);
      }
    }
  }

  private pause(o: Owned, on: boolean): void {
    try {
      const tp = [{ topic: this.raw, partition: o.partition }];
      if (on) this.native().pause(tp);
      else this.native().resume(tp);
    } catch (err) {
      this.logger.warn({ partition: o.partition, err: describeError(err) }, on ? 'pause failed' : 'resume failed');
    }
  }

  private async applySeeks(c: KafkaConsumer): Promise<void> {
    for (const o of this.owned.values()) {
      const offset = o.seekTo;
      if (offset === undefined) continue;
      o.seekTo = undefined;
      try {
        await call(this.name, `seeking ${this.raw}[${o.partition}] to ${offset}`, (cb) =>
          c.seek({ topic: this.raw, partition: o.partition, offset }, 5000, cb),
        );
      } catch (err) {
        if (this.owned.get(o.partition) !== o) continue; // revoked meanwhile
        this.logger.warn({ partition: o.partition, offset, err: describeError(err) }, 'seek failed; trying again');
        o.seekTo ??= offset;
        await sleep(100);
      }
    }
  }

  /** Hands the partition's queued messages to the service as one batch, when it has none in hand and a slot is free. */
  private pump(o: Owned): void {
    if (o.batch || o.queued === 0 || o.revoked || !this.running || this.owned.get(o.partition) !== o) return;
    if (this.active >= this.concurrency) {
      this.ready.add(o.partition);
      return;
    }
    this.ready.delete(o.partition);
    let messages: Message[];
    if (o.queued <= BATCH_MAX) {
      messages = o.queue.length === 1 ? o.queue[0]! : o.queue.flat();
      o.queue = [];
      o.queued = 0;
    } else {
      messages = [];
      while (messages.length < BATCH_MAX && o.queue.length > 0) for (const m of o.queue.shift()!) messages.push(m);
      o.queued -= messages.length;
    }
    if (o.paused && o.queued < QUEUE_HIGH / 2) {
      o.paused = false;
      this.pause(o, false);
    }
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      // librdkafka's header list → the headers a dead letter keeps.
      if (m.headers) messages[i] = { ...m, headers: headerMap(m.headers) } as unknown as Message;
    }
    const epoch = o.epoch;
    const stale = () => o.epoch !== epoch || o.revoked || this.owned.get(o.partition) !== o;
    const last = messages[messages.length - 1]!;
    let high = last.offset + 1;
    try {
      high = Math.max(high, this.native().getWatermarkOffsets(this.raw, o.partition).highOffset);
    } catch {
      // not known yet: the batch's end
    }
    const batch: RawBatch = {
      partition: o.partition,
      messages: messages as unknown as RawMessage[],
      highWatermark: high,
      stale,
      live: () => !stale() && this.running,
      consumed: () => {},
      heartbeat: () => Promise.resolve(),
    };
    this.active++;
    o.batch = this.handlers!.batch(batch)
      .catch((err: unknown) => {
        // As kafkajs restarts a crashed consumer: read the partition again
        // from its committed offset in a new generation.
        this.handlers?.crashed(err as Error, true);
        if (this.owned.get(o.partition) === o) void this.reread(o);
      })
      .finally(() => {
        o.batch = undefined;
        this.active--;
        this.pump(o);
        for (const p of [...this.ready]) {
          if (this.active >= this.concurrency) break;
          const r = this.owned.get(p);
          if (r) this.pump(r);
          else this.ready.delete(p);
        }
      });
  }

  private async reread(o: Owned): Promise<void> {
    try {
      const offset = await this.committed(o.partition);
      this.handlers?.assigned([...this.owned.keys()]);
      this.seek(o.partition, offset);
    } catch (err) {
      this.logger.warn({ partition: o.partition, err: describeError(err) }, 'reading the partition again failed');
    }
  }

  /** librdkafka's rebalance callback: handled in order, asynchronously (librdkafka waits for assign/unassign). */
  private onRebalance(err: LibrdKafkaError, assignment: Array<{ topic: string; partition: number }>): void {
    this.rebalancing = this.rebalancing
      .then(() => this.rebalance(err?.code, assignment))
      .catch((e: unknown) => this.logger.warn({ err: describeError(e) }, 'rebalance handling failed'));
  }

  private async rebalance(code: number | undefined, assignment: Array<{ topic: string; partition: number }>): Promise<void> {
    const c = this.consumer;
    if (!c) return;
    if (code === ERR.ERR__ASSIGN_PARTITIONS) {
      c.assign(assignment);
      for (const tp of assignment) {
        if (tp.topic !== this.raw) continue;
        this.owned.set(tp.partition, {
          partition: tp.partition,
          epoch: 0,
          queue: [],
          queued: 0,
          paused: false,
          dropThrough: -1,
          seekTo: undefined,
          batch: undefined,
          write: undefined,
          revoked: false,
        });
      }
      if (!this.closing) this.handlers?.assigned([...this.owned.keys()].sort((a, b) => a - b));
      return;
    }
    // Revoked (all of them: eager). No batch starts any more, the one in
    // hand goes stale (it flushes, reads nothing) and the deadline flushes
    // pause; what is in hand commits while this member is still of the old
    // generation. Then the partitions go, and a write of them is refused: a
    // transaction holding their offsets must not commit after another member
    // read them.
    const gone = [...this.owned.values()];
    this.ready.clear();
    for (const o of gone) {
      o.revoked = true;
      o.epoch++;
      o.queue = [];
      o.queued = 0;
    }
    if (!this.closing) this.handlers?.revoking();
    await this.settled(gone, 'revoking the partitions');
    for (const o of gone) if (this.owned.get(o.partition) === o) this.owned.delete(o.partition);
    try {
      c.unassign();
    } catch (err) {
      if (!this.closing) this.logger.warn({ err: describeError(err) }, 'unassign failed');
    }
  }

  /**
   * Waits until no batch or write of `partitions` is in hand. librdkafka
   * waits for the unassign meanwhile; when that takes long, says every 15 s
   * what it waits for, so a stall names its cause.
   */
  private async settled(partitions: Owned[], why: string): Promise<void> {
    const since = Date.now();
    const timer = setInterval(() => {
      const waiting = partitions.filter((o) => o.batch || o.write).map((o) => ({ partition: o.partition, batch: !!o.batch, write: !!o.write }));
      this.logger.warn({ waiting, transaction: this.txn?.inProgress(), waited_ms: Date.now() - since }, `${why}: still waiting for batches and writes`);
    }, 15_000);
    try {
      while (partitions.some((o) => o.batch || o.write)) {
        await Promise.all(partitions.flatMap((o) => [o.batch?.catch(() => {}), o.write?.catch(() => {})]));
      }
    } finally {
      clearInterval(timer);
    }
  }

  /** A partition's transactional write: refused once the partition is revoked. */
  transact(partition: number, requests: readonly TopicBatch[][], commit: OffsetCommit): Promise<void> {
    const o = this.owned.get(partition);
    if (!o || !this.txn) return Promise.reject(new NetmonError(`raw partition ${partition} is not owned any more: nothing is committed for it`));
    const w = this.txn.write(requests, commit);
    o.write = w;
    return w.finally(() => {
      if (o.write === w) o.write = undefined;
    });
  }

  /** At least once: the consumer's commit of `commit`, acknowledged. */
  commit(commit: OffsetCommit): Promise<void> {
    if (!this.owned.has(commit.partition)) return Promise.reject(new NetmonError(`raw partition ${commit.partition} is not owned any more`));
    return call(this.name, 'committing offsets', (cb) =>
      (this.native() as unknown as Incremental).commitCb([{ topic: commit.topic, partition: commit.partition, offset: commit.offset }], (err) => cb(err)),
    );
  }

  async fence(partition: number): Promise<FlushOutput> {
    if (!this.txn) throw new NetmonError('no transactional output: the enricher runs at least once');
    await this.txn.open();
    // The offsets are stable once no transaction of a previous owner holds
    // them open: the changelog read next is then complete.
    await this.committed(partition);
    return new PartitionOutput(this, partition);
  }

  shared(): FlushOutput {
    if (!this.sharedOutput) throw new NetmonError('no shared output: the enricher runs exactly once');
    return this.sharedOutput;
  }

  /** The group's committed offset (stable: read_committed makes librdkafka wait out open transactions), else the partition's start. */
  async committed(partition: number): Promise<number> {
    const c = this.native();
    const tps = await new Promise<TopicPartitionOffset[]>((resolve, reject) =>
      c.committed([{ topic: this.raw, partition }], STABLE_TIMEOUT_MS, (err, r) =>
        err ? reject(kafkaFailure(this.name, `committed offset of ${this.raw}[${partition}]`, err)) : resolve(r),
      ),
    );
    const tp = tps.find((t) => t.partition === partition);
    if (tp?.error) throw kafkaFailure(this.name, `committed offset of ${this.raw}[${partition}]`, tp.error);
    if (tp && tp.offset >= 0) return tp.offset;
    const w = await new Promise<{ lowOffset: number }>((resolve, reject) =>
      c.queryWatermarkOffsets(this.raw, partition, 10_000, (err, o) =>
        err ? reject(kafkaFailure(this.name, `watermarks of ${this.raw}[${partition}]`, err)) : resolve(o),
      ),
    );
    return w.lowOffset;
  }

  restore(partition: number, sink: StateSink): Promise<{ records: number }> {
    return this.reader.restore(partition, sink);
  }

  seek(partition: number, offset: number): void {
    const o = this.owned.get(partition);
    if (!o) return; // revoked: nothing of it is read any more
    o.epoch++;
    o.queue = [];
    o.queued = 0;
    o.dropThrough = this.calls;
    o.seekTo = offset;
    this.ready.delete(partition);
  }

  async stopConsuming(): Promise<void> {
    this.running = false;
    await this.loop?.catch(() => {});
    this.ready.clear();
    await Promise.all([...this.owned.values()].map((o) => o.batch?.catch(() => {})));
  }

  async close(): Promise<void> {
    this.closing = true;
    this.running = false;
    await this.loop?.catch(() => {});
    const c = this.consumer;
    if (c) await disconnect(c);
    await this.rebalancing;
    this.consumer = null;
    await this.txn?.close().catch(() => {});
    await this.sharedProducer?.disconnect().catch(() => {});
    await this.reader.stop().catch(() => {});
  }
}
