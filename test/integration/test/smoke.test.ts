// Smoke tests of the real infrastructure: Avro records through a real Kafka
// broker and a consumer group; objects through a real S3 server; the CLI's
// `tail` decoding a topic as a separate process.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  DEFAULT_CONNECTION_FACTS,
  type NetworkEvent,
  type RawRecord,
  createKafka,
  createLogger,
  createS3Client,
  loadConfig,
  networkEventCodec,
  rawRecordCodec,
  unwrapPayload,
} from '@netmon/common';
import type { Admin } from 'kafkajs';
import { waitUntil } from '../src';

const config = loadConfig(undefined);
const logger = createLogger('integration-test', 'warn');
const kafka = createKafka(config.kafka, logger, 'it');
const runId = randomUUID();
const repoRoot = path.resolve(__dirname, '../../../..');

function rawRecord(host: string, seq: number): RawRecord {
  return {
    host_id: host,
    hostname: `${host}.example`,
    run_id: runId,
    seq,
    time_us: Date.now() * 1000,
    payload: { 'netmon.raw.ProcessExit': { pid: 1000 + seq, tid: 1000 + seq, start_time_us: seq * 10_000, exit_code: 0 } },
  };
}

describe('Kafka (real broker)', () => {
  let admin: Admin;
  const topic = `netmon.it.smoke.${runId}`;
  before(async () => {
    admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
  });
  after(async () => {
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect();
  });

  test('Avro records keyed by host arrive through a consumer group, in order per host', async () => {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const codec = rawRecordCodec();
    const hosts = ['host-a', 'host-b', 'host-c', 'host-d'];
    const perHost = 50;
    const messages = hosts.flatMap((h) => Array.from({ length: perHost }, (_, seq) => ({ key: h, value: codec.encode(rawRecord(h, seq)) })));
    await producer.send({ topic, messages, acks: -1 });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: `netmon-it-${runId}` });
    const seen = new Map<string, number[]>();
    let count = 0;
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const rec = codec.decode(message.value ?? Buffer.alloc(0));
        assert.equal(message.key?.toString(), rec.host_id, 'keyed by host id');
        const p = unwrapPayload(rec.payload);
        assert.equal(p.kind, 'exit');
        seen.set(rec.host_id, [...(seen.get(rec.host_id) ?? []), rec.seq]);
        count++;
      },
    });
    await waitUntil('every record consumed', () => count >= hosts.length * perHost, 60_000);
    await consumer.disconnect();
    assert.equal(count, hosts.length * perHost);
    for (const h of hosts)
      assert.deepEqual(
        seen.get(h),
        Array.from({ length: perHost }, (_, i) => i),
        `order of ${h}`,
      );
  });

  test('`netmon tail` decodes the events topic to the spec JSON, as a separate process', async () => {
    const eventsTopic = `netmon.it.events.${runId}`;
    await admin.createTopics({ topics: [{ topic: eventsTopic, numPartitions: 1 }], waitForLeaders: true });
    const event = (cookie: number): NetworkEvent => ({
      type: 'NetworkEvent',
      process: {
        pid: 42,
        tid: 42,
        ppid: 1,
        uid: 1000,
        euid: 1000,
        auid: 1000,
        cap_inheritable: 0,
        cap_permitted: 0,
        cap_effective: 0,
        secureexec: '',
        filename: 'curl',
        binary_path: '/usr/bin/curl',
        args: '-6 example.org',
        container_id: '',
      },
      network_event: { type: 'TcpConnectionEstablish', saddr: '::1', daddr: '::1', sport: 40000 + cookie, dport: 80, cookie },
      timestamp: '2026-11-28T10:05:51.282Z',
      host: { hostname: 'web-17', id: 'abc' },
      source: { run_id: runId, seq: cookie },
      connection: { ...DEFAULT_CONNECTION_FACTS },
      process_key: '',
    });
    const producer = kafka.producer();
    await producer.connect();
    const codec = networkEventCodec();
    await producer.send({ topic: eventsTopic, messages: [1, 2, 3].map((c) => ({ key: 'abc', value: codec.encode(event(c)) })) });
    await producer.disconnect();

    const { stdout } = await promisify(execFile)(
      process.execPath,
      [path.join(repoRoot, 'bin/netmon.js'), 'tail', '--topic', eventsTopic, '--from-beginning', '--max', '3'],
      {
        timeout: 60_000,
      },
    );
    const lines = stdout.trim().split('\n');
    assert.equal(lines.length, 3);
    assert.deepEqual(
      lines,
      [1, 2, 3].map((c) => JSON.stringify(event(c))),
    );
    await admin.deleteTopics({ topics: [eventsTopic] }).catch(() => {});
  });
});

describe('S3 (real server)', () => {
  const s3 = createS3Client(config.s3);
  const prefix = `it/${runId}`;
  after(async () => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: config.s3.bucket, Prefix: prefix }));
    const keys = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (keys.length > 0) await s3.send(new DeleteObjectsCommand({ Bucket: config.s3.bucket, Delete: { Objects: keys } }));
    s3.destroy();
  });

  test('put, list and get objects', async () => {
    const bodies = new Map([
      [`${prefix}/dt=2026-11-28/hour=10/a.json.gz`, 'first'],
      [`${prefix}/dt=2026-11-28/hour=11/b.json.gz`, 'second'],
    ]);
    for (const [Key, Body] of bodies) await s3.send(new PutObjectCommand({ Bucket: config.s3.bucket, Key, Body }));
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: config.s3.bucket, Prefix: prefix }));
    assert.deepEqual((listed.Contents ?? []).map((o) => o.Key).sort(), [...bodies.keys()].sort());
    for (const [Key, Body] of bodies) {
      const got = await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key }));
      assert.equal(await got.Body?.transformToString(), Body);
    }
  });
});
