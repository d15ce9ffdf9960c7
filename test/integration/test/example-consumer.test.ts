// examples/consumer/consumer.js, the custom consumer of docs/topics-and-schemas.md,
// as a separate process against the real broker: it must decode what the
// enricher writes (LZ4 batches, transactions, the current and the history schema)
// with nothing but kafkajs, avsc and the .avsc files.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  DEFAULT_CONNECTION_FACTS,
  type NetworkEvent,
  SingleObjectCodec,
  compressionType,
  createKafka,
  createLogger,
  loadConfig,
  networkEventCodec,
  readSchema,
} from '@netmon/common';
import type { Admin, Kafka } from 'kafkajs';
import { REPO_ROOT } from '../src';

const CONSUMER = path.join(REPO_ROOT, 'examples/consumer/consumer.js');
const config = loadConfig(undefined);
const kafka: Kafka = createKafka(config.kafka, createLogger('integration-test', 'error'), 'it-example');
const topic = `netmon.it.example-consumer.${randomUUID()}`;
let admin: Admin;

const CONTAINER = '3f4e8a9c1b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f';

function event(
  n: number,
  over: { type: NetworkEvent['network_event']['type']; saddr: string; daddr: string; sport: number; dport: number; container?: string },
): NetworkEvent {
  return {
    type: 'NetworkEvent',
    process: {
      pid: 4000 + n,
      tid: 4000 + n,
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
      args: `-s http://example/${n}`,
      container_id: over.container ?? '',
    },
    network_event: { type: over.type, saddr: over.saddr, daddr: over.daddr, sport: over.sport, dport: over.dport, cookie: 9000 + n },
    timestamp: `2025-05-31T10:05:5${n}.282Z`,
    host: { hostname: 'web-17', id: '4c4c4544004e3510804bb4c04f4a3332' },
    source: { run_id: 'a2f0c6d8-0000-4000-8000-000000000001', seq: n },
    connection: { ...DEFAULT_CONNECTION_FACTS },
    process_key: '',
  };
}

const committed = [
  event(1, { type: 'TcpConnectionEstablish', saddr: '10.0.0.5', daddr: '93.184.216.34', sport: 33340, dport: 80, container: CONTAINER }),
  event(2, { type: 'TcpConnectionAccept', saddr: '::1', daddr: '::1', sport: 8080, dport: 51234 }),
  event(3, { type: 'TcpConnectionClose', saddr: '10.0.0.5', daddr: '93.184.216.34', sport: 33340, dport: 80, container: CONTAINER }),
];
// Written with the previous NetworkEvent schema (no `source`): resolved to the current one.
const { source: _dropped, ...oldEvent } = event(4, { type: 'TcpConnectionEstablish', saddr: '2001:db8::1', daddr: '2001:db8::2', sport: 40000, dport: 443 });
const aborted = event(9, { type: 'TcpConnectionEstablish', saddr: '10.9.9.9', daddr: '10.9.9.9', sport: 9, dport: 9 });

const expectedLines = [
  `2025-05-31T10:05:51.282Z  web-17  Establish curl[4001]  10.0.0.5:33340 → 93.184.216.34:80  ${CONTAINER.slice(0, 12)}`,
  '2025-05-31T10:05:52.282Z  web-17  Accept    curl[4002]  [::1]:8080 → [::1]:51234  -',
  `2025-05-31T10:05:53.282Z  web-17  Close     curl[4003]  10.0.0.5:33340 → 93.184.216.34:80  ${CONTAINER.slice(0, 12)}`,
  '2025-05-31T10:05:54.282Z  web-17  Establish curl[4004]  [2001:db8::1]:40000 → [2001:db8::2]:443  -',
];

before(async () => {
  admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });

  const codec = networkEventCodec();
  const v0 = new SingleObjectCodec<Omit<NetworkEvent, 'source'>>(readSchema('history/network-event.v0.avsc'));
  const key = committed[0]!.host.id; // one host: one partition, a fixed order
  const producer = kafka.producer({ transactionalId: `netmon-it-example-${randomUUID()}`, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const send = async (values: Buffer[], commit: boolean) => {
    const txn = await producer.transaction();
    await txn.send({ topic, compression: compressionType('lz4'), messages: values.map((value) => ({ key, value })) });
    await (commit ? txn.commit() : txn.abort());
  };
  await send(
    committed.slice(0, 2).map((e) => codec.encode(e)),
    true,
  );
  await send([codec.encode(aborted)], false); // read_committed: never shown
  await send([codec.encode(committed[2]!), Buffer.from('not an Avro record'), v0.encode(oldEvent)], true);
  await producer.disconnect();
});

after(async () => {
  await admin?.deleteTopics({ topics: [topic] }).catch(() => {});
  await admin?.disconnect();
});

function runConsumer(args: string[], timeoutMs = 90_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CONSUMER, '--brokers', config.kafka.brokers.join(','), '--topic', topic, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`consumer did not exit in ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('prints one line per committed event, in order, then stops at --max', async () => {
  const r = await runConsumer(['--from-beginning', '--max', String(expectedLines.length)]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trimEnd().split('\n'), expectedLines);
  // The undecodable record is reported on stderr and skipped.
  assert.match(r.stderr, /not single-object encoded/);
  assert.doesNotMatch(r.stdout, /10\.9\.9\.9/);
});

test('--json prints the decoded NetworkEvents, old writer schema resolved to the current one', async () => {
  const r = await runConsumer(['--from-beginning', '--max', '4', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const events = r.stdout
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as NetworkEvent);
  assert.deepEqual(events, [...committed, { ...oldEvent, source: { run_id: '', seq: -1 }, connection: { ...DEFAULT_CONNECTION_FACTS }, process_key: '' }]);
  // Field order of the spec (the archived JSON).
  assert.deepEqual(Object.keys(events[0]!), ['type', 'process', 'network_event', 'timestamp', 'host', 'source', 'connection', 'process_key']);
});
