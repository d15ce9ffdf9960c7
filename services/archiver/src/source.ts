// What the archiver needs of Kafka, and nothing more: a consumer-group member
// that hands over batches per partition and can seek, pause, resume and commit
// one partition, plus a dead-letter send. Small enough that another client
// (librdkafka) can implement it; KafkajsSource is the current one.
import { DLQ_HEADERS, type KafkaSettings, type Logger, createKafka, describeError } from '@netmon/common';
import type { Consumer, Producer } from 'kafkajs';
import type { BatchEnd, InMessage } from './partition';

export interface SourceHandlers {
  /** A new generation owns these partitions (every earlier one is revoked; reading restarts at the committed offsets). */
  assigned(partitions: number[], memberId: string): void;
  /** A fetched batch of one partition, in offset order. `isStale()` turns true once a seek or a rebalance makes it obsolete. */
  batch(partition: number, messages: readonly InMessage[], end: BatchEnd, isStale: () => boolean): Promise<void>;
  /** The client stopped consuming on an error (and whether it restarts by itself). */
  crashed(err: unknown, restarting: boolean): void;
}

export interface DeadLetterRecord {
  partition: number;
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
  reason: string;
  detail: string;
}

export interface ArchiveSource {
  /** Connects, joins the group and starts handing over batches. */
  start(handlers: SourceHandlers): Promise<void>;
  /** Fetch `partition` again from `offset`. */
  seek(partition: number, offset: number): void;
  pause(partition: number): void;
  resume(partition: number): void;
  /** Stops fetching every partition (shutdown). */
  pauseAll(): void;
  /** Commits `offset` (the next one to read) for `partition`, fenced by the group generation. */
  commit(partition: number, offset: number): Promise<void>;
  /** Sends a record that cannot be archived to the dead-letter topic (acks=all). */
  deadLetter(d: DeadLetterRecord): Promise<void>;
  /** Leaves the group and disconnects. */
  close(): Promise<void>;
}

export interface KafkajsSourceOptions {
  topic: string;
  dlqTopic: string;
  groupId: string;
}

export class KafkajsSource implements ArchiveSource {
  private readonly consumer: Consumer;
  private readonly producer: Producer;

  constructor(
    kafka: KafkaSettings,
    log: Logger,
    private readonly o: KafkajsSourceOptions,
  ) {
    const client = createKafka(kafka, log, 'archiver');
    this.consumer = client.consumer({
      groupId: o.groupId,
      readUncommitted: false,
      allowAutoTopicCreation: false,
      sessionTimeout: 30_000,
      rebalanceTimeout: 60_000,
      heartbeatInterval: 3_000,
      maxBytesPerPartition: 8 << 20,
      maxBytes: 32 << 20,
      maxWaitTimeInMs: 500,
    });
    this.producer = client.producer({ allowAutoTopicCreation: false });
  }

  async start(h: SourceHandlers): Promise<void> {
    const { topic } = this.o;
    await this.producer.connect();
    await this.consumer.connect();
    const { GROUP_JOIN, CRASH } = this.consumer.events;
    this.consumer.on(GROUP_JOIN, (e) => h.assigned(e.payload.memberAssignment[topic] ?? [], e.payload.memberId));
    this.consumer.on(CRASH, (e) => h.crashed(e.payload.error, e.payload.restart));
    await this.consumer.subscribe({ topic, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      partitionsConsumedConcurrently: 1,
      eachBatch: async ({ batch, isStale }) => {
        if (batch.messages.length === 0) return;
        // kafkajs' messages fit InMessage as they are (string offsets): no copy per record.
        await h.batch(batch.partition, batch.messages, { lastOffset: Number(batch.lastOffset()), highWatermark: Number(batch.highWatermark) }, isStale);
      },
    });
  }

  seek(partition: number, offset: number): void {
    this.consumer.seek({ topic: this.o.topic, partition, offset: String(offset) });
  }

  pause(partition: number): void {
    this.consumer.pause([{ topic: this.o.topic, partitions: [partition] }]);
  }

  resume(partition: number): void {
    this.consumer.resume([{ topic: this.o.topic, partitions: [partition] }]);
  }

  pauseAll(): void {
    try {
      this.consumer.pause([{ topic: this.o.topic }]);
    } catch {
      // Not running yet: nothing to pause.
    }
  }

  async commit(partition: number, offset: number): Promise<void> {
    await this.consumer.commitOffsets([{ topic: this.o.topic, partition, offset: String(offset) }]);
  }

  async deadLetter(d: DeadLetterRecord): Promise<void> {
    await this.producer.send({
      topic: this.o.dlqTopic,
      acks: -1,
      messages: [
        {
          key: d.key,
          value: d.value,
          headers: {
            [DLQ_HEADERS.reason]: d.reason,
            [DLQ_HEADERS.detail]: d.detail,
            [DLQ_HEADERS.sourceTopic]: this.o.topic,
            [DLQ_HEADERS.sourcePartition]: String(d.partition),
            [DLQ_HEADERS.sourceOffset]: String(d.offset),
          },
        },
      ],
    });
  }

  async close(): Promise<void> {
    let failure: unknown;
    await this.consumer.disconnect().catch((err) => {
      failure = err;
    });
    await this.producer.disconnect().catch(() => undefined);
    if (failure) throw new Error(`consumer disconnect failed: ${describeError(failure)}`, { cause: failure });
  }
}
