// The enricher's client (client.ts) on kafkajs 2.2.4.
//
// Exactly once: one transactional producer per owned raw partition,
// transactional id "<group>.<raw topic>.<partition>". kafkajs 2.2.4 cannot send
// the consumer group metadata with the offsets (KIP-447), so zombie fencing
// comes from the transactional id: the next owner of a partition initialises
// the same id (fence()), which aborts any open transaction of the previous
// owner and fences its producer.
//
// At least once: one idempotent producer; events, dead letters and changelog
// are sent, then the offsets committed.
import { type Logger, type NetmonConfig, NetmonError, cachingPartitioner, createKafka, describeError } from '@netmon/common';
import type { Admin, Consumer, Kafka, Producer, TopicMessages } from 'kafkajs';
import type { StateSink } from './changelog';
import type { ConsumerHandlers, EnricherClient, FlushOutput } from './client';
import type { EnricherSettings } from './config';
import type { OffsetCommit, TopicBatch } from './partition';
import { StateReader } from './state';

// A transaction right after a commit meets CONCURRENT_TRANSACTIONS until the
// broker has written the markers (milliseconds): retry fast, like the Java
// client's 20 ms backoff, not with the client-wide 200 ms.
const TXN_RETRY = { initialRetryTime: 10, maxRetryTime: 1000, retries: Number.MAX_SAFE_INTEGER };

function offsetsOf(commit: OffsetCommit) {
  return { topic: commit.topic, partitions: [{ partition: commit.partition, offset: String(commit.offset) }] };
}

/** One partition's transactional producer: a flush is one transaction. */
class TransactionalOutput implements FlushOutput {
  constructor(
    private readonly producer: Producer,
    private readonly groupId: string,
  ) {}

  async write(requests: readonly TopicBatch[][], commit: OffsetCommit): Promise<void> {
    const txn = await this.producer.transaction();
    try {
      for (const chunk of requests) await txn.sendBatch({ topicMessages: chunk as TopicMessages[], acks: -1 });
      await txn.sendOffsets({ consumerGroupId: this.groupId, topics: [offsetsOf(commit)] });
      await txn.commit();
    } catch (err) {
      await txn.abort().catch(() => {});
      throw err;
    }
  }

  close(): Promise<void> {
    return this.producer.disconnect().catch(() => {});
  }
}

/** The shared idempotent producer, then the consumer's offset commit. */
class SharedOutput implements FlushOutput {
  constructor(
    private readonly producer: Producer,
    private readonly consumer: Consumer,
  ) {}

  async write(requests: readonly TopicBatch[][], commit: OffsetCommit): Promise<void> {
    for (const chunk of requests) await this.producer.sendBatch({ topicMessages: chunk as TopicMessages[], acks: -1 });
    await this.consumer.commitOffsets([{ topic: commit.topic, partition: commit.partition, offset: String(commit.offset) }]);
  }

  /** Shared by every partition: disconnected by the client's close(). */
  async close(): Promise<void> {}
}

export class KafkajsClient implements EnricherClient {
  private readonly kafka: Kafka;
  private readonly consumer: Consumer;
  private readonly admin: Admin;
  private readonly reader: StateReader;
  private sharedProducer: Producer | null = null;
  private sharedOutput: SharedOutput | null = null;

  constructor(
    private readonly config: NetmonConfig,
    private readonly settings: EnricherSettings,
    private readonly logger: Logger,
  ) {
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
    this.reader = new StateReader(this.kafka, this.admin, settings.stateTopic, logger);
  }

  async start(): Promise<void> {
    await this.admin.connect();
    await this.ensureTopics();
    if (!this.config.enricher.exactlyOnce) {
      const producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: TXN_RETRY, createPartitioner: cachingPartitioner });
      this.sharedProducer = producer;
      await producer.connect();
      this.sharedOutput = new SharedOutput(producer, this.consumer);
    }
    await this.reader.start();
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

  async consume(handlers: ConsumerHandlers, concurrency: number): Promise<void> {
    const { consumer, config } = this;
    const { GROUP_JOIN, CRASH } = consumer.events;
    consumer.on(GROUP_JOIN, (e) => handlers.assigned(e.payload.memberAssignment[config.topics.raw] ?? []));
    consumer.on(CRASH, (e) => handlers.crashed(e.payload.error, e.payload.restart));
    await consumer.connect();
    await consumer.subscribe({ topic: config.topics.raw, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: concurrency,
      eachBatch: ({ batch, resolveOffset, heartbeat, isRunning, isStale }) =>
        handlers.batch({
          partition: batch.partition,
          messages: batch.messages,
          highWatermark: Number(batch.highWatermark),
          stale: isStale,
          live: () => isRunning() && !isStale(),
          consumed: (offset) => resolveOffset(String(offset)),
          heartbeat,
        }),
    });
  }

  async fence(partition: number): Promise<FlushOutput> {
    const producer = this.kafka.producer({
      transactionalId: `${this.settings.transactionalIdPrefix}.${partition}`,
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
    return new TransactionalOutput(producer, this.config.enricher.groupId);
  }

  shared(): FlushOutput {
    if (!this.sharedOutput) throw new NetmonError('no shared output: the enricher runs exactly once');
    return this.sharedOutput;
  }

  async committed(partition: number): Promise<number> {
    const { config } = this;
    const res = await this.admin.fetchOffsets({ groupId: config.enricher.groupId, topics: [config.topics.raw] });
    const o = res[0]?.partitions.find((x) => x.partition === partition);
    const n = o ? Number(o.offset) : -1;
    if (n >= 0) return n;
    // Nothing committed: the start of the partition.
    const offsets = await this.admin.fetchTopicOffsets(config.topics.raw);
    return Number(offsets.find((x) => x.partition === partition)?.low ?? 0);
  }

  restore(partition: number, sink: StateSink): Promise<{ records: number }> {
    return this.reader.restore(partition, sink);
  }

  seek(partition: number, offset: number): void {
    this.consumer.seek({ topic: this.config.topics.raw, partition, offset: String(offset) });
  }

  stopConsuming(): Promise<void> {
    return this.consumer.stop();
  }

  async close(): Promise<void> {
    const warn = (what: string) => (err: unknown) => this.logger.warn({ err: describeError(err) }, what);
    await this.consumer.disconnect().catch(warn('consumer disconnect'));
    await this.sharedProducer?.disconnect().catch(() => {});
    await this.reader.stop().catch(() => {});
    await this.admin.disconnect().catch(() => {});
  }
}
