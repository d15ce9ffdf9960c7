// The archiver's two streams without a broker or S3: one consumer group member
// over the events topic and the status topic (a fake ArchiveSource), an
// in-memory bucket in place of the S3 calls. The status records land under
// <s3.prefix>-status, as gzip NDJSON whatever archiver.format, with their own
// manifests and their own offset commits; a member that dies before its
// commit is replayed by the next one into the same objects, byte for byte.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { type NetmonConfig, type SensorStatusRecord, createLogger, networkEventCodec, parseConfig, sensorStatusCodec } from '@netmon/common';
import { Archiver } from '../src/archiver';
import { archiverSettings } from '../src/config';
import { EventDecoder } from '../src/decode';
import { STATUS_PREFIX_SUFFIX, manifestKey, parseDataKey, statusPrefix } from '../src/layout';
import type { Manifest } from '../src/manifest';
import type { BatchEnd, InMessage } from '../src/partition';
import { type ArchiveSource, type DeadLetterRecord, type SourceHandlers, type TopicPartition, tpKey } from '../src/source';
import { sampleEvent } from './samples';

const EVENTS = 'netmon.events.v1';
const STATUS = 'netmon.status.v1';
const PREFIX = 'netmon/events';
const noEnv = {} as NodeJS.ProcessEnv;

function config(format: 'json' | 'parquet'): NetmonConfig {
  return parseConfig(`archiver: { format: ${format}, metrics_port: 0, idle_flush_s: 1, flush_records: 1000 }\nlog: { level: silent }\n`, 'test.yaml', noEnv);
}

function statusRecord(hostname: string, seq: number, lost: number): SensorStatusRecord {
  return {
    timestamp: `2025-06-01T10:00:${String(seq).padStart(2, '0')}.000Z`,
    host: { hostname, id: `${hostname}-id` },
    source: { run_id: `${hostname}-run`, seq },
    seen: seq * 10,
    lost_kernel: lost,
    spooled: 0,
    dropped: 0,
    spool_bytes: 0,
  };
}

/** Records what the archiver asks of Kafka; batches are handed over by the test. */
class FakeSource implements ArchiveSource {
  handlers!: SourceHandlers;
  commits: Array<[string, number]> = [];
  seeks: Array<[string, number]> = [];
  deadLetters: DeadLetterRecord[] = [];
  /** false: every commit fails (a member about to die). */
  commitsWork = true;

  async start(h: SourceHandlers): Promise<void> {
    this.handlers = h;
  }
  seek(tp: TopicPartition, offset: number): void {
    this.seeks.push([tpKey(tp), offset]);
  }
  pause(): void {}
  resume(): void {}
  pauseAll(): void {}
  async commit(tp: TopicPartition, offset: number): Promise<void> {
    if (!this.commitsWork) throw new Error('the group moved on');
    this.commits.push([tpKey(tp), offset]);
  }
  async deadLetter(d: DeadLetterRecord): Promise<void> {
    this.deadLetters.push(d);
  }
  async close(): Promise<void> {}

  /** Hands the messages over as one batch; after each seek the archiver asks for, again from there (as the client fetches again). */
  async deliver(tp: TopicPartition, messages: InMessage[]): Promise<void> {
    let from = Number(messages[0]!.offset);
    for (let round = 0; round < 10; round++) {
      const batch = messages.filter((m) => Number(m.offset) >= from);
      const last = Number(batch[batch.length - 1]!.offset);
      const end: BatchEnd = { lastOffset: last, highWatermark: last + 1 };
      const seen = this.seeks.length;
      await this.handlers.batch(tp, batch, end, () => false);
      await new Promise((r) => setTimeout(r, 100)); // the manifest lookups answer
      const seek = this.seeks.slice(seen).find(([key]) => key === tpKey(tp));
      if (!seek) return;
      from = seek[1];
    }
    throw new Error('still seeking after 10 rounds');
  }
}

/** The S3 calls the archiver makes, on a Map. */
class MemoryBucket {
  readonly objects = new Map<string, Buffer>();
  readonly manifests = new Map<string, Manifest>();

  install(a: Archiver): void {
    Object.assign(a.store, {
      getManifest: async (key: string) => this.manifests.get(key),
      createManifest: async (key: string, m: Manifest) => {
        if (this.manifests.has(key)) return 'exists';
        this.manifests.set(key, structuredClone(m));
        return 'created';
      },
      putObject: async (key: string, body: Buffer) => {
        this.objects.set(key, Buffer.from(body));
      },
    });
  }

  keys(prefix: string): string[] {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
}

async function archiver(format: 'json' | 'parquet', source: FakeSource, bucket: MemoryBucket): Promise<Archiver> {
  const a = new Archiver(config(format), { logger: createLogger('streams-test', 'silent'), source });
  bucket.install(a);
  await a.start();
  return a;
}

const statusMessages = (records: SensorStatusRecord[], first = 0): InMessage[] => {
  const codec = sensorStatusCodec();
  return records.map((r, i) => ({ offset: first + i, key: Buffer.from(r.host.id), value: codec.encode(r) }));
};

describe('archiver streams: the events topic and the status topic in one group', () => {
  test('settings: one stream per topic; the status stream under s3.prefix + "-status", always JSON', () => {
    for (const format of ['json', 'parquet'] as const) {
      const s = archiverSettings(config(format), noEnv);
      assert.deepEqual(s.streams, [
        { kind: 'events', topic: EVENTS, prefix: PREFIX, format },
        { kind: 'status', topic: STATUS, prefix: `${PREFIX}${STATUS_PREFIX_SUFFIX}`, format: 'json' },
      ]);
      assert.equal(s.statusTopic, STATUS);
    }
  });

  test('the status decoder: a SensorStatus record to its JSON line, its hour partition from its timestamp; an event is not one', () => {
    const d = EventDecoder.status();
    const r = statusRecord('web-1', 7, 3);
    const rec = d.decode(statusMessages([r])[0]!, 0);
    assert.ok(!('reason' in rec));
    const line = rec.bytes ? rec.bytes.subarray(0, rec.bytesEnd).toString() : rec.line;
    assert.equal(line, JSON.stringify(r));
    assert.deepEqual(rec.part, { dt: '2025-06-01', hour: '10' });
    assert.equal(rec.timeMs, Date.parse(r.timestamp));
    // An event on the status topic is not a status record: dead-lettered, never archived as one.
    const wrong = d.decode({ offset: 1, key: null, value: networkEventCodec().encode(sampleEvent()) }, 1);
    assert.equal((wrong as { reason?: string }).reason, 'unknown-fingerprint');
  });

  test('Parquet events and JSON status records: each under its prefix, its manifests, its commits', async () => {
    const source = new FakeSource();
    const bucket = new MemoryBucket();
    const a = await archiver('parquet', source, bucket);
    try {
      source.handlers.assigned(
        [
          { topic: EVENTS, partition: 0 },
          { topic: STATUS, partition: 0 },
          { topic: 'another.topic', partition: 0 },
        ],
        'member-1',
      );
      const records = [statusRecord('web-1', 1, 0), statusRecord('db-1', 2, 4), statusRecord('web-1', 3, 0)];
      await source.deliver({ topic: STATUS, partition: 0 }, statusMessages(records));
      const event = sampleEvent({ timestamp: '2025-06-01T10:00:05.000Z' });
      await source.deliver({ topic: EVENTS, partition: 0 }, [{ offset: 0, key: null, value: networkEventCodec().encode(event) }]);
    } finally {
      await a.stop();
    }
    const statusKeys = bucket.keys(`${statusPrefix(PREFIX)}/`);
    assert.deepEqual(statusKeys, [`${statusPrefix(PREFIX)}/dt=2025-06-01/hour=10/${STATUS}+0+00000000000000000000.json.gz`]);
    assert.deepEqual(
      gunzipSync(bucket.objects.get(statusKeys[0]!)!)
        .toString()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as SensorStatusRecord)
        .map((r) => [r.host.hostname, r.source.seq, r.lost_kernel]),
      [
        ['web-1', 1, 0],
        ['db-1', 2, 4],
        ['web-1', 3, 0],
      ],
      'every status record once, in offset order, as its JSON line',
    );
    const events = bucket.keys(`${PREFIX}-parquet/`);
    assert.deepEqual(
      events.map((k) => [parseDataKey(k)?.topic, parseDataKey(k)?.format]),
      [[EVENTS, 'parquet']],
    );
    assert.deepEqual(bucket.keys(`${PREFIX}/`), [], 'nothing under the JSON events prefix');
    assert.deepEqual([...bucket.manifests.keys()].sort(), [manifestKey(PREFIX, EVENTS, 0, 0), manifestKey(statusPrefix(PREFIX), STATUS, 0, 0)].sort());
    assert.equal(bucket.manifests.get(manifestKey(statusPrefix(PREFIX), STATUS, 0, 0))!.format, 'json');
    assert.equal(bucket.manifests.get(manifestKey(PREFIX, EVENTS, 0, 0))!.format, 'parquet');
    assert.deepEqual(source.commits.sort(), [
      [`${EVENTS}/0`, 1],
      [`${STATUS}/0`, 3],
    ]);
  });

  test('exactly once: a member that dies before committing its status flush is replayed by the next into the same object', async () => {
    const prev = process.env.NETMON_ARCHIVER_SHUTDOWN_TIMEOUT_S;
    process.env.NETMON_ARCHIVER_SHUTDOWN_TIMEOUT_S = '1';
    const bucket = new MemoryBucket();
    const records = [statusRecord('web-1', 1, 0), statusRecord('db-1', 2, 4), statusRecord('web-1', 3, 1)];
    const tp = { topic: STATUS, partition: 0 };
    try {
      // The first member: manifest and object written, its commit refused; it leaves without committing.
      const first = new FakeSource();
      first.commitsWork = false;
      const a = await archiver('json', first, bucket);
      first.handlers.assigned([tp], 'member-1');
      await first.deliver(tp, statusMessages(records.slice(0, 2)));
      try {
        await a.stop();
      } finally {
        assert.deepEqual(first.commits, []);
      }
      const key = bucket.keys(`${statusPrefix(PREFIX)}/`)[0]!;
      const written = bucket.objects.get(key)!;
      assert.equal(bucket.manifests.get(manifestKey(statusPrefix(PREFIX), STATUS, 0, 0))!.lastOffset, 1);

      // The next member reads from the committed offset (0) again, and more records after them.
      const second = new FakeSource();
      const b = await archiver('json', second, bucket);
      try {
        second.handlers.assigned([tp], 'member-2');
        await second.deliver(tp, statusMessages(records));
      } finally {
        await b.stop();
      }
      assert.deepEqual(bucket.objects.get(key), written, 'the replayed flush: the same object, byte for byte');
      const keys = bucket.keys(`${statusPrefix(PREFIX)}/`);
      assert.equal(keys.length, 2, 'the replay ends where the manifest says; the next record opens a flush of its own');
      const lines = keys.flatMap((k) => gunzipSync(bucket.objects.get(k)!).toString().trim().split('\n'));
      assert.deepEqual(
        lines.map((l) => (JSON.parse(l) as SensorStatusRecord).source.seq),
        [1, 2, 3],
        'every status record exactly once',
      );
      assert.deepEqual(second.commits, [
        [`${STATUS}/0`, 2],
        [`${STATUS}/0`, 3],
      ]);
    } finally {
      if (prev === undefined) delete process.env.NETMON_ARCHIVER_SHUTDOWN_TIMEOUT_S;
      else process.env.NETMON_ARCHIVER_SHUTDOWN_TIMEOUT_S = prev;
    }
  });
});
