// The librdkafka adapter against the real broker (KAFKA_BROKERS, else the
// local stack's 127.0.0.1:9092): acknowledged sends, the partition of a key
// (murmur2, as kafkajs and Java choose it), transactions whose offsets commit
// with them (KIP-447) and whose aborts leave nothing for read_committed.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import { Partitioners } from 'kafkajs';
import { DEFAULT_BROKERS, type KafkaMessage, type KafkaSettings, NativeConsumer, NativeProducer, createLogger, rdkafkaSettings, withAdmin } from '../src';

const settings: KafkaSettings = {
  brokers: (process.env.KAFKA_BROKERS ?? DEFAULT_BROKERS.join(',')).split(','),
  clientId: 'netmon-test',
  compression: 'lz4',
  ssl: false,
};
const logger = createLogger('rdkafka-test', 'warn');
const topics: string[] = [];

async function freshTopic(partitions: number): Promise<string> {
  const topic = `netmon.test.rdkafka.${randomUUID().slice(0, 8)}`;
  await withAdmin(settings, (admin) => admin.createTopic(topic, partitions));
  topics.push(topic);
  return topic;
}

after(() => withAdmin(settings, async (admin) => Promise.all(topics.map((t) => admin.deleteTopic(t)))));

/** Reads until `n` messages came, or fails after `ms`. */
async function readN(consumer: NativeConsumer, n: number, ms = 20_000): Promise<KafkaMessage[]> {
  const out: KafkaMessage[] = [];
  const until = Date.now() + ms;
  while (out.length < n) {
    if (Date.now() > until) assert.fail(`read ${out.length} of ${n} messages in ${ms} ms`);
    out.push(...(await consumer.consume(1000)));
  }
  return out;
}

test('settings: TLS and SASL map to librdkafka keys', () => {
  const c = rdkafkaSettings(
    { ...settings, ssl: { caFile: '/ca.pem', rejectUnauthorized: true }, sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'p' } },
    'sensor',
  );
  assert.equal(c['security.protocol'], 'sasl_ssl');
  assert.equal(c['ssl.ca.location'], '/ca.pem');
  assert.equal(c['sasl.mechanisms'], 'SCRAM-SHA-512');
  assert.equal(c['client.id'], 'netmon-test-sensor');
  assert.equal(rdkafkaSettings(settings, '')['security.protocol'], 'plaintext');
});

test('an idempotent send resolves once acknowledged; each key lands where kafkajs would put it', async () => {
  const topic = await freshTopic(6);
  const producer = await NativeProducer.connect(settings, logger, { clientSuffix: 'test' });
  const keys = Array.from({ length: 40 }, (_, i) => `host-${i}`);
  await producer.send(
    topic,
    keys.flatMap((key) => [0, 1, 2].map((i) => ({ key, value: Buffer.from(`${key}:${i}`) }))),
  );
  await producer.disconnect();

  const consumer = await NativeConsumer.connect(settings, logger, { clientSuffix: 'test', groupId: `g-${randomUUID()}` });
  consumer.subscribe([topic]);
  const messages = await readN(consumer, keys.length * 3);
  await consumer.disconnect();
  const kafkajs = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: 6 }, (_, partitionId) => ({ partitionId, leader: 1, partitionErrorCode: 0, replicas: [1], isr: [1] }));
  for (const key of keys) {
    const mine = messages.filter((m) => m.key?.toString() === key);
    assert.deepEqual(
      mine.map((m) => m.value?.toString()),
      [0, 1, 2].map((i) => `${key}:${i}`),
      `${key}: all three, in order`,
    );
    const expected = kafkajs({ topic, partitionMetadata, message: { key, value: null } });
    assert.ok(
      mine.every((m) => m.partition === expected),
      `${key}: partition ${mine[0]?.partition}, kafkajs ${expected}`,
    );
  }
});

test('a transaction commits its messages and the consumer offsets together; an aborted one leaves nothing', async () => {
  const input = await freshTopic(1);
  const output = await freshTopic(1);
  const seed = await NativeProducer.connect(settings, logger, { clientSuffix: 'seed' });
  await seed.send(
    input,
    Array.from({ length: 10 }, (_, i) => ({ key: 'k', value: Buffer.from(String(i)) })),
  );
  await seed.disconnect();

  const group = `g-${randomUUID()}`;
  const consumer = await NativeConsumer.connect(settings, logger, { clientSuffix: 'txn-in', groupId: group });
  consumer.subscribe([input]);
  const producer = await NativeProducer.connect(settings, logger, { clientSuffix: 'txn', transactionalId: `t-${randomUUID()}` });
  await producer.initTransactions();
  const read = await readN(consumer, 10);

  // first 5: aborted
  await producer.beginTransaction();
  await producer.send(output, [{ key: 'k', value: Buffer.from('aborted') }]);
  await producer.sendOffsetsToTransaction([{ topic: input, partition: 0, offset: read[4]!.offset + 1 }], consumer);
  await producer.abortTransaction();
  // all 10: committed
  await producer.beginTransaction();
  await producer.send(output, [{ key: 'k', value: Buffer.from('committed') }]);
  await producer.sendOffsetsToTransaction([{ topic: input, partition: 0, offset: read[9]!.offset + 1 }], consumer);
  await producer.commitTransaction();
  await producer.disconnect();
  await consumer.disconnect();

  const reader = await NativeConsumer.connect(settings, logger, { clientSuffix: 'rc', groupId: `g-${randomUUID()}`, readCommitted: true });
  reader.subscribe([output]);
  const out = await readN(reader, 1);
  const more = await reader.consume(100); // nothing else is visible
  await reader.disconnect();
  assert.deepEqual(
    [...out, ...more].map((m) => m.value?.toString()),
    ['committed'],
  );

  const again = await NativeConsumer.connect(settings, logger, { clientSuffix: 'txn-in-2', groupId: group });
  const committed = await new Promise<number>((resolve, reject) =>
    again.native.committed([{ topic: input, partition: 0 }], 5000, (err, tps) => (err ? reject(err) : resolve(tps[0]!.offset))),
  );
  await again.disconnect();
  assert.equal(committed, read[9]!.offset + 1, "the group's offset moved with the committed transaction only");
});

test('a send to a broker that never answers fails, naming the client and the cause', async () => {
  const producer = await NativeProducer.connect({ ...settings, brokers: ['127.0.0.1:1'] }, logger, { clientSuffix: 'nowhere', deliveryTimeoutMs: 1500 }).catch(
    (err: Error) => err,
  );
  if (producer instanceof Error) {
    assert.match(producer.message, /netmon-test-nowhere: connecting/);
    return;
  }
  await assert.rejects(producer.send('netmon.test.none', [{ value: Buffer.from('x') }]), /netmon-test-nowhere: delivering: .*(timed out|Timed out)/i);
  await producer.disconnect();
});
