// What Netmon needs from the broker, through kafkajs 2.2.4: topics, an idempotent
// producer, a consumer group, and consume-transform-produce in transactions with
// sendOffsets (read_committed consumers must not see aborted records).
// Runs against KAFKA_BROKERS, else the native stack (DEFAULT_BROKERS).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type Admin, type Consumer, Kafka, logLevel } from 'kafkajs';
import { DEFAULT_BROKERS, DEFAULT_TOPICS } from '@netmon/common';

const brokers = process.env.KAFKA_BROKERS ? process.env.KAFKA_BROKERS.split(',') : [...DEFAULT_BROKERS];
const kafka = new Kafka({ clientId: 'stack-kafka-test', brokers, logLevel: logLevel.NOTHING, retry: { retries: 8, initialRetryTime: 100 } });
const run = `${process.pid}-${Date.now()}`;
const IN = `stack-test.in.${run}`;
const OUT = `stack-test.out.${run}`;
const N = 30;
let admin: Admin;

/** Consumes from topic with a new group until `count` messages arrived. */
interface Got {
  partition: number;
  key: string;
  value: string;
}

async function consumeAll(topic: string, groupId: string, count: number, readUncommitted = false): Promise<Got[]> {
  const consumer: Consumer = kafka.consumer({ groupId, readUncommitted });
  const got: Got[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${groupId}: ${got.length}/${count} messages after 30 s`)), 30_000);
      consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            got.push({ partition, key: message.key?.toString() ?? '', value: message.value?.toString() ?? '' });
            if (got.length >= count) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
    return got;
  } finally {
    await consumer.disconnect();
  }
}

before(async () => {
  admin = kafka.admin();
  await admin.connect();
});

after(async () => {
  await admin.deleteTopics({ topics: [IN, OUT] }).catch(() => undefined);
  await admin.disconnect();
});

test('cluster answers and the Netmon topics exist with 4 partitions', async () => {
  const cluster = await admin.describeCluster();
  assert.equal(cluster.brokers.length, 1);
  const meta = await admin.fetchTopicMetadata({ topics: Object.values(DEFAULT_TOPICS) });
  for (const t of meta.topics) assert.equal(t.partitions.length, 4, t.name);
});

test('create topics, idempotent produce, consume through a consumer group', async () => {
  assert.equal(
    await admin.createTopics({
      topics: [
        { topic: IN, numPartitions: 4 },
        { topic: OUT, numPartitions: 4 },
      ],
      waitForLeaders: true,
    }),
    true,
  );
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const sent = await producer.send({
    topic: IN,
    acks: -1,
    messages: Array.from({ length: N }, (_, i) => ({ key: `host-${i % 5}`, value: `v${i}` })),
  });
  await producer.disconnect();
  assert.ok(sent.every((r) => r.errorCode === 0));

  const group = `g-${run}`;
  const got = await consumeAll(IN, group, N);
  assert.deepEqual(got.map((m) => m.value).sort(), Array.from({ length: N }, (_, i) => `v${i}`).sort());
  // one key (host) stays in one partition, in order
  for (let h = 0; h < 5; h++) {
    const mine = got.filter((m) => m.key === `host-${h}`);
    assert.equal(new Set(mine.map((m) => m.partition)).size, 1);
    assert.deepEqual(
      mine.map((m) => Number(m.value.slice(1))),
      mine.map((m) => Number(m.value.slice(1))).sort((a, b) => a - b),
    );
  }
  const offsets = await admin.fetchOffsets({ groupId: group, topics: [IN] });
  const committed = offsets[0]!.partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
  assert.equal(committed, N);
});

test('consume-transform-produce: transactions with sendOffsets, aborted records invisible', async () => {
  const group = `ctp-${run}`;
  const producer = kafka.producer({ transactionalId: `tx-${run}`, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const consumer = kafka.consumer({ groupId: group });
  await consumer.connect();
  let done = 0;
  try {
    await consumer.subscribe({ topic: IN, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`transformed ${done}/${N} after 30 s`)), 30_000);
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            const tx = await producer.transaction();
            try {
              await tx.send({ topic: OUT, messages: batch.messages.map((m) => ({ key: m.key, value: `T:${m.value}` })) });
              const next = (BigInt(batch.lastOffset()) + 1n).toString();
              await tx.sendOffsets({ consumerGroupId: group, topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] }] });
              await tx.commit();
            } catch (err) {
              await tx.abort();
              throw err;
            }
            done += batch.messages.length;
            if (done >= N) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  // the group's offsets were committed by the transactions
  const offsets = await admin.fetchOffsets({ groupId: group, topics: [IN] });
  assert.equal(
    offsets[0]!.partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0),
    N,
  );

  // an aborted transaction, then a committed one behind it in the same partition
  const aborted = await producer.transaction();
  await aborted.send({ topic: OUT, messages: [{ key: 'host-0', value: 'ABORTED' }] });
  await aborted.abort();
  const last = await producer.transaction();
  await last.send({ topic: OUT, messages: [{ key: 'host-0', value: 'T:END' }] });
  await last.commit();
  await producer.disconnect();

  // read_committed reads past the aborted record to T:END without seeing it;
  // read_uncommitted does see it (so the abort really wrote something)
  const committed = await consumeAll(OUT, `rc-${run}`, N + 1);
  assert.ok(
    committed.every((m) => m.value.startsWith('T:')),
    committed.map((m) => m.value).join(' '),
  );
  assert.ok(committed.some((m) => m.value === 'T:END'));
  const uncommitted = await consumeAll(OUT, `ru-${run}`, N + 2, true);
  assert.ok(uncommitted.some((m) => m.value === 'ABORTED'));
});
