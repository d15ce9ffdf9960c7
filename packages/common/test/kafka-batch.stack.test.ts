// The batch addon (native/src/kafka_batch.cc) on the library's own clients,
// against the real broker (KAFKA_BROKERS, else the local stack's): what
// produceBatch() queues is what the broker holds (keys where the library's
// murmur2 partitioner puts them, chosen partitions, nulls, headers, bytes
// with NULs), it rides out a full local queue, and consumeBatch() hands back
// every message as it was, in order, with its offset and timestamp.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import { KafkaConsumer, Producer, librdkafkaVersion } from '@confluentinc/kafka-javascript';
import { Partitioners } from 'kafkajs';
import {
  DEFAULT_BROKERS,
  type KafkaSettings,
  type ProducedMessage,
  batchLibrdkafkaVersion,
  connectClient,
  consumeBatch,
  produceBatch,
  rdkafkaSettings,
  withAdmin,
} from '../src';

const settings: KafkaSettings = {
  brokers: (process.env.KAFKA_BROKERS ?? DEFAULT_BROKERS.join(',')).split(','),
  clientId: 'netmon-test',
  compression: 'lz4',
  ssl: false,
};
const topics: string[] = [];
const clients: Array<Producer | KafkaConsumer> = [];

async function freshTopic(partitions: number): Promise<string> {
  const topic = `netmon.test.batch.${randomUUID().slice(0, 8)}`;
  await withAdmin(settings, (admin) => admin.createTopic(topic, partitions));
  topics.push(topic);
  return topic;
}

after(async () => {
  await Promise.all(clients.map((c) => new Promise<void>((resolve) => (c.isConnected() ? c.disconnect(() => resolve()) : resolve()))));
  await withAdmin(settings, async (admin) => Promise.all(topics.map((t) => admin.deleteTopic(t))));
});

async function producer(extra: Record<string, unknown> = {}, polled = true): Promise<Producer> {
  const p = new Producer({ ...rdkafkaSettings(settings, 'batch-test'), dr_cb: false, ...extra }, { partitioner: 'murmur2_random' });
  await connectClient(p, 'batch test producer');
  if (polled) p.setPollInterval(100);
  clients.push(p);
  return p;
}

function flush(p: Producer): Promise<void> {
  return new Promise((resolve, reject) => p.flush(30_000, (err) => (err ? reject(err) : resolve())));
}

async function consumer(topic: string): Promise<KafkaConsumer> {
  const c = new KafkaConsumer(
    { ...rdkafkaSettings(settings, 'batch-test'), 'group.id': `g-${randomUUID()}`, 'enable.auto.commit': false },
    { 'auto.offset.reset': 'earliest' },
  );
  await connectClient(c, 'batch test consumer');
  c.subscribe([topic]);
  clients.push(c);
  return c;
}

async function readAll(c: KafkaConsumer, n: number, ms = 30_000, keys = true) {
  const out = [];
  const until = Date.now() + ms;
  while (out.length < n) {
    if (Date.now() > until) assert.fail(`read ${out.length} of ${n} messages in ${ms} ms`);
    const { messages, errors } = await consumeBatch(c, 500, 200, keys);
    assert.deepEqual(errors, []);
    out.push(...messages);
  }
  return out;
}

test('the addon calls the very librdkafka the library loaded', () => {
  assert.equal(batchLibrdkafkaVersion(), librdkafkaVersion);
});

test('produced in a batch, consumed in batches: every key, value, header and partition as sent', async () => {
  const topic = await freshTopic(6);
  const p = await producer();
  const murmur2 = Partitioners.DefaultPartitioner();
  const sent: ProducedMessage[] = [];
  for (let i = 0; i < 300; i++) sent.push({ key: `host-${i % 37}`, value: Buffer.from(`value ${i}`) });
  sent.push({ key: Buffer.from([0, 1, 0, 2]), value: Buffer.from([0, 0xff, 0]), partition: 4 }); // NULs in the key: not cut
  sent.push({ key: null, value: null, partition: 2 }); // a tombstone without a key
  sent.push({ key: 'h', value: 'text', partition: 1, headers: { reason: 'bad', 'x-bytes': Buffer.from([0, 1]), multi: ['a', 'b'] } });
  await produceBatch(p, topic, sent);
  await flush(p);

  const got = await readAll(await consumer(topic), sent.length);
  assert.equal(got.length, sent.length);
  // One Buffer per batch: the values are views of it.
  assert.ok(got.some((m, i) => i > 0 && m.value && got[i - 1]!.value && m.value.buffer === got[i - 1]!.value!.buffer));
  const byValue = new Map(got.map((m) => [m.value === null ? 'null' : m.value.toString('hex'), m]));
  for (const s of sent) {
    const value = s.value === null ? null : Buffer.from(s.value);
    const m = byValue.get(value === null ? 'null' : value.toString('hex'));
    assert.ok(m, `message ${String(s.value)} arrived`);
    assert.equal(m.topic, topic);
    assert.deepEqual(m.value, value);
    assert.deepEqual(m.key, s.key === null ? null : Buffer.from(s.key!));
    const expected =
      s.partition ??
      murmur2({
        topic,
        partitionMetadata: Array.from({ length: 6 }, (_, i) => ({ partitionId: i, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] })),
        message: { key: s.key!, value: null },
      });
    assert.equal(m.partition, expected, `partition of ${String(s.key)}`);
    assert.ok(Math.abs((m.timestamp ?? 0) - Date.now()) < 120_000, 'a create time of now');
  }
  const withHeaders = byValue.get(Buffer.from('text').toString('hex'))!;
  assert.deepEqual(withHeaders.headers, [
    { reason: Buffer.from('bad') },
    { 'x-bytes': Buffer.from([0, 1]) },
    { multi: Buffer.from('a') },
    { multi: Buffer.from('b') },
  ]);
  // In order per partition, offsets from 0 without gaps.
  const perPartition = new Map<number, number[]>();
  for (const m of got) perPartition.set(m.partition, [...(perPartition.get(m.partition) ?? []), m.offset]);
  for (const [, offsets] of perPartition)
    assert.deepEqual(
      offsets,
      offsets.map((_, i) => i),
    );
  const ordered = got.filter((m) => m.key?.toString() === 'host-3').map((m) => m.value!.toString());
  assert.deepEqual(
    ordered,
    sent.filter((s) => s.key === 'host-3').map((s) => String(s.value)),
  );
  // Without keys (a consumer that never reads them): the same messages, every key null.
  const keyless = await readAll(await consumer(topic), sent.length, 30_000, false);
  const sameButKey = (ms: typeof got) => ms.map(({ key: _key, ...rest }) => rest).sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  assert.deepEqual(sameButKey(keyless), sameButKey(got));
  assert.ok(keyless.every((m) => m.key === null));
});

test('a full local queue: produceBatch waits for it to drain and loses nothing', async () => {
  const topic = await freshTopic(1);
  // Not polled on a timer: produceBatch serves the delivery reports that hold the queue's places itself.
  const p = await producer({ 'queue.buffering.max.messages': 50, 'linger.ms': 20 }, false);
  const sent = Array.from({ length: 1000 }, (_, i) => ({ value: Buffer.from(String(i)) }));
  await produceBatch(p, topic, sent);
  await flush(p);
  const got = await readAll(await consumer(topic), sent.length);
  assert.deepEqual(
    got.map((m) => m.value!.toString()),
    sent.map((s) => s.value.toString()),
  );
});

test('wrong clients and closed ones are refused with a clear error', async () => {
  const topic = await freshTopic(1);
  const p = await producer();
  const c = await consumer(topic);
  await assert.rejects(() => consumeBatch(p as unknown as KafkaConsumer, 10, 10), /KafkaConsumer's native client/);
  await assert.rejects(() => produceBatch(c as unknown as Producer, topic, [{ value: Buffer.from('x') }]), /Producer's native client/);
  await new Promise<void>((resolve) => c.disconnect(() => resolve()));
  await assert.rejects(() => consumeBatch(c, 10, 10));
});
