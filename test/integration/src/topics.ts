// Fresh topics per test, and reading a topic back to the end.
import { randomUUID } from 'node:crypto';
import { createKafka, createLogger, loadConfig } from '@netmon/common';
import type { Kafka } from 'kafkajs';

export const testConfig = () => loadConfig(undefined);
export const testKafka = (): Kafka => createKafka(testConfig().kafka, createLogger('integration-test', 'error'), 'it');

/**
 * A fresh topic, its leaders elected. Asked again while the cluster is not
 * ready for it: a cluster just started may refuse with "not controller" or
 * fail to elect the leaders in time; the topic name stays the same.
 */
export async function createTopic(kafka: Kafka, prefix: string, partitions = 2): Promise<string> {
  const topic = `${prefix}.${randomUUID().slice(0, 8)}`;
  const admin = kafka.admin();
  await admin.connect();
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
        const [meta] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics;
        if (meta?.partitions.length === partitions && meta.partitions.every((p) => p.leader >= 0)) return topic;
        throw new Error(`${topic}: ${meta?.partitions.filter((p) => p.leader >= 0).length ?? 0} of ${partitions} leaders`);
      } catch (err) {
        if (attempt >= 5) throw new Error(`creating topic ${topic}: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
  } finally {
    await admin.disconnect();
  }
}

export async function deleteTopics(kafka: Kafka, topics: string[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics }).catch(() => {});
  await admin.disconnect();
}

export interface TopicRecord {
  key: string;
  value: Buffer;
  partition: number;
}

/**
 * Reads the topic from the beginning (read committed) until `enough(records)`
 * holds and then nothing new came for `quietMs`; fails after `timeoutMs`.
 */
export async function readTopic(
  kafka: Kafka,
  topic: string,
  enough: (records: TopicRecord[]) => boolean = (r) => r.length > 0,
  quietMs = 2000,
  timeoutMs = 90_000,
): Promise<TopicRecord[]> {
  const consumer = kafka.consumer({ groupId: `netmon-it-read-${randomUUID()}` });
  const out: TopicRecord[] = [];
  let last = Date.now();
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message, partition }) => {
      out.push({ key: message.key?.toString() ?? '', value: message.value ?? Buffer.alloc(0), partition });
      last = Date.now();
    },
  });
  const deadline = Date.now() + timeoutMs;
  try {
    while (!(enough(out) && Date.now() - last >= quietMs)) {
      if (Date.now() > deadline) throw new Error(`readTopic(${topic}): ${out.length} records after ${timeoutMs} ms, not enough`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await consumer.disconnect();
  }
  return out;
}
