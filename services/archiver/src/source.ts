// What the archiver needs of Kafka, and nothing more: a consumer-group member
// that hands over batches per partition and can seek, pause, resume and commit
// one partition, plus a dead-letter send. RdkafkaSource (rdkafka-source.ts,
// librdkafka) implements it; tests may pass their own.
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
