// How much of the events topic the archiver has not written yet: its consumer
// group's lag, read without joining the group. `netmon query` and the live
// view say it, so an empty answer is never mistaken for "no events".
import { LOCAL_RUN_FLUSH, NativeConsumer, type NetmonConfig, createLogger } from '@netmon/common';

export interface ArchiverLag {
  /** Offsets past the group's commits, summed over partitions (transaction markers included: "about"). */
  waiting: number;
  partitions: number;
}

/** The archiver group's lag on the events topic; rejects within about `timeoutMs` when Kafka is away. */
export async function archiverLag(config: NetmonConfig, timeoutMs = 4000): Promise<ArchiverLag> {
  const consumer = await NativeConsumer.connect(config.kafka, createLogger('query', 'silent'), {
    clientSuffix: 'lag',
    groupId: config.archiver.groupId, // only read: a consumer that never subscribes does not join
    readCommitted: true,
    connectTimeoutMs: timeoutMs,
  });
  try {
    const topic = config.topics.events;
    const partitions = await consumer.partitions(topic, timeoutMs);
    const committed = await consumer.committed(topic, partitions, timeoutMs);
    let waiting = 0;
    for (const p of partitions) {
      const { lowOffset, highOffset } = await consumer.watermarks(topic, p, timeoutMs);
      const from = Math.max(committed.get(p) ?? -1, lowOffset);
      waiting += Math.max(0, highOffset - from);
    }
    return { waiting, partitions: partitions.length };
  } finally {
    await consumer.disconnect();
  }
}

/** The line `netmon query` adds when events still wait for the archiver ('' when none do). */
export function waitingLine(lag: ArchiverLag, config: NetmonConfig): string {
  if (lag.waiting === 0) return '';
  const { idleFlushS, flushSpanS } = config.archiver;
  // On the local stack's defaults the archiver is most likely the main job's, with its own policy.
  const when =
    config.source === '(defaults)'
      ? `within ${LOCAL_RUN_FLUSH.idleFlushS} s of the last event under \`netmon run --pipeline\` (${LOCAL_RUN_FLUSH.flushSpanS} s at most; ${idleFlushS} s and ${flushSpanS} s for an archiver on the defaults)`
      : `within ${idleFlushS} s of the last event, ${flushSpanS} s at most`;
  return `netmon query: about ${lag.waiting} events are still waiting for the archiver (group ${config.archiver.groupId}, topic ${config.topics.events}); it writes them ${when}: run the query again then`;
}
