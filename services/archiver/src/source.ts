// What the archiver needs of Kafka, and nothing more: a consumer-group member
// on the archived topics (the events topic, the status topic) that hands over
// batches per topic partition and can seek, pause, resume and commit one topic
// partition, plus a dead-letter send. RdkafkaSource (rdkafka-source.ts,
// librdkafka) implements it; tests may pass their own.
import type { BatchEnd, InMessage } from './partition';

/** One partition of one archived topic. */
export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

/** A map key of a topic partition ("/" is in no topic name). */
export function tpKey(tp: TopicPartition): string {
  return `${tp.topic}/${tp.partition}`;
}

export interface SourceHandlers {
  /** A new generation owns these topic partitions (every earlier one is revoked; reading restarts at the committed offsets). */
  assigned(partitions: TopicPartition[], memberId: string): void;
  /** A fetched batch of one topic partition, in offset order. `isStale()` turns true once a seek or a rebalance makes it obsolete. */
  batch(tp: TopicPartition, messages: readonly InMessage[], end: BatchEnd, isStale: () => boolean): Promise<void>;
  /** The client stopped consuming on an error (and whether it restarts by itself). */
  crashed(err: unknown, restarting: boolean): void;
}

export interface DeadLetterRecord {
  topic: string;
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
  /** Fetch the topic partition again from `offset`. */
  seek(tp: TopicPartition, offset: number): void;
  pause(tp: TopicPartition): void;
  resume(tp: TopicPartition): void;
  /** Stops fetching every partition (shutdown). */
  pauseAll(): void;
  /** Commits `offset` (the next one to read) for the topic partition, fenced by the group generation. */
  commit(tp: TopicPartition, offset: number): Promise<void>;
  /** Sends a record that cannot be archived to the dead-letter topic (acks=all). */
  deadLetter(d: DeadLetterRecord): Promise<void>;
  /** Leaves the group and disconnects. */
  close(): Promise<void>;
}
