// What the enricher's service needs of a Kafka client, and no more:
// librdkafka implements it (rdkafka.ts). The protocol itself (partition.ts)
// knows no client at all.
import type { StateSink } from './changelog';
import type { OffsetCommit, RawMessage, TopicBatch } from './partition';

/** Where a partition's flushes go. */
export interface FlushOutput {
  /**
   * Produces the requests in order, then commits `commit`: one transaction
   * when exactly once (aborted on any failure), else send then commit.
   * Throws on failure.
   */
  write(requests: readonly TopicBatch[][], commit: OffsetCommit): Promise<void>;
  /** Releases the output (a partition's transactional producer); never throws. */
  close(): Promise<void>;
}

/** A fetched batch of one raw partition. */
export interface RawBatch {
  partition: number;
  messages: readonly RawMessage[];
  highWatermark: number;
  /** Fetched before a seek, or the partition is no longer ours: its records come again from elsewhere. */
  stale(): boolean;
  /** Not stale, and the consumer is not stopping. */
  live(): boolean;
  /** The batch is handled up to `offset` (a client that tracks it; librdkafka's position is already past the batch). */
  consumed(offset: number): void;
  heartbeat(): Promise<void>;
}

export interface ConsumerHandlers {
  /** A batch; the client fetches the partition again once it resolves. */
  batch(batch: RawBatch): Promise<void>;
  /** The member joined the group (again) and owns these raw partitions now. */
  assigned(partitions: number[]): void;
  /** A rebalance takes the partitions away: no deadline flush until assigned(). */
  revoking(): void;
  /** The consumer crashed; `restart`: the client restarts it itself. */
  crashed(err: Error, restart: boolean): void;
}

export interface EnricherClient {
  /** Connects, creates the missing topics, opens the shared output (at least once) and the changelog reader. */
  start(): Promise<void>;
  /** Joins the group on the raw topic and feeds `handlers`, `concurrency` partitions at a time. */
  consume(handlers: ConsumerHandlers, concurrency: number): Promise<void>;
  /**
   * Exactly once: a transactional output for raw partition p, once no
   * transaction of a previous owner can still commit offsets of p (KIP-447:
   * the group generation fences it; its open transaction has ended).
   */
  fence(partition: number): Promise<FlushOutput>;
  /** At least once: the one output of every partition. */
  shared(): FlushOutput;
  /** The group's committed offset of raw partition p, else the start of the partition. */
  committed(partition: number): Promise<number>;
  /** Feeds changelog partition p from its start to its current end into `sink`. */
  restore(partition: number, sink: StateSink): Promise<{ records: number }>;
  /** Fetches raw partition p from `offset` on. */
  seek(partition: number, offset: number): void;
  /** Stops fetching; resolves once the batches in hand are handled. */
  stopConsuming(): Promise<void>;
  /** Leaves the group and disconnects; never throws. */
  close(): Promise<void>;
}
