// The enricher's durable state: a compacted changelog topic, one partition per
// raw partition, written in the same transaction as the events and the
// consumer offsets, so it always agrees with the committed offsets. The record
// format is in changelog.ts. A newly assigned partition is restored by reading
// its changelog partition from the start to its end (after fencing the
// previous owner, so no transaction of it is still open there).
import { randomUUID } from 'node:crypto';
import type { Logger } from '@netmon/common';
import { NetmonError } from '@netmon/common';
import type { Admin, Consumer, Kafka } from 'kafkajs';
import { type StateSink, applyStateMessage } from './changelog';

export { type ChangelogMessage, type StateSink, applyStateMessage, changeMessage, doneMessage } from './changelog';

export class StateError extends NetmonError {}

interface Restore {
  end: number;
  sink: StateSink;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Reads changelog partitions on demand: one long-lived consumer (its own
 * throwaway group, never committing, read_committed) with every partition
 * paused except those being restored.
 */
export class StateReader {
  private readonly consumer: Consumer;
  private readonly restores = new Map<number, Restore>();
  private running = false;

  constructor(
    kafka: Kafka,
    private readonly admin: Admin,
    private readonly topic: string,
    private readonly logger: Logger,
  ) {
    this.consumer = kafka.consumer({ groupId: `netmon-enricher-state-${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 100, sessionTimeout: 30000 });
  }

  async start(): Promise<void> {
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.topic, fromBeginning: true });
    const { END_BATCH_PROCESS } = this.consumer.events;
    // Batches of control records only reach here, not eachBatch.
    this.consumer.on(END_BATCH_PROCESS, (e) => this.progress(e.payload.partition, Number(e.payload.lastOffset)));
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        const r = this.restores.get(batch.partition);
        if (!r) return;
        for (const m of batch.messages) {
          try {
            applyStateMessage(m, r.sink);
          } catch (err) {
            this.logger.warn({ partition: batch.partition, offset: m.offset, err: (err as Error).message }, 'unreadable changelog record skipped');
          }
        }
      },
    });
    this.consumer.pause([{ topic: this.topic }]);
    this.running = true;
  }

  private progress(partition: number, lastOffset: number): void {
    const r = this.restores.get(partition);
    if (r && lastOffset + 1 >= r.end) {
      this.restores.delete(partition);
      this.consumer.pause([{ topic: this.topic, partitions: [partition] }]);
      r.resolve();
    }
  }

  /** Feeds changelog partition `partition` from its start to its current end into `sink`. */
  async restore(partition: number, sink: StateSink, timeoutMs = 60_000): Promise<{ records: number; end: number }> {
    if (!this.running) throw new StateError('state reader not started');
    const offsets = await this.admin.fetchTopicOffsets(this.topic);
    const o = offsets.find((x) => x.partition === partition);
    if (!o) throw new StateError(`changelog ${this.topic} has no partition ${partition}`);
    const low = Number(o.low);
    const end = Number(o.high);
    if (end <= low) return { records: 0, end };
    let records = 0;
    const counting: StateSink = {
      entry: (...a) => {
        records++;
        sink.entry(...a);
      },
      done: (...a) => {
        records++;
        sink.done(...a);
      },
    };
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.restores.delete(partition);
        reject(new StateError(`restoring ${this.topic}[${partition}] to offset ${end} took over ${timeoutMs} ms`));
      }, timeoutMs);
      this.restores.set(partition, {
        end,
        sink: counting,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject,
      });
      this.consumer.seek({ topic: this.topic, partition, offset: String(low) });
      this.consumer.resume([{ topic: this.topic, partitions: [partition] }]);
    });
    return { records, end };
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const r of this.restores.values()) r.reject(new StateError('state reader stopped'));
    this.restores.clear();
    await this.consumer.disconnect();
  }
}
